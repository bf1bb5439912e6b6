//! Cache keys: deterministic from the normalized query, the workspace and (only for filters whose
//! answer depends on who asks) the user. Search terms appear only as a SHA-256 prefix.
//!
//! Redis keys put the workspace in a hash tag (`{...}`), so all of one workspace's keys live on one
//! Redis Cluster node and can be scanned and removed there.

use crate::generation::Generation;
use crate::query::{ContactQuery, UserId, WorkspaceId};
use crate::secure::sha256_hex;

/// Hex digits of SHA-256 kept where a key carries a hash (128 bits).
const HASH_HEX: usize = 32;

/// Where a page starts, as a key part: its number (`page`, `1`), or for a cursor page the
/// SHA-256 prefix of its cursor (`cursor`, `<32 hex>`), which names its edge row and direction.
fn position(query: &ContactQuery) -> (&'static str, String) {
    match &query.cursor {
        Some(cursor) => ("cursor", sha256_hex(cursor.encode(&query.binding()).as_bytes(), HASH_HEX)),
        None => ("page", query.page.get().to_string()),
    }
}

/// The Redis key of one list page, in the spec's format
/// `contacts:{workspace}:filter:board:…:page:1:limit:50:sort:created_at-desc` (a cursor page has
/// `cursor:<hash>` for `page:1`), followed by the
/// optional parts `:column:…`, `:assigned:…`, `:search:<sha256>` and, for user-relative filters,
/// `:user:…`, and last the generation of the filter's scope, `:gen:…`.
pub fn redis_list_key(workspace: &WorkspaceId, caller: &UserId, query: &ContactQuery, generation: &Generation) -> String {
    let (position, at) = position(query);
    let mut key = format!(
        "contacts:{{{workspace}}}:{filter}:board:{board}:{position}:{at}:limit:{limit}:sort:{sort}-{order}",
        filter = query.filter.as_str(),
        board = query.board_id,
        limit = query.page_size.get(),
        sort = query.sort_by.as_str(),
        order = query.sort_order.as_str(),
    );
    if let Some(column) = &query.column_id {
        key.push_str(&format!(":column:{column}"));
    }
    if let Some(assigned) = &query.assigned_to {
        key.push_str(&format!(":assigned:{assigned}"));
    }
    if let Some(search) = &query.search {
        key.push_str(&format!(":search:{}", sha256_hex(search.as_str().as_bytes(), HASH_HEX)));
    }
    if query.is_user_relative() {
        key.push_str(&format!(":user:{caller}"));
    }
    key.push_str(&format!(":gen:{generation}"));
    key
}

/// The longest parameter part kept readable in a KV key; longer ones are hashed.
const KV_PARAMS_MAX: usize = 160;

/// The Workers KV key of one list page, in the spec's format
/// `contacts:workspace:board:page=1&pageSize=50&filter=open&sortBy=created_at&sortOrder=desc`
/// (a cursor page has `cursor=<hash>` for `page=1`). The search term appears only as a hash, the caller only for user-relative filters, the
/// generation of the filter's scope last (`&gen=…`), and a parameter part longer than 160
/// characters is replaced by its SHA-256 prefix.
pub fn kv_list_key(workspace: &WorkspaceId, caller: &UserId, query: &ContactQuery, generation: &Generation) -> String {
    let (position, at) = position(query);
    let mut params = format!(
        "{position}={at}&pageSize={}&filter={}&sortBy={}&sortOrder={}",
        query.page_size.get(),
        query.filter.as_str(),
        query.sort_by.as_str(),
        query.sort_order.as_str()
    );
    params.push_str(&narrowing(caller, query));
    params.push_str(&format!("&gen={generation}"));
    if params.len() > KV_PARAMS_MAX {
        params = sha256_hex(params.as_bytes(), HASH_HEX);
    }
    format!("contacts:{workspace}:{}:{params}", query.board_id)
}

/// What narrows a list beyond its filter, as key parameters: the search term (only as a hash),
/// `assignedTo`, `columnId`, and the caller for user-relative filters.
fn narrowing(caller: &UserId, query: &ContactQuery) -> String {
    let mut part = String::new();
    if let Some(search) = &query.search {
        part.push_str(&format!("&search={}", sha256_hex(search.as_str().as_bytes(), HASH_HEX)));
    }
    if let Some(assigned) = &query.assigned_to {
        part.push_str(&format!("&assignedTo={assigned}"));
    }
    if let Some(column) = &query.column_id {
        part.push_str(&format!("&columnId={column}"));
    }
    if query.is_user_relative() {
        part.push_str(&format!("&user={caller}"));
    }
    part
}

/// What names one list among its pages: the filter and what narrows it; not the page, its size
/// or the sort.
fn list_part(caller: &UserId, query: &ContactQuery) -> String {
    format!("filter={}{}", query.filter.as_str(), narrowing(caller, query))
}

/// The Workers KV key of a narrowed list's total, counted once and shared by its pages under the
/// same generation: `total:<workspace>:<board>:filter=…[&search=…][&assignedTo=…][&columnId=…][&user=…]&gen=…`.
pub fn kv_total_key(workspace: &WorkspaceId, caller: &UserId, query: &ContactQuery, generation: &Generation) -> String {
    format!("total:{workspace}:{}:{}&gen={generation}", query.board_id, list_part(caller, query))
}

/// The Redis key of a narrowed list's total, for the backend's direct path:
/// `total:{<workspace>}:<board>:<SHA-256 prefix of the list's part>:gen:…`.
pub fn redis_total_key(workspace: &WorkspaceId, caller: &UserId, query: &ContactQuery, generation: &Generation) -> String {
    let list = sha256_hex(list_part(caller, query).as_bytes(), HASH_HEX);
    format!("total:{{{workspace}}}:{}:{list}:gen:{generation}", query.board_id)
}

/// The Redis key of a user's per-filter counts: `counts:{workspace}:user:gen:…`.
pub fn redis_counts_key(workspace: &WorkspaceId, user: &UserId, generation: &Generation) -> String {
    format!("counts:{{{workspace}}}:{user}:gen:{generation}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";
    const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";
    const ME: &str = "d6d77053-92bc-7af6-3332-8bea8c4c6904";
    const OTHER: &str = "9cbcc5ca-b7b0-4d3e-8a61-0c0d2c5f0a11";

    fn gen0() -> Generation {
        Generation::initial()
    }

    fn key(query: &str, caller: &str) -> String {
        redis_list_key(
            &WorkspaceId::parse("ws", WS).unwrap(),
            &UserId::parse("sub", caller).unwrap(),
            &ContactQuery::parse(BOARD, query).unwrap(),
            &gen0(),
        )
    }

    #[test]
    fn the_default_list_key_is_pinned() {
        assert_eq!(
            key("", ME),
            "contacts:{668953d2-25f2-b4fd-7d72-1e8cf024a277}:all:board:b6495e04-5abb-e13f-48ee-5435e1e75895:page:1:limit:50:sort:created_at-desc:gen:0"
        );
    }

    #[test]
    fn every_optional_part_is_pinned() {
        assert_eq!(
            key(&format!("filter=assigned_to_me&page=2&pageSize=10&sortBy=last_message_time&sortOrder=asc&columnId={OTHER}&assignedTo={OTHER}&search=ann@example.com"), ME),
            "contacts:{668953d2-25f2-b4fd-7d72-1e8cf024a277}:assigned_to_me:board:b6495e04-5abb-e13f-48ee-5435e1e75895:page:2:limit:10:sort:last_message_time-asc\
             :column:9cbcc5ca-b7b0-4d3e-8a61-0c0d2c5f0a11:assigned:9cbcc5ca-b7b0-4d3e-8a61-0c0d2c5f0a11\
             :search:71d4f55f72fa128dfb468a1a3901507c:user:d6d77053-92bc-7af6-3332-8bea8c4c6904:gen:0"
        );
    }

    #[test]
    fn no_search_term_appears_in_a_key() {
        let k = key("search=ann@example.com", ME);
        assert!(!k.contains("ann") && !k.contains("example"), "{k}");
    }

    #[test]
    fn only_user_relative_filters_are_per_user() {
        assert_eq!(key("filter=open", ME), key("filter=open", OTHER));
        assert_ne!(key("filter=favorites", ME), key("filter=favorites", OTHER));
        assert_ne!(key("filter=assigned_to_me", ME), key("filter=assigned_to_me", OTHER));
    }

    #[test]
    fn parameter_order_and_defaults_do_not_change_the_key() {
        assert_eq!(key("sortOrder=desc&filter=open&page=1", ME), key("filter=open", ME));
    }

    fn kv(query: &str, caller: &str) -> String {
        kv_list_key(
            &WorkspaceId::parse("ws", WS).unwrap(),
            &UserId::parse("sub", caller).unwrap(),
            &ContactQuery::parse(BOARD, query).unwrap(),
            &gen0(),
        )
    }

    #[test]
    fn kv_keys_follow_the_spec_format() {
        assert_eq!(
            kv("filter=open", ME),
            "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:b6495e04-5abb-e13f-48ee-5435e1e75895:page=1&pageSize=50&filter=open&sortBy=created_at&sortOrder=desc&gen=0"
        );
        assert_eq!(
            kv(&format!("filter=favorites&search=ann@example.com&assignedTo={OTHER}"), ME),
            "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:b6495e04-5abb-e13f-48ee-5435e1e75895:c30bf1293d9dd4de2772cdefe8cb2091"
        );
    }

    #[test]
    fn a_cursor_pages_keys_are_pinned() {
        let first = ContactQuery::parse(BOARD, "filter=open").unwrap();
        let contact = crate::envelope::Contact {
            id: OTHER.into(),
            name: "Ann".into(),
            email: None,
            phone: None,
            conversation_status: "Open".into(),
            priority: None,
            last_message_time: None,
            assigned_user_id: None,
            board_column_id: None,
            created_at: "2025-01-27T10:30:00.123456+00:00".into(),
        };
        let token = crate::cursor::Cursor::at(&contact, first.sort_by, crate::cursor::Direction::After).encode(&first.binding());
        assert_eq!(token, "AWGcvMXKt7BNPophDA0sXwoRATIwMjUtMDEtMjdUMTA6MzA6MDAuMTIzNDU2KzAwOjAwiCC7mNLb0UNEpr0VrMo3rg");
        let query = format!("filter=open&cursor={token}");
        assert_eq!(
            key(&query, ME),
            "contacts:{668953d2-25f2-b4fd-7d72-1e8cf024a277}:open:board:b6495e04-5abb-e13f-48ee-5435e1e75895:cursor:2d8a5e4e76386e84f92319a93baaa3e3:limit:50:sort:created_at-desc:gen:0"
        );
        assert_eq!(
            kv(&query, ME),
            "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:b6495e04-5abb-e13f-48ee-5435e1e75895:cursor=2d8a5e4e76386e84f92319a93baaa3e3&pageSize=50&filter=open&sortBy=created_at&sortOrder=desc&gen=0"
        );
        assert_ne!(key(&query, ME), key("filter=open", ME), "a cursor page is not page 1");
    }

    #[test]
    fn a_new_generation_makes_a_new_key() {
        let (ws, me, q) = (
            WorkspaceId::parse("ws", WS).unwrap(),
            UserId::parse("sub", ME).unwrap(),
            ContactQuery::parse(BOARD, "filter=open").unwrap(),
        );
        let next = Generation::new(1, 2);
        assert_ne!(kv_list_key(&ws, &me, &q, &gen0()), kv_list_key(&ws, &me, &q, &next));
        assert_ne!(redis_list_key(&ws, &me, &q, &gen0()), redis_list_key(&ws, &me, &q, &next));
        assert!(redis_list_key(&ws, &me, &q, &next).ends_with(":gen:1-00000002"));
    }

    #[test]
    fn kv_keys_are_per_user_only_for_user_relative_filters() {
        assert_eq!(kv("filter=open", ME), kv("filter=open", OTHER));
        assert_ne!(kv("filter=favorites", ME), kv("filter=favorites", OTHER));
        assert_eq!(kv("page=1&filter=open", ME), kv("filter=open&sortOrder=desc", ME));
        assert!(!kv("search=ann@example.com", ME).contains("ann"));
    }

    #[test]
    fn the_counts_key_is_pinned() {
        assert_eq!(
            redis_counts_key(&WorkspaceId::parse("ws", WS).unwrap(), &UserId::parse("u", ME).unwrap(), &gen0()),
            "counts:{668953d2-25f2-b4fd-7d72-1e8cf024a277}:d6d77053-92bc-7af6-3332-8bea8c4c6904:gen:0"
        );
    }

    #[test]
    fn a_lists_total_is_keyed_without_its_page_size_or_sort() {
        let (ws, me) = (WorkspaceId::parse("ws", WS).unwrap(), UserId::parse("u", ME).unwrap());
        let q = |raw: &str| ContactQuery::parse(BOARD, raw).unwrap();
        let g = Generation::parse("g", "7").unwrap();
        let key = kv_total_key(&ws, &me, &q("filter=open&search=ann&page=3&pageSize=20&sortBy=name"), &g);
        assert_eq!(key, format!("total:{WS}:{BOARD}:filter=open&search={}&gen=7", sha256_hex(b"ann", HASH_HEX)));
        assert_eq!(key, kv_total_key(&ws, &me, &q("filter=open&search=ann"), &g));
        assert_ne!(key, kv_total_key(&ws, &me, &q("filter=open&search=bob"), &g));
        let mine = kv_total_key(&ws, &me, &q("filter=favorites&columnId=b6495e04-5abb-e13f-48ee-5435e1e75895"), &g);
        assert!(mine.ends_with(&format!("&user={ME}&gen=7")), "{mine}");
        assert!(redis_total_key(&ws, &me, &q("filter=open&search=ann"), &g).starts_with(&format!("total:{{{WS}}}:{BOARD}:")));
    }
}
