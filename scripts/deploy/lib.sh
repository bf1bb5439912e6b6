# shellcheck shell=bash
# Shared by the deploy steps (sourced, never run): logging, required settings and the run's state.
#
# The state directory (DEPLOY_STATE, default $RUNNER_TEMP/deploy-state in CI, else
# target/deploy-state) records, for this run, which tiers were moved (`moved`, one a line, in
# order) and what each ran before (`<tier>.previous`), so that rollback.sh rolls back exactly
# the tiers this run moved, to what they ran before it.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

step=$(basename "$0" .sh)
log() { printf '[deploy %s] %s\n' "$step" "$*" >&2; }
die() { printf '[deploy %s] FAILED: %s\n' "$step" "$*" >&2; exit 1; }

# `need NAME...`: fails naming each setting that is unset or empty (never printing a value).
need() {
  local name missing=()
  for name in "$@"; do
    [ -n "${!name:-}" ] || missing+=("$name")
  done
  [ ${#missing[@]} -eq 0 ] || die "not set: ${missing[*]}"
}

# TARGET: the environment deployed to, as wrangler.toml and the GitHub environments name it.
target() {
  need TARGET
  case "$TARGET" in
    staging | production) ;;
    *) die "TARGET is '$TARGET': staging or production" ;;
  esac
}

# Registries want repository names in lower case; a GitHub owner may have capitals.
if [ -n "${IMAGE_REPO:-}" ]; then IMAGE_REPO=${IMAGE_REPO,,}; fi

DEPLOY_STATE=${DEPLOY_STATE:-${RUNNER_TEMP:+$RUNNER_TEMP/deploy-state}}
DEPLOY_STATE=${DEPLOY_STATE:-target/deploy-state}
mkdir -p "$DEPLOY_STATE"

# `moved TIER`: records that this run is moving TIER (before the move: a move that fails half
# way is rolled back too; rolling back a tier that did not move is harmless).
moved() { grep -qx "$1" "$DEPLOY_STATE/moved" 2>/dev/null || echo "$1" >> "$DEPLOY_STATE/moved"; }

# The wrangler the repository pins (package-lock.json); WRANGLER overrides it (the test command's
# local stand-in, tests/e2e/local-wrangler.mjs).
WRANGLER=${WRANGLER:-node_modules/.bin/wrangler}
export WRANGLER_SEND_METRICS=false
