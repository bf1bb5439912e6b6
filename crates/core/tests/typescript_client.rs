//! The TypeScript client's types (client/src/envelope.ts) follow these envelopes: every body the
//! client reads, once fully populated and once with every optional field unset, must equal the
//! committed fixture
//! client/fixtures/envelope.json, which the client's own test checks key for key against its
//! types. A field added, renamed or retyped here fails this test until the fixture is written
//! again (`UPDATE_CLIENT_FIXTURE=1 cargo test -p contact-list-cache-core --test typescript_client`)
//! and then the client's test until its types follow.

use contact_list_cache_core::envelope::{
    AppliedFilters, AppliedSort, Contact, ContactListData, ContactListResponse, CountsData, CountsResponse, ErrorBody, ErrorDetail, Pagination,
};
use contact_list_cache_core::filter::Filter;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Every envelope with every field set (`full`) and with every optional one unset (`minimal`),
/// written as struct literals: a new field fails to compile here.
fn every_envelope() -> Value {
    let full = Contact {
        id: "8f14e45f-ceea-467f-a0e6-7d7b5b7a1c01".into(),
        name: "Ada Lovelace".into(),
        email: Some("ada@example.test".into()),
        phone: Some("+15550100".into()),
        conversation_status: "Open".into(),
        priority: Some("high".into()),
        last_message_time: Some("2025-01-27T10:30:00+00:00".into()),
        assigned_user_id: Some("c9f0f895-fb98-4b91-b1b3-6a1f1a8d2a02".into()),
        board_column_id: Some("45c48cce-2e2d-4fbd-aa1a-f1a4c2d1e303".into()),
        created_at: "2025-01-20T08:00:00+00:00".into(),
    };
    let list = ContactListResponse {
        success: true,
        data: ContactListData {
            contacts: vec![full.clone()],
            pagination: Pagination {
                page: 2,
                page_size: 25,
                total: 150,
                total_pages: 6,
                next_cursor: Some("AWFwzn3r1tNRvbGaRzvtYh1rAUFkYSBMb3ZlbGFjZaKnzIRI7L6BDV8uP5PRyPM".into()),
                prev_cursor: Some("AWJwzn3r1tNRvbGaRzvtYh1rAUFkYSBMb3ZlbGFjZVvnmHmgVjpT7MeHI1x8xJw".into()),
            },
            filters: AppliedFilters {
                filter: "open".into(),
                search: "ada".into(),
                assigned_to: "c9f0f895-fb98-4b91-b1b3-6a1f1a8d2a02".into(),
                column_id: "45c48cce-2e2d-4fbd-aa1a-f1a4c2d1e303".into(),
            },
            sort: AppliedSort { sort_by: "name".into(), sort_order: "asc".into() },
        },
        cached_at: "2025-01-27T10:35:00Z".into(),
        cache_ttl: 180,
    };
    let counts = CountsResponse {
        success: true,
        data: CountsData {
            workspace_id: "d3d94468-02a4-4e4b-8b9a-0c5e2f3a4b05".into(),
            user_id: "c9f0f895-fb98-4b91-b1b3-6a1f1a8d2a02".into(),
            counts: Filter::ALL.iter().zip(1..).map(|(f, n)| (f.as_str().to_owned(), n)).collect(),
        },
        cached_at: "2025-01-27T10:35:00Z".into(),
        cache_ttl: 300,
    };
    let error = ErrorBody {
        success: false,
        error: ErrorDetail { code: "invalid_parameter".into(), message: "pageSize must be 1..=100".into(), field: Some("pageSize".into()) },
    };
    let bare = Contact {
        email: None,
        phone: None,
        priority: None,
        last_message_time: None,
        assigned_user_id: None,
        board_column_id: None,
        ..full
    };
    let mut bare_list = list.clone();
    bare_list.data.contacts = vec![bare];
    bare_list.data.pagination.next_cursor = None;
    bare_list.data.pagination.prev_cursor = None;
    let bare_error = ErrorBody { success: false, error: ErrorDetail { field: None, ..error.error.clone() } };
    json!({
        "full": {"contactList": list, "counts": counts, "error": error},
        "minimal": {"contactList": bare_list, "counts": counts, "error": bare_error},
    })
}

#[test]
fn the_typescript_fixture_is_every_envelope_as_serialized() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../client/fixtures/envelope.json");
    let expected = every_envelope();
    if std::env::var_os("UPDATE_CLIENT_FIXTURE").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&expected).unwrap() + "\n").unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        committed, expected,
        "client/fixtures/envelope.json differs from the Rust envelopes: write it again with UPDATE_CLIENT_FIXTURE=1 and update client/src/envelope.ts"
    );
}
