#!/usr/bin/env bash
# Benchmark starting components from signed bundles (`pack run`, the host library)
# against the stock wasmtime CLI 48.0.8. Everything is measured in one run and printed
# as one table with ratios and the targets they must meet:
#
#   In process (host/benches/start.rs: verified bundle, engine ready):
#     load-to-call    Host::load (mmap) + link + instantiate + first export call
#                     returning:          c-cli p50 < 1 ms; py-cli, js-http-proxy-sm < 10 ms
#     instance        a second instance from the same pre-instance:   c-cli p50 < 50 us
#     instance+call, first (cold: digest check of the artifact) are reported
#   Whole process:
#     c-cli           `pack run` / `wasmtime run --allow-precompiled` on the same .cwasm
#                                                                       <= 1.1
#     py-cli          `wasmtime run -C cache=n` (JIT) / `pack run`      >= 100
#     pack-host       the runtime-only host running c-cli (reported), and its size
#   HTTP (js-http-proxy-sm, loopback, keep-alive connections from a small Rust client):
#     first response  from process start to the first 200, `pack run` and `wasmtime
#                     serve -Scli` (JIT, cache off; and on the precompiled .cwasm)
#     requests/s      beside `wasmtime serve -Scli`
#
# Usage: bench/start.sh [--repeat N] [--seconds S] [--connections C]
#   --repeat N       whole-process runs per measurement, median reported (default 20;
#                    the JIT runs of py-cli use min(N, 3))
#   --seconds S      length of each HTTP load run (default 5)
#   --connections C  keep-alive connections of the HTTP load (default 4)
# Environment: PACK_CORPUS (default ../shared/corpus), WASMTIME (default: `wasmtime` on
# PATH), PACK_CACHE_DIR (the compile cache used to build the bundles).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
repeat=20 seconds=5 connections=4
value_options=(repeat seconds connections)
parse_options "$@"

corpus=$(corpus_dir)
wasmtime=$(wasmtime_cli)
require_tools python3 zstd

pack=$(release_binary pack)
pack_host=$(release_binary pack-host pack-host)
# The benchmark binary (a `harness = false` bench target), built with the bench profile.
start="$(cargo bench --no-run --quiet --message-format=json --manifest-path "$here/Cargo.toml" \
    -p pack-host --bench start \
    | sed -n 's/.*"name":"start".*"executable":"\([^"]*\)".*/\1/p' | tail -1)"
[ -x "$start" ] || { echo "error: the start benchmark did not build" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

case "$(uname -m)" in
    x86_64) platform=linux/amd64 ;;
    aarch64) platform=linux/arm64 ;;
    *) echo "error: no pack target for $(uname -m)" >&2; exit 2 ;;
esac

# Bundles for this machine's platform only (baseline CPU), so `pack run` and
# `wasmtime run --allow-precompiled` load the very same artifact.
"$pack" key generate --no-password --output-prefix "$work/key" >/dev/null 2>&1
for name in c-cli py-cli js-http-proxy-sm; do
    echo "building the $name bundle..." >&2
    "$pack" build "$corpus/components/$name.component.wasm" -t "$platform" -o "$work/$name" \
        --sign-key "$work/key.key" >/dev/null
done

# median_us RUNS CMD...: median wall time in microseconds over RUNS runs (after one
# warm-up run); a failing run aborts, with its output.
median_us() {
    local runs=$1; shift
    "$@" >"$work/out" 2>&1 || { echo "error: $* failed:" >&2; cat "$work/out" >&2; exit 1; }
    local times=() t0 t1
    for ((i = 0; i < runs; i++)); do
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1
        t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}

# interleaved RUNS A... ::: B...: runs A and B alternately RUNS times each (after one
# warm-up run of each), so that load from elsewhere on the machine hits both alike, and
# prints both medians in microseconds.
interleaved() {
    local runs=$1; shift
    local a=() b=()
    while [[ $1 != ::: ]]; do a+=("$1"); shift; done
    shift
    b=("$@")
    "${a[@]}" >"$work/out" 2>&1 || { echo "error: ${a[*]} failed:" >&2; cat "$work/out" >&2; exit 1; }
    "${b[@]}" >"$work/out" 2>&1 || { echo "error: ${b[*]} failed:" >&2; cat "$work/out" >&2; exit 1; }
    local ta=() tb=() t0 t1
    for ((i = 0; i < runs; i++)); do
        t0=$(date +%s%N); "${a[@]}" >/dev/null 2>&1; t1=$(date +%s%N); ta+=($(( (t1 - t0) / 1000 )))
        t0=$(date +%s%N); "${b[@]}" >/dev/null 2>&1; t1=$(date +%s%N); tb+=($(( (t1 - t0) / 1000 )))
    done
    local med='{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'
    echo "$(printf '%s\n' "${ta[@]}" | sort -n | awk "$med") $(printf '%s\n' "${tb[@]}" | sort -n | awk "$med")"
}

rows=()
row() { rows+=("$(printf '%-18s %-16s %12s %14s %9s  %-6s %s' "$@")"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
check() { # check VALUE OP LIMIT -> ok / FAIL
    awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == "<") ? (v < l) : (op == "<=") ? (v <= l) : (v >= l); print ok ? "ok" : "FAIL" }'
}
ms() { awk -v us="$1" 'BEGIN { printf "%.2fms", us / 1000 }'; }
us() { awk -v us="$1" 'BEGIN { printf "%.1fus", us }'; }

# In process.
echo "measuring in process..." >&2
"$start" --key "$work/key.pub" --runs 30 \
    "c-cli=$work/c-cli,2" "py-cli=$work/py-cli" "js-http-proxy-sm=$work/js-http-proxy-sm" \
    >"$work/inproc"
inproc() { awk -v n="$1" -v m="$2" -v f="$3" '$1 == "inproc" && $2 == n && $3 == m { print $f }' "$work/inproc"; }
for name in c-cli py-cli js-http-proxy-sm; do
    limit=10000
    [[ $name == c-cli ]] && limit=1000
    v="$(inproc "$name" load-to-call 4)"
    row "$name" "load-to-call p50" "$(us "$v")" "p90 $(us "$(inproc "$name" load-to-call 5)")" - \
        "$(check "$v" "<" "$limit")" "<$(ms "$limit")"
    v="$(inproc "$name" instance 4)"
    if [[ -n "$v" ]]; then
        if [[ $name == c-cli ]]; then
            row "$name" "instance p50" "$(us "$v")" "p90 $(us "$(inproc "$name" instance 5)")" - "$(check "$v" "<" 50)" "<50us"
        else
            row "$name" "instance p50" "$(us "$v")" "p90 $(us "$(inproc "$name" instance 5)")" - - "(info)"
        fi
    fi
    v="$(inproc "$name" instance+call 4)"
    row "$name" "instance+call p50" "$(us "$v")" "p90 $(us "$(inproc "$name" instance+call 5)")" - - "(info)"
    row "$name" "first (cold)" "$(ms "$(inproc "$name" first 4)")" - - - "(info: digest check)"
done

# Whole process.
echo "measuring whole processes ($repeat runs each)..." >&2
c_cwasm="$work/c-cli.cwasm"
cwasm_file "$work/c-cli" "$platform" "$c_cwasm"
read -r p w < <(interleaved "$repeat" "$pack" run "$work/c-cli" --key "$work/key.pub" -- 2 \
    ::: "$wasmtime" run --allow-precompiled "$c_cwasm" 2)
r="$(ratio "$p" "$w")"
row c-cli "pack run" "$(ms "$p")" "$(ms "$w")" "$r" "$(check "$r" "<=" 1.1)" "<=1.1x wasmtime --allow-precompiled"
read -r h w < <(interleaved "$repeat" "$pack_host" "$work/c-cli" --key "$work/key.pub" -- 2 \
    ::: "$wasmtime" run --allow-precompiled "$c_cwasm" 2)
r="$(ratio "$h" "$w")"
row c-cli "pack-host run" "$(ms "$h")" "$(ms "$w")" "$r" - "(info: runtime-only host)"
jit_runs=$(( repeat < 3 ? repeat : 3 ))
p="$(median_us "$repeat" "$pack" run "$work/py-cli" --key "$work/key.pub")"
w="$(median_us "$jit_runs" "$wasmtime" run -C cache=n "$corpus/components/py-cli.component.wasm")"
r="$(ratio "$w" "$p")"
row py-cli "pack run" "$(ms "$p")" "$(ms "$w")" "${r}x" "$(check "$r" ">=" 100)" ">=100x faster than wasmtime run (JIT)"

# HTTP.
echo "measuring HTTP (${seconds}s of load, $connections connections)..." >&2
js_wasm="$corpus/components/js-http-proxy-sm.component.wasm"
js_cwasm="$work/js-http-proxy-sm.cwasm"
cwasm_file "$work/js-http-proxy-sm" "$platform" "$js_cwasm"
read -r _ pf prps perr < <("$start" serve "$seconds" "$connections" -- \
    "$pack" run "$work/js-http-proxy-sm" --key "$work/key.pub" --listen 127.0.0.1:0)
read -r _ wf wrps werr < <("$start" serve "$seconds" "$connections" -- \
    "$wasmtime" serve -Scli -C cache=n --addr 127.0.0.1:0 "$js_wasm")
read -r _ wpf wprps wperr < <("$start" serve "$seconds" "$connections" -- \
    "$wasmtime" serve -Scli -Wtimeout=600s --allow-precompiled --addr 127.0.0.1:0 "$js_cwasm")
row js-http-proxy-sm "first response" "${pf}ms" "${wf}ms" "$(ratio "$wf" "$pf")x" - "(info: vs wasmtime serve, JIT)"
row js-http-proxy-sm "first response" "${pf}ms" "${wpf}ms" "$(ratio "$pf" "$wpf")" - "(info: vs wasmtime serve --allow-precompiled)"
row js-http-proxy-sm "requests/s" "$prps" "$wprps" "$(ratio "$prps" "$wprps")" - "(info: errors $perr / $wperr; JIT server: $wrps/s)"

size="$(stat -c %s "$pack_host")"
echo
echo "pack: $("$pack" --version)   wasmtime: $("$wasmtime" --version)   cores: $(nproc)   whole-process runs: $repeat (median)"
echo "pack-host (runtime-only, release): $(awk -v b="$size" 'BEGIN { printf "%.1f MiB", b / 1048576 }') ($size bytes)"
printf '%-18s %-16s %12s %14s %9s  %-6s %s\n' component case pack wasmtime ratio check target
printf '%s\n' "${rows[@]}"
if printf '%s\n' "${rows[@]}" | grep -q FAIL; then exit 1; fi
