#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs pack's whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# The third-party corpus lives beside the checkout.
export PACK_CORPUS="${PACK_CORPUS:-$(cd .. && pwd)/shared/corpus}"
export PATH="$HOME/.cargo/bin:$PATH"

stage() { printf '\n[test] %s\n' "$*" >&2; }
t0=$(date +%s)

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
  stage "free disk at $dir: $(( free_kb / 1024 / 1024 )) GiB"
  if [ "$free_kb" -lt $(( 8 * 1024 * 1024 )) ]; then
    printf '[test] warning: less than 8 GiB free at %s; the builds may fail with "No space left on device"\n' "$dir" >&2
  fi
done

stage "fixtures are reproducible from source"
fixtures/build.sh --check

stage "fuzz targets, a fixed number of runs each (scripts/fuzz.sh --ci)"
scripts/fuzz.sh --ci

stage "cargo test"
cargo test --workspace --locked --all-targets --no-fail-fast 2>&1

stage "foreign-architecture hosts under qemu (scripts/cross-check.sh)"
PACK_BIN="$target_dir/debug/pack" scripts/cross-check.sh

stage "all stages done in $(( $(date +%s) - t0 ))s"
