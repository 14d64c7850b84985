#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs pack's whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

stage_setup_t0=$(date +%s)
scripts/setup.sh
setup_seconds=$(( $(date +%s) - stage_setup_t0 ))

# The third-party corpus lives beside the checkout.
export PACK_CORPUS="${PACK_CORPUS:-$(cd .. && pwd)/shared/corpus}"
export PATH="$HOME/.cargo/bin:$PATH"

t0=$(date +%s)
stage_name="" stage_t0=$t0 summary=()
# Each stage's duration is logged when the next one starts, and all of them at the end.
stage() {
  local now; now=$(date +%s)
  if [ -n "$stage_name" ]; then
    summary+=("$(printf '%6ss  %s' "$(( now - stage_t0 ))" "$stage_name")")
    printf '[test] %s: %ss\n' "$stage_name" "$(( now - stage_t0 ))" >&2
  fi
  stage_name=$1 stage_t0=$now
  [ -z "$stage_name" ] || printf '\n[test] %s\n' "$stage_name" >&2
}

# A fresh checkout builds everything once: incremental caches would only take disk.
if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
  export CARGO_INCREMENTAL=0
fi
# The suite needs about 12 GB of disk for its builds and 1 GB of temporary files; say
# so up front rather than failing halfway with ENOSPC.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$target_dir"
for dir in "$target_dir" "${TMPDIR:-/tmp}"; do
  free_kb=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
  printf "[test] %s\n" "free disk at $dir: $(( free_kb / 1024 / 1024 )) GiB" >&2
  if [ "$free_kb" -lt $(( 8 * 1024 * 1024 )) ]; then
    printf '[test] warning: less than 8 GiB free at %s; the builds may fail with "No space left on device"\n' "$dir" >&2
  fi
done

stage "fixtures are reproducible from source"
fixtures/build.sh --check

stage "fuzz targets, a fixed number of runs each (scripts/fuzz.sh --ci)"
scripts/fuzz.sh --ci

stage "cargo build of every test target"
cargo test --workspace --locked --all-targets --no-run 2>&1

stage "cargo test"
cargo test --workspace --locked --all-targets --no-fail-fast 2>&1

stage "foreign-architecture hosts under qemu (scripts/cross-check.sh)"
PACK_BIN="$target_dir/debug/pack" scripts/cross-check.sh

stage ""
printf '\n[test] stage times\n%6ss  setup\n' "$setup_seconds" >&2
printf '%s\n' "${summary[@]}" >&2
printf '[test] all stages done in %ss\n' "$(( $(date +%s) - t0 + setup_seconds ))" >&2
