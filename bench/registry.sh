#!/usr/bin/env bash
# `pack push` / `pack pull` against skopeo (the peer tool) on a real registry
# (`docker-registry`, distribution 2.8, on 127.0.0.1 with temporary storage), measured in
# one run so the ratios hold on a noisy machine:
#
#   cold-push   to an empty registry:                  pack / skopeo   <= 1.00
#   noop-push   the same bundle again:                 pack / skopeo   <= 1.00
#   pull        into an empty layout:                  pack / skopeo   <= 1.00
#
# The bundle is py-cli built with `--target all` (~150 MB). skopeo copies with `--all`
# (every manifest) over plain HTTP, like pack on a loopback address.
#
# Usage: bench/registry.sh [--repeat N] [COMPONENT]
#   COMPONENT   a corpus name (default py-cli)
#   --repeat N  runs per measurement; the median is reported (default 3)
# Environment: PACK_CORPUS (default ../shared/corpus), PACK (a pack binary; default: a
# release build of this checkout), SKOPEO (default: `skopeo` on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

repeat=3
value_options=(repeat)
arguments=()
parse_options "$@"
component=py-cli
[[ ${#arguments[@]} -eq 0 ]] || component="${arguments[-1]}"

corpus=$(corpus_dir)
input="$corpus/components/$component.component.wasm"
[[ -f "$input" ]] || { echo "error: no $input (set PACK_CORPUS)" >&2; exit 2; }
require_tools docker-registry skopeo
pack=$(pack_release)
skopeo="${SKOPEO:-skopeo}"

work=$(mktemp -d)
cleanup() {
    stop_registry
    rm -rf "$work"
}
trap cleanup EXIT

# The bundle (compiled through pack's cache, so a second run of this script is quick).
echo "building $component --target all ..." >&2
"$pack" build "$input" --target all -o "$work/bundle" --tag v1 --quiet >/dev/null
size=$(du -sb "$work/bundle/blobs" | cut -f1)

# A fresh registry (new storage, random loopback port) per cold push, so neither tool
# finds blobs it pushed before: skopeo remembers where it put blobs (its blob-info cache)
# and would mount them from an earlier repository of the same registry instead of sending
# them.
registry_seq=0
fresh_registry() {
    registry_seq=$((registry_seq + 1))
    start_registry "$work/registry-$registry_seq"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# time_ms CMD...: wall time of one run in ms; the command must succeed.
time_ms() {
    local t0 t1
    t0=$(now_ms)
    "$@" >/dev/null 2>"$work/last.err" || { echo "error: $* failed:" >&2; cat "$work/last.err" >&2; exit 1; }
    t1=$(now_ms)
    echo $(( t1 - t0 ))
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

pack_cold=(); skopeo_cold=(); pack_noop=(); skopeo_noop=(); pack_pull=(); skopeo_pull=()
pull_pack() { time_ms "$pack" pull "$addr/app:v1" -o "$work/pulled-pack" --quiet; }
pull_skopeo() { time_ms "$skopeo" copy --all --quiet --src-tls-verify=false "docker://$addr/app:v1" "oci:$work/pulled-skopeo:v1"; }
for i in $(seq "$repeat"); do
    echo "run $i/$repeat ..." >&2
    fresh_registry
    skopeo_cold+=("$(time_ms "$skopeo" copy --all --quiet --dest-tls-verify=false "oci:$work/bundle:v1" "docker://$addr/app:v1")")
    skopeo_noop+=("$(time_ms "$skopeo" copy --all --quiet --dest-tls-verify=false "oci:$work/bundle:v1" "docker://$addr/app:v1")")
    fresh_registry
    pack_cold+=("$(time_ms "$pack" push "$work/bundle:v1" "$addr/app:v1" --quiet)")
    pack_noop+=("$(time_ms "$pack" push "$work/bundle:v1" "$addr/app:v1" --quiet)")
    # Both pull what pack pushed, into empty layouts, alternating who goes first.
    rm -rf "$work/pulled-pack" "$work/pulled-skopeo"
    if (( i % 2 )); then
        pack_pull+=("$(pull_pack)"); skopeo_pull+=("$(pull_skopeo)")
    else
        skopeo_pull+=("$(pull_skopeo)"); pack_pull+=("$(pull_pack)")
    fi
done
stop_registry

# Both pulled the same index.
digest() { python3 -c 'import json,sys; print(next(m["digest"] for m in json.load(open(sys.argv[1]))["manifests"] if m.get("annotations",{}).get("org.opencontainers.image.ref.name")=="v1"))' "$1/index.json"; }
want=$(digest "$work/bundle"); got_pack=$(digest "$work/pulled-pack"); got_skopeo=$(digest "$work/pulled-skopeo")
[[ "$want" == "$got_pack" && "$want" == "$got_skopeo" ]] || { echo "error: index digests differ: $want $got_pack $got_skopeo" >&2; exit 1; }

echo
echo "bundle: $component --target all, $(awk -v b="$size" 'BEGIN{printf "%.1f MB", b/1e6}') of blobs; docker-registry on 127.0.0.1; median of $repeat"
printf '%-10s %12s %12s %8s %8s  %s\n' measure "pack (ms)" "skopeo (ms)" ratio target ok
status=0
row() {
    local name=$1 p=$2 s=$3 target=$4 r ok
    r=$(ratio "$p" "$s")
    ok=$(awk -v r="$r" -v t="$target" 'BEGIN { print (r != "n/a" && r <= t) ? "yes" : "NO" }')
    [[ "$ok" == yes ]] || status=1
    printf '%-10s %12s %12s %8s %8s  %s\n' "$name" "$p" "$s" "$r" "<=$target" "$ok"
}
row cold-push "$(median "${pack_cold[@]}")" "$(median "${skopeo_cold[@]}")" 1.00
row noop-push "$(median "${pack_noop[@]}")" "$(median "${skopeo_noop[@]}")" 1.00
row pull "$(median "${pack_pull[@]}")" "$(median "${skopeo_pull[@]}")" 1.00
exit $status
