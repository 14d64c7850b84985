#!/usr/bin/env bash
# What a host pays to start an app from a registry, against the unsigned, unverified way
# to do the same job (skopeo copy of the artifact into a directory, then `wasmtime run
# --allow-precompiled`), measured in one run on a real registry (`docker-registry` on
# 127.0.0.1, temporary storage), for py-cli and js-http-proxy-sm:
#
#   bytes        what the registry sent for a first start with an empty store (its
#                access log: `http.response.written` of every request), against the
#                uncompressed `.cwasm`:                                  <= 0.35x
#   first start  `pack run REF` with an empty store (pull, verify, decompress, load,
#                run to exit) / skopeo copy of the native manifest + `wasmtime run
#                --allow-precompiled` of its `.cwasm`:                 <= 1.0x
#   warm start   `pack run REF --pull missing` with the store filled / `wasmtime run
#                --allow-precompiled` on the same `.cwasm`:  py-cli <= 1.2x (c-cli
#                <= 1.1x, when the corpus has it); `--pull always` reported beside it
#   build        `pack build --target all --no-cache` of py-cli with compression /
#                without it:                                             <= 1.1x
#                (and the same with the compile cache warm, reported: packaging only)
#
# js-http-proxy-sm is an HTTP handler, which runs until stopped: its start is timed to
# the line saying it listens (`pack run --json --listen 127.0.0.1:0`, `wasmtime serve
# --addr 127.0.0.1:0`), then it is stopped.
#
# Usage: bench/transfer.sh [--repeat N]
#   --repeat N  runs per measurement; the median is reported (default 5)
# Environment: PACK_CORPUS (default ../shared/corpus), PACK (a pack binary; default: a
# release build of this checkout), WASMTIME (default `wasmtime` on PATH), SKOPEO
# (default `skopeo`).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

repeat=5
value_options=(repeat)
parse_options "$@"

corpus=$(corpus_dir)
require_tools docker-registry skopeo python3
wasmtime=$(wasmtime_cli)
pack=$(pack_release)
skopeo="${SKOPEO:-skopeo}"
case "$(uname -m)" in
    x86_64) platform=linux/amd64 ;;
    aarch64) platform=linux/arm64 ;;
    *) echo "error: no pack target for $(uname -m)" >&2; exit 2 ;;
esac

work=$(mktemp -d)
cleanup() {
    stop_registry
    rm -rf "$work"
}
trap cleanup EXIT
export PACK_CACHE_DIR="${PACK_CACHE_DIR:-$HOME/.cache/pack}"

start_registry "$work/registry"
log="$registry_log"

# Bytes the registry wrote in responses since log line $1.
sent_since() {
    tail -n +"$(( $1 + 1 ))" "$log" | grep -o 'http.response.written=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s+0}'
}
log_lines() { wc -l <"$log"; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }
# Milliseconds, to a tenth, between two now_us readings (a warm start takes ~10 ms).
elapsed_ms() { awk -v d=$(( $2 - $1 )) 'BEGIN { printf "%.1f", d / 1000 }'; }
time_ms() {
    local t0 t1
    t0=$(now_us)
    "$@" >/dev/null 2>"$work/last.err" || true
    t1=$(now_us)
    elapsed_ms "$t0" "$t1"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# until_line PATTERN CMD...: ms from starting CMD until its stderr shows PATTERN (or it
# exits); then it is stopped.
until_line() {
    local pattern=$1; shift
    local t0 t1 pid
    t0=$(now_us)
    "$@" >/dev/null 2>"$work/serve.err" &
    pid=$!
    for _ in $(seq 6000); do
        grep -q "$pattern" "$work/serve.err" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.002
    done
    t1=$(now_us)
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    elapsed_ms "$t0" "$t1"
}
# start KIND CMD...: a command run to exit (cli), or served until it listens (http).
start() {
    local kind=$1; shift
    if [[ "$kind" == cli ]]; then time_ms "$@"; else until_line "$listening" "$@"; fi
}
mb() { awk -v b="$1" 'BEGIN{printf "%.1f MB", b/1e6}'; }

"$pack" key generate --no-password --output-prefix "$work/key" >/dev/null 2>&1

# The .cwasm of this platform's manifest of the skopeo copy in $1 (an OCI layout).
native_cwasm() {
    python3 - "$1" <<'PY'
import json, sys, os
root = sys.argv[1]
blob = lambda d: os.path.join(root, "blobs", "sha256", d.split(":")[1])
idx = json.load(open(os.path.join(root, "index.json")))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
print(blob(m["layers"][0]["digest"]))
PY
}

status=0
rows=()
row() {
    local name=$1 p=$2 w=$3 target=$4 r ok
    r=$(ratio "$p" "$w")
    ok=$(awk -v r="$r" -v t="$target" 'BEGIN { print (r != "n/a" && r <= t) ? "yes" : "NO" }')
    [[ "$ok" == yes ]] || status=1
    rows+=("$(printf '%-32s %14s %14s %7s %7s  %s' "$name" "$p" "$w" "$r" "<=$target" "$ok")")
}

for name in py-cli js-http-proxy-sm c-cli; do
    input="$corpus/components/$name.component.wasm"
    [[ -f "$input" ]] || continue
    echo "building and pushing $name ($platform, pulley64, portable) ..." >&2
    "$pack" build "$input" -t "$platform" -t pulley64 -o "$work/$name" --sign-key "$work/key.key" --quiet >/dev/null
    "$pack" push "$work/$name" "$addr/bench/$name:v1" --quiet >/dev/null
    # The uncompressed .cwasm, as a plain bundle would carry it.
    "$pack" build "$input" -t "$platform" --no-compression -o "$work/$name-plain" --quiet >/dev/null
    "$pack" push "$work/$name-plain" "$addr/bench/$name-plain:v1" --quiet >/dev/null
    ref="$addr/bench/$name:v1"
    if [[ "$name" == *-cli ]]; then
        kind=cli; pack_args=(-- 2); peer=("$wasmtime" run --allow-precompiled); peer_args=(2)
    else
        kind=http; pack_args=(--json --listen 127.0.0.1:0)
        peer=("$wasmtime" serve -Scli --addr 127.0.0.1:0 --allow-precompiled); peer_args=()
    fi
    pack_run() { env PACK_STORE="$work/store" "$pack" run "$ref" --key "$work/key.pub" "$@" "${pack_args[@]}"; }
    skopeo_copy() {
        "$skopeo" copy --quiet --src-tls-verify=false --override-os linux --override-arch "${platform#linux/}" \
            "docker://$addr/bench/$name-plain:v1" "oci:$work/skopeo:v1" >/dev/null
    }
    peer_first() { skopeo_copy && "${peer[@]}" "$(native_cwasm "$work/skopeo")" "${peer_args[@]}"; }

    # Bytes of a first start with an empty store, and of skopeo copying the plain
    # native manifest (what `wasmtime run --allow-precompiled` needs).
    rm -rf "$work/store"
    before=$(log_lines)
    listening='"listening"'
    start "$kind" pack_run >/dev/null
    pack_bytes=$(sent_since "$before")
    rm -rf "$work/skopeo"
    before=$(log_lines)
    skopeo_copy
    skopeo_bytes=$(sent_since "$before")
    cwasm=$(native_cwasm "$work/skopeo")
    cwasm_size=$(stat -c %s "$cwasm")
    if [[ "$name" == c-cli ]]; then
        # 157 KB of code: the index, manifests, configs and signatures are a fifth of it.
        rows+=("$(printf '%-32s %14s %14s %7s' "$name bytes (first start)" "$pack_bytes" "$cwasm_size" "$(ratio "$pack_bytes" "$cwasm_size")")")
    else
        row "$name bytes (first start)" "$pack_bytes" "$cwasm_size" 0.35
    fi
    rows+=("$(printf '%-32s %14s %14s' "  (skopeo copy, plain bundle)" "" "$skopeo_bytes")")

    # First start: empty store / fresh directory each time.
    p=(); w=()
    for _ in $(seq "$repeat"); do
        rm -rf "$work/store" "$work/skopeo"
        listening='"listening"'; p+=("$(start "$kind" pack_run)")
        listening='Serving HTTP'; w+=("$(start "$kind" peer_first)")
    done
    row "$name first start (ms)" "$(median "${p[@]}")" "$(median "${w[@]}")" 1.0

    # Warm start: the store is filled (and its record written) by the runs above.
    # `--pull missing` starts from the store's verified copy; the default (`always`)
    # asks the registry for the tag and the signatures again first.
    listening='"listening"'; start "$kind" pack_run >/dev/null
    sleep 0.2
    pack_warm() { pack_run --pull missing; }
    p=(); a=(); w=()
    for _ in $(seq "$repeat"); do
        listening='"listening"'; p+=("$(start "$kind" pack_warm)")
        listening='"listening"'; a+=("$(start "$kind" pack_run)")
        listening='Serving HTTP'; w+=("$(start "$kind" "${peer[@]}" "$cwasm" "${peer_args[@]}")")
    done
    target=1.2
    [[ "$name" == c-cli ]] && target=1.1
    row "$name warm start (ms)" "$(median "${p[@]}")" "$(median "${w[@]}")" "$target"
    rows+=("$(printf '%-32s %14s %14s %7s' "  (--pull always)" "$(median "${a[@]}")" "$(median "${w[@]}")" "$(ratio "$(median "${a[@]}")" "$(median "${w[@]}")")")")
done

# Build time with and without compression, the compile cache warm.
input="$corpus/components/py-cli.component.wasm"
echo "building py-cli --target all (the first build fills the compile cache) ..." >&2
cold=$(time_ms "$pack" build "$input" --target all -o "$work/all-cold" --quiet)
# Builds py-cli --target all $repeat times with compression (into all-z) and without
# (all-plain), with the build options "$@"; sets the medians $with_ms and $without_ms.
build_both() {
    local with=() without=()
    for i in $(seq "$repeat"); do
        rm -rf "$work/all-z" "$work/all-plain"
        with+=("$(time_ms "$pack" build "$input" --target all -o "$work/all-z" "$@" --quiet)")
        without+=("$(time_ms "$pack" build "$input" --target all -o "$work/all-plain" "$@" --no-compression --quiet)")
    done
    with_ms=$(median "${with[@]}") without_ms=$(median "${without[@]}")
}
build_both
rows+=("$(printf '%-32s %14s %14s %7s' "py-cli packaging, cache warm (ms)" "$with_ms" "$without_ms" "$(ratio "$with_ms" "$without_ms")")")
rows+=("$(printf '%-32s %14s' "  (first build, compiling)" "$cold")")
# The whole build (compiling every target), with compression and without.
build_both --no-cache
row "py-cli build --target all (ms)" "$with_ms" "$without_ms" 1.1
z=$(du -sb "$work/all-z/blobs" | cut -f1); plain=$(du -sb "$work/all-plain/blobs" | cut -f1)
rows+=("$(printf '%-32s %14s %14s %7s' "py-cli --target all bundle" "$(mb "$z")" "$(mb "$plain")" "$(ratio "$z" "$plain")")")

echo
echo "docker-registry on 127.0.0.1; pack vs the unsigned way (skopeo + wasmtime); median of $repeat"
printf '%-32s %14s %14s %7s %7s  %s\n' measure pack peer ratio target ok
printf '%s\n' "${rows[@]}"
exit $status
