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
# The function-level cache, on the py-app v1/v2 pair (same code, other data), every row
# `--target all` from empty caches, one run each, time and peak memory:
#   fn-off       v1 cold with --no-function-cache (today's compile)
#   fn-on        v1 cold with the function cache:     fn-on / fn-off          <= 1.05
#   fn-warm      v1 again (artifact cache hit)        (reported)
#   fn-floor     v1 again with only its functions cached (artifact entries removed):
#                a rebuild in which no function changed (reported)
#   fn-v2        v2 with v1's cache:                  fn-on / fn-v2           >= 4
#   fn-v2/floor  what v2's data changes add:          fn-v2 / fn-floor        <= 1.10
#   fn-v2-cold   v2 with --no-cache; its artifacts must be fn-v2's, byte for byte, on
#                every target (check column: same / DIFF)
#   reg-cold     `pack build` of v2 without any cache (today's build)
#   reg-r1       runner 1 builds v1 with --cache-repo, empty local cache (reported)
#   reg-r2       runner 2, empty local cache, builds v2 from the registry:
#                                                     reg-cold / reg-r2       >= 3
#   reg-r2=cold  runner 2's bundle has reg-cold's digest (same / DIFF)
# With --function-cache-only also (needs the wasm32-wasip2 target and crates.io):
#   rust-v1/v2   the Rust fixture `calc` built as committed, then with one function
#                changed: functions compiled / cached (reported)
#
# Usage: bench/compile.sh [--pack-only] [--function-cache-only] [--repeat N] [COMPONENT...]
#   COMPONENT   corpus names (default: c-cli js-http-proxy-sm py-cli)
#   --repeat N  runs per measurement; the median is reported (default 3)
#   --pack-only measure pack alone (when the wasmtime CLI is not installed)
#   --function-cache-only   only the function cache rows
# Environment: PACK_CORPUS (default ../shared/corpus), PACK (a pack binary; default: a
# release build of this checkout), WASMTIME (default: `wasmtime` on PATH).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
repeat=3 pack_only=0 function_cache_only=0
value_options=(repeat)
switch_options=(pack_only function_cache_only)
arguments=()
parse_options "$@"
components=("${arguments[@]}")
[[ ${#components[@]} -gt 0 ]] || components=(c-cli js-http-proxy-sm py-cli)
if [[ $function_cache_only == 1 ]]; then
    pack_only=1
    components=()
fi

corpus=$(corpus_dir)

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

PACK=$(pack_release)

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

for name in ${components[@]+"${components[@]}"}; do
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

# --- the function-level cache ---------------------------------------------------
v1="$corpus/components/py-app-v1.component.wasm"
v2="$corpus/components/py-app-v2.component.wasm"
# functions FILE: "compiled/cached" summed over the artifacts (or platforms) of the --json
# report in FILE (stdout and stderr of `measure`).
functions() {
    python3 -c 'import json, sys
text = open(sys.argv[1]).read()
start = text.find("\n{") + 1 if not text.startswith("{") else 0
d = json.JSONDecoder().raw_decode(text[start:])[0]
items = d.get("artifacts") or d.get("platforms") or []
c = sum((a.get("functions") or {}).get("compiled", 0) for a in items)
h = sum((a.get("functions") or {}).get("cached", 0) for a in items)
print(f"{c}/{h}")' "$1"
}
fn_row() { # component case time rss functions ratio check target
    rows+=("$(printf '%-18s %-9s %10s %14s %9s  %-6s %s' "$1" "$2" "$3 $4" "$5" "$6" "$7" "$8")")
}
if [[ -f "$v1" && -f "$v2" ]]; then
    echo "measuring the function cache on py-app v1/v2 (--target all, one run each)..." >&2
    export PACK_CACHE_SECRET=bench-function-cache-secret
    fc() { # fc OUT_VAR CACHE INPUT EXTRA...: pack compile --target all; --json kept in fc.json
        local __v="$1" cache="$2" input="$3"; shift 3
        measure "$__v" "$PACK" compile "$input" --target all --cache-dir "$cache" -o "$work/fc-out" --json "$@"
        cp "$work/cmd.out" "$work/fc.json"
    }
    fc OFF "$work/fc-off" "$v1" --no-function-cache
    fc ON "$work/fc-on" "$v1"; on_fns="$(functions "$work/fc.json")"
    fc WARM "$work/fc-on" "$v1"
    cp -a "$work/fc-on" "$work/fc-floor"
    find "$work/fc-floor" \( -name '*.cwasm' -o -name '*.json' \) -delete
    fc FLOOR "$work/fc-floor" "$v1"; floor_fns="$(functions "$work/fc.json")"
    fc V2 "$work/fc-on" "$v2"; v2_fns="$(functions "$work/fc.json")"
    cp "$work/fc.json" "$work/fc-v2.json"
    measure V2COLD "$PACK" compile "$v2" --target all --no-cache -o "$work/fc-cold" --json
    cp "$work/cmd.out" "$work/fc-v2-cold.json"
    # same: every target's artifact sha256 equal between the two reports.
    same="$(python3 -c 'import json, sys
def shas(path):
    text = open(path).read()
    start = text.find("\n{") + 1 if not text.startswith("{") else 0
    d = json.JSONDecoder().raw_decode(text[start:])[0]
    return {a["target"]: a["sha256"] for a in d["artifacts"]}
a, b = shas(sys.argv[1]), shas(sys.argv[2])
print("same" if a == b and len(a) == 4 else "DIFF")' "$work/fc-v2.json" "$work/fc-v2-cold.json")"
    r_on="$(ratio "${ON% *}" "${OFF% *}")"
    r_v2="$(ratio "${ON% *}" "${V2% *}")"
    r_floor="$(ratio "${V2% *}" "${FLOOR% *}")"
    fn_row py-app fn-off "${OFF% *}s" "$(mib "${OFF#* }")" - - - "(today's cold compile)"
    fn_row py-app fn-on "${ON% *}s" "$(mib "${ON#* }")" "$on_fns" "$r_on" "$(check "$r_on" "<=" 1.05)" "<=1.05 x fn-off"
    fn_row py-app fn-warm "${WARM% *}s" "$(mib "${WARM#* }")" - - - "(info)"
    fn_row py-app fn-floor "${FLOOR% *}s" "$(mib "${FLOOR#* }")" "$floor_fns" - - "(info)"
    fn_row py-app fn-v2 "${V2% *}s" "$(mib "${V2#* }")" "$v2_fns" "${r_v2}x" "$(check "$r_v2" ">=" 4)" ">=4x faster than fn-on"
    fn_row py-app fn-v2/floor - - - "$r_floor" "$(check "$r_floor" "<=" 1.10)" "<=1.10 x fn-floor"
    fn_row py-app fn-v2-cold "${V2COLD% *}s" "$(mib "${V2COLD#* }")" - - "$same" "fn-v2's artifacts, every target"

    # Through a registry: two runners, each with an empty local cache.
    if command -v docker-registry >/dev/null; then
        trap 'stop_registry; rm -rf "$work"' EXIT
        start_registry "$work/registry"
        (cd "$work" && "$PACK" key generate --no-password --output-prefix cache >/dev/null)
        rb() { # rb OUT_VAR RUNNER INPUT EXTRA...: pack build --target all in a fresh runner
            local __v="$1" runner="$work/$2" input="$3"; shift 3
            mkdir -p "$runner"
            measure "$__v" env PACK_CACHE_DIR="$runner/cache" SOURCE_DATE_EPOCH=1700000000 \
                "$PACK" build "$input" --target all \
                -o "$runner/out" --json "$@"
            cp "$work/cmd.out" "$work/rb.json"
        }
        rb RCOLD cold "$v2" --no-cache
        cp "$work/rb.json" "$work/rb-cold.json"
        rb R1 runner1 "$v1" --cache-repo "$addr/team/pack-cache" --cache-key "$work/cache.key"
        rb R2 runner2 "$v2" --cache-repo "$addr/team/pack-cache" --cache-key "$work/cache.pub"
        r2_fns="$(functions "$work/rb.json")"
        bundle_same="$(python3 -c 'import json, sys
def digest(path):
    text = open(path).read()
    start = text.find("\n{") + 1 if not text.startswith("{") else 0
    return json.JSONDecoder().raw_decode(text[start:])[0]["digest"]
print("same" if digest(sys.argv[1]) == digest(sys.argv[2]) else "DIFF")' "$work/rb-cold.json" "$work/rb.json")"
        r_reg="$(ratio "${RCOLD% *}" "${R2% *}")"
        fn_row py-app reg-cold "${RCOLD% *}s" "$(mib "${RCOLD#* }")" - - - "(today's cold build)"
        fn_row py-app reg-r1 "${R1% *}s" "$(mib "${R1#* }")" - - - "(info)"
        fn_row py-app reg-r2 "${R2% *}s" "$(mib "${R2#* }")" "$r2_fns" "${r_reg}x" "$(check "$r_reg" ">=" 3)" ">=3x faster than reg-cold"
        fn_row py-app reg-r2=cold - - - - "$bundle_same" "reg-r2's bundle digest is reg-cold's"
        stop_registry
    else
        echo "warning: docker-registry is not installed; skipping the registry rows" >&2
    fi
    unset PACK_CACHE_SECRET
else
    echo "warning: no py-app-v1/v2 in $corpus; skipping the function cache rows" >&2
fi

# The Rust fixture `calc`, built twice from a copy of fixtures/: as committed, then with
# one function (`add`) changed. Needs the wasm32-wasip2 target and crates.io.
if [[ $function_cache_only == 1 ]] && rustc --print target-libdir --target wasm32-wasip2 >/dev/null 2>&1; then
    echo "building the Rust pair (calc, one function changed)..." >&2
    rust="$work/rust"
    mkdir -p "$rust"
    cp -a "$here/fixtures/." "$rust/src"
    rm -rf "$rust/src/target"
    build_calc() {
        CARGO_TARGET_DIR="$rust/target" CARGO_INCREMENTAL=0 cargo build --quiet --locked --release \
            --manifest-path "$rust/src/Cargo.toml" --target wasm32-wasip2 -p calc
        cp "$rust/target/wasm32-wasip2/release/calc.wasm" "$1"
    }
    build_calc "$rust/calc-v1.wasm"
    sed -i 's/        a.wrapping_add(b)$/        a.wrapping_add(b).rotate_left(1)/' "$rust/src/calc/src/lib.rs"
    grep -q 'rotate_left(1)' "$rust/src/calc/src/lib.rs" || { echo "error: the calc edit did not apply" >&2; exit 1; }
    build_calc "$rust/calc-v2.wasm"
    export PACK_CACHE_SECRET=bench-function-cache-secret
    measure RV1 "$PACK" compile "$rust/calc-v1.wasm" --target all --cache-dir "$work/rust-cache" -o "$work/rust-out" --json
    rv1_fns="$(functions "$work/cmd.out")"
    measure RV2 "$PACK" compile "$rust/calc-v2.wasm" --target all --cache-dir "$work/rust-cache" -o "$work/rust-out" --json
    rv2_fns="$(functions "$work/cmd.out")"
    unset PACK_CACHE_SECRET
    fn_row calc rust-v1 "${RV1% *}s" "$(mib "${RV1#* }")" "$rv1_fns" - - "(info)"
    fn_row calc rust-v2 "${RV2% *}s" "$(mib "${RV2#* }")" "$rv2_fns" - - "(info: one function changed)"
fi

echo
echo "pack: $("$PACK" --version)   wasmtime: ${version:-not measured}   cores: $(nproc)   runs: $repeat (median)"
echo "function cache rows: one run each; the wasmtime column holds the functions compiled/cached"
printf '%-18s %-9s %10s %14s %9s  %-6s %s\n' component case pack wasmtime ratio check target
printf '%s\n' "${rows[@]}"
if printf '%s\n' "${rows[@]}" | grep -qE 'FAIL|DIFF'; then exit 1; fi
