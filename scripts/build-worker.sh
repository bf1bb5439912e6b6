#!/usr/bin/env bash
# Builds the worker to build/ and the live channel's worker to live/build/ (release wasm,
# optimized by wasm-opt). Each is skipped when nothing that goes into its wasm changed since its
# last build.
set -euo pipefail
cd "$(dirname "$0")/.."

export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$PWD/node_modules/binaryen/bin/wasm-opt}"
# Size first for the wasm only; the native release builds (the backend) keep Cargo.toml's level.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z

inputs_hash() {
  {
    find src crates/core -type f \( -name '*.rs' -o -name '*.html' -o -name Cargo.toml \) | LC_ALL=C sort | xargs cat
    cat scripts/build-worker.sh
    cat Cargo.toml Cargo.lock
    worker-build --version
    "$WASM_BINDGEN_BIN" --version
  } | sha256sum | cut -d' ' -f1
}

# worker-build keeps the wasm names section (function names in stack traces): a fifth of the
# gzipped size. Panic messages still reach the logs without it. Optimized for size once more
# without the names (-Oz): about 3 KB less gzipped than worker-build's own pass.
strip_names() {
  "$WASM_OPT_BIN" "$1" -o "$1.stripped" -Oz --strip-debug --strip-producers \
    --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
    --enable-multivalue --enable-reference-types --enable-exception-handling
  mv "$1.stripped" "$1"
}

report() {
  echo "[build] $1: $(stat -c %s "$1") bytes, $(gzip -9c "$1" | wc -c) gzipped" >&2
}

stamp=build/.inputs-hash
hash=$(inputs_hash)
if [ -f build/index.js ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then
  echo "[build] worker unchanged, reusing build/" >&2
else
  echo "[build] building the worker (release wasm)" >&2
  worker-build --release
  strip_names build/index_bg.wasm
  echo "$hash" > "$stamp"
fi
report build/index_bg.wasm

# The live channel (live/): a worker of its own, bound to this one as LIVE.
live_hash=$({
  find live/src -type f -name '*.rs' | LC_ALL=C sort | xargs cat
  cat live/Cargo.toml Cargo.lock scripts/build-worker.sh
  worker-build --version
  "$WASM_BINDGEN_BIN" --version
} | sha256sum | cut -d' ' -f1)
if [ -f live/build/index.js ] && [ "$(cat live/build/.inputs-hash 2>/dev/null)" = "$live_hash" ]; then
  echo "[build] live worker unchanged, reusing live/build/" >&2
else
  echo "[build] building the live worker (release wasm)" >&2
  (cd live && worker-build --release)
  strip_names live/build/index_bg.wasm
  echo "$live_hash" > live/build/.inputs-hash
fi
report live/build/index_bg.wasm
