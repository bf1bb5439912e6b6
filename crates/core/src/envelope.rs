//! The JSON bodies the API answers with: contact lists, counts, errors and `/health` reports.

use crate::filter::Filter;
use crate::query::{ContactQuery, UserId, WorkspaceId};
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};

/// One contact as listed: the spec's fields plus `created_at` (the default sort key). Timestamps
/// are kept as the database encoded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub conversation_status: String,
    pub priority: Option<String>,
    pub last_message_time: Option<String>,
    pub assigned_user_id: Option<String>,
    pub board_column_id: Option<String>,
    pub created_at: String,
}

/// `data.pagination`. `page` is 0 for a page read by cursor (its number is not known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pagination {
    pub page: u32,
    #[serde(rename = "pageSize")]
    pub page_size: u8,
    pub total: u64,
    #[serde(rename = "totalPages")]
    pub total_pages: u64,
    /// The cursor of the page after this one, `null` when none follows (see `cursor`).
    #[serde(rename = "nextCursor", default)]
    pub next_cursor: Option<String>,
    /// The cursor of the page before this one, `null` when none precedes it.
    #[serde(rename = "prevCursor", default)]
    pub prev_cursor: Option<String>,
}

/// `data.filters`: the filters applied, empty strings where none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedFilters {
    pub filter: String,
    pub search: String,
    #[serde(rename = "assignedTo")]
    pub assigned_to: String,
    #[serde(rename = "columnId")]
    pub column_id: String,
}

/// `data.sort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedSort {
    #[serde(rename = "sortBy")]
    pub sort_by: String,
    #[serde(rename = "sortOrder")]
    pub sort_order: String,
}

/// `data` of a contact list answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactListData {
    pub contacts: Vec<Contact>,
    pub pagination: Pagination,
    pub filters: AppliedFilters,
    pub sort: AppliedSort,
}

/// The contact list answer, as in the spec: `{success, data, cached_at, cache_ttl}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactListResponse {
    pub success: bool,
    pub data: ContactListData,
    /// When this page was read from the database.
    pub cached_at: String,
    /// Seconds a cache may keep it.
    pub cache_ttl: u32,
}

impl ContactListResponse {
    /// The answer for `query` given one page of `contacts` out of `total`, read at `read_at`.
    pub fn new(query: &ContactQuery, contacts: Vec<Contact>, total: u64, read_at: UnixMillis, cache_ttl: u32) -> Self {
        let page_size = query.page_size.get();
        let (next_cursor, prev_cursor) = crate::cursor::page_cursors(query, &contacts, total);
        Self {
            success: true,
            data: ContactListData {
                contacts,
                pagination: Pagination {
                    page: if query.cursor.is_some() { 0 } else { query.page.get() },
                    page_size,
                    total,
                    total_pages: total.div_ceil(u64::from(page_size)),
                    next_cursor,
                    prev_cursor,
                },
                filters: AppliedFilters {
                    filter: query.filter.as_str().to_owned(),
                    search: query.search.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    assigned_to: query.assigned_to.as_ref().map(|id| id.to_string()).unwrap_or_default(),
                    column_id: query.column_id.as_ref().map(|id| id.to_string()).unwrap_or_default(),
                },
                sort: AppliedSort {
                    sort_by: query.sort_by.as_str().to_owned(),
                    sort_order: query.sort_order.as_str().to_owned(),
                },
            },
            cached_at: read_at.to_string(),
            cache_ttl,
        }
    }
}

/// Per-filter counts for one user in one workspace (the sidebar badges), keyed by filter name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsResponse {
    pub success: bool,
    pub data: CountsData,
    pub cached_at: String,
    pub cache_ttl: u32,
}

/// `data` of a counts answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsData {
    pub workspace_id: String,
    pub user_id: String,
    pub counts: std::collections::BTreeMap<String, u64>,
}

impl CountsResponse {
    /// `counts` holds one number per [`Filter::ALL`] entry, in that order.
    pub fn new(workspace: &WorkspaceId, user: &UserId, counts: [u64; 10], read_at: UnixMillis, cache_ttl: u32) -> Self {
        Self {
            success: true,
            data: CountsData {
                workspace_id: workspace.to_string(),
                user_id: user.to_string(),
                counts: Filter::ALL.iter().zip(counts).map(|(f, n)| (f.as_str().to_owned(), n)).collect(),
            },
            cached_at: read_at.to_string(),
            cache_ttl,
        }
    }
}

/// When the page in `body` (any of the envelopes above, as served) was read from its source:
/// its `cached_at`. `None` when the body has none.
///
/// Every cache hit below KV asks this of a page of tens of kilobytes, so the envelopes' own
/// layout is read first: `cached_at` is their last field but one, written compactly, and the
/// text `"cached_at":"` cannot occur inside a JSON string (its quotes would be escaped). Any
/// other body is parsed.
pub fn cached_at(body: &str) -> Option<UnixMillis> {
    const FIELD: &str = r#""cached_at":""#;
    let tail = body.rfind(FIELD).and_then(|at| body.get(at + FIELD.len()..at + FIELD.len() + 21));
    if let Some(read_at) = tail.and_then(|t| t.strip_suffix('"')).and_then(UnixMillis::parse_rfc3339) {
        return Some(read_at);
    }
    #[derive(Deserialize)]
    struct CachedAt {
        cached_at: String,
    }
    serde_json::from_str::<CachedAt>(body).ok().and_then(|c| UnixMillis::parse_rfc3339(&c.cached_at))
}

/// `{"success": false, "error": {"code", "message", "field"?}}`: the one error shape of every
/// endpoint, worker and backend alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub success: bool,
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable `code`, a sentence for people, and the request
/// field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>, field: Option<String>) -> Self {
        Self {
            success: false,
            error: ErrorDetail { code: code.into(), message: message.into(), field },
        }
    }
}

/// Overall health: `Healthy` when every dependency answered, `Degraded` when the service runs
/// but a dependency does not. Health endpoints answer 200 in both cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
}

impl HealthStatus {
    /// Healthy only when every check passed.
    pub fn from_checks(checks: impl IntoIterator<Item = bool>) -> Self {
        if checks.into_iter().all(|ok| ok) {
            Self::Healthy
        } else {
            Self::Degraded
        }
    }
}

/// The worker's `GET /health` body, field for field as in the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHealth {
    pub status: HealthStatus,
    pub worker: String,
    pub version: String,
    pub edge_location: String,
    pub kv_available: bool,
    /// Whether the backend's `/health` answered within its short budget.
    pub backend_available: bool,
    /// Whether Supabase's PostgREST answered within its short budget.
    pub supabase_available: bool,
    pub timestamp: String,
    /// Milliseconds spent answering, as `"5ms"`.
    pub response_time: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_error_body_has_the_pinned_shape() {
        let body = ErrorBody::new("invalid_parameter", "pageSize must be 1..=100", Some("pageSize".into()));
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"success": false, "error": {
                "code": "invalid_parameter", "message": "pageSize must be 1..=100", "field": "pageSize"
            }})
        );
        let no_field = ErrorBody::new("not_found", "no route", None);
        assert_eq!(
            serde_json::to_value(&no_field).unwrap(),
            json!({"success": false, "error": {"code": "not_found", "message": "no route"}})
        );
    }

    #[test]
    fn a_contact_list_matches_the_spec_shape() {
        let query = ContactQuery::parse("b6495e04-5abb-e13f-48ee-5435e1e75895", "filter=open&sortBy=last_message_time").unwrap();
        let body = ContactListResponse::new(&query, vec![], 150, UnixMillis(1_737_974_100_000), 180);
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({
                "success": true,
                "data": {
                    "contacts": [],
                    "pagination": {"page": 1, "pageSize": 50, "total": 150, "totalPages": 3, "nextCursor": null, "prevCursor": null},
                    "filters": {"filter": "open", "search": "", "assignedTo": "", "columnId": ""},
                    "sort": {"sortBy": "last_message_time", "sortOrder": "desc"}
                },
                "cached_at": "2025-01-27T10:35:00Z",
                "cache_ttl": 180
            })
        );
    }

    #[test]
    fn total_pages_round_up_and_are_zero_for_nothing() {
        let query = ContactQuery::parse("b6495e04-5abb-e13f-48ee-5435e1e75895", "pageSize=50").unwrap();
        let pages = |total| ContactListResponse::new(&query, vec![], total, UnixMillis(0), 180).data.pagination.total_pages;
        assert_eq!((pages(0), pages(1), pages(50), pages(51)), (0, 1, 1, 2));
    }

    #[test]
    fn health_is_degraded_when_any_check_fails() {
        assert_eq!(HealthStatus::from_checks([true, true]), HealthStatus::Healthy);
        assert_eq!(HealthStatus::from_checks([true, false]), HealthStatus::Degraded);
        assert_eq!(HealthStatus::from_checks([]), HealthStatus::Healthy);
    }

    #[test]
    fn the_worker_health_body_matches_the_spec_example() {
        let health = WorkerHealth {
            status: HealthStatus::Healthy,
            worker: "contact-list-cache".into(),
            version: "1.0.0".into(),
            edge_location: "SFO".into(),
            kv_available: true,
            backend_available: true,
            supabase_available: true,
            timestamp: "2025-01-27T10:35:00Z".into(),
            response_time: "5ms".into(),
        };
        assert_eq!(
            serde_json::to_value(&health).unwrap(),
            json!({
                "status": "healthy", "worker": "contact-list-cache", "version": "1.0.0",
                "edge_location": "SFO", "kv_available": true,
                "backend_available": true, "supabase_available": true,
                "timestamp": "2025-01-27T10:35:00Z", "response_time": "5ms"
            })
        );
    }

    #[test]
    fn cached_at_is_found_in_an_envelope_as_written_and_in_any_other_json() {
        let at = UnixMillis::parse_rfc3339("2025-01-27T10:35:00Z");
        let compact = r#"{"success":true,"data":{"name":"\"cached_at\":\"1999-01-01T00:00:00Z\""},"cached_at":"2025-01-27T10:35:00Z","cache_ttl":180}"#;
        assert_eq!(cached_at(compact), at);
        assert_eq!(cached_at(r#"{ "cached_at" : "2025-01-27T10:35:00Z" }"#), at);
        assert_eq!(cached_at(r#"{"cached_at":"2025-01-27T10:35:00Z"#), None);
        assert_eq!(cached_at(r#"{"v":3}"#), None);
        assert_eq!(cached_at("not json"), None);
    }
}
