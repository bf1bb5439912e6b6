#!/usr/bin/env bash
# The dev command: installs what is missing, builds, and runs the whole stack locally with the
# worker under `wrangler dev` on http://127.0.0.1:8787 and the demo page on
# http://127.0.0.1:5173 until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
cargo build --quiet -p contact-list-cache-backend
bash scripts/build-worker.sh
npm run build --silent --workspace client
exec node scripts/dev.mjs "$@"
