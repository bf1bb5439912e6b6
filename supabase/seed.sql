-- Deterministic seed data with realistic skew, for dev, tests and benchmarks.
--   psql -v contacts=100000 -f supabase/seed.sql
-- Ids are md5-derived UUIDs, so `user-1`, `workspace-1`, `board-1-1` mean the same rows on
-- every run:
--   users          40, user n is a member of workspace ((n-1) % 5) + 1, every 7th user also of
--                  the next one; user-1 (the demo user) belongs to workspace-1 only
--   workspaces     5, holding 40 / 25 / 17 / 11 / 7 % of the contacts
--   boards         3 per workspace (60 / 30 / 10 % of its contacts), 5 columns each
--   contacts       :contacts (default 100000): 60 % Open; priority high 15 %, medium 35 %,
--                  low 30 %, none 20 %; 30 % unassigned; 8 % archived; some without
--                  email (10 %), phone (15 %) or messages (5 %)
--   favorites      each member favorites about 2 % of their workspace's contacts

\if :{?contacts}
\else
  \set contacts 100000
\endif

begin;

-- Bulk loading announces nothing: no cache can hold these rows yet.
set local session_replication_role = replica;

select setseed(0.4242) \g /dev/null

create function pg_temp.seed_uuid(label text) returns uuid
  language sql immutable
  as $$ select md5(label)::uuid $$;

insert into auth.users (id, email)
select pg_temp.seed_uuid('user-' || n), 'user' || n || '@example.test'
from generate_series(1, 40) as n;

insert into public.workspaces (id, name)
select pg_temp.seed_uuid('workspace-' || w),
       (array['Acme Sales', 'Globex Support', 'Initech Success', 'Umbrella Partners', 'Hooli Recruiting'])[w]
from generate_series(1, 5) as w;

insert into public.workspace_members (workspace_id, user_id, role)
select pg_temp.seed_uuid('workspace-' || w), pg_temp.seed_uuid('user-' || n),
       case when n <= 5 then 'owner' when n <= 15 then 'admin' else 'member' end
from generate_series(1, 40) as n,
     lateral (
       select (n - 1) % 5 + 1 as w
       union
       select n % 5 + 1 where n % 7 = 0
     ) as memberships;

insert into public.boards (id, workspace_id, name)
select pg_temp.seed_uuid('board-' || w || '-' || b), pg_temp.seed_uuid('workspace-' || w),
       (array['Inbox', 'Pipeline', 'VIP'])[b]
from generate_series(1, 5) as w, generate_series(1, 3) as b;

insert into public.board_columns (id, workspace_id, board_id, name, position)
select pg_temp.seed_uuid('column-' || w || '-' || b || '-' || c),
       pg_temp.seed_uuid('workspace-' || w), pg_temp.seed_uuid('board-' || w || '-' || b),
       (array['New', 'Qualified', 'In progress', 'Waiting', 'Done'])[c], c
from generate_series(1, 5) as w, generate_series(1, 3) as b, generate_series(1, 5) as c;

create temp table seed_members as
select workspace_id, array_agg(user_id order by user_id) as users
from public.workspace_members
group by workspace_id;

create temp table seed_draws as
select i, random() as r_ws, random() as r_board, random() as r_col, random() as r_first,
       random() as r_last, random() as r_domain, random() as r_email, random() as r_phone,
       random() as r_status, random() as r_priority, random() as r_assign, random() as r_user,
       random() as r_archived, random() as r_created, random() as r_message, random() as r_nomsg
from generate_series(1, :contacts) as i
order by i;

insert into public.contacts (
  id, workspace_id, board_id, board_column_id, name, email, phone, conversation_status,
  priority, last_message_time, assigned_user_id, archived, created_at, updated_at
)
select
  pg_temp.seed_uuid('contact-' || d.i),
  pg_temp.seed_uuid('workspace-' || p.w),
  pg_temp.seed_uuid('board-' || p.w || '-' || p.b),
  pg_temp.seed_uuid('column-' || p.w || '-' || p.b || '-' || (1 + floor(d.r_col * 5)::int)),
  p.first_name || ' ' || p.last_name,
  case when d.r_email >= 0.10 then
    lower(p.first_name || '.' || p.last_name || d.i || '@'
      || (array['example.com', 'mail.test', 'corp.example', 'shop.example'])[1 + floor(d.r_domain * 4)::int])
  end,
  case when d.r_phone >= 0.15 then '+1' || lpad(floor(d.r_phone * 1e10)::bigint::text, 10, '0') end,
  case when d.r_status < 0.60 then 'Open' else 'Closed' end,
  case when d.r_priority < 0.15 then 'high' when d.r_priority < 0.50 then 'medium'
       when d.r_priority < 0.80 then 'low' end,
  case when d.r_nomsg >= 0.05 then p.created_at + d.r_message * (now() - p.created_at) end,
  case when d.r_assign >= 0.30 then
    m.users[1 + floor(d.r_user * array_length(m.users, 1))::int]
  end,
  d.r_archived < 0.08,
  p.created_at,
  p.created_at
from seed_draws as d
cross join lateral (
  select
    case when d.r_ws < 0.40 then 1 when d.r_ws < 0.65 then 2 when d.r_ws < 0.82 then 3
         when d.r_ws < 0.93 then 4 else 5 end as w,
    case when d.r_board < 0.60 then 1 when d.r_board < 0.90 then 2 else 3 end as b,
    (array['Olivia', 'Liam', 'Emma', 'Noah', 'Amelia', 'Oliver', 'Ava', 'Elijah', 'Sophia',
      'Mateo', 'Isabella', 'Lucas', 'Mia', 'Levi', 'Charlotte', 'Asher', 'Luna', 'James',
      'Harper', 'Leo', 'Evelyn', 'Ezra', 'Aria', 'Hiroshi', 'Yuki', 'Priya', 'Arjun', 'Fatima',
      'Omar', 'Chen', 'Wei', 'Sofia', 'Diego', 'Zoe', 'Kwame', 'Amara', 'Lars', 'Ingrid',
      'Noor', 'Malik'])[1 + floor(d.r_first * 40)::int] as first_name,
    (array['Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis',
      'Rodriguez', 'Martinez', 'Hernandez', 'Lopez', 'Gonzalez', 'Wilson', 'Anderson', 'Thomas',
      'Taylor', 'Moore', 'Jackson', 'Martin', 'Lee', 'Perez', 'Thompson', 'White', 'Harris',
      'Sanchez', 'Clark', 'Ramirez', 'Lewis', 'Robinson', 'Tanaka', 'Sato', 'Patel', 'Khan',
      'Nguyen', 'Kim', 'Mensah', 'Okafor', 'Larsen', 'Novak'])[1 + floor(d.r_last * 40)::int] as last_name,
    now() - d.r_created * interval '730 days' as created_at
) as p
join seed_members as m on m.workspace_id = pg_temp.seed_uuid('workspace-' || p.w)
order by d.i;

insert into public.contact_favorites (user_id, contact_id, workspace_id)
select wm.user_id, c.id, c.workspace_id
from public.contacts as c
join public.workspace_members as wm on wm.workspace_id = c.workspace_id
where random() < 0.02;

-- The triggers were off while loading: the list totals are counted once, from the rows (when the
-- migration that keeps them has run).
do $$
begin
  if to_regprocedure('public.recount_contact_lists()') is not null then
    execute 'select public.recount_contact_lists()';
  end if;
end
$$;

commit;

analyze;
