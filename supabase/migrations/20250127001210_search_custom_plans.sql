-- Searches planned for their own values, and only searches (issue 30).
--
-- Assumes: request_tracing.trace_request() of 20250127001200_request_tracing.sql, which PostgREST
-- runs as its db-pre-request function in every request's transaction, after the role switch and
-- before the query; the view public.contacts_searchable (20250127000900, 20250127001000), which
-- the worker reads every search through that has a trigram or character pairs
-- (crates/core/src/postgrest.rs).
--
-- PostgREST prepares its statements and binds the filters' values. After five executions of one
-- statement on one connection PostgreSQL may switch to a generic plan, made without the values.
-- For a search that plan read the pairs' and trigram indexes whole whatever the term: after five
-- searches for `q` (no match), one for `a` (nearly every contact) took 23.6 s instead of
-- milliseconds at 1,000,000 contacts. Setting `plan_cache_mode = force_custom_plan` on the role
-- `authenticated` fixed that, but it made every request PostgREST runs as `authenticated` plan
-- again, and the benchmark's mix (no searches) served about a third fewer requests a second
-- (bench/results/issue-30/summary.md). So the setting is made here, for the request's own
-- transaction, and only when the request reads `contacts_searchable`: PostgREST 12 puts the
-- request's path in `request.path` (`/contacts_searchable`; behind hosted Supabase's gateway too,
-- which strips `/rest/v1`). Every other request keeps PostgreSQL's default (`auto`), and the
-- role keeps no setting. The backend's fallback does the same for its search statements
-- (backend/src/db.rs).

-- Undo the role setting an earlier build of 20250127001000 made (a no-op where it never ran).
alter role authenticated reset plan_cache_mode;

create or replace function request_tracing.trace_request() returns void
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
  -- A search: planned for its own values, for this transaction only.
  if current_setting('request.path', true) like '%/contacts\_searchable' then
    perform set_config('plan_cache_mode', 'force_custom_plan', true);
  end if;
end
$$;

comment on function request_tracing.trace_request() is
  'PostgREST''s db-pre-request function: names the transaction after the request''s X-Request-ID (20250127001200_request_tracing.sql) and plans a search (a read of contacts_searchable) for its own values (20250127001210_search_custom_plans.sql).';
