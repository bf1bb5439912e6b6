-- Change capture stamps each change with when it was made (milliseconds since the epoch by the
-- database's clock, just before the commit): the worker's staleness bound for the pages a change
-- supersedes runs from then, not from when the change reached it (docs/invalidation-and-freshness.md,
-- "Bounded soft invalidation").

create or replace function public.notify_contact_list_cache() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  perform pg_notify('contact_list_cache', json_build_object(
    'type', tg_op,
    'table', tg_table_name,
    'schema', tg_table_schema,
    'record', case when tg_op <> 'DELETE' then to_jsonb(new) end,
    'old_record', case when tg_op <> 'INSERT' then to_jsonb(old) end,
    'changed_at', floor(extract(epoch from clock_timestamp()) * 1000)::bigint
  )::text);
  return null;
end
$$;
