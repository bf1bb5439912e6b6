#!/usr/bin/env bash
# Deploys the backend image BACKEND_IMAGE (repo@sha256:digest; default DEPLOY_STATE/backend.image,
# from backend-image.sh) to its host, Fly.io Machines (fly.toml), without rebuilding it: the
# image is copied by digest (skopeo, digests preserved) into the app's registry
# (registry.fly.io/<FLY_APP>), and `flyctl deploy --image` rolls the app's Machines onto exactly
# that digest, each waiting for its /health check. The image itself knows nothing of Fly.
#
# Before moving anything it records what ran before: the digest of IMAGE_REPO:<TARGET>, the last
# image whose deploy passed the smoke test here (promote.sh moves that tag), for rollback.sh,
# which calls this script again with that image (ROLLBACK=1: nothing recorded).
#
#   TARGET, FLY_APP (the app for TARGET), FLY_API_TOKEN (from the environment: flyctl reads it
#   there; the registry login gets it on stdin), IMAGE_REPO
# shellcheck source=scripts/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
target
need FLY_APP FLY_API_TOKEN IMAGE_REPO
image=${BACKEND_IMAGE:-$(cat "$DEPLOY_STATE/backend.image" 2>/dev/null || true)}
[ -n "$image" ] || die "no image: set BACKEND_IMAGE or run backend-image.sh first"
digest=${image##*@}
case "$digest" in sha256:*) ;; *) die "BACKEND_IMAGE must name a digest (repo@sha256:...), not a tag: $image" ;; esac

if [ -z "${ROLLBACK:-}" ]; then
  previous=$(skopeo inspect --format '{{.Digest}}' "docker://$IMAGE_REPO:$TARGET" 2>/dev/null || true)
  if [ -n "$previous" ]; then
    printf '%s@%s\n' "$IMAGE_REPO" "$previous" > "$DEPLOY_STATE/backend.previous"
    log "$FLY_APP ran $IMAGE_REPO@$previous before this deploy"
  else
    : > "$DEPLOY_STATE/backend.previous"
    log "$IMAGE_REPO:$TARGET does not exist yet: nothing to roll back to"
  fi
  moved backend
fi

printf '%s' "$FLY_API_TOKEN" | podman login registry.fly.io --username x --password-stdin >/dev/null
fly_image="registry.fly.io/$FLY_APP@$digest"
log "copying $image to registry.fly.io/$FLY_APP (digest kept)"
skopeo copy --preserve-digests "docker://$image" "docker://registry.fly.io/$FLY_APP:${digest#sha256:}"
log "flyctl deploy $fly_image"
flyctl deploy --config fly.toml --app "$FLY_APP" --image "$fly_image" --strategy rolling --wait-timeout 5m --yes
