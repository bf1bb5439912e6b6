//! [`ContactQuery`] to PostgREST query parameters, for the worker's database layer. Built from
//! the same [`Condition`]s as the SQL translation, so both paths list the same rows.

use crate::cursor::{Direction, Rows, Run};
use crate::query::{Condition, ContactQuery, SortField, SortOrder, UserId};

/// The columns a listed contact has, in the envelope's order.
pub const CONTACT_COLUMNS: &str = "id,name,email,phone,conversation_status,priority,last_message_time,\
assigned_user_id,board_column_id,created_at";

/// One page request: `select`, filters as `(name, value)` pairs, `order` (empty: none), `limit` and `offset`;
/// for a cursor page, the keyset runs to read in turn instead of an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgrestQuery {
    /// The relation read: `contacts`, or for a search `contacts_searchable` (the same rows the
    /// caller may read, through which the trigram indexes can serve the search: see
    /// supabase/migrations/20250127000900_keyset_and_search_indexes.sql).
    pub table: &'static str,
    pub select: String,
    pub filters: Vec<(String, String)>,
    pub order: String,
    pub limit: u8,
    pub offset: u64,
    /// Empty for a numbered page. Otherwise each run is one request (the filters, the run's
    /// `and` filter and order, `limit` less the rows already read), asked while the page is not
    /// full; the rows of all, in order, are the page, reversed when `reversed`.
    pub runs: Vec<KeysetRequest>,
    pub reversed: bool,
}

impl PostgrestQuery {
    /// For a search narrowed by its character pairs (`search_grams`), the probe that tells
    /// whether its list is common (see [`crate::query::SearchTerm::COMMON_MATCHES`]): a row
    /// of the list at that rank, asked with the pairs, by offset and in no order (an order
    /// would have the planner walk the list's index for a term of a few hundred matches, past
    /// every contact that does not match); a row means common. `None` for any other list.
    pub fn common_probe(&self) -> Option<PostgrestQuery> {
        self.filters.iter().any(|(name, _)| name == "search_grams").then(|| PostgrestQuery {
            order: String::new(),
            limit: 1,
            offset: crate::query::SearchTerm::COMMON_MATCHES - 1,
            runs: Vec::new(),
            reversed: false,
            ..self.clone()
        })
    }

    /// The same list without the pairs' filter, read from the table: what a common term's list
    /// is counted by (one pass over the list, with the match alone). `None` for a list without
    /// the pairs' filter.
    pub fn without_pairs(&self) -> Option<PostgrestQuery> {
        self.filters.iter().any(|(name, _)| name == "search_grams").then(|| PostgrestQuery {
            table: "contacts",
            filters: self.filters.iter().filter(|(name, _)| name != "search_grams").cloned().collect(),
            runs: Vec::new(),
            reversed: false,
            ..self.clone()
        })
    }
}

/// One keyset run as PostgREST parameters: an `and=(…)` filter and an `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysetRequest {
    pub and: String,
    pub order: String,
}

/// The request for one page of `query` as `caller` sees it (PostgREST's RLS adds the workspace
/// membership rule on top; the worker adds the workspace filter explicitly too).
pub fn contact_page(workspace: &crate::query::WorkspaceId, caller: &UserId, query: &ContactQuery) -> PostgrestQuery {
    let mut select = CONTACT_COLUMNS.to_owned();
    let mut filters = vec![
        ("workspace_id".to_owned(), format!("eq.{workspace}")),
        ("board_id".to_owned(), format!("eq.{}", query.board_id)),
    ];
    for condition in query.conditions(caller) {
        match condition {
            Condition::Archived(archived) => filters.push(("archived".into(), format!("is.{archived}"))),
            Condition::Status(status) => filters.push(("conversation_status".into(), format!("eq.{}", status.as_str()))),
            Condition::Priority(priority) => filters.push(("priority".into(), format!("eq.{}", priority.as_str()))),
            Condition::Unassigned => filters.push(("assigned_user_id".into(), "is.null".into())),
            Condition::AssignedTo(user) => filters.push(("assigned_user_id".into(), format!("eq.{user}"))),
            Condition::FavoriteOf(user) => {
                // An inner join on the caller's favorites that returns no columns.
                select.push_str(",contact_favorites!inner()");
                filters.push(("contact_favorites.user_id".into(), format!("eq.{user}")));
            }
            Condition::Column(column) => filters.push(("board_column_id".into(), format!("eq.{column}"))),
            Condition::Search(term) => {
                let pattern = quote(&regex_literal(term.as_str()));
                let any = ["name", "email", "phone"].map(|col| format!("{col}.imatch.{pattern}")).join(",");
                filters.push(("or".into(), format!("({any})")));
                if let Some(grams) = term.short_grams() {
                    filters.push(("search_grams".into(), format!("cs.{}", array_literal(&grams))));
                }
            }
        }
    }
    let keyset = query.keyset();
    let runs = keyset.as_ref().map_or_else(Vec::new, |keyset| {
        keyset.runs().iter().map(|run| keyset_request(query.sort_by, query.sort_order, run)).collect()
    });
    PostgrestQuery {
        // A term with a trigram, or with the short-search pairs, is read through the view those
        // indexes serve. Another (without a trigram, not ASCII) is read from the table: row-level
        // security keeps the indexes out of its plan, which then walks the list (a trigram index
        // would be read whole).
        table: if query.search.as_ref().is_some_and(|term| term.has_trigram() || term.short_grams().is_some()) {
            "contacts_searchable"
        } else {
            "contacts"
        },
        select,
        filters,
        order: order(query.sort_by, query.sort_order),
        limit: query.page_size.get(),
        offset: query.offset(),
        runs,
        reversed: keyset.is_some_and(|keyset| keyset.cursor.direction == Direction::Before),
    }
}

/// One run's `and=(…)` filter (without its parentheses' name) and order. A bound past a key `v`
/// and id `i` reading descending is `f.lte.v,or(f.lt.v,id.lt.i)`: the first term bounds the
/// index scan, the second only drops the ties up to the edge row.
fn keyset_request(field: SortField, list_order: SortOrder, run: &Run<'_>) -> KeysetRequest {
    let f = field.as_str();
    let scan = run.scan(list_order);
    let (strict, inclusive) = match scan {
        SortOrder::Asc => ("gt", "gte"),
        SortOrder::Desc => ("lt", "lte"),
    };
    let mut terms = Vec::new();
    match run.rows {
        Rows::All => {}
        Rows::Values if run.past.is_none() => terms.push(format!("{f}.not.is.null")),
        Rows::Values => {}
        Rows::Nulls => terms.push(format!("{f}.is.null")),
    }
    match run.past {
        Some((Some(key), id)) => {
            let key = quote(key);
            terms.push(format!("{f}.{inclusive}.{key}"));
            terms.push(format!("or({f}.{strict}.{key},id.{strict}.{id})"));
        }
        Some((None, id)) => terms.push(format!("id.{strict}.{id}")),
        None => {}
    }
    let order = if run.reversed { reversed_order(field, list_order) } else { order(field, list_order) };
    KeysetRequest { and: format!("({})", terms.join(",")), order }
}

/// The filters that read one list's total from its counter (`contact_list_counts`), as the caller
/// may (row-level security applies there too).
pub fn list_total(workspace: &crate::query::WorkspaceId, board: &crate::query::BoardId, counter: &str) -> Vec<(String, String)> {
    vec![
        ("workspace_id".to_owned(), format!("eq.{workspace}")),
        ("board_id".to_owned(), format!("eq.{board}")),
        ("list".to_owned(), format!("eq.{counter}")),
    ]
}

/// PostgREST's `order` value; ties broken by id, nulls last in both directions.
pub fn order(field: SortField, order: SortOrder) -> String {
    let dir = order.as_str();
    let nulls = if field.nullable() { ".nullslast" } else { "" };
    format!("{}.{dir}{nulls},id.{dir}", field.as_str())
}

/// The exact reverse of [`order`]: the direction flipped and nulls first, so a backward page is
/// read by the same index, scanned the other way.
pub fn reversed_order(field: SortField, order: SortOrder) -> String {
    let dir = match order {
        SortOrder::Asc => "desc",
        SortOrder::Desc => "asc",
    };
    let nulls = if field.nullable() { ".nullsfirst" } else { "" };
    format!("{}.{dir}{nulls},id.{dir}", field.as_str())
}

/// A POSIX regular expression matching `term` literally: every ASCII character other than a
/// letter or digit is escaped. (PostgREST turns `*` into `%` in `like`/`ilike` and offers no
/// escape for it; a case-insensitive regular expression, `imatch`, has none of that.)
pub fn regex_literal(term: &str) -> String {
    let mut out = String::with_capacity(term.len() * 2);
    for ch in term.chars() {
        if ch.is_ascii() && !ch.is_ascii_alphanumeric() {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// A PostgreSQL array literal of `values`, each double-quoted with `\` and `"` escaped, for
/// PostgREST's `cs.` (`@>`).
pub fn array_literal(values: &[String]) -> String {
    format!("{{{}}}", values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(","))
}

/// A value inside PostgREST's `or=(...)` syntax: double-quoted, with `\` and `"` escaped, so
/// commas, parentheses and dots in it are data.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        if matches!(ch, '\\' | '"') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::WorkspaceId;

    const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";
    const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";
    const ME: &str = "d6d77053-92bc-7af6-3332-8bea8c4c6904";

    fn page(query: &str) -> PostgrestQuery {
        contact_page(
            &WorkspaceId::parse("ws", WS).unwrap(),
            &UserId::parse("sub", ME).unwrap(),
            &ContactQuery::parse(BOARD, query).unwrap(),
        )
    }

    #[test]
    fn the_default_page_is_pinned() {
        let q = page("");
        assert_eq!((q.table, q.select.as_str()), ("contacts", CONTACT_COLUMNS));
        assert_eq!(
            q.filters,
            vec![
                ("workspace_id".to_owned(), format!("eq.{WS}")),
                ("board_id".to_owned(), format!("eq.{BOARD}")),
                ("archived".to_owned(), "is.false".to_owned()),
            ]
        );
        assert_eq!(q.order, "created_at.desc,id.desc");
        assert_eq!((q.limit, q.offset), (50, 0));
    }

    #[test]
    fn favorites_join_the_callers_favorites() {
        let q = page("filter=favorites&sortBy=last_message_time&sortOrder=asc&page=2&pageSize=10");
        assert!(q.select.ends_with(",contact_favorites!inner()"));
        assert!(q.filters.contains(&("contact_favorites.user_id".to_owned(), format!("eq.{ME}"))));
        assert_eq!(q.order, "last_message_time.asc.nullslast,id.asc");
        assert_eq!((q.limit, q.offset), (10, 10));
    }

    #[test]
    fn search_terms_are_literal_whatever_they_contain() {
        let q = page("search=a%2Cb(c)%22d%27e.f*g%25h%5Ci_j");
        let (name, value) = q.filters.iter().find(|(name, _)| name == "or").unwrap();
        assert_eq!(name, "or");
        assert_eq!(q.table, "contacts_searchable", "an ASCII term without a trigram is narrowed by its pairs");
        assert_eq!(page("search=smith").table, "contacts_searchable", "searches read through the view the trigram indexes serve");
        assert_eq!(page("search=zq").table, "contacts_searchable", "short ASCII terms read through the view the pairs' index serves");
        assert_eq!(page("search=a.b-c").table, "contacts_searchable");
        assert_eq!(page("search=Zoë").table, "contacts_searchable");
        assert_eq!(page("search=%C3%A9").table, "contacts", "a short non-ASCII term walks the list");
        assert_eq!(page("search=%C3%A9").filters.iter().filter(|(name, _)| name == "search_grams").count(), 0);
        let pattern = r#""a\\,b\\(c\\)\\\"d\\'e\\.f\\*g\\%h\\\\i\\_j""#;
        assert_eq!(
            value,
            &format!("(name.imatch.{pattern},email.imatch.{pattern},phone.imatch.{pattern})")
        );
    }

    #[test]
    fn short_terms_add_their_lower_cased_pairs() {
        let grams = |query: &str| page(query).filters.into_iter().find(|(name, _)| name == "search_grams").map(|(_, value)| value);
        assert_eq!(grams("search=Q").as_deref(), Some(r#"cs.{"q"}"#));
        assert_eq!(grams("search=zQ").as_deref(), Some(r#"cs.{"zq"}"#));
        assert_eq!(grams("search=aaa.a").as_deref(), None, "a trigram: the trigram indexes serve it");
        assert_eq!(grams("search=a.A.").as_deref(), Some(r#"cs.{".a","a."}"#), "distinct pairs, sorted");
        assert_eq!(grams("search=%22%5C").as_deref(), Some(r#"cs.{"\"\\"}"#), "quoted inside the array");
        assert_eq!(grams("search=%2C").as_deref(), Some(r#"cs.{","}"#));
        let q = page("search=zq");
        assert_eq!(q.filters.iter().filter(|(name, _)| name == "or").count(), 1, "the match itself is unchanged");
    }

    #[test]
    fn a_short_terms_list_is_probed_and_counted_without_its_pairs_when_common() {
        let q = page("search=Q&filter=open&page=3");
        let probe = q.common_probe().unwrap();
        assert_eq!((probe.offset, probe.limit, probe.table), (999, 1, "contacts_searchable"));
        assert_eq!(probe.filters, q.filters, "the probe asks the list with its pairs");
        assert_eq!(probe.order, "", "in no order");
        let plain = q.without_pairs().unwrap();
        assert_eq!(plain.table, "contacts", "the match alone walks the list under row-level security");
        assert_eq!(plain.filters, q.filters.iter().filter(|(name, _)| name != "search_grams").cloned().collect::<Vec<_>>());
        assert!(plain.filters.iter().any(|(name, _)| name == "or"), "the match is kept");
        assert_eq!(page("search=smith").common_probe(), None, "a trigram term is counted through the trigram indexes");
        assert_eq!(page("search=%C3%A9").without_pairs(), None);
        assert_eq!(page("filter=open").common_probe(), None);
    }

    #[test]
    fn regex_literals_keep_letters_digits_and_non_ascii() {
        assert_eq!(regex_literal("Zoë 42"), r"Zoë\ 42");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
