//! The one error type at the HTTP edge: typed inside, `{"success": false, "error": {...}}` outside.

use contact_list_cache_core::envelope::ErrorBody;
use contact_list_cache_core::query::QueryError;
use contact_list_cache_core::settings::SettingError;
use worker::Response;

/// Everything a handler can fail with. Internal details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("{path} does not allow {method}")]
    MethodNotAllowed { method: String, path: String, allow: &'static str },
    #[error("{0}")]
    BadRequest(#[from] QueryError),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("you are not a member of this workspace")]
    Forbidden,
    #[error("the audit log is for the workspace's owners and admins")]
    NotAnAdmin,
    #[error("no source could answer: {0}")]
    Unavailable(String),
    #[error("this {per} has made too many {action} requests; retry in {retry_after} s")]
    TooManyRequests { action: &'static str, per: &'static str, retry_after: u64 },
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("in production this route is served only with {name} set")]
    NeedsSecret { name: &'static str },
    #[error("the worker is misconfigured: {0}")]
    Config(#[from] SettingError),
    #[error("internal error: {0}")]
    Internal(#[from] worker::Error),
}

impl AppError {
    fn status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden | Self::NotAnAdmin => 403,
            Self::TooManyRequests { .. } => 429,
            Self::PayloadTooLarge { .. } => 413,
            Self::Unavailable(_) | Self::NeedsSecret { .. } => 503,
            Self::Config(_) | Self::Internal(_) => 500,
        }
    }

    /// The error's `code` in the JSON answer (and in the audit log's `detail`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::BadRequest(_) => "invalid_parameter",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden | Self::NotAnAdmin => "forbidden",
            Self::Unavailable(_) => "unavailable",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::NeedsSecret { .. } => "not_configured",
            Self::Config(_) => "misconfigured",
            Self::Internal(_) => "internal",
        }
    }

    fn body(&self) -> ErrorBody {
        let code = self.code();
        match self {
            Self::BadRequest(err) => ErrorBody::new(code, err.message.clone(), Some(err.field.clone())),
            Self::Forbidden => ErrorBody::new(code, self.to_string(), Some("X-Workspace-ID".into())),
            Self::Unavailable(_) => ErrorBody::new(code, "the contact list is temporarily unavailable; retry shortly", None),
            Self::Internal(_) => ErrorBody::new(code, "internal error", None),
            Self::PayloadTooLarge { .. } => ErrorBody::new(code, self.to_string(), Some("body".into())),
            // The others say what is wrong; a misconfiguration names the variable, never its value.
            Self::NotFound { .. }
            | Self::MethodNotAllowed { .. }
            | Self::Unauthorized(_)
            | Self::NotAnAdmin
            | Self::TooManyRequests { .. }
            | Self::NeedsSecret { .. }
            | Self::Config(_) => {
                ErrorBody::new(code, self.to_string(), None)
            }
        }
    }

    /// Whether this is the server's fault (its details then go to the error log).
    pub fn is_server_error(&self) -> bool {
        self.status() >= 500
    }

    /// The JSON response for this error.
    pub fn into_response(self) -> worker::Result<Response> {
        let response = Response::from_json(&self.body())?.with_status(self.status());
        if let Self::MethodNotAllowed { allow, .. } = &self {
            response.headers().set("Allow", allow)?;
        }
        if let Self::Unauthorized(_) = &self {
            response.headers().set("WWW-Authenticate", "Bearer")?;
        }
        if let Self::TooManyRequests { retry_after, .. } = &self {
            response.headers().set("Retry-After", &retry_after.to_string())?;
        }
        Ok(response)
    }
}
