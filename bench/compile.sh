#!/usr/bin/env bash
# Benchmark `pack compile` against `wasmtime compile` (wasmtime-cli 48.0.8 built with
# all-arch, cache off) on corpus components. Everything is measured in one run and
# printed as one table with ratios and the targets they must meet:
#
#   cold-1     one target, cold:                      pack / wasmtime        <= 1.05
#   cold-all   --target all in one process vs four
#              `wasmtime compile --target` in a row:  pack / wasmtime        <= 0.90
#   warm-all   --target all again, from the cache:    cold-all / warm        >= 100 (py-cli,
#                                                                                js-http-proxy-sm)
#   rss-1      peak memory (max RSS), one target:     pack / wasmtime        <= 1.20
#   rss-all    peak memory, all targets vs the largest of wasmtime's four runs (reported)
#
# Usage: bench/compile.sh [--pack-only] [--repeat N] [COMPONENT...]
#   COMPONENT   corpus names (default: c-cli js-http-proxy-sm py-cli)
#   --repeat N  runs per measurement; the median is reported (default 3)
#   --pack-only measure pack alone (when the wasmtime CLI is not installed)
# Environment: PACK_CORPUS (default ../shared/corpus), PACK (a pack binary; default: a
# release build of this checkout), WASMTIME (default: `wasmtime` on PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repeat=3
pack_only=0
components=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --pack-only) pack_only=1 ;;
        --repeat) repeat="$2"; shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) components+=("$1") ;;
    esac
    shift
done
[[ ${#components[@]} -gt 0 ]] || components=(c-cli js-http-proxy-sm py-cli)

corpus="${PACK_CORPUS:-$here/../shared/corpus}"
[[ -d "$corpus/components" ]] || { echo "error: no corpus at $corpus (set PACK_CORPUS)" >&2; exit 2; }

if [[ ! -x /usr/bin/time ]]; then
    echo "error: /usr/bin/time is needed for peak memory; install it with \`apt-get install time\`" >&2
    exit 2
fi

wasmtime="${WASMTIME:-$(command -v wasmtime || true)}"
if [[ $pack_only == 0 ]]; then
    if [[ -z "$wasmtime" ]]; then
        cat >&2 <<'EOF'
error: the wasmtime CLI is not on PATH. Install the version pack uses, with every backend:

    cargo install --locked wasmtime-cli@48.0.8 --features all-arch

(or set WASMTIME=/path/to/wasmtime), or run with --pack-only to measure pack alone.
EOF
        exit 2
    fi
    version="$("$wasmtime" --version)"
    if [[ "$version" != "wasmtime 48.0.8"* ]]; then
        echo "error: $wasmtime is \`$version\`; the comparison needs wasmtime-cli 48.0.8:" >&2
        echo "    cargo install --locked wasmtime-cli@48.0.8 --features all-arch" >&2
        exit 2
    fi
fi

if [[ -z "${PACK:-}" ]]; then
    echo "building pack (release)..." >&2
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bin pack
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    PACK="$target_dir/release/pack"
fi
[[ -x "$PACK" ]] || { echo "error: no pack binary at $PACK" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The triples and Cranelift settings of `--target all` with pack's default presets, so
# that wasmtime compiles exactly the same code (riscv64 needs the V extension).
all_targets=(
    "x86_64-unknown-linux-gnu|"
    "aarch64-unknown-linux-gnu|"
    "riscv64gc-unknown-linux-gnu|has_zca has_zcd has_zcb has_zba has_zbb has_zbs has_zicond has_zfa has_zfhmin has_v has_zvbb has_zvl32b has_zvl64b has_zvl128b"
    "s390x-unknown-linux-gnu|"
)

# measure OUT_VAR COMMAND...: runs COMMAND, sets OUT_VAR to "seconds max_rss_kb" (wall
# time in ns resolution; /usr/bin/time only gives centiseconds).
measure() {
    local __out="$1"; shift
    local stats="$work/time.$$" start end
    start="$(date +%s%N)"
    if ! /usr/bin/time -f "%M" -o "$stats" "$@" >"$work/cmd.out" 2>&1; then
        echo "error: command failed: $*" >&2
        cat "$work/cmd.out" >&2
        exit 1
    fi
    end="$(date +%s%N)"
    printf -v "$__out" '%s %s' "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" \
        "$(tail -n 1 "$stats")"
}

# median of numbers on stdin
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# wasmtime compiling every target of `--target all` in a row; prints "seconds max_rss".
wasmtime_all() {
    local input="$1" total=0 peak=0 spec triple flags args r
    for spec in "${all_targets[@]}"; do
        triple="${spec%%|*}"; flags="${spec#*|}"
        args=(compile -C cache=n --target "$triple")
        for f in $flags; do args+=(-C "cranelift-$f"); done
        measure r "$wasmtime" "${args[@]}" "$input" -o "$work/wt.cwasm"
        total="$(awk -v a="$total" -v b="${r% *}" 'BEGIN { print a + b }')"
        (( ${r#* } > peak )) && peak="${r#* }"
    done
    echo "$total $peak"
}

rows=()
row() { rows+=("$(printf '%-18s %-9s %10s %14s %9s  %-6s %s' "$@")"); }
mib() { awk -v k="$1" 'BEGIN { printf "%dMiB", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "inf" }'; }
check() { # check VALUE OP LIMIT -> ok / FAIL
    awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "ok" : "FAIL" }'
}

for name in "${components[@]}"; do
    input="$corpus/components/$name.component.wasm"
    [[ -f "$input" ]] || { echo "error: no component $input" >&2; exit 2; }
    echo "measuring $name ($repeat runs each)..." >&2
    p1=() pa=() pw=() pr1=() pra=() w1=() wa=() wr1=() wra=()
    for ((i = 0; i < repeat; i++)); do
        rm -rf "$work/out" "$work/cache"
        measure r "$PACK" compile "$input" --target linux/amd64 --no-cache -o "$work/out"
        p1+=("${r% *}"); pr1+=("${r#* }")
        measure r "$PACK" compile "$input" --target all --cache-dir "$work/cache" -o "$work/out"
        pa+=("${r% *}"); pra+=("${r#* }")
        measure r "$PACK" compile "$input" --target all --cache-dir "$work/cache" -o "$work/out"
        pw+=("${r% *}")
        if [[ $pack_only == 0 ]]; then
            measure r "$wasmtime" compile -C cache=n --target x86_64-unknown-linux-gnu "$input" -o "$work/wt.cwasm"
            w1+=("${r% *}"); wr1+=("${r#* }")
            r="$(wasmtime_all "$input")"
            wa+=("${r% *}"); wra+=("${r#* }")
        fi
    done
    med() { printf '%s\n' "$@" | median; }
    P1="$(med "${p1[@]}")" PA="$(med "${pa[@]}")" PW="$(med "${pw[@]}")"
    PR1="$(med "${pr1[@]}")" PRA="$(med "${pra[@]}")"
    warm_ratio="$(ratio "$PA" "$PW")"
    warm_check=("-" "(info)")
    if [[ $name == py-cli || $name == js-http-proxy-sm ]]; then
        warm_check=("$(check "$warm_ratio" ">=" 100)" ">=100x faster than cold")
    fi
    if [[ $pack_only == 0 ]]; then
        W1="$(med "${w1[@]}")" WA="$(med "${wa[@]}")" WR1="$(med "${wr1[@]}")" WRA="$(med "${wra[@]}")"
        r1="$(ratio "$P1" "$W1")" ra="$(ratio "$PA" "$WA")" rr1="$(ratio "$PR1" "$WR1")" rra="$(ratio "$PRA" "$WRA")"
        row "$name" cold-1 "${P1}s" "${W1}s" "$r1" "$(check "$r1" "<=" 1.05)" "<=1.05"
        row "$name" cold-all "${PA}s" "${WA}s" "$ra" "$(check "$ra" "<=" 0.90)" "<=0.90"
        row "$name" warm-all "${PW}s" "(cold ${PA}s)" "${warm_ratio}x" "${warm_check[@]}"
        row "$name" rss-1 "$(mib "$PR1")" "$(mib "$WR1")" "$rr1" "$(check "$rr1" "<=" 1.20)" "<=1.20"
        row "$name" rss-all "$(mib "$PRA")" "$(mib "$WRA")" "$rra" - "(info)"
    else
        row "$name" cold-1 "${P1}s" - - - "(info)"
        row "$name" cold-all "${PA}s" - - - "(info)"
        row "$name" warm-all "${PW}s" "(cold ${PA}s)" "${warm_ratio}x" "${warm_check[@]}"
        row "$name" rss-1 "$(mib "$PR1")" - - - "(info)"
        row "$name" rss-all "$(mib "$PRA")" - - - "(info)"
    fi
done

echo
echo "pack: $("$PACK" --version)   wasmtime: ${version:-not measured}   cores: $(nproc)   runs: $repeat (median)"
printf '%-18s %-9s %10s %14s %9s  %-6s %s\n' component case pack wasmtime ratio check target
printf '%s\n' "${rows[@]}"
if printf '%s\n' "${rows[@]}" | grep -q FAIL; then exit 1; fi
