#!/usr/bin/env bash
# Rolls back every tier this run moved (DEPLOY_STATE/moved, see lib.sh), the last moved first, to
# what it ran before: a worker with `wrangler rollback <previous version>`, the backend by
# deploying its previous image digest again (backend.sh). The migrations are not rolled back:
# each must keep the previous backend and worker working. Exits 1 when a tier could not be
# rolled back (the others are still tried), naming it; 0 when there was nothing to do.
#
#   TARGET, and what the tiers' own steps need: CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID for
#   the workers; FLY_API_TOKEN, FLY_APP for the backend.
# shellcheck source=scripts/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
target
[ -s "$DEPLOY_STATE/moved" ] || { log "this run moved no tier"; exit 0; }
failed=()
mapfile -t tiers < <(tac "$DEPLOY_STATE/moved")
for tier in "${tiers[@]}"; do
  previous=$(cat "$DEPLOY_STATE/$tier.previous" 2>/dev/null || true)
  if [ -z "$previous" ]; then
    log "$tier: nothing ran before this run's deploy; left as it is"
    failed+=("$tier")
    continue
  fi
  case "$tier" in
    live | main)
      config=wrangler.toml
      [ "$tier" = live ] && config=live/wrangler.toml
      log "$tier: wrangler rollback $previous ($config --env $TARGET)"
      "$WRANGLER" rollback "$previous" --config "$config" --env "$TARGET" \
        --message "rolled back by the deploy of ${GITHUB_SHA:-a local run}" --yes || failed+=("$tier")
      ;;
    backend)
      log "backend: deploying the previous image $previous"
      BACKEND_IMAGE=$previous ROLLBACK=1 bash scripts/deploy/backend.sh || failed+=("$tier")
      ;;
    *) log "unknown tier $tier in $DEPLOY_STATE/moved"; failed+=("$tier") ;;
  esac
done
[ ${#failed[@]} -eq 0 ] || die "not rolled back: ${failed[*]}"
log "rolled back: ${tiers[*]}"
