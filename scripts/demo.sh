#!/usr/bin/env bash
# Builds pack and runs its main job on the bundled example component: validate it
# against its WIT world, precompile it for the four Linux architectures, package one
# signed OCI image index into a layout on disk, then inspect and verify it.
# Needs only Rust (1.95+); no registry is involved: the OCI layout is the output.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${PACK_DEMO_DIR:-target/demo}
component=fixtures/components/hello-cli.wasm
wit=fixtures/wit/hello-cli

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }

cargo build --release --locked --quiet --bin pack
pack=target/release/pack
rm -rf "$out" && mkdir -p "$out"

step pack validate "$component" --wit "$wit"
"$pack" validate "$component" --wit "$wit" --quiet

export PACK_KEY_PASSWORD=${PACK_KEY_PASSWORD:-demo-password}
step pack key generate --output-prefix "$out/demo"
"$pack" key generate --output-prefix "$out/demo"

step pack build "$component" --wit "$wit" --target all -o "$out/hello" --tag v1 --sign-key "$out/demo.key"
"$pack" build "$component" --wit "$wit" --target all -o "$out/hello" --tag v1 --sign-key "$out/demo.key"

step pack inspect "$out/hello:v1" --key "$out/demo.pub"
"$pack" inspect "$out/hello:v1" --key "$out/demo.pub"

step pack verify "$out/hello:v1" --key "$out/demo.pub"
"$pack" verify "$out/hello:v1" --key "$out/demo.pub"

printf '\nThe bundle is the OCI image layout %s (tag v1).\n' "$out/hello"
