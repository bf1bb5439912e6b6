//! HTTP routes of the backend, one module per endpoint family.

pub mod health;

use axum::http::{StatusCode, Uri};
use axum::Json;
use contact_list_cache_core::envelope::ErrorBody;

/// Any unknown path: the shared JSON error shape with 404.
pub async fn not_found(uri: Uri) -> (StatusCode, Json<ErrorBody>) {
    let message = format!("no route for {}", uri.path());
    (StatusCode::NOT_FOUND, Json(ErrorBody::new("not_found", message, None)))
}
