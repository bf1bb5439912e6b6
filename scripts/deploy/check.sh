#!/usr/bin/env bash
# The first deploy step, before any tier moves: the workers' configs are complete for TARGET
# (scripts/check-wrangler.mjs --deploy: every var, secret and binding declared, [observability]
# on in both, and no placeholder KV namespace id, which it names), and both bundle as
# `wrangler deploy` would (--dry-run: no Cloudflare call).
# shellcheck source=scripts/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
target
node scripts/check-wrangler.mjs --deploy "$TARGET"
out=$(mktemp -d)
for config in live/wrangler.toml wrangler.toml; do
  "$WRANGLER" deploy --dry-run --config "$config" --env "$TARGET" --outdir "$out/$(dirname "$config")" >/dev/null
  log "$config bundles for $TARGET"
done
rm -rf "$out"
