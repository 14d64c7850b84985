#!/usr/bin/env bash
# Builds pack and runs its main job on the bundled example, examples/hello-http (a
# wasi:http/proxy component): `pack build` reads the example's pack.toml, validates the
# component against its WIT world, precompiles it for the four Linux architectures and
# writes one signed OCI image index; `pack run` then verifies the signature and serves
# the precompiled artifact, a request is sent with curl, and the server is stopped.
#
# Needs Rust (1.95+) and curl. With the wasm32-wasip2 target installed the component is
# built from source by the build command in pack.toml; without it, the prebuilt
# fixtures/components/hello-http.wasm (reproduced bit for bit by fixtures/build.sh) is
# used. No registry is involved: the OCI layout is the output.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=${PACK_DEMO_DIR:-$root/target/demo}
example=examples/hello-http

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }

cargo build --release --locked --quiet --bin pack
pack=${CARGO_TARGET_DIR:-$root/target}/release/pack
rm -rf "$out" "$example/target/pack" && mkdir -p "$out"
command -v curl >/dev/null || { echo "demo.sh: curl is needed to send the request" >&2; exit 2; }

export PACK_KEY_PASSWORD=${PACK_KEY_PASSWORD:-demo-password}
step pack key generate --output-prefix "$out/demo"
"$pack" key generate --output-prefix "$out/demo"

cd "$example"
# pack.toml signs with the PEM in PACK_SIGN_KEY_PEM, as a CI job would.
PACK_SIGN_KEY_PEM=$(cat "$out/demo.key")
export PACK_SIGN_KEY_PEM
if rustc --print target-libdir --target wasm32-wasip2 >/dev/null 2>&1 &&
  [ -d "$(rustc --print target-libdir --target wasm32-wasip2)" ]; then
  step pack build
  "$pack" build
else
  printf '\n(the wasm32-wasip2 target is not installed: using the prebuilt component)\n'
  export PACK_COMPONENT=$root/fixtures/components/hello-http.wasm
  step PACK_COMPONENT=fixtures/components/hello-http.wasm pack build
  "$pack" build
fi
layout=target/pack/hello-http:v0.1.0

step pack inspect "$layout" --key "$out/demo.pub"
"$pack" inspect "$layout" --key "$out/demo.pub"

step pack run "$layout" --key "$out/demo.pub" --listen 127.0.0.1:0 --json
events=$out/run.jsonl
"$pack" run "$layout" --key "$out/demo.pub" --listen 127.0.0.1:0 --json 2>"$events" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
# The server reports its address (port 0 picks a free one) once it listens.
url=
while [ -z "$url" ]; do
  kill -0 "$server" 2>/dev/null || { cat "$events" >&2; echo "demo.sh: pack run ended" >&2; exit 1; }
  url=$(sed -n 's/.*"event":"listening".*"url":"\([^"]*\)".*/\1/p; s/.*"url":"\([^"]*\)".*"event":"listening".*/\1/p' "$events" | head -n1)
  [ -n "$url" ] || sleep 0.1
done
cat "$events"

step curl "${url}hello"
curl --fail --silent --show-error "${url}hello"

kill "$server"
wait "$server" || true
trap - EXIT
printf '\nThe bundle is the OCI image layout %s (tag v0.1.0).\n' "$example/target/pack/hello-http"
