#!/usr/bin/env bash
# Builds pack's fuzz targets (fuzz/, cargo-fuzz + libFuzzer) and runs each for a fixed
# number of inputs from its seed corpus (fuzz/corpus/<target>), then prints a table:
# target, runs, seconds, crashes. Exits non-zero when any target crashed; the inputs
# that did are in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh                  every target with its default number of runs
#   scripts/fuzz.sh --ci             the targets and runs CI uses (see below)
#   FUZZ_RUNS=100000 scripts/fuzz.sh manifest_json signature
#
# The committed corpus is only read: what libFuzzer finds goes to a temporary directory.
# The instrumented build goes to $FUZZ_TARGET_DIR (default fuzz/target).
# Stable Rust is enough: see fuzz/README.md.
set -euo pipefail
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../fuzz"

# Runs per target, by default and in CI: the parsers are fast, validation reads whole
# components, compiling runs Cranelift on every valid input. compile_smith is not run in
# CI ("-"): its instrumented build of wasmtime and Cranelift (codegen-units=1) alone takes
# longer than CI's fuzz budget; it runs locally.
declare -A RUNS=() CI_RUNS=()
ALL=() CI_TARGETS=()
while read -r target runs ci_runs; do
  ALL+=("$target"); RUNS[$target]=$runs
  if [ "$ci_runs" != - ]; then CI_TARGETS+=("$target"); CI_RUNS[$target]=$ci_runs; fi
done <<'TABLE'
manifest_json   2000000  500000
index_json      2000000  500000
config_json     2000000  500000
signature        100000   20000
validate_bytes   100000   20000
validate_smith   100000   20000
compile_smith      2000       -
TABLE

targets=()
ci=false
for arg in "$@"; do
  case "$arg" in
    --ci) ci=true ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$script"; exit 0 ;;
    *) targets+=("$arg") ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  if $ci; then targets=("${CI_TARGETS[@]}"); else targets=("${ALL[@]}"); fi
fi

export PATH="$HOME/.cargo/bin:$PATH"
# No sanitizer (`-s none`): cargo-fuzz then passes rustc only stable flags (SanitizerCoverage
# through `-Cpasses=sancov-module` and `-Cllvm-args`), so no nightly toolchain is needed.
target_dir="${FUZZ_TARGET_DIR:-$PWD/target}"
fuzz=(cargo fuzz)

# compile_smith needs the `compile` feature (wasmtime and Cranelift).
features() { [ "$1" = compile_smith ] && echo "--features compile" || true; }
log() { printf '[fuzz] %s\n' "$*" >&2; }
build_started=$(date +%s)
log "build ${targets[*]}"
# One cargo invocation per target would rebuild nothing, but `cargo fuzz build TARGET`
# takes one name; build them in turn (the dependencies are built once).
for t in "${targets[@]}"; do
  "${fuzz[@]}" build -s none --target-dir "$target_dir" $(features "$t") "$t" >&2
done
build_seconds=$(( $(date +%s) - build_started ))
log "built in ${build_seconds}s"

table=()
failed=0
for t in "${targets[@]}"; do
  runs="${FUZZ_RUNS:-}"
  if [ -z "$runs" ]; then
    if $ci; then runs="${CI_RUNS[$t]}"; else runs="${RUNS[$t]}"; fi
  fi
  work=$(mktemp -d)
  mkdir -p "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  started=$(date +%s)
  status=0
  # shellcheck disable=SC2046
  "${fuzz[@]}" run -s none --target-dir "$target_dir" $(features "$t") "$t" "$work" "corpus/$t" -- \
    -runs="$runs" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    >"$work.log" 2>&1 || status=$?
  seconds=$(( $(date +%s) - started ))
  crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
  done_runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$' || echo "$runs")
  if [ "$status" -ne 0 ]; then
    failed=1
    tail -n 40 "$work.log" >&2
  fi
  table+=("$(printf '%-16s %10s %8s %8s' "$t" "$done_runs" "$seconds" "$crashes")")
  rm -rf "$work" "$work.log"
done

printf '\n%-16s %10s %8s %8s\n' target runs seconds crashes
printf '%s\n' "${table[@]}"
printf 'build: %ss\n' "$build_seconds"
exit "$failed"
