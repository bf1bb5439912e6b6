#!/usr/bin/env bash
# After a database restore (docs/operations/runbooks/restore.md): deletes keys from the worker's
# KV namespace (CONTACT_CACHE) in TARGET, those starting with PREFIX (default `applied:`).
#
#   PREFIX=applied: (the default) the `applied:<workspace>` marks. The restored outbox numbers its
#                   changes again from below them, and the worker would skip each new change at
#                   or below its workspace's mark as "applied before" for up to 7 days (the
#                   marks' expiry). Without a mark, a redelivered change is applied twice, which
#                   only bumps a generation once more.
#   PREFIX=         every key: pages, scope states (`gen:`), carry records and marks. An empty
#                   cache is always right; use it when the restored data is older than what the
#                   cache holds (the restore runbook does).
#
#   TARGET; CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID from the environment (wrangler reads
#   them there); KV_PERSIST_TO: instead of Cloudflare, wrangler's local storage in that directory
#   (the test command's rehearsal, tests/e2e/deploy.test.mjs)
#
# Runs:
#   wrangler kv key list --binding CONTACT_CACHE --env TARGET [--prefix PREFIX] --remote
#   wrangler kv bulk delete <names.json> --binding CONTACT_CACHE --env TARGET --force --remote
# shellcheck source=scripts/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
target
prefix=${PREFIX-applied:}
where=(--remote)
[ -n "${KV_PERSIST_TO:-}" ] && where=(--local --persist-to "$KV_PERSIST_TO")
filter=()
[ -n "$prefix" ] && filter=(--prefix "$prefix")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$WRANGLER" kv key list --binding CONTACT_CACHE --env "$TARGET" "${filter[@]}" "${where[@]}" > "$work/keys.json"
count=$(PREFIX=$prefix node -e '
  const fs = require("node:fs");
  const names = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).map((k) => k.name);
  if (names.some((n) => !n.startsWith(process.env.PREFIX))) throw new Error("a listed key does not start with the prefix");
  fs.writeFileSync(process.argv[2], JSON.stringify(names));
  process.stdout.write(String(names.length));' "$work/keys.json" "$work/names.json")
what=${prefix:+"$prefix keys"}
what=${what:-keys}
if [ "$count" -eq 0 ]; then
  log "no $what in CONTACT_CACHE ($TARGET)"
  exit 0
fi
"$WRANGLER" kv bulk delete "$work/names.json" --binding CONTACT_CACHE --env "$TARGET" --force "${where[@]}" >&2
log "deleted $count $what from CONTACT_CACHE ($TARGET)"
