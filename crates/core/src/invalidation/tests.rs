use super::*;

const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";

#[test]
fn the_spec_patterns_map_to_stored_keys() {
    let cases = [
        (format!("contacts:{WS}:*"), format!("contacts:{{{WS}}}:*")),
        (format!("contacts:{WS}:open:*"), format!("contacts:{{{WS}}}:open:*")),
        (format!("contacts:{WS}:*:*"), format!("contacts:{{{WS}}}:*:*")),
        (format!("counts:{WS}*"), format!("counts:{{{WS}}}*")),
        (format!("contacts:{{{WS}}}:all:*"), format!("contacts:{{{WS}}}:all:*")),
    ];
    for (raw, glob) in cases {
        let pattern = KeyPattern::parse(&raw).unwrap();
        assert_eq!(pattern.glob, glob, "{raw}");
        assert_eq!(pattern.workspace.as_str(), WS);
    }
}

#[test]
fn hostile_patterns_are_refused() {
    let long = format!("contacts:{WS}:{}", "a".repeat(400));
    let hostile = [
        "*",
        "contacts:*",
        "contacts:*:open:*",
        "counts:*",
        "sessions:668953d2-25f2-b4fd-7d72-1e8cf024a277:*",
        "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a27?:*",
        "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277x*",
        "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:[a-z]*",
        "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:\\*",
        "contacts:{668953d2-25f2-b4fd-7d72-1e8cf024a277:*",
        "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:{other}:*",
        "contacts:{*}:*",
        long.as_str(),
    ];
    for raw in hostile {
        assert!(KeyPattern::parse(raw).is_err(), "{raw}");
    }
}

fn names(scopes: BTreeSet<Scope>) -> Vec<&'static str> {
    scopes.into_iter().map(Scope::as_str).collect()
}

fn event(json: serde_json::Value) -> Event {
    serde_json::from_value(json).unwrap()
}

#[test]
fn the_spec_events_map_to_the_spec_patterns() {
    use serde_json::json;
    let created = event(json!({"type": "contact:created", "status": "Open", "priority": "high", "assigned_user_id": null, "archived": false}));
    assert_eq!(names(created.scopes()), ["all", "open", "unassigned", "high_priority", "counts"]);
    let assigned = event(json!({"type": "contact:assigned"}));
    assert_eq!(names(assigned.scopes()), ["unassigned", "assigned_to_me", "counts"]);
    assert_eq!(event(json!({"type": "contact:moved"})).scopes().len(), 11);
    assert!(event(json!({"type": "column:created"})).scopes().is_empty());
    assert_eq!(names(event(json!({"type": "column:deleted"})).scopes()).len(), 10);
}

#[test]
fn unknown_fields_invalidate_every_value_they_could_have() {
    let created = event(serde_json::json!({"type": "contact:created", "status": "Closed"}));
    assert_eq!(
        names(created.scopes()),
        ["all", "closed", "unassigned", "assigned_to_me", "high_priority", "medium_priority", "low_priority", "archived", "counts"]
    );
}

#[test]
fn an_update_covers_the_lists_before_and_after() {
    let updated = event(serde_json::json!({
        "type": "contact:updated",
        "old": {"conversation_status": "Open", "priority": "low", "assigned_user_id": "u", "archived": false},
        "new": {"conversation_status": "Closed", "priority": "low", "assigned_user_id": "u", "archived": false}
    }));
    assert_eq!(names(updated.scopes()), ["all", "open", "closed", "assigned_to_me", "low_priority", "favorites", "counts"]);
    let archived = event(serde_json::json!({
        "type": "contact:updated",
        "old": {"conversation_status": "Open", "priority": null, "assigned_user_id": null, "archived": false},
        "new": {"conversation_status": "Open", "priority": null, "assigned_user_id": null, "archived": true}
    }));
    assert_eq!(names(archived.scopes()), ["all", "open", "unassigned", "favorites", "archived", "counts"]);
    // A new name: the lists that show the contact, no count.
    let state = serde_json::json!({"conversation_status": "Open", "priority": "high", "assigned_user_id": null, "archived": false});
    let renamed = event(serde_json::json!({"type": "contact:updated", "old": state, "new": state}));
    assert_eq!(names(renamed.scopes()), ["all", "open", "unassigned", "high_priority", "favorites"]);
    // Unless a field the filters read is unknown.
    let partial = serde_json::json!({"conversation_status": "Open"});
    let unknown = event(serde_json::json!({"type": "contact:updated", "old": partial, "new": partial}));
    assert!(unknown.scopes().contains(&Scope::Counts));
}

#[test]
fn database_changes_become_events() {
    use serde_json::json;
    let row = |status: &str, board: &str| json!({"workspace_id": WS, "board_id": board, "board_column_id": null,
        "conversation_status": status, "priority": "medium", "assigned_user_id": null, "archived": false});
    let change = |kind: &str, table: &str, record, old| RowChange { kind: kind.into(), table: table.into(), schema: Some("public".into()), record, old_record: old, changed_at: None, outbox_seq: None };
    let (ws, created) = change("INSERT", "contacts", Some(row("Open", "b1")), None).event().unwrap();
    assert_eq!(ws.as_str(), WS);
    assert!(matches!(created, Event::ContactCreated { .. }));
    let (_, moved) = change("UPDATE", "contacts", Some(row("Open", "b2")), Some(row("Open", "b1"))).event().unwrap();
    assert_eq!(moved, Event::ContactMoved);
    let (_, updated) = change("UPDATE", "contacts", Some(row("Closed", "b1")), Some(row("Open", "b1"))).event().unwrap();
    assert_eq!(names(updated.scopes()), ["all", "open", "closed", "unassigned", "medium_priority", "favorites", "counts"]);
    assert!(change("INSERT", "boards", Some(json!({"workspace_id": WS})), None).event().is_none());
    assert!(change("INSERT", "contacts", Some(json!({"no": "workspace"})), None).event().is_none());
}

#[test]
fn patterns_name_their_scopes() {
    let scopes = |raw: &str| KeyPattern::parse(raw).unwrap().scopes().into_iter().map(Scope::as_str).collect::<Vec<_>>();
    assert_eq!(scopes(&format!("contacts:{WS}:open:*")), ["open"]);
    assert_eq!(scopes(&format!("counts:{WS}*")), ["counts"]);
    assert_eq!(scopes(&format!("contacts:{WS}:*")).len(), 10);
    assert_eq!(scopes(&format!("contacts:{WS}:*:*")).len(), 10);
}

#[test]
fn a_change_reaches_the_boards_its_rows_name() {
    use serde_json::json;
    let (b1, b2) = ("b6495e04-5abb-e13f-48ee-5435e1e75895", "c6495e04-5abb-e13f-48ee-5435e1e75895");
    let change = |table: &str, record: serde_json::Value, old: Option<serde_json::Value>| RowChange { kind: "UPDATE".into(), table: table.into(), schema: None, record: Some(record), old_record: old, changed_at: None, outbox_seq: None };
    let names = |change: RowChange| change.boards().map(|boards| boards.into_iter().map(|b| b.to_string()).collect::<Vec<_>>());
    assert_eq!(names(change("contacts", json!({"board_id": b2}), Some(json!({"board_id": b1})))), Some(vec![b1.to_owned(), b2.to_owned()]));
    assert_eq!(names(change("contacts", json!({"board_id": b1}), Some(json!({"board_id": b1})))), Some(vec![b1.to_owned()]));
    assert_eq!(names(change("boards", json!({"id": b2}), None)), Some(vec![b2.to_owned()]));
    assert_eq!(names(change("board_columns", json!({"board_id": b1}), None)), Some(vec![b1.to_owned()]));
    assert_eq!(names(change("contact_favorites", json!({"contact_id": b1}), None)), None);
    assert_eq!(names(change("contacts", json!({"board_id": "not a board"}), None)), None);
}
