-- Searches without a trigram at a cost that follows their matches (issue 30).
--
-- Assumes: public.contacts (20250127000100_contacts_schema.sql), public.current_user_workspace_ids()
-- (20250127000200_row_level_security.sql) and the view public.contacts_searchable of
-- 20250127000900_keyset_and_search_indexes.sql. Runs as hosted Supabase's non-superuser `postgres`,
-- the owner of public.contacts.
--
-- A term of one or two characters (or any term without three letters or digits in a row) has no
-- trigram, so the trigram indexes cannot serve it: `search=q` walked the whole board to find that
-- nothing matches (about 500 ms at 220,000 contacts). This index holds, for every contact, the
-- one- and two-character substrings of its lower-cased name, email and phone, each field
-- apart (a pair never spans two fields), which is what a case-insensitive substring search of such
-- a term needs: a contact can match `ab` only if one of its fields, lower-cased, holds `ab`. A
-- search adds `search_grams @> {the term's lower-cased pairs}` beside its unchanged ILIKE (or
-- regex) conditions, so the index only narrows the rows those conditions test, and never decides
-- alone what matches. When few contacts hold the term's pairs, the planner reads them from this
-- index; when many do (`a`), it walks the list's own index as before, the pairs' frequencies
-- coming from the index's statistics.
--
-- The worker sends it only for terms of ASCII characters (crates/core/src/postgrest.rs), whose
-- lower case is the same in Rust and in every non-Turkish PostgreSQL locale.
--
-- An expression index, not a stored column: nothing is added to the rows (the change capture's
-- records, `select c.*`), and the array is computed on each insert and each update that is not
-- HOT (name, email and phone already have trigram indexes, so which updates are HOT is unchanged).
-- Plain `create index`, not `concurrently`: migrations run in
-- a transaction, so the build locks the table against writes while it runs (120–136 s at
-- 1,000,000 contacts on 2 shared cores). On a live project, build it `concurrently` by hand
-- first, under this name: `if not exists` keeps it.

-- The function lives in a schema of its own, which PostgREST does not serve: in `public` it would
-- be callable as /rest/v1/rpc/contact_search_grams. A view's functions are checked against the
-- caller, so `authenticated` (which reads the view) may use the schema and execute it.
create schema if not exists search_support;
revoke all on schema search_support from public;
grant usage on schema search_support to authenticated, service_role;

-- The 1- and 2-character substrings of `v`: its characters, then its pairs in two passes (from the
-- first character and from the second), each pass cutting `v` after every second character with a
-- control character, which no search term may contain (crates/core/src/query.rs). A pair holding
-- that character in the data is cut in two or lost, and no term asks for it; every other pair
-- comes out whole. Duplicates and the empty pieces at the ends stay: GIN stores each key of a row
-- once, and no term is empty. No aggregate or subquery, so it costs ~50 µs a contact here, against
-- ~200 µs for `array_agg(distinct …)` over `generate_series`.
create or replace function search_support.char_pairs(v text)
  returns text[]
  language sql
  immutable
  strict
  parallel safe
as $$
  select string_to_array(v, null)
      || string_to_array(regexp_replace(v, '(..)', E'\\1\x01', 'g'), E'\x01')
      || string_to_array(regexp_replace(substr(v, 2), '(..)', E'\\1\x01', 'g'), E'\x01')
$$;

create or replace function search_support.contact_search_grams(name text, email text, phone text)
  returns text[]
  language sql
  immutable
  parallel safe
as $$
  select search_support.char_pairs(lower(name)) || search_support.char_pairs(lower(email)) || search_support.char_pairs(lower(phone))
$$;

comment on function search_support.contact_search_grams(text, text, text) is
  'The 1- and 2-character substrings of lower(name), lower(email) and lower(phone), each field apart: the key of contacts_search_grams_idx (see 20250127001000_short_search.sql).';

revoke all on function search_support.char_pairs(text) from public;
revoke all on function search_support.contact_search_grams(text, text, text) from public;
grant execute on function search_support.char_pairs(text) to authenticated, service_role;
grant execute on function search_support.contact_search_grams(text, text, text) to authenticated, service_role;

create index if not exists contacts_search_grams_idx
  on public.contacts using gin (search_support.contact_search_grams(name, email, phone));

-- The view the worker's searches read (20250127000900), with the index's expression as a column
-- PostgREST can filter on (`search_grams=cs.{…}`); the planner matches it to the index. Appended
-- last, so `create or replace` keeps the view's columns, grants and options.
create or replace view public.contacts_searchable
  with (security_invoker = false, security_barrier = false)
  as select c.*, search_support.contact_search_grams(c.name, c.email, c.phone) as search_grams
     from public.contacts c
     where c.workspace_id in (select public.current_user_workspace_ids());

comment on view public.contacts_searchable is
  'public.contacts as row-level security lists them to the caller, without the security barrier, so searches can use the trigram indexes (20250127000900) and, as search_grams, the 1- and 2-character index (20250127001000).';

-- A search is planned for its own values (a generic plan reads these indexes whole): see
-- 20250127001210_search_custom_plans.sql.
