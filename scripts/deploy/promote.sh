#!/usr/bin/env bash
# After the smoke test passed: the backend image this run deployed becomes IMAGE_REPO:<TARGET>
# (what backend.sh rolls back to next time) and, on staging, IMAGE_REPO:staged-<commit> (what a
# production deploy of that commit promotes; backend-image.sh). Tags only: no image is rebuilt
# or re-pushed, the digest stays the one tested.
#
#   TARGET, GITHUB_SHA, IMAGE_REPO, and the registry login made by backend-image.sh
# shellcheck source=scripts/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
target
need GITHUB_SHA IMAGE_REPO
image=$(cat "$DEPLOY_STATE/backend.image")
tags=("$TARGET")
[ "$TARGET" = staging ] && tags+=("staged-$GITHUB_SHA")
for tag in "${tags[@]}"; do
  skopeo copy --preserve-digests "docker://$image" "docker://$IMAGE_REPO:$tag"
  log "$IMAGE_REPO:$tag is now $image"
done
