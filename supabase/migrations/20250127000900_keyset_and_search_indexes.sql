-- Every list read at a cost that follows its page, not the board (issue 30).
--
-- Assumes: public.contacts with the indexes of 20250127000400_list_counts.sql, the trigram
-- indexes of 20250127000100_contacts_schema.sql, public.current_user_workspace_ids() of
-- 20250127000200_row_level_security.sql, and the roles hosted Supabase has (anon, authenticated).
-- Runs as hosted Supabase's non-superuser `postgres`, the owner of public.contacts. Plain
-- `create index`, not `concurrently`: migrations run in a transaction, so each build locks the
-- table against writes while it runs (about 2 s per index at 1,000,000 contacts). On a live
-- project, build them `concurrently` by hand first, under these names: `if not exists` keeps them.

-- 1. Every sort order in both directions, nulls last as the API places them. A b-tree serves its
-- order and the exact reverse, so `created_at` and `name` (never null) need one index each, which
-- 20250127000400 has. `last_message_time desc nulls last` reversed is `asc nulls first`, not the
-- `asc nulls last` the API lists: these are its indexes, one per filter family as there. Cursor
-- pages read backwards (`prevCursor`) use the reverse of each.
create index if not exists contacts_last_message_time_asc_idx
  on public.contacts (workspace_id, board_id, archived, last_message_time asc nulls last, id asc);
create index if not exists contacts_status_last_message_time_asc_idx
  on public.contacts (workspace_id, board_id, archived, conversation_status, last_message_time asc nulls last, id asc);
create index if not exists contacts_priority_last_message_time_asc_idx
  on public.contacts (workspace_id, board_id, archived, priority, last_message_time asc nulls last, id asc);
create index if not exists contacts_assignee_last_message_time_asc_idx
  on public.contacts (workspace_id, board_id, archived, assigned_user_id, last_message_time asc nulls last, id asc);
create index if not exists contacts_column_last_message_time_asc_idx
  on public.contacts (workspace_id, board_id, board_column_id, archived, last_message_time asc nulls last, id asc);

-- 2. Searches through the trigram indexes. Under row-level security PostgreSQL evaluates a
-- condition whose operator is not LEAKPROOF only after the policy's, so it can never drive an
-- index scan: `name ~* 'zzqx'` read public.contacts in list order and tested every row of the
-- board (380 ms at 220,000 contacts for a term that matches nothing). Marking the operators
-- LEAKPROOF takes a superuser. This view lists the same rows as the table's policy allows (the
-- caller's workspaces, by the same function) without being a security barrier, so the planner
-- may use the trigram indexes for a term with few matches and the list's index for one with
-- many. It runs with its owner's rights (not `security_invoker`) because invoker rights would
-- apply the table's policy and bring the barrier back.
--
-- What a caller gives up to the planner's freedom: a condition may be evaluated on rows of other
-- workspaces before the membership test drops them. PostgREST's operators cannot raise errors
-- that carry a row's value, and no caller-defined function can be called in a filter; what is
-- left is timing, which the trigram indexes (shared by every workspace) expose the same way
-- already. The worker reads only searches through it, with literal (escaped) patterns, and only
-- those with a trigram (three letters or digits in a row): for a shorter term a trigram index
-- would be read whole, so those read public.contacts, where the barrier keeps it out of the plan.
create view public.contacts_searchable
  with (security_invoker = false, security_barrier = false)
  as select c.* from public.contacts c
     where c.workspace_id in (select public.current_user_workspace_ids());

comment on view public.contacts_searchable is
  'public.contacts as row-level security lists them to the caller, without the security barrier, so searches can use the trigram indexes (see 20250127000900).';

revoke all on public.contacts_searchable from public, anon, authenticated;
grant select on public.contacts_searchable to authenticated, service_role;

-- 3. The planner's cost of a random page read, for the requests PostgREST runs as `authenticated`
-- (it applies the impersonated role's settings to each request). With the default, 4, which
-- models spinning disks, the planner reads every row of a sparse list by bitmap and sorts them
-- rather than walk its index past an offset: numbered page 100 of `unassigned` at 1,000,000
-- contacts took 130 ms that way, 18-40 ms by the index. 1.1 is what SSD storage (hosted
-- Supabase's) warrants. The backend's fallback sets the same on its connections (backend/src/db.rs).
alter role authenticated set random_page_cost = 1.1;
