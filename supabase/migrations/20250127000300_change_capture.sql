-- Change capture: every row change to the tables cached lists depend on is announced with
-- NOTIFY contact_list_cache, in the payload shape of Supabase Database Webhooks
-- ({type, table, schema, record, old_record}). The backend LISTENs and forwards each one to the
-- worker's /api/cache/webhook; on Supabase a Database Webhook can call that endpoint directly.

create function public.notify_contact_list_cache() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  perform pg_notify('contact_list_cache', json_build_object(
    'type', tg_op,
    'table', tg_table_name,
    'schema', tg_table_schema,
    'record', case when tg_op <> 'DELETE' then to_jsonb(new) end,
    'old_record', case when tg_op <> 'INSERT' then to_jsonb(old) end
  )::text);
  return null;
end
$$;

-- A trigger function: only its triggers call it.
revoke all on function public.notify_contact_list_cache() from public, anon, authenticated, service_role;

create trigger contacts_notify_contact_list_cache
  after insert or update or delete on public.contacts
  for each row execute function public.notify_contact_list_cache();
create trigger contact_favorites_notify_contact_list_cache
  after insert or delete on public.contact_favorites
  for each row execute function public.notify_contact_list_cache();
create trigger boards_notify_contact_list_cache
  after update or delete on public.boards
  for each row execute function public.notify_contact_list_cache();
create trigger board_columns_notify_contact_list_cache
  after insert or delete on public.board_columns
  for each row execute function public.notify_contact_list_cache();
