//! Parsing of configuration values (environment variables, worker vars) with errors that name
//! the variable, shared by the worker's and the backend's typed `Config`.

use std::ops::RangeInclusive;

/// A configuration value that cannot be used, naming the variable and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{name} is required but not set")]
    Missing { name: &'static str },
    #[error("{name} must be {expected}, got {got:?}")]
    Invalid {
        name: &'static str,
        expected: String,
        got: String,
    },
}

/// A boolean flag: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case, trimmed).
pub fn parse_flag(name: &'static str, raw: &str) -> Result<bool, SettingError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, "true or false", raw)),
    }
}

/// A whole number within `range`, such as a TTL in seconds or a port.
pub fn parse_number<T>(name: &'static str, raw: &str, range: RangeInclusive<T>) -> Result<T, SettingError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let expected = || format!("a whole number from {} to {}", range.start(), range.end());
    match raw.trim().parse::<T>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(SettingError::Invalid { name, expected: expected(), got: raw.to_owned() }),
    }
}

/// A base URL (`http://` or `https://`) with any trailing slashes removed, so that paths can be
/// appended with `format!("{base}/path")`.
pub fn parse_base_url(name: &'static str, raw: &str) -> Result<String, SettingError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let has_host = |rest: &str| !rest.is_empty() && !rest.starts_with('/');
    match trimmed.split_once("://") {
        Some(("http" | "https", rest)) if has_host(rest) => Ok(trimmed.to_owned()),
        _ => Err(invalid(name, "an http:// or https:// URL", raw)),
    }
}

/// A secret that must be present and non-empty. The error never repeats the value.
pub fn require_secret(name: &'static str, raw: Option<String>) -> Result<String, SettingError> {
    match raw {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(SettingError::Missing { name }),
    }
}

fn invalid(name: &'static str, expected: &str, got: &str) -> SettingError {
    SettingError::Invalid { name, expected: expected.to_owned(), got: got.to_owned() }
}

/// A secret, or a value that may carry one (a URL with a password): used, compared and sent,
/// never printed (`Debug` shows `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that needs it (a connection, a comparison, a header).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_accept_the_usual_spellings() {
        for raw in ["true", "TRUE", " 1 ", "yes", "on"] {
            assert_eq!(parse_flag("REDIS_ENABLED", raw), Ok(true), "{raw}");
        }
        for raw in ["false", "0", "No", "off"] {
            assert_eq!(parse_flag("REDIS_ENABLED", raw), Ok(false), "{raw}");
        }
    }

    #[test]
    fn a_bad_flag_names_the_variable() {
        let err = parse_flag("REDIS_CLUSTER_ENABLED", "maybe").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"REDIS_CLUSTER_ENABLED must be true or false, got "maybe""#
        );
    }

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(parse_number::<u32>("CACHE_TTL_CONTACTS_LIST", "180", 1..=86_400), Ok(180));
        let err = parse_number::<u32>("CACHE_TTL_CONTACTS_LIST", "0", 1..=86_400).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"CACHE_TTL_CONTACTS_LIST must be a whole number from 1 to 86400, got "0""#
        );
        assert!(parse_number::<u16>("PORT", "70000", 0..=65_535).is_err());
        assert!(parse_number::<u16>("PORT", "-1", 0..=65_535).is_err());
    }

    #[test]
    fn base_urls_lose_their_trailing_slash() {
        assert_eq!(
            parse_base_url("SUPABASE_URL", "https://x.supabase.co/"),
            Ok("https://x.supabase.co".to_owned())
        );
        assert_eq!(
            parse_base_url("BACKEND_URL", "http://127.0.0.1:8080"),
            Ok("http://127.0.0.1:8080".to_owned())
        );
        for bad in ["", "x.supabase.co", "ftp://x", "http://", "http:///path"] {
            assert!(parse_base_url("SUPABASE_URL", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_secrets_are_named_but_never_echoed() {
        assert_eq!(
            require_secret("INTERNAL_AUTH_KEY", Some("  ".into())),
            Err(SettingError::Missing { name: "INTERNAL_AUTH_KEY" })
        );
        assert_eq!(require_secret("INTERNAL_AUTH_KEY", Some("k".into())), Ok("k".into()));
    }
}
