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

stage "fixtures are reproducible from source"
fixtures/build.sh --check

stage "fuzz targets, a fixed number of runs each (scripts/fuzz.sh --ci)"
scripts/fuzz.sh --ci

stage "cargo test"
cargo test --workspace --locked --all-targets --no-fail-fast 2>&1

stage "foreign-architecture hosts under qemu (scripts/cross-check.sh)"
PACK_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/pack" scripts/cross-check.sh

stage "all stages done in $(( $(date +%s) - t0 ))s"
