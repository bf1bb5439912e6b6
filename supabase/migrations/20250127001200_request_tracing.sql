-- Request tracing through PostgREST: the worker sends each request's X-Request-ID to PostgREST,
-- and PostgREST's db-pre-request function (run in every request's transaction, after the role
-- switch, before the query) puts it in application_name for that transaction, where
-- pg_stat_activity and log_line_prefix's %a show it ('postgrest <id>'). Assumes PostgREST's
-- `authenticator` role (hosted Supabase has it) and that the project sets no other
-- db-pre-request function (PostgREST runs one: fold this one's body into an existing one).
--
-- The setting is in-database configuration (PostgREST reads `pgrst.*` role settings of its
-- login role at start and on `NOTIFY pgrst, 'reload config'`), the way hosted Supabase documents
-- a pre-request function; `postgres` may alter `authenticator` there (and here, having
-- CREATEROLE).

create function public.trace_request() returns void
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
revoke all on function public.trace_request() from public;
grant execute on function public.trace_request() to anon, authenticated, service_role;

alter role authenticator set pgrst.db_pre_request to 'public.trace_request';
notify pgrst, 'reload config';
