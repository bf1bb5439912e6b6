#!/usr/bin/env bash
# Settles which backend image this run deploys, by digest, into DEPLOY_STATE/backend.image:
#   staging      builds it (scripts/build-image.sh, the build the test command ran) and pushes
#                it as IMAGE_REPO:<commit>; its digest is what staging runs and tests;
#   production   never builds: takes the digest that staging deployed and smoke-tested for this
#                very commit (IMAGE_REPO:staged-<commit>, moved by promote.sh only after the
#                staging smoke test passed), and fails when that commit never passed staging.
#
#   TARGET, GITHUB_SHA, IMAGE_REPO (ghcr.io/<owner>/contact-list-cache-backend),
#   REGISTRY_USERNAME and REGISTRY_PASSWORD (from the environment; the password goes to
#   `podman login --password-stdin`, whose auth file skopeo reads too)
# shellcheck source=scripts/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
target
need GITHUB_SHA IMAGE_REPO REGISTRY_USERNAME REGISTRY_PASSWORD
registry=${IMAGE_REPO%%/*}
printf '%s' "$REGISTRY_PASSWORD" | podman login "$registry" --username "$REGISTRY_USERNAME" --password-stdin >/dev/null

if [ "$TARGET" = staging ]; then
  image=$(IMAGE_NAME=$IMAGE_REPO IMAGE_TAG=$GITHUB_SHA bash scripts/build-image.sh | tail -n 1)
  podman push --digestfile "$DEPLOY_STATE/digest" "$image"
  digest=$(cat "$DEPLOY_STATE/digest")
else
  staged="$IMAGE_REPO:staged-$GITHUB_SHA"
  digest=$(skopeo inspect --format '{{.Digest}}' "docker://$staged" 2>/dev/null) ||
    die "no image passed staging for commit $GITHUB_SHA ($staged is missing): push the commit to main first, and tag it once its staging deploy is green"
fi
case "$digest" in sha256:*) ;; *) die "no digest for the image (got '$digest')" ;; esac
printf '%s@%s\n' "$IMAGE_REPO" "$digest" > "$DEPLOY_STATE/backend.image"
log "backend image: $IMAGE_REPO@$digest"
