//! [`ContactQuery`] to parameterized PostgreSQL, for the backend's direct database path. Built
//! from the same [`Condition`]s as the PostgREST translation, so both paths list the same rows.

use crate::cursor::{Direction, Rows, Run};
use crate::filter::Filter;
use crate::query::{Condition, ContactQuery, SearchTerm, SortField, SortOrder, UserId, WorkspaceId};

/// A statement with `$n` placeholders and its parameters, all bound as text (and cast in SQL),
/// so no value is ever spliced into the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlQuery {
    pub text: String,
    pub params: Vec<String>,
    /// Whether the statement must be planned for its own values on every execution (a search:
    /// a generic plan, made without them, can read the search indexes whole). The backend then
    /// runs it with `plan_cache_mode = force_custom_plan` for that statement's transaction alone.
    pub custom_plan: bool,
}

#[derive(Default)]
struct Params(Vec<String>);

impl Params {
    /// Binds `value` and returns its placeholder.
    fn text(&mut self, value: impl Into<String>) -> String {
        self.0.push(value.into());
        format!("${}::text", self.0.len())
    }

    fn uuid(&mut self, value: &str) -> String {
        format!("{}::uuid", self.text(value))
    }
}

/// The caller's membership, checked in the same statement that reads the rows.
fn member_sql(params: &mut Params, workspace: &WorkspaceId, caller: &UserId) -> String {
    format!(
        "exists (select 1 from public.workspace_members m where m.workspace_id = {} and m.user_id = {})",
        params.uuid(workspace.as_str()),
        params.uuid(caller.as_str())
    )
}

/// `pairs`: whether a search without a trigram is narrowed by its character pairs (when it has
/// them); without, the match alone walks the list.
fn condition_sql(params: &mut Params, condition: &Condition, pairs: bool) -> String {
    match condition {
        Condition::Archived(archived) => format!("c.archived = {archived}"),
        Condition::Status(status) => format!("c.conversation_status = {}", params.text(status.as_str())),
        Condition::Priority(priority) => format!("c.priority = {}", params.text(priority.as_str())),
        Condition::Unassigned => "c.assigned_user_id is null".to_owned(),
        Condition::AssignedTo(user) => format!("c.assigned_user_id = {}", params.uuid(user.as_str())),
        Condition::FavoriteOf(user) => format!(
            "exists (select 1 from public.contact_favorites f where f.contact_id = c.id and f.user_id = {})",
            params.uuid(user.as_str())
        ),
        Condition::Column(column) => format!("c.board_column_id = {}", params.uuid(column.as_str())),
        Condition::Search(term) if term.has_trigram() => {
            let pattern = params.text(like_pattern(term.as_str()));
            format!("(c.name ilike {pattern} or c.email ilike {pattern} or c.phone ilike {pattern})")
        }
        // No trigram: the columns are wrapped so no trigram index is chosen (it would be read
        // whole); the list is walked instead, as the worker's path does.
        Condition::Search(term) => {
            let pattern = params.text(like_pattern(term.as_str()));
            let matches = format!("(coalesce(c.name, '') ilike {pattern} or coalesce(c.email, '') ilike {pattern} or coalesce(c.phone, '') ilike {pattern})");
            // Narrowed by the index of lower-cased pairs (20250127001000_short_search.sql) when
            // the term has them; the planner reads it when few contacts hold them.
            match term.short_grams().filter(|_| pairs) {
                Some(grams) => format!(
                    "search_support.contact_search_grams(c.name, c.email, c.phone) @> {}::text[] and {matches}",
                    params.text(crate::postgrest::array_literal(&grams))
                ),
                None => matches,
            }
        }
    }
}

/// `%term%` with LIKE's wildcards and escape character taken literally.
pub fn like_pattern(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for ch in term.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// `ORDER BY` terms for table alias `alias`; ties broken by id, nulls last in both directions.
pub fn order_sql(alias: &str, field: SortField, order: SortOrder) -> String {
    let dir = order.as_str();
    let nulls = if field.nullable() { " nulls last" } else { "" };
    format!("{alias}.{} {dir}{nulls}, {alias}.id {dir}", field.as_str())
}

/// The exact reverse of [`order_sql`] (nulls first), for a page read backwards by the same index.
pub fn reversed_order_sql(alias: &str, field: SortField, order: SortOrder) -> String {
    let dir = match order {
        SortOrder::Asc => "desc",
        SortOrder::Desc => "asc",
    };
    let nulls = if field.nullable() { " nulls first" } else { "" };
    format!("{alias}.{} {dir}{nulls}, {alias}.id {dir}", field.as_str())
}

/// One keyset run's condition on `c`: the run's rows of the sort field, strictly past its edge
/// row in scan order. A bound past `(v, i)` reading descending is `f <= v and (f < v or id < i)`:
/// the first term bounds the index scan, the second only drops the ties up to the edge row.
fn run_sql(params: &mut Params, field: SortField, list_order: SortOrder, run: &Run<'_>) -> String {
    let f = format!("c.{}", field.as_str());
    let (strict, inclusive) = match run.scan(list_order) {
        SortOrder::Asc => (">", ">="),
        SortOrder::Desc => ("<", "<="),
    };
    let mut terms = Vec::new();
    match run.rows {
        Rows::Values if run.past.is_none() => terms.push(format!("{f} is not null")),
        Rows::All | Rows::Values => {}
        Rows::Nulls => terms.push(format!("{f} is null")),
    }
    match run.past {
        Some((Some(key), id)) => {
            let cast = if field == SortField::Name { "" } else { "::timestamptz" };
            let key = format!("{}{cast}", params.text(key));
            let id = params.uuid(id);
            terms.push(format!("{f} {inclusive} {key}"));
            terms.push(format!("({f} {strict} {key} or c.id {strict} {id})"));
        }
        Some((None, id)) => terms.push(format!("c.id {strict} {}", params.uuid(id))),
        None => {}
    }
    terms.join(" and ")
}

/// The JSON object of one listed contact: the spec's fields plus `created_at`, encoded by
/// PostgreSQL exactly as PostgREST encodes them.
const CONTACT_JSON: &str = "json_build_object('id', p.id, 'name', p.name, 'email', p.email, \
    'phone', p.phone, 'conversation_status', p.conversation_status, 'priority', p.priority, \
    'last_message_time', p.last_message_time, 'assigned_user_id', p.assigned_user_id, \
    'board_column_id', p.board_column_id, 'created_at', p.created_at)";

/// One page of a board's contacts as one row: `(member bool, total bigint, contacts text)`,
/// where `contacts` is a JSON array. Rows are read only within `workspace`, and `member` says
/// whether `caller` belongs to it (callers answer 403 when it is false). `total` is read from the
/// list's counter (`contact_list_counts`) in O(1); a narrowed list, which has none, takes
/// `known_total` when the caller has it (counted once per list) and is counted otherwise.
pub fn contact_page(workspace: &WorkspaceId, caller: &UserId, query: &ContactQuery, known_total: Option<u64>) -> SqlQuery {
    let mut params = Params::default();
    let member = member_sql(&mut params, workspace, caller);
    let board = params.uuid(query.board_id.as_str());
    let mut conditions = vec![format!("c.workspace_id = $1::text::uuid"), format!("c.board_id = {board}")];
    for condition in query.conditions(caller) {
        conditions.push(condition_sql(&mut params, &condition, true));
    }
    let filter = conditions.join(" and ");
    let narrowed_by_pairs = query.search.as_ref().is_some_and(|term| term.short_grams().is_some());
    let total = match (query.counter(caller), known_total) {
        (Some(counter), _) => format!(
            "coalesce((select k.total from public.contact_list_counts k where k.workspace_id = $1::text::uuid and k.board_id = {board} and k.list = {}), 0)",
            params.text(counter)
        ),
        (None, Some(total)) => format!("{}::bigint", params.text(total.to_string())),
        // Counted through the pairs' index only when fewer than COMMON_MATCHES contacts match
        // (probed with the pairs, stopping there); a common term's list by one pass with the
        // match alone (SearchTerm::COMMON_MATCHES). Each branch is an InitPlan, run only if taken.
        (None, None) if narrowed_by_pairs => {
            let common = SearchTerm::COMMON_MATCHES;
            let mut plain = vec![format!("c.workspace_id = $1::text::uuid"), format!("c.board_id = {board}")];
            for condition in query.conditions(caller) {
                plain.push(condition_sql(&mut params, &condition, false));
            }
            format!(
                "(select case when (select count(*) from (select 1 from public.contacts c where {filter} limit {common}) p) < {common} \
                 then (select count(*) from public.contacts c where {filter}) \
                 else (select count(*) from public.contacts c where {plain}) end)",
                plain = plain.join(" and ")
            )
        }
        (None, None) => format!("(select count(*) from public.contacts c where {filter})"),
    };
    let limit = query.page_size.get();
    let rows = match query.keyset() {
        None => format!(
            "select c.* from public.contacts c where {filter} order by {order} limit {limit} offset {offset}",
            order = order_sql("c", query.sort_by, query.sort_order),
            offset = query.offset(),
        ),
        Some(keyset) => {
            // Each run is read by the index in its own order and limited; their union, in that
            // order, cut to the page.
            let reversed = keyset.cursor.direction == Direction::Before;
            let scan = |alias| if reversed { reversed_order_sql(alias, query.sort_by, query.sort_order) } else { order_sql(alias, query.sort_by, query.sort_order) };
            let runs: Vec<String> = keyset
                .runs()
                .iter()
                .map(|run| {
                    let bound = run_sql(&mut params, query.sort_by, query.sort_order, run);
                    format!("(select c.* from public.contacts c where {filter} and {bound} order by {} limit {limit})", scan("c"))
                })
                .collect();
            format!("select u.* from ({}) u order by {} limit {limit}", runs.join(" union all "), scan("u"))
        }
    };
    let text = format!(
        "select {member} as member, {total} as total, \
           coalesce((select json_agg({CONTACT_JSON} order by {page_order}) from ({rows}) p), '[]'::json)::text as contacts",
        page_order = order_sql("p", query.sort_by, query.sort_order),
    );
    SqlQuery { text, params: params.0, custom_plan: query.search.is_some() }
}

/// `select coalesce(json_agg(id), '[]')::text`: the ids of every board of `workspace`, as a JSON
/// array.
pub fn boards(workspace: &WorkspaceId) -> SqlQuery {
    let mut params = Params::default();
    let workspace = params.uuid(workspace.as_str());
    SqlQuery { text: format!("select coalesce(json_agg(b.id order by b.id), '[]'::json)::text from public.boards b where b.workspace_id = {workspace}"), params: params.0, custom_plan: false }
}

/// `select <member bool>`: whether `caller` belongs to `workspace`.
pub fn membership(workspace: &WorkspaceId, caller: &UserId) -> SqlQuery {
    let mut params = Params::default();
    let member = member_sql(&mut params, workspace, caller);
    SqlQuery { text: format!("select {member}"), params: params.0, custom_plan: false }
}

/// Per-filter counts of a workspace for `caller`, as one row: `member bool` followed by one
/// `bigint` per [`Filter::ALL`] entry, in that order, summed over the workspace's boards from the
/// lists' counters (`contact_list_counts`).
pub fn contact_counts(workspace: &WorkspaceId, caller: &UserId) -> SqlQuery {
    let mut params = Params::default();
    let member = member_sql(&mut params, workspace, caller);
    let counts: Vec<String> = Filter::ALL
        .iter()
        .map(|filter| format!("coalesce(sum(k.total) filter (where k.list = {}), 0)::bigint", params.text(filter.counter(caller))))
        .collect();
    let text = format!(
        "select {member} as member, {} from public.contact_list_counts k where k.workspace_id = $1::text::uuid",
        counts.join(", ")
    );
    SqlQuery { text, params: params.0, custom_plan: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";
    const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";
    const USER: &str = "d6d77053-92bc-7af6-3332-8bea8c4c6904";

    fn ids() -> (WorkspaceId, UserId) {
        (WorkspaceId::parse("ws", WS).unwrap(), UserId::parse("user", USER).unwrap())
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("ann"), "%ann%");
        assert_eq!(like_pattern(r"50%_off\"), r"%50\%\_off\\%");
    }

    #[test]
    fn nullable_sorts_put_nulls_last_both_ways() {
        assert_eq!(
            order_sql("c", SortField::LastMessageTime, SortOrder::Asc),
            "c.last_message_time asc nulls last, c.id asc"
        );
        assert_eq!(order_sql("p", SortField::Name, SortOrder::Desc), "p.name desc, p.id desc");
    }

    #[test]
    fn a_page_query_binds_every_value() {
        let (ws, me) = ids();
        let query = ContactQuery::parse(BOARD, "filter=favorites&search=o'brien%25&page=3&pageSize=20&sortBy=name&sortOrder=asc").unwrap();
        let sql = contact_page(&ws, &me, &query, None);
        assert_eq!(sql.params, vec![WS, USER, BOARD, USER, "%o'brien\\%%"]);
        assert!(!sql.text.contains("brien"), "values are bound, never spliced");
        assert!(sql.text.contains("c.workspace_id = $1::text::uuid and c.board_id = $3::text::uuid and c.archived = false"));
        assert!(sql.text.contains("f.user_id = $4::text::uuid"));
        assert!(sql.text.contains("order by c.name asc, c.id asc limit 20 offset 40"));
    }

    #[test]
    fn a_term_without_a_trigram_keeps_the_trigram_indexes_out_of_the_plan() {
        let (ws, me) = ids();
        let short = contact_page(&ws, &me, &ContactQuery::parse(BOARD, "search=zq").unwrap(), None);
        assert!(short.text.contains("(coalesce(c.name, '') ilike $4::text or coalesce(c.email, '') ilike $4::text or coalesce(c.phone, '') ilike $4::text)"), "{}", short.text);
        assert!(short.text.contains("search_support.contact_search_grams(c.name, c.email, c.phone) @> $5::text::text[] and (coalesce"), "{}", short.text);
        assert_eq!(short.params[3..5], ["%zq%", r#"{"zq"}"#]);
        let long = contact_page(&ws, &me, &ContactQuery::parse(BOARD, "search=smith").unwrap(), None);
        assert!(long.text.contains("(c.name ilike $4::text or c.email ilike $4::text or c.phone ilike $4::text)"), "{}", long.text);
        assert!(!long.text.contains("contact_search_grams"), "a trigram term has the trigram indexes");
        let counted = contact_page(&ws, &me, &ContactQuery::parse(BOARD, "search=zq").unwrap(), None);
        assert!(
            counted.text.contains("(select case when (select count(*) from (select 1 from public.contacts c where c.workspace_id = $1::text::uuid and c.board_id = $3::text::uuid and c.archived = false and search_support.contact_search_grams(c.name, c.email, c.phone) @> $5::text::text[] and (coalesce(c.name, '') ilike $4::text or coalesce(c.email, '') ilike $4::text or coalesce(c.phone, '') ilike $4::text) limit 1000) p) < 1000 then (select count(*) from public.contacts c where c.workspace_id = $1::text::uuid and c.board_id = $3::text::uuid and c.archived = false and search_support"),
            "a short term's list is probed with its pairs: {}",
            counted.text
        );
        assert!(
            counted.text.contains("else (select count(*) from public.contacts c where c.workspace_id = $1::text::uuid and c.board_id = $3::text::uuid and c.archived = false and (coalesce(c.name, '') ilike $6::text or coalesce(c.email, '') ilike $6::text or coalesce(c.phone, '') ilike $6::text)) end)"),
            "and counted with the match alone when common: {}",
            counted.text
        );
        assert_eq!(counted.params[5], "%zq%");
        assert!(counted.custom_plan && short.custom_plan && long.custom_plan, "a search is planned for its own values");
        assert!(!contact_page(&ws, &me, &ContactQuery::parse(BOARD, "filter=open").unwrap(), None).custom_plan);
        assert!(!long.text.contains("case when"), "a trigram term is counted through the trigram indexes");
        let accented = contact_page(&ws, &me, &ContactQuery::parse(BOARD, "search=%C3%A9").unwrap(), None);
        assert!(!accented.text.contains("contact_search_grams"), "a non-ASCII short term walks the list");
    }

    #[test]
    fn counts_read_every_filters_counter_in_order() {
        let (ws, me) = ids();
        let sql = contact_counts(&ws, &me);
        assert_eq!(sql.text.matches("sum(k.total) filter").count(), Filter::ALL.len());
        let counters: Vec<String> = Filter::ALL.iter().map(|f| f.counter(&me)).collect();
        assert_eq!(sql.params[2..], counters);
        assert_eq!(counters[4], format!("assigned:{USER}"));
        assert!(sql.text.ends_with("from public.contact_list_counts k where k.workspace_id = $1::text::uuid"));
    }

    #[test]
    fn a_lists_total_is_read_from_its_counter_and_a_narrowed_list_counted_unless_known() {
        let (ws, me) = ids();
        let open = ContactQuery::parse(BOARD, "filter=open&page=100").unwrap();
        let sql = contact_page(&ws, &me, &open, None);
        assert!(sql.text.contains("(select k.total from public.contact_list_counts k where k.workspace_id = $1::text::uuid and k.board_id = $3::text::uuid and k.list = $5::text)"));
        assert!(!sql.text.contains("count(*)"), "the board is never counted");
        assert_eq!(sql.params[4], "open");
        let narrowed = ContactQuery::parse(BOARD, "filter=open&search=ann").unwrap();
        assert!(contact_page(&ws, &me, &narrowed, None).text.contains("(select count(*) from public.contacts c where"));
        let known = contact_page(&ws, &me, &narrowed, Some(42));
        assert!(!known.text.contains("count(*)"));
        assert!(known.params.contains(&"42".to_owned()));
    }
}
