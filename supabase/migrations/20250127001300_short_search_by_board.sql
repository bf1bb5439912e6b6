-- The index of character pairs keyed by board too, so a short search reads only its board's
-- contacts holding the pairs (issue 30).
--
-- Assumes: public.contacts (20250127000100_contacts_schema.sql), its index contacts_workspace_id_idx,
-- and search_support.contact_search_grams() with the index contacts_search_grams_idx of
-- 20250127001000_short_search.sql. Runs as hosted Supabase's non-superuser `postgres`: btree_gin
-- is a trusted extension (PostgreSQL 13+) that hosted Supabase offers, created like pg_trgm in
-- `extensions`, out of PostgREST's schemas.
--
-- Every search reads one board (`workspace_id = … and board_id = … and search_grams @> …`, in the
-- worker's requests and the backend's statements alike). With the pairs alone in the index, a
-- pair held by a few thousand contacts of the whole table (`o6`: 2,427 at 1,000,000 contacts, 506
-- of them in board 1 of workspace 1) was read from that index and then ANDed with a bitmap of the
-- workspace's 400,000 rows from contacts_workspace_id_idx, which the planner judged cheaper than
-- testing the other boards' 1,900 rows: that bitmap cost about 8 ms, in the page, in the probe and
-- twice in the count (PostgREST's count repeats the page's scan), so `search=o6` took 45–61 ms
-- through the worker. With the board as the index's first column (btree_gin's `uuid` operator
-- class) the index answers `board_id = … and pairs @> …` alone: 556 rows for `o6`, about 0.4 ms,
-- and no other index is worth ANDing (EXPLAIN ANALYZE in bench/results/issue-30/o6/summary.md).
-- A term that nothing holds still stops at its empty pair, whatever the board.
--
-- It replaces the pairs-only index (a query without the board may still use this one's second
-- column), so writes keep computing each contact's pairs once. Plain `create index`, not
-- `concurrently`: migrations run in a transaction, so the build locks the table against writes
-- while it runs (66 s at 1,000,000 contacts on 2 shared cores, maintenance_work_mem = 512MB). On
-- a live project, build it `concurrently` by hand first, under this name: `if not exists` keeps it.

create extension if not exists btree_gin with schema extensions;

create index if not exists contacts_board_search_grams_idx
  on public.contacts using gin (board_id, search_support.contact_search_grams(name, email, phone));

drop index if exists public.contacts_search_grams_idx;

comment on function search_support.contact_search_grams(text, text, text) is
  'The 1- and 2-character substrings of lower(name), lower(email) and lower(phone), each field apart: with board_id, the key of contacts_board_search_grams_idx (see 20250127001000_short_search.sql and 20250127001300_short_search_by_board.sql).';
