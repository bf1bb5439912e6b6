//! The one error type at the HTTP edge: typed inside, `{"success": false, "error": {...}}` outside.

use contact_list_cache_core::envelope::ErrorBody;
use contact_list_cache_core::settings::SettingError;
use worker::Response;

/// Everything a handler can fail with. Internal details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("{path} does not allow {method}")]
    MethodNotAllowed { method: String, path: String, allow: &'static str },
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
            Self::Config(_) | Self::Internal(_) => 500,
        }
    }

    fn body(&self) -> ErrorBody {
        match self {
            Self::NotFound { .. } => ErrorBody::new("not_found", self.to_string(), None),
            Self::MethodNotAllowed { .. } => {
                ErrorBody::new("method_not_allowed", self.to_string(), None)
            }
            // Names the variable (never its value) so ops can fix the deployment.
            Self::Config(_) => ErrorBody::new("misconfigured", self.to_string(), None),
            Self::Internal(_) => ErrorBody::new("internal", "internal error", None),
        }
    }

    /// The JSON response for this error; logs the details of server-side failures.
    pub fn into_response(self) -> worker::Result<Response> {
        if self.status() >= 500 {
            worker::console_error!("{self}");
        }
        let response = Response::from_json(&self.body())?.with_status(self.status());
        if let Self::MethodNotAllowed { allow, .. } = &self {
            response.headers().set("Allow", allow)?;
        }
        Ok(response)
    }
}
