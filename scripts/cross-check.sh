#!/usr/bin/env bash
# Proves the artifacts pack compiles for other architectures: cross-builds the runtime-only
# host (`pack-host`, no compiler) for aarch64, riscv64 and s390x Linux, runs it under
# qemu-user on this x86_64 machine on signed `--target all` bundles, and compares stdout
# and exit status with the x86_64 run of the same bundles. It also checks that a host
# refuses what it cannot run: a bundle with no artifact for its architecture, and an
# artifact that needs a CPU feature the emulated CPU lacks.
#
#   scripts/cross-check.sh [ARCH...]     ARCH: aarch64 riscv64 s390x (default: all
#                                        three, or $PACK_CROSS_ARCHES)
#   PACK_BIN=target/debug/pack scripts/cross-check.sh aarch64
#
# Needs what scripts/setup.sh installs: the cross gcc toolchains, the Rust targets and
# qemu-user-static 8.2 or later. $PACK_BIN is the native pack to build bundles with and
# to run the x86_64 reference (default: a debug build). Cross builds go to
# $CARGO_TARGET_DIR (else ./target), so a second run rebuilds nothing; compiled
# artifacts are cached in <target>/cross-check/cache. See docs/platforms.md.
#
# Exit status: 0 when every run matched and every refusal happened; 1 when a run
# differed or a refusal did not happen; 2 when something needed is missing or the x86_64
# reference itself failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
arches=("$@")
[ ${#arches[@]} -gt 0 ] || read -r -a arches <<<"${PACK_CROSS_ARCHES:-aarch64 riscv64 s390x}"

target_dir=${CARGO_TARGET_DIR:-$root/target}
corpus=${PACK_CORPUS:-$(cd .. && pwd)/shared/corpus}
export PACK_CACHE_DIR="$target_dir/cross-check/cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/pack-cross-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

log() { printf '[cross] %s\n' "$*" >&2; }
die() { printf '[cross] error: %s\n' "$*" >&2; exit 2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# capture NAME CMD...: runs CMD with no input, its stdout and stderr in $work/NAME.out
# and $work/NAME.err, and sets `rc` to its exit status (a failure does not stop here).
capture() {
  local name=$1
  shift
  set +e
  "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
  set -e
}

failures=()
fail() { failures+=("$*"); printf '[cross] FAIL: %s\n' "$*" >&2; }

# Everything about one architecture: Rust triple, OCI architecture, C cross compiler,
# qemu binary and the sysroot qemu loads the dynamic libraries from.
#
# riscv64 runs on qemu's RVA23U64 CPU model, the profile of pack's default riscv64
# preset (vectors, bit manipulation, Zicond, Zfa, Zcb); aarch64 and s390x on qemu's
# default CPU ("max" and "qemu", a z15-like CPU without z17's facilities).
arch_info() {
  case "$1" in
    aarch64) triple=aarch64-unknown-linux-gnu oci=arm64 gnu=aarch64-linux-gnu
      qemu_cpu=() ;;
    riscv64) triple=riscv64gc-unknown-linux-gnu oci=riscv64 gnu=riscv64-linux-gnu
      qemu_cpu=(-cpu rva23u64) ;;
    s390x) triple=s390x-unknown-linux-gnu oci=s390x gnu=s390x-linux-gnu
      qemu_cpu=() ;;
    *) die "unknown architecture \`$1\` (known: aarch64 riscv64 s390x)" ;;
  esac
  qemu=qemu-$1-static
  sysroot=/usr/$gnu
}

for a in "${arches[@]}"; do
  arch_info "$a"
  command -v "$gnu-gcc" >/dev/null || die "$a: $gnu-gcc is missing (run scripts/setup.sh)"
  command -v "$qemu" >/dev/null || die "$a: $qemu is missing (run scripts/setup.sh)"
  # 7.2 lacks RVA23's extensions and backs the pooling allocator's reserved address
  # space with memory (tens of GB).
  v=$("$qemu" --version | awk 'NR == 1 { print $3 }')
  dpkg --compare-versions "$v" ge 8.2 || die "$a: $qemu is version $v, 8.2 or later is needed (run scripts/setup.sh)"
  [ -d "$sysroot/lib" ] || die "$a: $sysroot/lib is missing (libc6-dev-*-cross; run scripts/setup.sh)"
  rustup target list --installed | grep -qx "$triple" ||
    die "$a: Rust target $triple is missing (run scripts/setup.sh)"
done
for f in c-cli py-cli; do
  [ -f "$corpus/components/$f.component.wasm" ] ||
    die "$corpus/components/$f.component.wasm is missing (set PACK_CORPUS)"
done

started=$(now)
results=()

# 1. pack itself (native), which builds the bundles and gives the x86_64 reference runs:
# $PACK_BIN (scripts/test.sh passes the one its tests built), else a debug build.
t=$(now)
if [ -n "${PACK_BIN:-}" ]; then
  pack=$PACK_BIN
  [ -x "$pack" ] || die "PACK_BIN=$pack is not an executable"
else
  cargo build --locked --quiet -p pack --bin pack
  pack=$target_dir/debug/pack
fi
log "stage: native pack ready in $(since "$t")s ($pack)"

# 2. The runtime-only host for each architecture: no `jit` (Cranelift), no `registry`
# (only layouts are run here), release profile.
declare -A host_bin
for a in "${arches[@]}"; do
  arch_info "$a"
  t=$(now)
  upper=$(tr 'a-z-' 'A-Z_' <<<"$triple")
  env "CARGO_TARGET_${upper}_LINKER=$gnu-gcc" "CC_${triple//-/_}=$gnu-gcc" \
    "AR_${triple//-/_}=$gnu-ar" \
    cargo build --locked --quiet --release -p pack-host --no-default-features \
    --bin pack-host --target "$triple"
  host_bin[$a]=$target_dir/$triple/release/pack-host
  file "${host_bin[$a]}" | grep -q "ELF 64-bit" || die "$a: ${host_bin[$a]} is not an ELF binary"
  log "stage: pack-host for $triple built in $(since "$t")s"
done

# 3. Signed bundles for the four Linux architectures.
t=$(now)
"$pack" key generate --no-password --output-prefix "$work/key" >/dev/null 2>&1
key=$work/key.key pub=$work/key.pub
build() { # NAME WASM TARGET...
  local name=$1 wasm=$2
  shift 2
  local targets=()
  for x in "$@"; do targets+=(-t "$x"); done
  "$pack" build "$wasm" "${targets[@]}" -o "$work/$name" --sign-key "$key" --quiet \
    >/dev/null || die "pack build $name ($*) failed"
}
build hello-cli fixtures/components/hello-cli.wasm all
build calc fixtures/components/calc.wasm all
build c-cli "$corpus/components/c-cli.component.wasm" all
build py-cli "$corpus/components/py-cli.component.wasm" all
log "stage: bundles built and signed in $(since "$t")s"

# The runs compared: name, bundle, expected exit status, text expected on stderr (for
# runs that print nothing on stdout), then the host's arguments.
# hello-cli exits 1 for a numeric first argument other than 0 (WASI 0.2's exit is ok or
# err); c-cli without an argument traps (exit 1); calc exports no command, so every host
# loads its artifact and then refuses to run it (exit 2).
cases=(
  "hello-cli|hello-cli|0||--env GREETING=hi -- a b"
  "hello-cli 3|hello-cli|1||-- 3"
  "calc|calc|2|exports \`fixtures:calc/calculator@0.1.0\`|"
  "c-cli 2|c-cli|0||-- 2"
  "c-cli 1000|c-cli|0||-- 1000"
  "c-cli (trap)|c-cli|1|wasm trap: out of bounds memory access|"
  "py-cli|py-cli|0||-- hello world"
)

# 4. The x86_64 reference: the same bundles through `pack run`.
t=$(now)
for c in "${cases[@]}"; do
  IFS='|' read -r name bundle want text args <<<"$c"
  id=${name//[^a-z0-9]/_}
  t1=$(now)
  # shellcheck disable=SC2086 # args are words
  capture "$id.x86_64" "$pack" run "$work/$bundle" --key "$pub" $args
  echo "$rc" >"$work/$id.x86_64.rc"
  # The reference must itself be right: the amd64 artifact, the expected status, output.
  if ! grep -q "linux/amd64 artifact" "$work/$id.x86_64.err" || [ "$rc" != "$want" ] ||
    { [ -z "$text" ] && [ ! -s "$work/$id.x86_64.out" ]; } ||
    ! grep -qF "$text" "$work/$id.x86_64.err"; then
    die "x86_64 $name: pack run exited $rc (expected $want, with ${text:-output}):
$(tail -5 "$work/$id.x86_64.err")"
  fi
  results+=("$(printf '%-8s %-14s %-24s %-10s %-5s %6ss' x86_64 "$name" linux/amd64 reference "$rc" "$(since "$t1")")")
done
log "stage: x86_64 reference runs in $(since "$t")s"

# 5. Each architecture's host under qemu: it must choose its own manifest and print and
# exit exactly as the x86_64 run did.
for a in "${arches[@]}"; do
  arch_info "$a"
  t=$(now)
  for c in "${cases[@]}"; do
    IFS='|' read -r name bundle want text args <<<"$c"
    id=${name//[^a-z0-9]/_}
    t1=$(now)
    # shellcheck disable=SC2086 # args are words
    capture "$id.$a" timeout 900 "$qemu" -L "$sysroot" "${qemu_cpu[@]}" "${host_bin[$a]}" \
      --verbose --key "$pub" "$work/$bundle" $args
    took=$(since "$t1")
    chosen=$(grep -o "linux/$oci[/a-z0-9.]* artifact" "$work/$id.$a.err" | head -1)
    chosen=${chosen% artifact} equal=equal
    if [ -z "$chosen" ]; then
      chosen="NOT LOADED"
      fail "$a $name: the host did not load its linux/$oci artifact (exit $rc):
$(sed 's/^/    /' "$work/$id.$a.err")"
    fi
    if [ "$rc" != "$want" ] || ! cmp -s "$work/$id.x86_64.out" "$work/$id.$a.out" ||
      ! grep -qF "$text" "$work/$id.$a.err"; then
      equal=DIFFERENT
      fail "$a $name: exit $rc (x86_64: $want${text:+; stderr should say: $text}); stdout diff:
$(diff "$work/$id.x86_64.out" "$work/$id.$a.out" | head -20 | sed 's/^/    /')
  stderr:
$(tail -5 "$work/$id.$a.err" | sed 's/^/    /')"
    fi
    results+=("$(printf '%-8s %-14s %-24s %-10s %-5s %6ss' "$a" "$name" "$chosen" "$equal" "$rc" "$took")")
  done
  log "stage: $a runs under $qemu in $(since "$t")s"
done

# 6. Refusals. A host must refuse, with its reason and before running anything, a bundle
# that has no artifact for it and an artifact that needs what its CPU lacks.
refused() { # ARCH WHAT EXPECTED-TEXT QEMU-ARGS... -- HOST-ARGS...
  local a=$1 what=$2 expect=$3
  shift 3
  local qargs=()
  while [ "$1" != -- ]; do qargs+=("$1"); shift; done
  shift
  local t1 rc
  t1=$(now)
  capture refused timeout 900 "$qemu" -L "$sysroot" "${qargs[@]}" "${host_bin[$a]}" --key "$pub" "$@"
  if [ "$rc" = 2 ] && [ ! -s "$work/refused.out" ] && grep -qF "$expect" "$work/refused.err"; then
    results+=("$(printf '%-8s %-14s %-24s %-10s %-5s %6ss' "$a" "$what" refused "" "$rc" "$(since "$t1")")")
  else
    fail "$a $what: expected a refusal (exit 2, nothing on stdout, \"$expect\"), got exit $rc:
$(sed 's/^/    /' "$work/refused.out" "$work/refused.err" | head -20)"
    results+=("$(printf '%-8s %-14s %-24s %-10s %-5s' "$a" "$what" "NOT REFUSED" "" "$rc")")
  fi
}
for a in "${arches[@]}"; do
  arch_info "$a"
  t=$(now)
  case $a in
    aarch64)
      build hello-amd64 fixtures/components/hello-cli.wasm linux/amd64
      refused aarch64 "x86_64 only" \
        "linux/amd64: built for another platform (this host is linux/arm64)" -- \
        "$work/hello-amd64"
      grep -qF "no precompiled artifact in \`$work/hello-amd64:latest\` fits this host" "$work/refused.err" ||
        fail "aarch64 x86_64 only: the refusal does not say that no artifact fits"
      # Armv8.1-A needs LSE atomics; qemu's Cortex-A53 is an Armv8.0-A CPU without them.
      build hello-v8.1 fixtures/components/hello-cli.wasm linux/arm64/v8.1
      refused aarch64 "v8.1 on A53" "linux/arm64/v8.1: host lacks lse" -cpu cortex-a53 -- \
        "$work/hello-v8.1"
      # The same bundle runs on a CPU that has LSE (Neoverse-N1, Armv8.2-A).
      out=$("$qemu" -L "$sysroot" -cpu neoverse-n1 "${host_bin[$a]}" --key "$pub" \
        "$work/hello-v8.1" -- x 2>&1) ||
        fail "aarch64 v8.1 on Neoverse-N1: did not run: $out"
      [ "$out" = "$(printf 'hello from pack fixture: args=["x"]\ngreeting: <unset>')" ] ||
        fail "aarch64 v8.1 on Neoverse-N1: unexpected output: $out"
      ;;
    s390x)
      # z17 needs miscellaneous-instruction-extensions 4, which qemu's CPU lacks;
      # wasmtime itself checks s390x facilities when it loads an artifact.
      build hello-z17 fixtures/components/hello-cli.wasm linux/s390x/z17
      refused s390x "z17 on qemu" 'compilation setting "has_mie4" is enabled, but not available' -- \
        "$work/hello-z17"
      ;;
    riscv64)
      # Neither the host nor wasmtime can detect riscv64 extensions (the standard
      # library has no stable detection for them), so a CPU refusal cannot be shown; the
      # platform refusal is checked instead.
      build hello-amd64 fixtures/components/hello-cli.wasm linux/amd64
      refused riscv64 "x86_64 only" \
        "linux/amd64: built for another platform (this host is linux/riscv64)" \
        "${qemu_cpu[@]}" -- "$work/hello-amd64"
      ;;
  esac
  log "stage: $a refusals in $(since "$t")s"
done

printf '\n%-8s %-14s %-24s %-10s %-5s %7s\n' arch run artifact stdout exit time
printf '%s\n' "${results[@]}"
log "all stages done in $(since "$started")s"
if [ ${#failures[@]} -gt 0 ]; then
  log "${#failures[@]} check(s) failed:"
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
