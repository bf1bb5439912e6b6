#!/usr/bin/env bash
# Applies supabase/migrations to the database SUPABASE_DB_URL names, with the Supabase CLI that
# package-lock.json pins (`supabase db push`): the same command and flags in the pipeline and in
# the test command (tests/e2e/deploy.test.mjs, against a fresh database of the local stack as
# hosted Supabase's non-superuser `postgres`).
#
# `db push` records each migration it applies in supabase_migrations.schema_migrations (version,
# name, statements), applies only those not recorded there, each file in its own transaction,
# and refuses (without --include-all, which this never passes) a local migration older than the
# newest one applied: a migration merged out of order fails the deploy instead of being skipped
# or applied behind later ones. Migrations are not rolled back by rollback.sh: each must keep the
# previous backend and worker working (add, then remove in a later release).
#
#   SUPABASE_DB_URL   from the environment only (never expanded into a command line by the
#                     workflow); Supabase's session pooler from GitHub's runners (db-url.mjs).
# shellcheck source=scripts/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
need SUPABASE_DB_URL
node scripts/deploy/db-url.mjs SUPABASE_DB_URL
supabase=node_modules/.bin/supabase
[ -x "$supabase" ] || die "$supabase is missing: run scripts/bootstrap.sh"
log "supabase $("$supabase" --version) db push"
# Quoted: the URL reaches the CLI as one argument, whatever characters its password holds.
"$supabase" db push --db-url "$SUPABASE_DB_URL" --yes
log "done"
