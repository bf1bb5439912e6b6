#!/usr/bin/env bash
# The test command: installs what is missing, runs the native unit and integration tests, builds
# the worker and runs the end-to-end suite against a real local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cargo test --workspace --locked
cargo build --quiet --locked -p contact-list-cache-backend
bash scripts/build-worker.sh
node tests/run.mjs
