#!/usr/bin/env bash
# Builds the backend's container image: the static binary (musl), then an image FROM scratch
# holding it and a CA bundle (backend/Containerfile, docker format so HEALTHCHECK is kept).
# Idempotent: cargo rebuilds nothing when no input changed and podman reuses its cached layers.
# Prints the image reference (name:tag) as the last line of stdout; progress goes to stderr.
#
#   IMAGE_NAME  the repository (default contact-list-cache-backend; CI: ghcr.io/<owner>/...)
#   IMAGE_TAG   the tag (default the commit, `git rev-parse --short=12 HEAD`, with `-dirty` when
#               tracked files have uncommitted changes)
#
# Needs podman, musl-tools and the x86_64-unknown-linux-musl target (scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[build-image] %s\n' "$*" >&2; }
target=x86_64-unknown-linux-musl
command -v podman >/dev/null 2>&1 || { log "podman is missing: run scripts/bootstrap.sh"; exit 1; }
command -v musl-gcc >/dev/null 2>&1 || { log "musl-gcc (musl-tools) is missing: run scripts/bootstrap.sh"; exit 1; }
rustup target list --installed | grep -qx "$target" || { log "the $target target is missing: run scripts/bootstrap.sh"; exit 1; }
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || { log "$ca_bundle is missing: install ca-certificates"; exit 1; }

version=$(awk '/^\[workspace.package\]/ { found = 1 } found && /^version *=/ { gsub(/[^0-9A-Za-z.+-]|version/, ""); print; exit }' Cargo.toml)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
default_tag=${revision:0:12}
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  default_tag="$default_tag-dirty"
fi
image="${IMAGE_NAME:-contact-list-cache-backend}:${IMAGE_TAG:-$default_tag}"

log "cargo build --release --target $target (the backend, static)"
cargo build --quiet --release --locked --target "$target" -p contact-list-cache-backend

# The build context holds exactly what the image copies, nothing of the repository besides.
context=target/image-context
mkdir -p "$context"
install -m 0755 "target/$target/release/contact-list-cache-backend" "$context/contact-list-cache-backend"
install -m 0644 "$ca_bundle" "$context/ca-certificates.crt"

log "podman build $image"
podman build --quiet --pull=never --format docker \
  --file backend/Containerfile \
  --label "org.opencontainers.image.title=contact-list-cache-backend" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --tag "$image" \
  "$context" >&2
echo "$image"
