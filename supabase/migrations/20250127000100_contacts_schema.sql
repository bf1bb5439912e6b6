-- The data the worker serves: workspaces, their members, boards, board columns, contacts and
-- per-user favorites. Composite foreign keys keep every row inside its workspace.
--
-- Every migration here runs as hosted Supabase's `postgres` (not a superuser), as `supabase db
-- push` runs them, and assumes only what a hosted project has before them: the API roles (anon,
-- authenticated, service_role), schema `extensions`, and Supabase Auth's `auth.users` and
-- `auth.uid()` (the local stack makes the same: scripts/stack/supabase-platform.sql). None creates
-- anything in `auth` or `storage`. Default privileges grant what `postgres` creates in `public`
-- to the API roles, so each migration revokes what they must not have where it creates it.

-- Trigram indexes for search; the extension lives in `extensions`, out of PostgREST's schemas.
create extension if not exists pg_trgm with schema extensions;

create table public.workspaces (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table public.workspace_members (
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  created_at timestamptz not null default now(),
  primary key (workspace_id, user_id)
);
create index workspace_members_user_id_idx on public.workspace_members (user_id);

create table public.boards (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  name text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (workspace_id, id)
);

create table public.board_columns (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  board_id uuid not null,
  name text not null check (length(name) between 1 and 200),
  position integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (workspace_id, board_id) references public.boards (workspace_id, id) on delete cascade,
  unique (board_id, id)
);
create index board_columns_workspace_id_idx on public.board_columns (workspace_id);

create table public.contacts (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null,
  board_id uuid not null,
  board_column_id uuid,
  name text not null check (length(name) between 1 and 200),
  email text,
  phone text,
  conversation_status text not null default 'Open' check (conversation_status in ('Open', 'Closed')),
  priority text check (priority in ('high', 'medium', 'low')),
  last_message_time timestamptz,
  assigned_user_id uuid references auth.users (id) on delete set null,
  archived boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (workspace_id, board_id) references public.boards (workspace_id, id) on delete cascade,
  foreign key (board_id, board_column_id) references public.board_columns (board_id, id)
    on delete set null (board_column_id)
);

create table public.contact_favorites (
  user_id uuid not null references auth.users (id) on delete cascade,
  contact_id uuid not null references public.contacts (id) on delete cascade,
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (user_id, contact_id)
);
create index contact_favorites_contact_id_idx on public.contact_favorites (contact_id);

-- Every list query is scoped to one board and to archived or not; each sort and each filter the
-- API allows has an index that serves it in that scope, ties broken by id.
create index contacts_workspace_id_idx on public.contacts (workspace_id);
create index contacts_sort_created_at_idx
  on public.contacts (board_id, archived, created_at desc, id desc);
create index contacts_sort_last_message_time_idx
  on public.contacts (board_id, archived, last_message_time desc nulls last, id desc);
create index contacts_sort_name_idx
  on public.contacts (board_id, archived, name, id);
create index contacts_filter_status_idx
  on public.contacts (board_id, archived, conversation_status, created_at desc);
create index contacts_filter_priority_idx
  on public.contacts (board_id, archived, priority, created_at desc);
create index contacts_filter_assignee_idx
  on public.contacts (board_id, archived, assigned_user_id, created_at desc);
create index contacts_filter_column_idx
  on public.contacts (board_column_id, archived, created_at desc);
-- search: case-insensitive substring match on name, email and phone.
create index contacts_search_name_trgm_idx on public.contacts using gin (name extensions.gin_trgm_ops);
create index contacts_search_email_trgm_idx on public.contacts using gin (email extensions.gin_trgm_ops);
create index contacts_search_phone_trgm_idx on public.contacts using gin (phone extensions.gin_trgm_ops);

create function public.set_updated_at() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- A trigger function: only its triggers call it.
revoke all on function public.set_updated_at() from public, anon, authenticated, service_role;

create trigger workspaces_set_updated_at before update on public.workspaces
  for each row execute function public.set_updated_at();
create trigger boards_set_updated_at before update on public.boards
  for each row execute function public.set_updated_at();
create trigger board_columns_set_updated_at before update on public.board_columns
  for each row execute function public.set_updated_at();
create trigger contacts_set_updated_at before update on public.contacts
  for each row execute function public.set_updated_at();
