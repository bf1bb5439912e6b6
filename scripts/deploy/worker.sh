#!/usr/bin/env bash
# Deploys one of the two workers to TARGET with wrangler, after recording the version it replaces
# (for rollback.sh): `worker.sh live` (live/wrangler.toml, the live channel: first, the main
# worker binds to it) or `worker.sh main` (wrangler.toml).
#
#   TARGET                  staging | production
#   CLOUDFLARE_API_TOKEN    from the environment (wrangler reads it there), with
#   CLOUDFLARE_ACCOUNT_ID
#
# The build is the one the test command made (scripts/build-worker.sh; wrangler's [build] finds
# it current). The workflow checks the config first, before any tier moves (check.sh: a
# placeholder KV namespace id fails the run naming it).
# shellcheck source=scripts/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
target
tier=${1:-}
case "$tier" in
  live) config=live/wrangler.toml ;;
  main) config=wrangler.toml ;;
  *) die "usage: worker.sh live|main" ;;
esac

# The version serving now: the one at the highest percentage of the current deployment (none on
# a worker's first deploy, which then has nothing to roll back to).
# Only "this Worker does not exist" (Cloudflare's code 10007) means a first deploy; any other
# failure (a token without access, the API down) stops here, before anything moved.
if status=$("$WRANGLER" deployments status --config "$config" --env "$TARGET" --json 2>"$DEPLOY_STATE/$tier.status-error"); then
  previous=$(printf '%s' "$status" | node -e '
    let text = ""; process.stdin.on("data", (c) => (text += c)).on("end", () => {
      // A worker with no deployment prints no object ("undefined").
      const versions = /^\s*\{/.test(text) ? JSON.parse(text).versions ?? [] : [];
      versions.sort((a, b) => b.percentage - a.percentage);
      process.stdout.write(versions[0]?.version_id ?? "");
    });')
elif grep -q -e '10007' -e 'does not exist' "$DEPLOY_STATE/$tier.status-error"; then
  previous=""
else
  cat "$DEPLOY_STATE/$tier.status-error" >&2
  die "wrangler deployments status failed for $config --env $TARGET: nothing deployed"
fi
if [ -n "$previous" ]; then
  log "$config --env $TARGET serves version $previous"
else
  log "$config --env $TARGET has no deployment yet: nothing to roll back to"
fi
printf '%s\n' "$previous" > "$DEPLOY_STATE/$tier.previous"
moved "$tier"
"$WRANGLER" deploy --config "$config" --env "$TARGET"
log "deployed $config --env $TARGET"
