#!/usr/bin/env bash
# The test command: installs what is missing, runs the native unit and integration tests and the
# TypeScript client's unit and hook tests, builds the worker and the client and runs the
# end-to-end suite against a real local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cargo test --workspace --locked
npm test --workspace client
npm run build --workspace client
cargo build --quiet --locked -p contact-list-cache-backend
bash scripts/build-worker.sh
# The load test holds 1,000 connections open at once, on both ends of loopback.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
node tests/run.mjs
