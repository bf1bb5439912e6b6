-- Request tracing through PostgREST: the worker sends each request's X-Request-ID to PostgREST,
-- and PostgREST's db-pre-request function (run in every request's transaction, after the role
-- switch, before the query) puts it in application_name for that transaction, where
-- pg_stat_activity and log_line_prefix's %a show it ('postgrest <id>'). Assumes PostgREST's
-- `authenticator` role (hosted Supabase has it) and that the project sets no other
-- db-pre-request function (PostgREST runs one: fold this one's body into an existing one).
--
-- PostgREST is told to call it by its `db-pre-request` setting. On hosted Supabase that is the
-- in-database configuration below (PostgREST reads its login role's `pgrst.*` settings at start
-- and on `NOTIFY pgrst, 'reload config'`), which the project's `postgres` may set there. A plain
-- PostgreSQL 15 lets only a superuser set a `pgrst.*` parameter on a role: there the migration
-- says so in a notice and PostgREST is given PGRST_DB_PRE_REQUEST=request_tracing.trace_request instead
-- (the local stack does: scripts/stack/services.mjs).

-- In a schema of its own, which PostgREST does not serve: the API roles may run it (PostgREST runs
-- it as the request's role) but not call it through /rest/v1/rpc.
create schema request_tracing;
revoke all on schema request_tracing from public;
grant usage on schema request_tracing to anon, authenticated, service_role;

create function request_tracing.trace_request() returns void
  language plpgsql
  set search_path = ''
  as $$
declare
  id text := current_setting('request.headers', true)::json->>'x-request-id';
begin
  -- Only ids the worker would send ([A-Za-z0-9._-], 1 to 128): nothing else reaches the logs.
  if id ~ '^[A-Za-z0-9._-]{1,128}$' then
    perform set_config('application_name', left('postgrest ' || id, 63), true);
  end if;
end
$$;

-- PostgREST calls it as the request's role. It sets only the caller's own application_name,
-- for its own transaction.
revoke all on function request_tracing.trace_request() from public;
grant execute on function request_tracing.trace_request() to anon, authenticated, service_role;

do $$
begin
  alter role authenticator set pgrst.db_pre_request to 'request_tracing.trace_request';
  notify pgrst, 'reload config';
exception when insufficient_privilege then
  raise notice 'pgrst.db_pre_request is not set (%): give PostgREST PGRST_DB_PRE_REQUEST=request_tracing.trace_request', sqlerrm;
end
$$;
