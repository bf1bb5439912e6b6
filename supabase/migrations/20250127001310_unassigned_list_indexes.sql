-- The unassigned list's own indexes, in each of the API's orders (issue 30).
--
-- Assumes: public.contacts and its list indexes (20250127000100_contacts_schema.sql,
-- 20250127000400_list_counts.sql, 20250127000900_keyset_and_search_indexes.sql). Runs as hosted
-- Supabase's non-superuser `postgres`, the owner of public.contacts.
--
-- The assignee indexes (`workspace_id, board_id, archived, assigned_user_id, <sort key>, id`) give
-- `assigned_user_id = …` lists in order, but not `assigned_user_id is null`: PostgreSQL treats an
-- equality (or a boolean column's `is false`) as fixing an index column for the order that follows,
-- never `is null`. So a numbered page of the unassigned list walked the whole list's index
-- (`contacts_name_idx`), skipping the 70 % of contacts that are assigned: page 100 (offset 4,950)
-- read about 16,700 contacts and 17,200 buffers at 1,000,000 contacts (23–36 ms through the
-- worker), or, when the planner misjudged the list's size, sorted the board's 66,631 unassigned
-- contacts read by bitmap from every page of the table (24,000 buffers, 150–280 ms). Partial
-- indexes holding only unassigned contacts give the order directly: page 100 reads 5,000 entries
-- (5,200 buffers, 14–28 ms in EXPLAIN ANALYZE on the shared machine). They index 30 % of the
-- contacts (the seed's share), and only writes of unassigned contacts touch them.
--
-- Plain `create index`, not `concurrently`: migrations run in a transaction, so each build locks
-- the table against writes while it runs (about 4 s each at 1,000,000 contacts). On a live
-- project, build them `concurrently` by hand first, under these names: `if not exists` keeps them.

create index if not exists contacts_unassigned_created_at_idx
  on public.contacts (workspace_id, board_id, archived, created_at desc, id desc)
  where assigned_user_id is null;

create index if not exists contacts_unassigned_last_message_time_idx
  on public.contacts (workspace_id, board_id, archived, last_message_time desc nulls last, id desc)
  where assigned_user_id is null;

create index if not exists contacts_unassigned_last_message_time_asc_idx
  on public.contacts (workspace_id, board_id, archived, last_message_time, id)
  where assigned_user_id is null;

create index if not exists contacts_unassigned_name_idx
  on public.contacts (workspace_id, board_id, archived, name, id)
  where assigned_user_id is null;
