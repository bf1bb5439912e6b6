-- Row-level security as on Supabase: a signed-in user reads rows only in workspaces they are a
-- member of, as identified by the JWT's `sub` (auth.uid()). anon reads nothing.

-- The caller's workspaces. SECURITY DEFINER so that policies on workspace_members can use it
-- without recursing into their own policy; an empty search_path keeps it from being hijacked.
create function public.current_user_workspace_ids() returns setof uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select workspace_id from public.workspace_members where user_id = auth.uid()
  $$;
revoke all on function public.current_user_workspace_ids() from public, anon, authenticated, service_role;
grant execute on function public.current_user_workspace_ids() to authenticated, service_role;

alter table public.workspaces enable row level security;
alter table public.workspace_members enable row level security;
alter table public.boards enable row level security;
alter table public.board_columns enable row level security;
alter table public.contacts enable row level security;
alter table public.contact_favorites enable row level security;

create policy workspaces_members_read on public.workspaces
  for select to authenticated
  using (id in (select public.current_user_workspace_ids()));

create policy workspace_members_members_read on public.workspace_members
  for select to authenticated
  using (workspace_id in (select public.current_user_workspace_ids()));

create policy boards_members_read on public.boards
  for select to authenticated
  using (workspace_id in (select public.current_user_workspace_ids()));

create policy board_columns_members_read on public.board_columns
  for select to authenticated
  using (workspace_id in (select public.current_user_workspace_ids()));

create policy contacts_members_read on public.contacts
  for select to authenticated
  using (workspace_id in (select public.current_user_workspace_ids()));

-- Favorites are personal: only your own, and only in your workspaces.
create policy contact_favorites_own_read on public.contact_favorites
  for select to authenticated
  using (
    user_id = (select auth.uid())
    and workspace_id in (select public.current_user_workspace_ids())
  );

-- Table privileges: the API roles read (the policies above decide which rows) and write nothing
-- (default privileges granted them everything; service_role, the project's admin key, keeps
-- its). No sequence here.
revoke all on public.workspaces, public.workspace_members, public.boards,
  public.board_columns, public.contacts, public.contact_favorites
  from anon, authenticated;
grant select on public.workspaces, public.workspace_members, public.boards,
  public.board_columns, public.contacts, public.contact_favorites
  to anon, authenticated, service_role;
