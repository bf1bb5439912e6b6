#!/usr/bin/env bash
# Builds the worker to build/ (release wasm, optimized by wasm-opt). Skipped when nothing that
# goes into the wasm changed since the last build.
set -euo pipefail
cd "$(dirname "$0")/.."

export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/binaryen/bin/wasm-opt}"

inputs_hash() {
  {
    find src crates/core -type f \( -name '*.rs' -o -name '*.html' -o -name Cargo.toml \) | LC_ALL=C sort | xargs cat
    cat Cargo.toml Cargo.lock
    worker-build --version
    "$WASM_BINDGEN_BIN" --version
  } | sha256sum | cut -d' ' -f1
}

stamp=build/.inputs-hash
hash=$(inputs_hash)
if [ -f build/index.js ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
  echo "[build] worker unchanged, reusing build/" >&2
else
  echo "[build] building the worker (release wasm)" >&2
  worker-build --release
  echo "$hash" > "$stamp"
fi

wasm=build/index_bg.wasm
echo "[build] $wasm: $(stat -c %s "$wasm") bytes, $(gzip -9c "$wasm" | wc -c) gzipped" >&2
