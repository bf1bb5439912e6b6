//! The audit log's record: who did which cache operation on which workspace's scopes, with what
//! result, under which request id, when. The worker writes it, the backend stores and serves it;
//! this is the one definition both read.

use crate::query::{QueryError, UserId, WorkspaceId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most scopes one record names (a whole-workspace invalidation names eleven).
pub const MAX_SCOPES: usize = 64;
/// The longest request id the edge accepts (see the worker's `X-Request-ID` rule).
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// The longest detail (an error code, say) kept with a record.
pub const MAX_DETAIL_LEN: usize = 256;

/// An audited operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `POST /api/cache/invalidate`.
    Invalidate,
    /// `POST /api/cache/warm`.
    Warm,
    /// `POST /api/cache/webhook`: a database change (change capture or a Supabase webhook).
    Webhook,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalidate => "invalidate",
            Self::Warm => "warm",
            Self::Webhook => "webhook",
        }
    }

    /// The operation named `raw`, as stored.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Invalidate, Self::Warm, Self::Webhook].into_iter().find(|op| op.as_str() == raw)
    }
}

/// Who did it: a signed-in user (the JWT's `sub`) or a service (`service:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    Service(&'static str),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(user) => write!(f, "{user}"),
            Self::Service(name) => write!(f, "service:{name}"),
        }
    }
}

/// Whether `raw` is an actor as written: a user id, or `service:` and a short name of
/// `[a-z0-9_-]`.
pub fn is_actor(raw: &str) -> bool {
    match raw.strip_prefix("service:") {
        Some(name) => (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b)),
        None => UserId::parse("actor", raw).is_ok_and(|user| user.as_str() == raw),
    }
}

/// How the operation ended: the HTTP status it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
}

impl Outcome {
    /// 2xx is ok, anything else an error.
    pub fn of_status(status: u16) -> Self {
        if (200..300).contains(&status) {
            Self::Ok
        } else {
            Self::Error
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// One audited operation as the worker sends it to the backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub actor: String,
    pub workspace_id: WorkspaceId,
    pub operation: Operation,
    /// The scopes touched (`open`, `counts`, ...), or asked for when the operation failed.
    pub scopes: Vec<String>,
    /// The boards touched, or none for every board of the workspace.
    #[serde(default)]
    pub boards: Vec<String>,
    pub result: Outcome,
    pub status: u16,
    pub request_id: String,
    /// When the operation was answered, in milliseconds since the epoch.
    pub at: u64,
    /// The error code of a failed operation (`invalid_parameter`, ...), never user data.
    #[serde(default)]
    pub detail: Option<String>,
}

impl AuditRecord {
    /// Checks what the backend stores: a well-formed actor and request id, short scope names,
    /// a status that says the same as the result.
    pub fn validate(&self) -> Result<(), QueryError> {
        let bad = |field: &str, message: &str| Err(QueryError::new(field, message));
        if !is_actor(&self.actor) {
            return bad("actor", "actor must be a user id or service:<name>");
        }
        if self.request_id.is_empty() || self.request_id.len() > MAX_REQUEST_ID_LEN || !self.request_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
            return bad("request_id", "request_id must be 1 to 128 of [A-Za-z0-9._-]");
        }
        if self.scopes.len() > MAX_SCOPES || self.scopes.iter().any(|s| s.is_empty() || s.len() > 64) {
            return bad("scopes", "scopes must be at most 64 names of at most 64 characters");
        }
        if self.boards.len() > MAX_SCOPES || self.boards.iter().any(|b| crate::query::BoardId::parse("boards", b).is_err()) {
            return bad("boards", "boards must be at most 64 board ids");
        }
        if !(100..=599).contains(&self.status) || Outcome::of_status(self.status) != self.result {
            return bad("status", "status must be an HTTP status that agrees with result");
        }
        if self.detail.as_ref().is_some_and(|d| d.len() > MAX_DETAIL_LEN) {
            return bad("detail", "detail must be at most 256 characters");
        }
        Ok(())
    }
}

/// How many records one page of the audit log holds: `limit` (default 50, 1 to 200).
pub fn page_limit(raw: Option<&str>) -> Result<u32, QueryError> {
    match raw {
        None | Some("") => Ok(50),
        Some(raw) => raw.parse().ok().filter(|n| (1..=200).contains(n)).ok_or_else(|| QueryError::new("limit", "limit must be a whole number from 1 to 200")),
    }
}

/// The cursor of the next page: records older than the one with id `before`.
pub fn page_before(raw: Option<&str>) -> Result<Option<i64>, QueryError> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => raw.parse().ok().filter(|n| *n > 0).map(Some).ok_or_else(|| QueryError::new("before", "before must be the id of a record")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "5b7c6a3e-0d43-4a3f-9d7e-1a2b3c4d5e6f";
    const WS: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";

    fn record() -> AuditRecord {
        AuditRecord {
            actor: USER.into(),
            workspace_id: WorkspaceId::parse("w", WS).unwrap(),
            operation: Operation::Invalidate,
            scopes: vec!["open".into(), "counts".into()],
            boards: vec![],
            result: Outcome::Ok,
            status: 200,
            request_id: "req-1".into(),
            at: 1_700_000_000_000,
            detail: None,
        }
    }

    #[test]
    fn a_record_serializes_in_the_pinned_shape() {
        let json = serde_json::to_string(&record()).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"actor":"{USER}","workspace_id":"{WS}","operation":"invalidate","scopes":["open","counts"],"boards":[],"result":"ok","status":200,"request_id":"req-1","at":1700000000000,"detail":null}}"#)
        );
        assert_eq!(serde_json::from_str::<AuditRecord>(&json).unwrap(), record());
    }

    #[test]
    fn actors_are_users_or_named_services() {
        assert_eq!(Actor::Service("webhook").to_string(), "service:webhook");
        assert_eq!(Actor::User(UserId::parse("sub", USER).unwrap()).to_string(), USER);
        for good in [USER, "service:webhook", "service:change-capture"] {
            assert!(is_actor(good), "{good}");
        }
        for bad in ["", "service:", "service:Web Hook", "admin", &USER.to_uppercase()] {
            assert!(!is_actor(bad), "{bad}");
        }
    }

    #[test]
    fn a_record_whose_status_and_result_disagree_is_refused() {
        let mut wrong = record();
        wrong.status = 400;
        assert_eq!(wrong.validate().unwrap_err().field, "status");
        wrong.result = Outcome::of_status(400);
        assert_eq!(wrong.validate(), Ok(()));
    }

    #[test]
    fn request_ids_follow_the_edge_rule() {
        let mut r = record();
        r.request_id = "a b".into();
        assert_eq!(r.validate().unwrap_err().field, "request_id");
        r.request_id = "x".repeat(129);
        assert_eq!(r.validate().unwrap_err().field, "request_id");
    }

    #[test]
    fn pages_default_to_fifty_and_refuse_nonsense() {
        assert_eq!(page_limit(None), Ok(50));
        assert_eq!(page_limit(Some("200")), Ok(200));
        assert_eq!(page_limit(Some("0")).unwrap_err().field, "limit");
        assert_eq!(page_limit(Some("ten")).unwrap_err().field, "limit");
        assert_eq!(page_before(Some("17")), Ok(Some(17)));
        assert_eq!(page_before(Some("-1")).unwrap_err().field, "before");
    }
}
