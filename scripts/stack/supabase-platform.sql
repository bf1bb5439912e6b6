-- What a hosted Supabase project is before our migrations run, made by the local stack (never a
-- migration): run once by the cluster's superuser, `supabase_admin`, right after initdb. It
-- follows the roles, schemas and privileges that Supabase's own image sets up (the init scripts
-- and migrations of the supabase/postgres repository: the initial and auth schemas, "demote
-- postgres", "lock down postgres access to auth" and "revoke admin roles from postgres",
-- 20250421084701), so that every test runs our migrations under the rules a hosted project
-- enforces:
--   * `postgres` is not a superuser: it logs in, creates roles and databases, bypasses row-level
--     security, and owns what the migrations create;
--   * schema `auth` belongs to `supabase_auth_admin`; `postgres` may use it and read and write its
--     tables, but may not CREATE in it;
--   * extensions live in schema `extensions`;
--   * whatever `postgres` (or `supabase_admin`) creates in `public` is granted to `anon`,
--     `authenticated` and `service_role` by default privileges: tables, sequences and functions,
--     EXECUTE included, so every migration must revoke what those roles must not have;
--   * PostgREST logs in as `authenticator` and switches to the role a JWT names.
-- Only what our migrations and services can observe is reproduced (not storage, realtime, vault).

-- The API roles and PostgREST's login role.
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator login noinherit;
grant anon, authenticated, service_role to authenticator;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';

-- The project's owner role, as hosted Supabase leaves it after demoting it.
create role postgres login nosuperuser createdb createrole replication bypassrls;
grant all on database postgres to postgres;
grant anon, authenticated, service_role to postgres;
-- Statistics and signalling as hosted projects grant them (pg_stat_activity's queries,
-- pg_stat_statements, pg_terminate_backend on its own sessions).
grant pg_monitor, pg_read_all_stats, pg_signal_backend to postgres;
-- Hosted projects let postgres turn triggers off for a bulk load (supautils' privileged
-- settings), as supabase/seed.sql does; PostgreSQL 15 grants the same directly.
grant set on parameter session_replication_role to postgres;

-- Schema public: usable by the API roles; postgres creates its tables there.
grant usage on schema public to postgres, anon, authenticated, service_role;
grant all on schema public to postgres;

-- Default privileges: what postgres or supabase_admin creates in public is open to the API roles.
alter default privileges for role postgres in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on functions to postgres, anon, authenticated, service_role;

-- Extensions in their own schema, usable by every role; postgres may create (trusted) ones there.
create schema extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant all on schema extensions to postgres;
create extension pg_stat_statements with schema extensions;
grant execute on all functions in schema extensions to postgres;
alter role postgres set search_path = "$user", public, extensions;

-- Schema auth, owned by Supabase Auth's admin role; postgres uses it but cannot create in it.
create role supabase_auth_admin login noinherit createrole noreplication;
create schema auth authorization supabase_auth_admin;
grant usage on schema auth to postgres, anon, authenticated, service_role;
set role supabase_auth_admin;

-- auth.users with the columns our migrations, seed and tests use among those Supabase Auth keeps.
create table auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255) unique,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);

-- The claims PostgREST puts in `request.jwt.claims` (and, in older PostgREST, per-claim settings).
create function auth.jwt() returns jsonb
  language sql stable
  as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
  $$;
create function auth.uid() returns uuid
  language sql stable
  as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
  $$;
create function auth.role() returns text
  language sql stable
  as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
  $$;
create function auth.email() returns text
  language sql stable
  as $$
    select coalesce(
      nullif(current_setting('request.jwt.claim.email', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
  $$;
grant execute on all functions in schema auth to postgres, anon, authenticated, service_role;
-- postgres reads and writes Auth's tables (a seed inserts users; foreign keys reference them).
grant all on all tables in schema auth to postgres;
reset role;

-- What 20250421084701 ("revoke admin roles from postgres") leaves: no CREATE in auth for
-- postgres, whatever an older grant said.
revoke create on schema auth from postgres;
