//! Typed backend configuration, loaded once at startup from the environment.

use contact_list_cache_core::capacity::parse_ratio;
use crate::capture::settings::CaptureSettings;
use contact_list_cache_core::engine::{Budgets, Policy};
use contact_list_cache_core::freshness::FreshnessPolicy;
use contact_list_cache_core::sealed::Keyring;
use contact_list_cache_core::settings::{parse_base_url, parse_flag, parse_number, require_secret, Secret, SettingError};
use crate::db_target::DbTarget;
use contact_list_cache_core::secure::RotatingSecret;
use crate::tls::CaFile;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Everything the backend reads from its environment, with the spec's defaults. Secrets, and URLs
/// that may carry credentials, are [`Secret`]s: printing a `Config` never shows them.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_PUBLIC_URL`, `redis://[user:password@]host:port`.
    pub redis_url: Secret<String>,
    /// `REDIS_CA_CERT`: a PEM file of the CA(s) to trust for a `rediss://` URL instead of the
    /// built-in Mozilla roots.
    pub redis_ca_cert: Option<CaFile>,
    /// `REDIS_CLUSTER_ENABLED`: talk Redis Cluster protocol to `redis_url`.
    pub redis_cluster_enabled: bool,
    /// `CACHE_TTL_CONTACTS_LIST`, seconds (default 180).
    pub ttl_contacts_list: u32,
    /// `CACHE_TTL_CONTACT_COUNTS`, seconds (default 300).
    pub ttl_contact_counts: u32,
    /// `REDIS_TIMEOUT_MS`: the bound on any one Redis round trip (default 500).
    pub redis_timeout: Duration,
    /// `DATABASE_URL`: PostgreSQL for the fallback read path and counts, when configured. Its
    /// `sslmode` and `sslrootcert` parameters (checked here) say how TLS is used.
    pub database_url: Option<Secret<String>>,
    /// `DATABASE_TIMEOUT_MS`: the bound on getting a connection and on any one statement (3000).
    pub database_timeout: Duration,
    /// `DATABASE_POOL_SIZE`: most connections held open (16).
    pub database_pool_size: usize,
    /// `INTERNAL_AUTH_KEY`: the shared secret the worker sends as `X-Internal-Auth`; while it
    /// rotates, `INTERNAL_AUTH_KEY_PREVIOUS` is accepted too. It opens no user's data by itself.
    pub internal_auth_key: RotatingSecret,
    /// `METRICS_TOKEN` (and while it rotates `METRICS_TOKEN_PREVIOUS`): the bearer token of
    /// `/metrics` and `/api/cache/stats`. Unset, they answer 401 to everyone.
    pub metrics_token: Option<RotatingSecret>,
    /// `SUPABASE_URL`: the project whose JWKS (`/auth/v1/.well-known/jwks.json`) verifies
    /// ES256/RS256 access tokens.
    pub supabase_url: String,
    /// `SUPABASE_JWT_SECRET`: verifies HS256 access tokens.
    pub jwt_secret: Secret<String>,
    /// `WORKER_WEBHOOK_URL` and `WEBHOOK_SECRET`: where change capture forwards database changes
    /// (the worker's `/api/cache/webhook`) and the secret it sends. Both, with `DATABASE_URL`,
    /// turn change capture on.
    pub webhook: Option<(String, Secret<String>)>,
    /// How change capture consumes the outbox (`CHANGE_CAPTURE_*`).
    pub capture: CaptureSettings,
    /// `CACHE_ENCRYPTION_KEY`: seals every value stored in Redis (shared with every read's
    /// Redis adapter).
    pub keyring: Arc<Keyring>,
    /// `AUDIT_RETENTION_DAYS` (default 90, 1–3650): audit records older than this are deleted
    /// with each write of new ones.
    pub audit_retention_days: u32,
    /// `REDIS_MEMORY_LIMIT_BYTES` (default: Redis's own `maxmemory`) and `REDIS_MEMORY_WARN_RATIO`
    /// (default 0.8): `/api/cache/stats` warns from this share of the limit on.
    pub redis_memory_limit_bytes: Option<u64>,
    pub redis_memory_warn_ratio: f64,
    /// `HOST` (default 0.0.0.0) and `PORT` (default 8080; 0 picks a free port).
    pub host: IpAddr,
    pub port: u16,
    /// `SHUTDOWN_TIMEOUT_SECS`: after SIGTERM/SIGINT, how long in-flight requests may take to
    /// finish before the process stops without them (default 8, under `podman stop`'s 10).
    pub shutdown_timeout: Duration,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, SettingError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let seconds = |name: &'static str, default: u32| {
            get(name).map_or(Ok(default), |raw| parse_number(name, &raw, 1..=86_400))
        };
        let redis_url = get("REDIS_PUBLIC_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(SettingError::Invalid {
                name: "REDIS_PUBLIC_URL",
                expected: "a redis:// or rediss:// URL".into(),
                got: redact_url(&redis_url),
            });
        }
        let redis_ca_cert = match get("REDIS_CA_CERT") {
            None => None,
            Some(_) if !redis_url.starts_with("rediss://") => {
                return Err(SettingError::Invalid {
                    name: "REDIS_CA_CERT",
                    expected: "unset unless REDIS_PUBLIC_URL is a rediss:// URL".into(),
                    got: format!("set with REDIS_PUBLIC_URL={}", redact_url(&redis_url)),
                })
            }
            Some(path) => Some(CaFile::read("REDIS_CA_CERT", path.trim())?),
        };
        let database_url = get("DATABASE_URL");
        if let Some(url) = &database_url {
            DbTarget::parse(url)?;
        }
        let host = match get("HOST") {
            None => IpAddr::from([0, 0, 0, 0]),
            Some(raw) => raw.trim().parse().map_err(|_| SettingError::Invalid {
                name: "HOST",
                expected: "an IP address such as 127.0.0.1".into(),
                got: raw,
            })?,
        };
        Ok(Self {
            redis_url: Secret::new(redis_url),
            redis_ca_cert,
            redis_cluster_enabled: get("REDIS_CLUSTER_ENABLED")
                .map_or(Ok(false), |raw| parse_flag("REDIS_CLUSTER_ENABLED", &raw))?,
            ttl_contacts_list: seconds("CACHE_TTL_CONTACTS_LIST", 180)?,
            ttl_contact_counts: seconds("CACHE_TTL_CONTACT_COUNTS", 300)?,
            redis_timeout: Duration::from_millis(
                get("REDIS_TIMEOUT_MS")
                    .map_or(Ok(500), |raw| parse_number("REDIS_TIMEOUT_MS", &raw, 10..=60_000))?,
            ),
            database_url: database_url.map(Secret::new),
            database_timeout: Duration::from_millis(
                get("DATABASE_TIMEOUT_MS")
                    .map_or(Ok(3000), |raw| parse_number("DATABASE_TIMEOUT_MS", &raw, 10..=60_000))?,
            ),
            database_pool_size: get("DATABASE_POOL_SIZE")
                .map_or(Ok(16), |raw| parse_number("DATABASE_POOL_SIZE", &raw, 1..=1000))?,
            internal_auth_key: RotatingSecret::new(require_secret("INTERNAL_AUTH_KEY", get("INTERNAL_AUTH_KEY"))?, get("INTERNAL_AUTH_KEY_PREVIOUS")),
            metrics_token: get("METRICS_TOKEN").map(|current| RotatingSecret::new(current, get("METRICS_TOKEN_PREVIOUS"))),
            supabase_url: parse_base_url("SUPABASE_URL", &require_secret("SUPABASE_URL", get("SUPABASE_URL"))?)?,
            jwt_secret: Secret::new(require_secret("SUPABASE_JWT_SECRET", get("SUPABASE_JWT_SECRET"))?),
            webhook: match (get("WORKER_WEBHOOK_URL"), get("WEBHOOK_SECRET")) {
                (None, None) => None,
                (Some(url), Some(secret)) => Some((parse_base_url("WORKER_WEBHOOK_URL", &url)?, Secret::new(secret))),
                (Some(_), None) => return Err(SettingError::Missing { name: "WEBHOOK_SECRET" }),
                (None, Some(_)) => return Err(SettingError::Missing { name: "WORKER_WEBHOOK_URL" }),
            },
            capture: CaptureSettings::from_lookup(get)?,
            keyring: Arc::new(Keyring::parse("CACHE_ENCRYPTION_KEY", &require_secret("CACHE_ENCRYPTION_KEY", get("CACHE_ENCRYPTION_KEY"))?)?),
            audit_retention_days: get("AUDIT_RETENTION_DAYS").map_or(Ok(90), |raw| parse_number("AUDIT_RETENTION_DAYS", &raw, 1..=3650))?,
            redis_memory_limit_bytes: get("REDIS_MEMORY_LIMIT_BYTES").map(|raw| parse_number("REDIS_MEMORY_LIMIT_BYTES", &raw, 1..=u64::MAX)).transpose()?,
            redis_memory_warn_ratio: get("REDIS_MEMORY_WARN_RATIO").map_or(Ok(0.8), |raw| parse_ratio("REDIS_MEMORY_WARN_RATIO", &raw))?,
            host,
            port: get("PORT").map_or(Ok(8080), |raw| parse_number("PORT", &raw, 0..=65_535))?,
            shutdown_timeout: Duration::from_secs(
                get("SHUTDOWN_TIMEOUT_SECS").map_or(Ok(8), |raw| parse_number("SHUTDOWN_TIMEOUT_SECS", &raw, 1..=3600))?,
            ),
        })
    }

    /// How the engine reads a page kept `ttl_seconds` in Redis: fresh for the TTL, and no
    /// stale-while-revalidate or stale-if-error window (Redis expires its own entries, and the
    /// worker keeps the stale copies). Each Redis call may take two `REDIS_TIMEOUT_MS` (connecting,
    /// then the command, each bounded inside `RedisStore`), each PostgreSQL call two
    /// `DATABASE_TIMEOUT_MS` (`Database` bounds a connection and its statement by one already:
    /// this is the backstop). KV and the fallback are the worker's layers, with no budget here.
    pub fn read_policy(&self, ttl_seconds: u32) -> Policy {
        let twice = |timeout: Duration| u32::try_from(timeout.as_millis() * 2).unwrap_or(u32::MAX);
        Policy {
            freshness: FreshnessPolicy { ttl_ms: u64::from(ttl_seconds) * 1000, revalidate_ms: 0, grace_ms: 0 },
            budgets: Budgets { kv_ms: 0, redis_ms: twice(self.redis_timeout), database_ms: twice(self.database_timeout), fallback_ms: 0 },
            refresh_lease_ms: 0,
        }
    }
}

/// A URL with any password replaced, fit for error messages and logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, SettingError> {
        let mut vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vars.entry("CACHE_ENCRYPTION_KEY".into()).or_insert_with(|| format!("k1:{}", "A".repeat(43) + "="));
        vars.entry("SUPABASE_URL".into()).or_insert_with(|| "http://supabase.test".into());
        vars.entry("SUPABASE_JWT_SECRET".into()).or_insert_with(|| "jwt-secret".into());
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = config(&[("INTERNAL_AUTH_KEY", "k")]).unwrap();
        assert_eq!(config.redis_url.expose(), "redis://127.0.0.1:6379");
        assert!(!config.redis_cluster_enabled);
        assert_eq!(config.ttl_contacts_list, 180);
        assert_eq!(config.ttl_contact_counts, 300);
        assert_eq!(config.port, 8080);
        assert_eq!(config.redis_timeout, Duration::from_millis(500));
        assert_eq!(config.shutdown_timeout, Duration::from_secs(8));
        assert_eq!((config.audit_retention_days, config.redis_memory_limit_bytes, config.redis_memory_warn_ratio), (90, None, 0.8));
    }

    #[test]
    fn reads_keep_pages_for_their_ttl_with_two_round_trips_per_call() {
        let config = config(&[("INTERNAL_AUTH_KEY", "k"), ("REDIS_TIMEOUT_MS", "300")]).unwrap();
        let policy = config.read_policy(180);
        assert_eq!(policy.freshness, FreshnessPolicy { ttl_ms: 180_000, revalidate_ms: 0, grace_ms: 0 });
        assert_eq!(policy.freshness.retention_seconds(), 180, "Redis keeps an entry exactly its TTL");
        assert_eq!((policy.budgets.redis_ms, policy.budgets.database_ms), (600, 6000));
    }

    #[test]
    fn the_internal_auth_key_is_required() {
        assert_eq!(
            config(&[]).unwrap_err().to_string(),
            "INTERNAL_AUTH_KEY is required but not set"
        );
    }

    #[test]
    fn the_project_whose_tokens_are_verified_is_required() {
        for name in ["SUPABASE_URL", "SUPABASE_JWT_SECRET"] {
            let err = config(&[("INTERNAL_AUTH_KEY", "k"), (name, " ")]).unwrap_err().to_string();
            assert_eq!(err, format!("{name} is required but not set"));
        }
    }

    #[test]
    fn shared_secrets_accept_their_previous_value_only_while_it_is_set() {
        let during = config(&[("INTERNAL_AUTH_KEY", "new"), ("INTERNAL_AUTH_KEY_PREVIOUS", "old"), ("METRICS_TOKEN", "m2"), ("METRICS_TOKEN_PREVIOUS", "m1")]).unwrap();
        assert!(during.internal_auth_key.accepts(b"new") && during.internal_auth_key.accepts(b"old"));
        let metrics = during.metrics_token.expect("set");
        assert!(metrics.accepts(b"m2") && metrics.accepts(b"m1") && !metrics.accepts(b"new"));
        let after = config(&[("INTERNAL_AUTH_KEY", "new")]).unwrap();
        assert!(after.internal_auth_key.accepts(b"new") && !after.internal_auth_key.accepts(b"old"));
        assert!(after.metrics_token.is_none(), "without METRICS_TOKEN the metrics are closed");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases = [
            ("REDIS_CLUSTER_ENABLED", "sometimes"),
            ("CACHE_TTL_CONTACTS_LIST", "-5"),
            ("CACHE_TTL_CONTACT_COUNTS", "soon"),
            ("PORT", "99999"),
            ("HOST", "localhost:80"),
            ("REDIS_PUBLIC_URL", "http://example.com"),
            ("DATABASE_TIMEOUT_MS", "0"),
            ("DATABASE_POOL_SIZE", "none"),
            ("SHUTDOWN_TIMEOUT_SECS", "0"),
            ("AUDIT_RETENTION_DAYS", "0"),
            ("REDIS_MEMORY_LIMIT_BYTES", "lots"),
            ("REDIS_MEMORY_WARN_RATIO", "2"),
        ];
        for (name, value) in cases {
            let err = config(&[("INTERNAL_AUTH_KEY", "k"), (name, value)]).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn tls_settings_are_checked_at_startup() {
        let dir = std::env::temp_dir().join(format!("clc-config-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let ca = ca.to_str().unwrap();

        let plain = config(&[("INTERNAL_AUTH_KEY", "k"), ("REDIS_CA_CERT", ca)]).unwrap_err().to_string();
        assert!(plain.starts_with("REDIS_CA_CERT must be unset unless REDIS_PUBLIC_URL is a rediss:// URL"), "{plain}");
        let tls = [("INTERNAL_AUTH_KEY", "k"), ("REDIS_PUBLIC_URL", "rediss://u:hunter2@cache.example.com:6380"), ("REDIS_CA_CERT", ca)];
        let unreadable = config(&tls).unwrap_err().to_string();
        assert!(unreadable.starts_with("REDIS_CA_CERT must be the path of a PEM file") && unreadable.contains(ca), "{unreadable}");
        assert!(!unreadable.contains("hunter2"), "{unreadable}");
        let system_roots = config(&tls[..2]).unwrap();
        assert!(system_roots.redis_ca_cert.is_none());

        let database = |url: &str| config(&[("INTERNAL_AUTH_KEY", "k"), ("DATABASE_URL", url)]);
        assert!(database("postgres://u:p@db.example.com/postgres?sslmode=verify-full").is_ok());
        let wrong_mode = database("postgres://u:p@h/db?sslmode=verify-ca").unwrap_err().to_string();
        assert_eq!(wrong_mode, "DATABASE_URL must be a URL whose sslmode is disable, prefer, require or verify-full, got \"sslmode=verify-ca\"");
        let root_cert = format!("postgres://u:p@h/db?sslmode=verify-full&sslrootcert={ca}");
        let unreadable = database(&root_cert).unwrap_err().to_string();
        assert!(unreadable.starts_with("DATABASE_URL sslrootcert must be the path of a PEM file") && unreadable.contains("holds no CERTIFICATE"), "{unreadable}");
        assert!(!unreadable.contains("u:p@"), "{unreadable}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn passwords_never_reach_messages() {
        let err = config(&[("INTERNAL_AUTH_KEY", "k"), ("REDIS_PUBLIC_URL", "tcp://u:hunter2@h:1")])
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let vars = [
            ("INTERNAL_AUTH_KEY", "s3cret"),
            ("REDIS_PUBLIC_URL", "redis://u:hunter2@h:1"),
            ("DATABASE_URL", "postgres://u:hunter3@h/db"),
            ("WORKER_WEBHOOK_URL", "http://worker.test/api/cache/webhook"),
            ("WEBHOOK_SECRET", "hunter4"),
            ("INTERNAL_AUTH_KEY_PREVIOUS", "hunter5"),
            ("METRICS_TOKEN", "hunter6"),
            ("SUPABASE_JWT_SECRET", "hunter7"),
        ];
        let debug = format!("{:?}", config(&vars).unwrap());
        for secret in ["s3cret", "hunter2", "hunter3", "hunter4", "hunter5", "hunter6", "hunter7"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("ttl_contacts_list: 180") && debug.contains("worker.test"), "{debug}");
    }
}
