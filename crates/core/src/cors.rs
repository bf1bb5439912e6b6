//! Which browser origins may read responses (CORS), decided from a configured allowlist.

use crate::settings::SettingError;

/// Methods a browser may use cross-origin.
pub const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Request headers a browser may send cross-origin.
pub const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Cache-Control, X-Workspace-ID, X-Request-ID";
/// Response headers a browser script may read: the cache diagnostics the frontend shows.
pub const EXPOSE_HEADERS: &str =
    "X-Cache-Status, X-Cache-Layer, X-Cache-Key, X-Cache-Coalesced, X-Cache-Generation, X-Response-Time, X-Worker-Location, X-Request-ID, Age";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_SECONDS: u32 = 86_400;

/// The origins allowed to read responses. Credentials (cookies) are never allowed: the API
/// authenticates with a bearer token, so a wildcard is safe and never paired with credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Any origin (`*`).
    AnyOrigin,
    /// Exactly these origins, compared as `scheme://host[:port]` without a trailing slash.
    Origins(Vec<String>),
}

impl CorsPolicy {
    /// Parses `CORS_ALLOWED_ORIGINS`: `*`, or a comma-separated list of origins.
    pub fn parse(name: &'static str, raw: &str) -> Result<Self, SettingError> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::AnyOrigin);
        }
        let origins: Vec<String> = raw
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        let well_formed = |o: &String| {
            (o.starts_with("http://") || o.starts_with("https://")) && o.matches('/').count() == 2
        };
        if origins.is_empty() || !origins.iter().all(well_formed) {
            return Err(SettingError::Invalid {
                name,
                expected: "* or a comma-separated list of origins like https://app.example.com".into(),
                got: raw.to_owned(),
            });
        }
        Ok(Self::Origins(origins))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, or `None` when the
    /// origin may not read the response (no header is sent, and the browser blocks it).
    pub fn allow_origin(&self, origin: Option<&str>) -> Option<String> {
        match (self, origin) {
            (Self::AnyOrigin, _) => Some("*".to_owned()),
            (Self::Origins(list), Some(origin)) => {
                list.iter().any(|allowed| allowed == origin).then(|| origin.to_owned())
            }
            (Self::Origins(_), None) => None,
        }
    }

    /// Whether answers vary by the `Origin` request header (they do for an allowlist).
    pub fn varies_by_origin(&self) -> bool {
        matches!(self, Self::Origins(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_allows_every_origin() {
        let policy = CorsPolicy::parse("CORS_ALLOWED_ORIGINS", "*").unwrap();
        assert_eq!(policy.allow_origin(Some("https://evil.test")), Some("*".into()));
        assert!(!policy.varies_by_origin());
    }

    #[test]
    fn an_allowlist_echoes_only_listed_origins() {
        let policy =
            CorsPolicy::parse("CORS_ALLOWED_ORIGINS", "https://app.example.com/, http://localhost:3000")
                .unwrap();
        assert_eq!(
            policy.allow_origin(Some("http://localhost:3000")),
            Some("http://localhost:3000".into())
        );
        assert_eq!(policy.allow_origin(Some("https://app.example.com")), Some("https://app.example.com".into()));
        assert_eq!(policy.allow_origin(Some("https://app.example.com.evil.test")), None);
        assert_eq!(policy.allow_origin(None), None);
        assert!(policy.varies_by_origin());
    }

    #[test]
    fn malformed_allowlists_are_rejected() {
        for bad in ["", "app.example.com", "https://a.test/path", " , "] {
            assert!(CorsPolicy::parse("CORS_ALLOWED_ORIGINS", bad).is_err(), "{bad:?}");
        }
    }
}
