#!/usr/bin/env bash
# The bench command (`npm run bench -- [options]`): installs wrk if missing, builds what the
# benchmark runs (the release backend, the worker and the floor worker; each skipped when up to
# date) and runs bench/run.mjs, which starts the stack and writes bench/results/<date>.md.
# Run the test command once first: it installs PostgreSQL, Redis and the wasm tools.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bench] %s\n' "$*" >&2; }

for arg in "$@"; do
  if [ "$arg" = "--help" ] || [ "$arg" = "-h" ]; then exec node bench/run.mjs --help; fi
done
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

bash scripts/bootstrap.sh

if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk"
  if ! DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null 2>&1; then
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null
  fi
fi

log "building what the benchmark runs (skipped when up to date)"
cargo build --release --quiet --locked -p contact-list-cache-backend
bash scripts/build-worker.sh
bash bench/floor/build.sh

BACKEND_PROFILE=release exec node bench/run.mjs "$@"
