-- The audit log of cache operations (invalidations, warms, database-change webhooks): who did
-- what to which workspace's caches, with what result, under which request id, when. Written and
-- read only by the backend as its own database role (the table's owner); row-level security is
-- on with no policy, and the API roles get no privilege, so PostgREST shows none of it.
create table public.cache_audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null,
  workspace_id uuid not null,
  actor text not null check (actor ~ '^(service:[a-z0-9_-]{1,64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$'),
  operation text not null check (operation in ('invalidate', 'warm', 'webhook')),
  scopes text[] not null default '{}',
  boards uuid[] not null default '{}',
  result text not null check (result in ('ok', 'error')),
  status smallint not null check (status between 100 and 599),
  request_id text not null check (length(request_id) between 1 and 128),
  detail text check (length(detail) <= 256)
);

-- One workspace's records, newest first (and the cursor of the next page).
create index cache_audit_log_workspace_at_idx on public.cache_audit_log (workspace_id, at desc, id desc);
-- Retention: the rows past the configured age, oldest first.
create index cache_audit_log_at_idx on public.cache_audit_log (at);

alter table public.cache_audit_log enable row level security;
revoke all on public.cache_audit_log from anon, authenticated, service_role;
revoke all on sequence public.cache_audit_log_id_seq from anon, authenticated, service_role;
