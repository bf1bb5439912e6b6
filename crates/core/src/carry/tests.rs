use super::*;
use crate::generation::Generation;
use crate::time::UnixMillis;
use serde_json::json;

const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";
const OTHER_BOARD: &str = "0b7e9a0c-2c7e-4a55-9a57-3e0d7d4f6c11";
const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";
const ME: &str = "523d9e31-5b8a-fbee-39be-392d0cffd8b3";

fn caller() -> UserId {
    UserId::parse("sub", ME).unwrap()
}

fn query(raw: &str) -> ContactQuery {
    ContactQuery::parse(BOARD, raw).unwrap()
}

/// A contact row as change capture sends it: contact `n` (below 1,000; the higher, the older)
/// on BOARD, open, high, unassigned.
fn row(n: u32) -> Value {
    json!({
        "id": format!("00000000-0000-4000-8000-{n:012}"),
        "workspace_id": WS,
        "board_id": BOARD,
        "board_column_id": null,
        "name": format!("Contact {n}"),
        "email": format!("c{n}@example.test"),
        "phone": null,
        "conversation_status": "Open",
        "priority": "high",
        "assigned_user_id": null,
        "archived": false,
        "last_message_time": null,
        "created_at": format!("2025-01-27T{:02}:{:02}:00+00:00", (1000 - n) / 60, (1000 - n) % 60),
        "updated_at": "2025-01-27T10:00:00+00:00",
    })
}

fn listed(row: &Value) -> Contact {
    serde_json::from_value(row.clone()).unwrap()
}

/// A page of `query` listing contacts `numbers`, as the read path stores it.
fn page(query: &ContactQuery, numbers: &[u32]) -> String {
    let contacts = numbers.iter().map(|n| listed(&row(*n))).collect();
    serde_json::to_string(&ContactListResponse::new(query, contacts, 120, UnixMillis(1_000), 180)).unwrap()
}

fn update(n: u32, change: impl FnOnce(&mut Value)) -> ContactUpdate {
    let old = row(n);
    let mut new = old.clone();
    change(&mut new);
    ContactUpdate { old, new }
}

fn renamed(n: u32) -> ContactUpdate {
    update(n, |row| row["name"] = json!("Renamed"))
}

fn contacts(body: &str) -> Vec<Contact> {
    serde_json::from_str::<ContactListResponse>(body).unwrap().data.contacts
}

#[test]
fn a_rename_on_the_page_patches_that_contact_only() {
    let q = query("filter=open&page=1");
    let before = page(&q, &[1, 2, 3]);
    let Some(Carried::Patched(after)) = carry(&before, &q, &caller(), &[renamed(2)]) else { panic!("not patched") };
    let (old, new) = (contacts(&before), contacts(&after));
    assert_eq!(new[1].name, "Renamed");
    assert_eq!((new[0].clone(), new[2].clone()), (old[0].clone(), old[2].clone()));
    let mut expected = serde_json::from_str::<ContactListResponse>(&before).unwrap();
    expected.data.contacts[1].name = "Renamed".into();
    assert_eq!(serde_json::from_str::<ContactListResponse>(&after).unwrap(), expected, "pagination, filters and cached_at are kept");
}

#[test]
fn a_rename_elsewhere_in_the_list_or_on_another_board_leaves_the_page() {
    let q = query("filter=all&page=2");
    let body = page(&q, &[1, 2, 3]);
    assert_eq!(carry(&body, &q, &caller(), &[renamed(9)]), Some(Carried::Unchanged));
    let mut other = renamed(1);
    other.new["board_id"] = json!(OTHER_BOARD);
    other.old["board_id"] = json!(OTHER_BOARD);
    assert_eq!(carry(&body, &q, &caller(), &[other]), Some(Carried::Unchanged));
}

#[test]
fn a_contact_entering_or_leaving_the_list_is_read_again() {
    let closes = update(2, |row| row["conversation_status"] = json!("Closed"));
    let open = query("filter=open&page=1");
    assert_eq!(carry(&page(&open, &[1, 2, 3]), &open, &caller(), std::slice::from_ref(&closes)), None, "leaves open, on the page");
    assert_eq!(carry(&page(&open, &[5, 6, 7]), &open, &caller(), std::slice::from_ref(&closes)), None, "leaves open before the page");
    let closed = query("filter=closed&page=3");
    assert_eq!(carry(&page(&closed, &[5, 6]), &closed, &caller(), std::slice::from_ref(&closes)), None, "enters closed");
    // In 'all' it stays where it was: patched in place.
    let all = query("filter=all&page=1");
    let Some(Carried::Patched(after)) = carry(&page(&all, &[1, 2, 3]), &all, &caller(), &[closes]) else { panic!() };
    assert_eq!(contacts(&after)[1].conversation_status, "Closed");
    let assigned = update(2, |row| row["assigned_user_id"] = json!(ME));
    let mine = query("filter=assigned_to_me&page=1");
    assert_eq!(carry(&page(&mine, &[4]), &mine, &caller(), &[assigned]), None, "enters assigned_to_me");
}

#[test]
fn a_list_the_write_does_not_reach_is_unchanged() {
    let to_low = update(2, |row| row["priority"] = json!("low"));
    let closed = query("filter=closed&page=1");
    assert_eq!(carry(&page(&closed, &[7, 8]), &closed, &caller(), &[to_low]), Some(Carried::Unchanged));
}

#[test]
fn a_moved_sort_key_a_search_or_a_new_timestamp_is_read_again() {
    let by_name = query("filter=all&sortBy=name&sortOrder=asc");
    assert_eq!(carry(&page(&by_name, &[4, 5]), &by_name, &caller(), &[renamed(9)]), None);
    let searched = query("filter=all&search=contact");
    assert_eq!(carry(&page(&searched, &[4, 5]), &searched, &caller(), &[renamed(9)]), None);
    let messaged = update(2, |row| row["last_message_time"] = json!("2025-02-01T09:00:00+00:00"));
    let all = query("filter=all");
    assert_eq!(carry(&page(&all, &[1, 2]), &all, &caller(), std::slice::from_ref(&messaged)), None, "on the page: its new timestamp's encoding is the database's");
    assert_eq!(carry(&page(&all, &[5, 6]), &all, &caller(), &[messaged]), Some(Carried::Unchanged), "elsewhere in a created_at list");
}

#[test]
fn carrying_twice_is_carrying_once() {
    let q = query("filter=high_priority");
    let once = carry(&page(&q, &[1, 2, 3]), &q, &caller(), &[renamed(3)]);
    let Some(Carried::Patched(after)) = once.clone() else { panic!() };
    assert_eq!(carry(&after, &q, &caller(), &[renamed(3)]), Some(Carried::Unchanged));
    assert_eq!(carry(&page(&q, &[1, 2, 3]), &q, &caller(), &[renamed(3), renamed(3)]), once);
}

#[test]
fn a_page_that_contradicts_the_rows_is_read_again() {
    // Contact 2 is on the open page, yet its rows say closed before and after.
    let q = query("filter=open");
    let closed_rename = update(2, |row| row["name"] = json!("Renamed"));
    let mut closed = closed_rename.clone();
    closed.old["conversation_status"] = json!("Closed");
    closed.new["conversation_status"] = json!("Closed");
    assert_eq!(carry(&page(&q, &[1, 2]), &q, &caller(), &[closed]), None);
    let mut unknown = closed_rename;
    unknown.new.as_object_mut().unwrap().remove("archived");
    assert_eq!(carry(&page(&q, &[1, 2]), &q, &caller(), &[unknown]), None, "a missing field is unknown");
}

#[test]
fn favorites_are_patched_in_place_but_not_across_archiving() {
    let q = query("filter=favorites");
    let Some(Carried::Patched(after)) = carry(&page(&q, &[1, 2]), &q, &caller(), &[renamed(1)]) else { panic!() };
    assert_eq!(contacts(&after)[0].name, "Renamed");
    let archived = update(1, |row| row["archived"] = json!(true));
    assert_eq!(carry(&page(&q, &[1, 2]), &q, &caller(), &[archived]), None);
}

#[test]
fn only_updates_in_place_are_carried() {
    let change = |kind: &str, old: Option<Value>, new: Option<Value>| RowChange { kind: kind.into(), table: "contacts".into(), schema: None, record: new, old_record: old, changed_at: None, outbox_seq: None };
    assert!(ContactUpdate::from_change(&change("UPDATE", Some(row(1)), Some(renamed(1).new))).is_some());
    assert!(ContactUpdate::from_change(&change("INSERT", None, Some(row(1)))).is_none());
    assert!(ContactUpdate::from_change(&change("DELETE", Some(row(1)), None)).is_none());
    let mut moved = row(1);
    moved["board_column_id"] = json!("7e1f4c2a-3b5d-4c6e-8f90-a1b2c3d4e5f6");
    assert!(ContactUpdate::from_change(&change("UPDATE", Some(row(1)), Some(moved))).is_none());
    let favorite = RowChange { kind: "UPDATE".into(), table: "contact_favorites".into(), schema: None, record: Some(row(1)), old_record: Some(row(1)), changed_at: None, outbox_seq: None };
    assert!(ContactUpdate::from_change(&favorite).is_none());
}

#[test]
fn records_accumulate_a_burst_and_start_again_after_an_unknown_change() {
    use crate::filter::Filter::All;
    let g = |n: u32| Generation::new(0, n);
    let towards = |record: &CarryRecord, n: u32| record.starts(&g(n)).first().map(|(from, updates)| (from.to_string(), updates.to_vec()));
    let first = CarryRecord::after(None, &g(0), &g(1), All, &[renamed(1)]);
    assert_eq!(towards(&first, 1), Some((g(0).to_string(), vec![renamed(1)])));
    assert_eq!(first.starts(&g(2)), vec![], "a record leads to one generation only");
    let second = CarryRecord::after(Some(first.clone()), &g(1), &g(2), All, &[renamed(2)]);
    assert_eq!(towards(&second, 2), Some((g(0).to_string(), vec![renamed(1), renamed(2)])), "the burst carries from before its first write");
    // An invalidation that names no updates (g2 -> g3) writes no record: the stored one leads to
    // g2, carries nothing to g3, and the next record starts from g3.
    assert_eq!(second.starts(&g(3)), vec![]);
    let after_unknown = CarryRecord::after(Some(second.clone()), &g(3), &g(4), All, &[renamed(3)]);
    assert_eq!(towards(&after_unknown, 4), Some((g(3).to_string(), vec![renamed(3)])));
    // A record that does not lead to the generation replaced (another isolate's invalidation
    // came between) is not chained: the pages of the one replaced are the start.
    let unchained = CarryRecord::after(Some(first), &g(5), &g(6), All, &[renamed(4)]);
    assert_eq!(towards(&unchained, 6), Some((g(5).to_string(), vec![renamed(4)])));
    let mut long = second;
    for n in 2..MAX_CARRIED_UPDATES as u32 {
        long = CarryRecord::after(Some(long), &g(n), &g(n + 1), All, &[renamed(n)]);
    }
    assert_eq!((long.from.as_str(), long.updates.len()), (g(0).as_str(), MAX_CARRIED_UPDATES));
    let past = CarryRecord::after(Some(long.clone()), &g(20), &g(21), All, &[renamed(9)]);
    assert_eq!(past.starts(&g(21)).len(), 1);
    assert_eq!(towards(&past, 21), Some((g(20).to_string(), vec![renamed(9)])), "past the cap: from the generation replaced");
    let json = serde_json::to_string(&long).unwrap();
    assert!(!json.contains("later"), "a record without later starts is written as before");
    assert_eq!(serde_json::from_str::<CarryRecord>(&json).unwrap(), long);
}

#[test]
fn an_update_that_moves_contacts_makes_its_generation_a_later_start() {
    use crate::filter::Filter::Open;
    let g = |n: u32| Generation::new(0, n);
    let closes = update(1, |row| row["conversation_status"] = json!("Closed"));
    let owned = |starts: Vec<(&str, &[ContactUpdate])>| starts.into_iter().map(|(from, updates)| (from.to_string(), updates.to_vec())).collect::<Vec<_>>();
    let renamed_first = CarryRecord::after(None, &g(0), &g(1), Open, &[renamed(2)]);
    let closed = CarryRecord::after(Some(renamed_first), &g(1), &g(2), Open, std::slice::from_ref(&closes));
    // Towards g2 itself, only the start before it: g2's own pages are what is missing.
    assert_eq!(owned(closed.starts(&g(2))), vec![(g(0).to_string(), vec![renamed(2), closes.clone()])]);
    let renamed_after = CarryRecord::after(Some(closed), &g(2), &g(3), Open, &[renamed(3)]);
    assert_eq!(
        owned(renamed_after.starts(&g(3))),
        vec![(g(2).to_string(), vec![renamed(3)]), (g(0).to_string(), vec![renamed(2), closes.clone(), renamed(3)])],
        "g2's pages (read after the contact left) carry with the rename alone; g0's are tried after them"
    );
    let json = serde_json::to_string(&renamed_after).unwrap();
    assert_eq!(serde_json::from_str::<CarryRecord>(&json).unwrap(), renamed_after);
    // The same updates do not move anyone in `all`: no later start.
    let all = CarryRecord::after(None, &g(1), &g(2), crate::filter::Filter::All, std::slice::from_ref(&closes));
    assert!(all.later.is_empty());
    // At most MAX_LATER_STARTS later starts: the oldest start goes with the updates before the
    // next one.
    let mut record = renamed_after;
    for n in 3..6 {
        record = CarryRecord::after(Some(record), &g(n), &g(n + 1), Open, std::slice::from_ref(&closes));
    }
    assert_eq!(record.later.len(), MAX_LATER_STARTS);
    let starts = owned(record.starts(&g(6)));
    assert_eq!(starts.len(), MAX_LATER_STARTS, "the newest start (g6 itself) is not one towards g6");
    assert_eq!(starts[0], (g(5).to_string(), vec![closes.clone()]));
    assert_eq!(starts.last().unwrap(), &(g(4).to_string(), vec![closes.clone(), closes.clone()]));
    // Past MAX_CARRIED_UPDATES the oldest start goes too.
    let mut record = CarryRecord::after(None, &g(0), &g(1), Open, std::slice::from_ref(&closes));
    for n in 1..=MAX_CARRIED_UPDATES as u32 {
        record = CarryRecord::after(Some(record), &g(n), &g(n + 1), Open, &[renamed(n)]);
    }
    assert!(record.updates.len() <= MAX_CARRIED_UPDATES);
    assert_eq!(owned(record.starts(&g(MAX_CARRIED_UPDATES as u32 + 1))).last().unwrap().0, g(1).to_string());
}

#[test]
fn an_update_moves_members_of_the_lists_whose_fields_it_changes() {
    use crate::filter::Filter;
    let renamed = renamed(1);
    assert!(Filter::ALL.iter().all(|f| !renamed.may_move(*f)), "a new name moves no one in a list sorted by time");
    let closes = update(1, |row| row["conversation_status"] = json!("Closed"));
    assert!(closes.may_move(Filter::Open) && closes.may_move(Filter::Closed));
    assert!(!closes.may_move(Filter::All) && !closes.may_move(Filter::HighPriority) && !closes.may_move(Filter::Favorites));
    let assigned = update(1, |row| row["assigned_user_id"] = json!(ME));
    assert!(assigned.may_move(Filter::AssignedToMe) && assigned.may_move(Filter::Unassigned) && !assigned.may_move(Filter::Open));
    let messaged = update(1, |row| row["last_message_time"] = json!("2025-02-01T09:00:00+00:00"));
    assert!(messaged.may_move(Filter::All));
    let mut partial = renamed.clone();
    partial.new.as_object_mut().unwrap().remove("priority");
    assert!(partial.may_move(Filter::LowPriority) && !partial.may_move(Filter::Open));
}

#[test]
fn an_update_is_kept_as_the_new_row_and_what_the_old_one_had_otherwise() {
    let mut gone = renamed(3);
    gone.old.as_object_mut().unwrap().remove("phone");
    gone.old.as_object_mut().unwrap().insert("legacy".into(), json!(1));
    for update in [renamed(1), update(2, |row| row["conversation_status"] = json!("Closed")), gone] {
        let stored = serde_json::to_string(&update).unwrap();
        assert_eq!(serde_json::from_str::<ContactUpdate>(&stored).unwrap(), update, "{stored}");
        let both = serde_json::to_string(&json!({ "old": update.old, "new": update.new })).unwrap();
        assert!(stored.len() * 3 < both.len() * 2, "{} of {} bytes", stored.len(), both.len());
    }
    let odd = ContactUpdate { old: json!("not a row"), new: row(4) };
    assert_eq!(serde_json::from_str::<ContactUpdate>(&serde_json::to_string(&odd).unwrap()).unwrap(), odd);
}

#[test]
fn a_carry_record_is_sealed_under_its_key_like_a_page() {
    // The worker seals records through WebCrypto in the same form (src/layers/kv.rs); this pins
    // that a record's rows leave no trace in the sealed text and that it opens under its key only.
    let keys = crate::sealed::Keyring::parse("CACHE_ENCRYPTION_KEY", "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let (from, to) = (Generation::new(1, 1), Generation::new(2, 2));
    let record = CarryRecord::after(None, &from, &to, Filter::All, &[renamed(3)]);
    let key = carry_key(&WorkspaceId::parse("ws", WS).unwrap(), &BoardId::parse("board", BOARD).unwrap(), Filter::All);
    let plain = serde_json::to_string(&record).unwrap();
    assert!(plain.contains("Renamed") && plain.contains("c3@example.test"));
    let sealed = keys.seal(&key, &plain, [9; 12]);
    for field in ["Renamed", "Contact 3", "c3@example.test"] {
        assert!(!sealed.contains(field), "{field}");
    }
    let opened: CarryRecord = serde_json::from_str(&keys.open(&key, &sealed).unwrap()).unwrap();
    assert_eq!(opened, record);
    let elsewhere = carry_key(&WorkspaceId::parse("ws", WS).unwrap(), &BoardId::parse("board", OTHER_BOARD).unwrap(), Filter::All);
    assert!(keys.open(&elsewhere, &sealed).is_err(), "moved to another scope's key");
    assert!(keys.open(&key, &plain).is_err(), "an unsealed record is no record");
}

/// A cursor page, read after contact `edge` (an edge row of the list sorted by `sort`).
fn cursor_query(list: &str, edge: u32) -> ContactQuery {
    let first = query(list);
    let cursor = crate::cursor::Cursor::at(&listed(&row(edge)), first.sort_by, crate::cursor::Direction::After).encode(&first.binding());
    query(&format!("{list}&cursor={cursor}"))
}

#[test]
fn a_cursor_page_is_carried_by_the_same_rules_and_keeps_its_cursors() {
    let q = cursor_query("filter=open", 1);
    let before = page(&q, &[2, 3, 4]);
    let Some(Carried::Patched(after)) = carry(&before, &q, &caller(), &[renamed(3)]) else { panic!("not patched") };
    let (old, new): (ContactListResponse, ContactListResponse) = (serde_json::from_str(&before).unwrap(), serde_json::from_str(&after).unwrap());
    assert_eq!(new.data.contacts[1].name, "Renamed");
    assert_eq!(new.data.pagination, old.data.pagination, "its edge rows kept their sort keys, so their cursors hold");
    assert!(new.data.pagination.prev_cursor.is_some());
    // A new name moves the contact in a list sorted by name: read again.
    let by_name = cursor_query("filter=open&sortBy=name", 1);
    assert_eq!(carry(&page(&by_name, &[2, 3, 4]), &by_name, &caller(), &[renamed(3)]), None);
    // Leaving the list: read again, as for numbered pages.
    let closed = update(3, |row| row["conversation_status"] = json!("Closed"));
    assert_eq!(carry(&before, &q, &caller(), &[closed]), None);
}
