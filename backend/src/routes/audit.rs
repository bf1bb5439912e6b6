//! `POST /api/audit` (the worker writes the records of its cache operations) and
//! `GET /api/workspaces/{workspaceId}/audit?limit=&before=` (one page of a workspace's records,
//! newest first, for the user of the forwarded access token when they are its owner or admin).

use crate::audit;
use crate::error::ApiError;
use crate::access::{self, Acting};
use crate::routes::bad_request;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use contact_list_cache_core::audit::{page_before, page_limit, AuditRecord};
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::query::WorkspaceId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The most records one call may write.
const MAX_RECORDS: usize = 100;

#[derive(Debug, Deserialize)]
pub struct WriteRequest {
    records: Vec<AuditRecord>,
}

/// Stores the records (each validated) and prunes those past `AUDIT_RETENTION_DAYS`.
pub async fn write(State(state): State<Arc<AppState>>, body: Result<Json<WriteRequest>, JsonRejection>) -> Result<Json<Value>, ApiError> {
    let Json(request) = body.map_err(|rejection| bad_request("records", rejection.body_text()))?;
    if request.records.len() > MAX_RECORDS {
        return Err(bad_request("records", format!("at most {MAX_RECORDS} records per call")));
    }
    for record in &request.records {
        record.validate()?;
    }
    let done = audit::write(&state.db, &request.records, state.config.audit_retention_days)
        .await
        .map_err(|err| ApiError::unavailable(CacheLayer::Database, anyhow::Error::new(err).context("writing audit records")))?;
    if done.pruned > 0 {
        tracing::info!(pruned = done.pruned, retention_days = state.config.audit_retention_days, "pruned audit records");
    }
    Ok(Json(json!({"success": true, "data": done})))
}

/// One page of the workspace's records; 403 unless the token's user is its owner or admin.
pub async fn read(State(state): State<Arc<AppState>>, Path(workspace): Path<String>, Query(params): Query<HashMap<String, String>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let workspace = WorkspaceId::parse("workspaceId", &workspace)?;
    let Acting::User(caller) = access::acting(&state, &headers).await? else {
        return Err(ApiError::NoUser("the audit log needs the user's own access token"));
    };
    let limit = page_limit(params.get("limit").map(String::as_str))?;
    let before = page_before(params.get("before").map(String::as_str))?;
    let page = audit::read(&state.db, &workspace, &caller, limit, before)
        .await
        .map_err(|err| ApiError::unavailable(CacheLayer::Database, anyhow::Error::new(err).context("reading audit records")))?;
    match page.admin {
        None => Err(ApiError::NotAMember),
        Some(false) => Err(ApiError::NotAnAdmin),
        Some(true) => {
            let mut response = format!(r#"{{"success":true,"data":{}}}"#, page.records).into_response();
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(response)
        }
    }
}
