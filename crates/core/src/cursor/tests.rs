//! Cursors: round trips, refusals, the runs of each sort and the cursors a page answers with.
use super::*;
use crate::postgrest;
use crate::query::{UserId, WorkspaceId};
use crate::sql;

const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";
const OTHER_BOARD: &str = "9cbcc5ca-b7b0-4d3e-8a61-0c0d2c5f0a11";
const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";
const ME: &str = "d6d77053-92bc-7af6-3332-8bea8c4c6904";
const ID: &str = "8f14e45f-ceea-467f-a0e6-7d7b5b7a1c01";

fn contact(id: &str, name: &str, created_at: &str, last_message_time: Option<&str>) -> Contact {
    Contact {
        id: id.into(),
        name: name.into(),
        email: None,
        phone: None,
        conversation_status: "Open".into(),
        priority: None,
        last_message_time: last_message_time.map(Into::into),
        assigned_user_id: None,
        board_column_id: None,
        created_at: created_at.into(),
    }
}

fn query(raw: &str) -> ContactQuery {
    ContactQuery::parse(BOARD, raw).unwrap()
}

/// The token of `cursor` for the list `list`, and the query reading it.
fn with_cursor(list: &str, cursor: &Cursor) -> (String, ContactQuery) {
    let token = cursor.encode(&query(list).binding());
    let parsed = ContactQuery::parse(BOARD, &format!("{list}&cursor={token}")).unwrap();
    (token, parsed)
}

#[test]
fn a_cursor_round_trips_through_its_token() {
    let cases = [
        ("sortBy=created_at", Some("2025-01-27T10:30:00.123456+00:00"), Direction::After),
        ("sortBy=last_message_time&sortOrder=asc", None, Direction::Before),
        ("sortBy=last_message_time", Some("2025-01-27T10:30:00Z"), Direction::Before),
        ("sortBy=name&search=a%2Cb", Some("Zoë O'Brien, \"Jr.\" (x)"), Direction::After),
    ];
    for (list, key, direction) in cases {
        let cursor = Cursor { direction, key: key.map(Into::into), id: ID.into() };
        let (token, parsed) = with_cursor(list, &cursor);
        assert_eq!(parsed.cursor.as_ref(), Some(&cursor), "{list}");
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
        assert_eq!(ContactQuery::parse(BOARD, &parsed.canonical_query_string()).unwrap(), parsed, "canonical form parses back");
    }
}

#[test]
fn a_token_changed_anywhere_is_refused_naming_cursor() {
    let cursor = Cursor { direction: Direction::After, key: Some("2025-01-27T10:30:00+00:00".into()), id: ID.into() };
    let token = cursor.encode(&query("filter=open").binding());
    let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
    for at in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[at] ^= 0x01;
        let tampered = URL_SAFE_NO_PAD.encode(&changed);
        let err = ContactQuery::parse(BOARD, &format!("filter=open&cursor={tampered}")).unwrap_err();
        assert_eq!(err.field, "cursor", "byte {at}");
    }
    for raw in ["x", "!!!!", "AAAA", &token[..token.len() - 2], &format!("{token}AA"), &"A".repeat(MAX_TOKEN_CHARS + 4)] {
        assert_eq!(ContactQuery::parse(BOARD, &format!("filter=open&cursor={raw}")).unwrap_err().field, "cursor", "{raw}");
    }
}

#[test]
fn a_cursor_of_another_list_is_refused_naming_cursor() {
    let cursor = Cursor { direction: Direction::After, key: Some("2025-01-27T10:30:00+00:00".into()), id: ID.into() };
    let token = cursor.encode(&query("filter=open").binding());
    for other in ["filter=closed", "filter=open&sortOrder=asc", "filter=open&pageSize=20", "filter=open&search=ann", "filter=open&sortBy=last_message_time"] {
        let err = ContactQuery::parse(BOARD, &format!("{other}&cursor={token}")).unwrap_err();
        assert_eq!(err.field, "cursor", "{other}");
        assert!(err.message.contains("another list"), "{}", err.message);
        assert!(err.message.starts_with("cursor was not given for this list"), "{}", err.message);
    }
    assert_eq!(ContactQuery::parse(OTHER_BOARD, &format!("filter=open&cursor={token}")).unwrap_err().field, "cursor");
    assert!(ContactQuery::parse(BOARD, &format!("filter=open&sortOrder=desc&page=1&cursor={token}")).is_ok(), "defaults spelled out are the same list");
    assert_eq!(ContactQuery::parse(BOARD, &format!("filter=open&page=2&cursor={token}")).unwrap_err().field, "cursor");
}

#[test]
fn a_well_tagged_cursor_with_an_impossible_key_is_refused() {
    let binding = query("").binding();
    for key in [None, Some("yesterday"), Some("2025-01-27 10:30:00"), Some("2025-01-27T10:30:00.1234567Z"), Some("2025-01-27T10:30:00+0")] {
        let token = Cursor { direction: Direction::After, key: key.map(Into::into), id: ID.into() }.encode(&binding);
        assert_eq!(ContactQuery::parse(BOARD, &format!("cursor={token}")).unwrap_err().field, "cursor", "{key:?}");
    }
    for good in ["2025-01-27T10:30:00Z", "2025-01-27T10:30:00.5+05:30", "2025-01-27T10:30:00-08"] {
        assert!(is_timestamp(good), "{good}");
    }
}

#[test]
fn runs_cover_the_list_in_order_with_nulls_last_both_ways() {
    let keyset = |list: &str, direction, key: Option<&str>| {
        let cursor = Cursor { direction, key: key.map(Into::into), id: ID.into() };
        let (_, q) = with_cursor(list, &cursor);
        let runs: Vec<(Rows, bool, bool)> = q.keyset().unwrap().runs().iter().map(|r| (r.rows, r.past.is_some(), r.reversed)).collect();
        runs
    };
    let at = Some("2025-01-27T10:30:00Z");
    assert_eq!(keyset("sortBy=name", Direction::After, Some("Ann")), vec![(Rows::All, true, false)]);
    assert_eq!(keyset("", Direction::Before, at), vec![(Rows::All, true, true)]);
    let lmt = "sortBy=last_message_time";
    assert_eq!(keyset(lmt, Direction::After, at), vec![(Rows::Values, true, false), (Rows::Nulls, false, false)]);
    assert_eq!(keyset(lmt, Direction::After, None), vec![(Rows::Nulls, true, false)]);
    assert_eq!(keyset(lmt, Direction::Before, at), vec![(Rows::Values, true, true)]);
    assert_eq!(keyset(lmt, Direction::Before, None), vec![(Rows::Nulls, true, true), (Rows::Values, false, true)]);
}

fn ids() -> (WorkspaceId, UserId) {
    (WorkspaceId::parse("ws", WS).unwrap(), UserId::parse("u", ME).unwrap())
}

#[test]
fn keyset_filters_for_each_sort_are_pinned_in_postgrest() {
    let (ws, me) = ids();
    let at = "2025-01-27T10:30:00+00:00";
    let read = |list: &str, direction, key: Option<&str>| {
        let (_, q) = with_cursor(list, &Cursor { direction, key: key.map(Into::into), id: ID.into() });
        postgrest::contact_page(&ws, &me, &q)
    };
    let created = read("", Direction::After, Some(at));
    assert_eq!(created.offset, 0);
    assert!(!created.reversed);
    assert_eq!(
        created.runs,
        vec![postgrest::KeysetRequest {
            and: format!(r#"(created_at.lte."{at}",or(created_at.lt."{at}",id.lt.{ID}))"#),
            order: "created_at.desc,id.desc".into()
        }]
    );
    let name = read("sortBy=name&sortOrder=asc", Direction::Before, Some("O\"Brien, A"));
    assert!(name.reversed);
    assert_eq!(name.runs[0].and, format!(r#"(name.lte."O\"Brien, A",or(name.lt."O\"Brien, A",id.lt.{ID}))"#));
    assert_eq!(name.runs[0].order, "name.desc,id.desc");
    let lmt = read("sortBy=last_message_time&sortOrder=asc", Direction::After, Some(at));
    assert_eq!(lmt.runs[0].and, format!(r#"(last_message_time.gte."{at}",or(last_message_time.gt."{at}",id.gt.{ID}))"#));
    assert_eq!(lmt.runs[1].and, "(last_message_time.is.null)");
    assert_eq!(lmt.runs[1].order, "last_message_time.asc.nullslast,id.asc");
    let back = read("sortBy=last_message_time", Direction::Before, None);
    assert_eq!(back.runs[0].and, format!("(last_message_time.is.null,id.gt.{ID})"));
    assert_eq!(back.runs[0].order, "last_message_time.asc.nullsfirst,id.asc");
    assert_eq!(back.runs[1].and, "(last_message_time.not.is.null)");
    assert!(postgrest::contact_page(&ws, &me, &query("page=3")).runs.is_empty(), "numbered pages read by offset");
}

#[test]
fn keyset_filters_for_each_sort_are_pinned_in_sql() {
    let (ws, me) = ids();
    let at = "2025-01-27T10:30:00+00:00";
    let (_, q) = with_cursor("filter=open&sortBy=last_message_time", &Cursor { direction: Direction::After, key: Some(at.into()), id: ID.into() });
    let page = sql::contact_page(&ws, &me, &q, None);
    assert!(page.text.contains(
        "(select c.* from public.contacts c where c.workspace_id = $1::text::uuid and c.board_id = $3::text::uuid and c.archived = false \
         and c.conversation_status = $4::text and c.last_message_time <= $6::text::timestamptz and (c.last_message_time < $6::text::timestamptz or c.id < $7::text::uuid) \
         order by c.last_message_time desc nulls last, c.id desc limit 50) union all \
         (select c.* from public.contacts c where c.workspace_id = $1::text::uuid and c.board_id = $3::text::uuid and c.archived = false \
         and c.conversation_status = $4::text and c.last_message_time is null order by c.last_message_time desc nulls last, c.id desc limit 50)"
    ), "{}", page.text);
    assert!(page.text.contains(") u order by u.last_message_time desc nulls last, u.id desc limit 50) p"));
    assert_eq!(page.params[5..], [at.to_owned(), ID.to_owned()]);
    assert!(!page.text.contains("offset"));
    let (_, back) = with_cursor("sortBy=name", &Cursor { direction: Direction::Before, key: Some("Ann".into()), id: ID.into() });
    let page = sql::contact_page(&ws, &me, &back, None);
    assert!(page.text.contains("c.name >= $5::text and (c.name > $5::text or c.id > $6::text::uuid) order by c.name asc, c.id asc limit 50"), "{}", page.text);
    assert!(page.text.contains("json_agg(") && page.text.contains("order by p.name desc, p.id desc)"));
}

#[test]
fn a_page_answers_with_the_cursors_of_its_edge_rows() {
    let rows: Vec<Contact> = (0..3)
        .map(|i| contact(&format!("00000000-0000-4000-8000-00000000000{i}"), &format!("n{i}"), &format!("2025-01-0{}T00:00:00+00:00", 3 - i), None))
        .collect();
    let numbered = query("pageSize=3");
    let (next, prev) = page_cursors(&numbered, &rows, 7);
    assert_eq!(prev, None, "page 1 has none before it");
    let next = next.unwrap();
    let after = ContactQuery::parse(BOARD, &format!("pageSize=3&cursor={next}")).unwrap();
    assert_eq!(after.cursor, Some(Cursor { direction: Direction::After, key: Some(rows[2].created_at.clone()), id: rows[2].id.clone() }));
    assert_eq!(page_cursors(&numbered, &rows, 3).0, None, "the last numbered page has no next");
    let (next, prev) = page_cursors(&after, &rows[..2], 7);
    assert_eq!(next, None, "a cursor page that is not full ends its list");
    let prev = ContactQuery::parse(BOARD, &format!("pageSize=3&cursor={}", prev.unwrap())).unwrap();
    assert_eq!(prev.cursor.unwrap().id, rows[0].id);
    assert_eq!(page_cursors(&after, &[], 7), (None, None));
    let page2 = query("pageSize=3&page=2");
    assert!(page_cursors(&page2, &rows, 7).1.is_some());
}
