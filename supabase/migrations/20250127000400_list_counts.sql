-- Exact list totals without counting the board: per board, how many contacts each list the API's
-- filters name holds (and, per user, their assigned_to_me and favorites lists), kept by triggers
-- in the same transaction as the change, so always exact, and read in O(1). Initialised from the
-- rows already there. Plus indexes that serve every filter with every sort, so a page deep in a
-- list never sorts the board.

-- `list` is a filter's name (`all`, `open`, `closed`, `unassigned`, `high_priority`,
-- `medium_priority`, `low_priority`, `archived`), or `assigned:<user id>` (a user's
-- assigned_to_me), or `favorites:<user id>`.
create table public.contact_list_counts (
  workspace_id uuid not null,
  board_id uuid not null,
  list text not null,
  total bigint not null default 0,
  primary key (board_id, list),
  foreign key (workspace_id, board_id) references public.boards (workspace_id, id) on delete cascade
);

alter table public.contact_list_counts enable row level security;

-- Members read their workspace's totals; a favorites total only its own user.
create policy contact_list_counts_members_read on public.contact_list_counts
  for select to authenticated
  using (
    workspace_id in (select public.current_user_workspace_ids())
    and (list not like 'favorites:%' or list = 'favorites:' || (select auth.uid()))
  );

-- Only the triggers below write totals (as this table's owner); the API roles read.
revoke all on public.contact_list_counts from anon, authenticated, service_role;
grant select on public.contact_list_counts to anon, authenticated, service_role;

-- The lists a contact in this state belongs to, favorites aside: what the filters mean
-- (crates/core/src/filter.rs), written once more here, in SQL.
create function public.contact_lists(archived boolean, status text, priority text, assignee uuid)
  returns text[]
  language sql immutable
  set search_path = ''
  as $$
    select case
      when archived then array['archived']
      else array['all', lower(status)]
        || case when priority is null then '{}'::text[] else array[priority || '_priority'] end
        || case when assignee is null then array['unassigned'] else array['assigned:' || assignee] end
    end
  $$;
-- For the counting functions below only (they run as its owner): not an API.
revoke all on function public.contact_lists(boolean, text, text, uuid) from public, anon, authenticated, service_role;

-- Applies `deltas` (a JSON array of {workspace_id, board_id, list, delta}), summed per counter and
-- in key order (so concurrent writers lock counters in the same order and never deadlock). A
-- board being deleted (its contacts going with it) is left alone: its counters go with it.
-- Called only by the counting triggers below, which run as this table's owner: invoker rights
-- suffice, and no API role may execute it (it would set any board's totals).
create function public.apply_list_deltas(deltas jsonb)
  returns void
  language sql
  set search_path = ''
  as $$
    insert into public.contact_list_counts as c (workspace_id, board_id, list, total)
    select d.workspace_id, d.board_id, d.list, sum(d.delta)
    from jsonb_to_recordset(deltas) as d(workspace_id uuid, board_id uuid, list text, delta bigint)
    where exists (select 1 from public.boards b where b.id = d.board_id)
    group by d.board_id, d.list, d.workspace_id
    having sum(d.delta) <> 0
    order by d.board_id, d.list
    on conflict (board_id, list) do update set total = c.total + excluded.total
  $$;

revoke all on function public.apply_list_deltas(jsonb) from public, anon, authenticated, service_role;

-- Statement-level triggers with transition tables: one pass per statement, however many rows.
-- SECURITY DEFINER (with an empty search_path): whoever writes contacts or favorites (the
-- project's owner, service_role, a future write policy's user) moves totals they have no
-- privilege to write themselves, and only through these functions. Only triggers call them.
create function public.count_contact_lists() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  deltas jsonb;
begin
  if tg_op = 'INSERT' then
    select jsonb_agg(d) into deltas from (
      select n.workspace_id, n.board_id, l.list, 1 as delta
      from new_rows n, unnest(public.contact_lists(n.archived, n.conversation_status, n.priority, n.assigned_user_id)) as l(list)
    ) d;
  elsif tg_op = 'DELETE' then
    -- Favorites totals of deleted contacts were moved by the row trigger below, before the
    -- favorites rows went with them.
    select jsonb_agg(d) into deltas from (
      select o.workspace_id, o.board_id, l.list, -1 as delta
      from old_rows o, unnest(public.contact_lists(o.archived, o.conversation_status, o.priority, o.assigned_user_id)) as l(list)
    ) d;
  else
    select jsonb_agg(d) into deltas from (
      select o.workspace_id, o.board_id, l.list, -1 as delta
      from old_rows o, unnest(public.contact_lists(o.archived, o.conversation_status, o.priority, o.assigned_user_id)) as l(list)
      union all
      select n.workspace_id, n.board_id, l.list, 1
      from new_rows n, unnest(public.contact_lists(n.archived, n.conversation_status, n.priority, n.assigned_user_id)) as l(list)
      union all
      select o.workspace_id, o.board_id, 'favorites:' || f.user_id, -1
      from old_rows o join public.contact_favorites f on f.contact_id = o.id where not o.archived
      union all
      select n.workspace_id, n.board_id, 'favorites:' || f.user_id, 1
      from new_rows n join public.contact_favorites f on f.contact_id = n.id where not n.archived
    ) d;
  end if;
  if deltas is not null then
    perform public.apply_list_deltas(deltas);
  end if;
  return null;
end
$$;

create function public.count_deleted_contact_favorites() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
begin
  if not old.archived and exists (select 1 from public.boards b where b.id = old.board_id) then
    update public.contact_list_counts c set total = c.total - 1
    from public.contact_favorites f
    where f.contact_id = old.id and c.board_id = old.board_id and c.list = 'favorites:' || f.user_id;
  end if;
  return old;
end
$$;

create function public.count_favorites() returns trigger
  language plpgsql
  security definer
  set search_path = ''
  as $$
declare
  deltas jsonb;
begin
  -- A favorite deleted with its contact finds no contact here: the contact's own trigger
  -- counted it.
  if tg_op = 'INSERT' then
    select jsonb_agg(d) into deltas from (
      select c.workspace_id, c.board_id, 'favorites:' || f.user_id as list, 1 as delta
      from new_rows f join public.contacts c on c.id = f.contact_id where not c.archived
    ) d;
  else
    select jsonb_agg(d) into deltas from (
      select c.workspace_id, c.board_id, 'favorites:' || f.user_id as list, -1 as delta
      from old_rows f join public.contacts c on c.id = f.contact_id where not c.archived
    ) d;
  end if;
  if deltas is not null then
    perform public.apply_list_deltas(deltas);
  end if;
  return null;
end
$$;

revoke all on function public.count_contact_lists() from public, anon, authenticated, service_role;
revoke all on function public.count_deleted_contact_favorites() from public, anon, authenticated, service_role;
revoke all on function public.count_favorites() from public, anon, authenticated, service_role;

create trigger contacts_count_lists_insert after insert on public.contacts
  referencing new table as new_rows for each statement execute function public.count_contact_lists();
create trigger contacts_count_lists_update after update on public.contacts
  referencing old table as old_rows new table as new_rows for each statement execute function public.count_contact_lists();
create trigger contacts_count_lists_delete after delete on public.contacts
  referencing old table as old_rows for each statement execute function public.count_contact_lists();
create trigger contacts_count_favorites_delete before delete on public.contacts
  for each row execute function public.count_deleted_contact_favorites();
create trigger contact_favorites_count_insert after insert on public.contact_favorites
  referencing new table as new_rows for each statement execute function public.count_favorites();
create trigger contact_favorites_count_delete after delete on public.contact_favorites
  referencing old table as old_rows for each statement execute function public.count_favorites();

-- Recounts every total from the rows: for this migration, and after a bulk load made with the
-- triggers off (supabase/seed.sql).
create function public.recount_contact_lists() returns void
  language sql
  security definer
  set search_path = ''
  as $$
    delete from public.contact_list_counts;
    insert into public.contact_list_counts (workspace_id, board_id, list, total)
    select workspace_id, board_id, list, count(*) from (
      select c.workspace_id, c.board_id, l.list
      from public.contacts c, unnest(public.contact_lists(c.archived, c.conversation_status, c.priority, c.assigned_user_id)) as l(list)
      union all
      select c.workspace_id, c.board_id, 'favorites:' || f.user_id
      from public.contact_favorites f join public.contacts c on c.id = f.contact_id where not c.archived
    ) rows
    group by workspace_id, board_id, list
  $$;
revoke all on function public.recount_contact_lists() from public, anon, authenticated, service_role;

select public.recount_contact_lists();

-- Every filter with every sort, within one workspace's board and archived or not, ties broken by
-- id: the list queries name the workspace, the board and the filter's columns by equality, so an
-- index that starts with them hands a page over in order, however deep, without sorting the board.
-- (The favorites list joins the user's favorites, a small set, and sorts that.)
drop index public.contacts_sort_created_at_idx;
drop index public.contacts_sort_last_message_time_idx;
drop index public.contacts_sort_name_idx;
drop index public.contacts_filter_status_idx;
drop index public.contacts_filter_priority_idx;
drop index public.contacts_filter_assignee_idx;
drop index public.contacts_filter_column_idx;
create index contacts_created_at_idx on public.contacts (workspace_id, board_id, archived, created_at desc, id desc);
create index contacts_last_message_time_idx on public.contacts (workspace_id, board_id, archived, last_message_time desc nulls last, id desc);
create index contacts_name_idx on public.contacts (workspace_id, board_id, archived, name, id);
create index contacts_status_created_at_idx on public.contacts (workspace_id, board_id, archived, conversation_status, created_at desc, id desc);
create index contacts_status_last_message_time_idx on public.contacts (workspace_id, board_id, archived, conversation_status, last_message_time desc nulls last, id desc);
create index contacts_status_name_idx on public.contacts (workspace_id, board_id, archived, conversation_status, name, id);
create index contacts_priority_created_at_idx on public.contacts (workspace_id, board_id, archived, priority, created_at desc, id desc);
create index contacts_priority_last_message_time_idx on public.contacts (workspace_id, board_id, archived, priority, last_message_time desc nulls last, id desc);
create index contacts_priority_name_idx on public.contacts (workspace_id, board_id, archived, priority, name, id);
create index contacts_assignee_created_at_idx on public.contacts (workspace_id, board_id, archived, assigned_user_id, created_at desc, id desc);
create index contacts_assignee_last_message_time_idx on public.contacts (workspace_id, board_id, archived, assigned_user_id, last_message_time desc nulls last, id desc);
create index contacts_assignee_name_idx on public.contacts (workspace_id, board_id, archived, assigned_user_id, name, id);
create index contacts_column_created_at_idx on public.contacts (workspace_id, board_id, board_column_id, archived, created_at desc, id desc);
create index contacts_column_last_message_time_idx on public.contacts (workspace_id, board_id, board_column_id, archived, last_message_time desc nulls last, id desc);
create index contacts_column_name_idx on public.contacts (workspace_id, board_id, board_column_id, archived, name, id);
