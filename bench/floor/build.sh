#!/usr/bin/env bash
# Builds the floor worker to bench/floor/build/ like scripts/build-worker.sh builds the worker
# (release wasm, wasm-opt); skipped when nothing that goes into it changed.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)

export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$(command -v wasm-bindgen)}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/binaryen/bin/wasm-opt}"
# Size first for the wasm only; the native release builds (the backend) keep Cargo.toml's level.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z

hash=$({
  find src -type f -name '*.rs' | LC_ALL=C sort | xargs cat
  cat Cargo.toml "$root/Cargo.toml" "$root/Cargo.lock"
  worker-build --version
  "$WASM_BINDGEN_BIN" --version
} | sha256sum | cut -d' ' -f1)

if [ -f build/index.js ] && [ "$(cat build/.inputs-hash 2>/dev/null)" = "$hash" ]; then
  echo "[build] floor worker unchanged, reusing bench/floor/build/" >&2
else
  echo "[build] building the floor worker (release wasm)" >&2
  worker-build --release
  echo "$hash" > build/.inputs-hash
fi
