-- Durable change capture (docs/change-capture.md): the triggers write each change to an outbox
-- table in the changing transaction, so a change exists exactly when its row change committed,
-- whether or not anyone was listening. NOTIFY contact_list_cache stays, but only as a wake-up
-- (its payload is 'outbox'; PostgreSQL folds a transaction's identical notifications into one):
-- the backend reads the outbox after the sequence stored in contact_list_cache_cursor, forwards
-- the changes to the worker and only then moves its cursor, on each wake-up and on a periodic
-- poll. The backend and this migration go out together (an older backend would forward the
-- wake-up word as a change).

create table if not exists public.contact_list_cache_outbox (
  seq bigint generated always as identity primary key,
  -- The change as the worker's /api/cache/webhook parses it ({type, table, schema, record,
  -- old_record, changed_at}); the backend adds outbox_seq when it forwards it.
  payload jsonb not null,
  created_at timestamptz not null default clock_timestamp()
);

-- One row per consumer: the highest sequence through which every change was delivered.
create table if not exists public.contact_list_cache_cursor (
  consumer text primary key,
  seq bigint not null default 0,
  updated_at timestamptz not null default now()
);

-- Neither is for clients (the outbox holds whole contact rows): no policies and no privilege
-- for any API role, service_role included, so PostgREST shows nothing; the backend connects as
-- the database owner and the trigger function runs as its owner.
alter table public.contact_list_cache_outbox enable row level security;
alter table public.contact_list_cache_cursor enable row level security;
revoke all on public.contact_list_cache_outbox, public.contact_list_cache_cursor from anon, authenticated, service_role;
revoke all on sequence public.contact_list_cache_outbox_seq_seq from anon, authenticated, service_role;

-- SECURITY DEFINER (empty search_path): a writer of contacts appends to an outbox it has no
-- privilege on (see above). Only triggers call it (EXECUTE was revoked where it was created).
create or replace function public.notify_contact_list_cache() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
begin
  insert into public.contact_list_cache_outbox (payload) values (jsonb_build_object(
    'type', tg_op,
    'table', tg_table_name,
    'schema', tg_table_schema,
    'record', case when tg_op <> 'DELETE' then to_jsonb(new) end,
    'old_record', case when tg_op <> 'INSERT' then to_jsonb(old) end,
    'changed_at', floor(extract(epoch from clock_timestamp()) * 1000)::bigint
  ));
  perform pg_notify('contact_list_cache', 'outbox');
  return null;
end
$$;
