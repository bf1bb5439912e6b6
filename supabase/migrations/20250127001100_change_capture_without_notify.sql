-- Change capture without NOTIFY on the write path. Assumes 20250127000600_change_outbox.sql (the
-- outbox, its cursor and the trigger function this replaces).
--
-- A transaction that has called pg_notify takes PostgreSQL's one instance-wide notify lock at
-- commit and holds it until its commit is durable, so every notifying writer commits after the
-- one before it: with 16 writers, 249 commits/s with capture on against 1,393 off
-- (bench/results/2026-12-06-writers-before.md). Folding the notifications into one per
-- transaction does not help (the payload was already the same word, folded by PostgreSQL): the
-- lock is per notifying transaction. So the triggers only append to the outbox, and the backend
-- watches the outbox's sequence instead of LISTENing (backend/src/capture/mod.rs: it asks
-- pg_sequence_last_value every CHANGE_CAPTURE_WAKE_MS, 50 ms by default, and reads the outbox when
-- the sequence moved). The backend and this migration go out together: an older backend would
-- wait for its periodic poll (CHANGE_CAPTURE_POLL_MS) for each change.

-- SECURITY DEFINER (empty search_path), as before: a writer of contacts appends to an outbox it
-- has no privilege on. Only triggers call it (EXECUTE was revoked where it was created).
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
  return null;
end
$$;
