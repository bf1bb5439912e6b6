//! Typed worker configuration read once per request from vars and secrets; binding names live here.

use contact_list_cache_core::cors::CorsPolicy;
use contact_list_cache_core::freshness::FreshnessPolicy;
use contact_list_cache_core::sealed::Keyring;
use contact_list_cache_core::settings::{parse_base_url, parse_flag, parse_number, require_secret, SettingError};
use worker::Env;

/// The Workers KV namespace that holds cached pages (`[[kv_namespaces]] binding` in wrangler.toml).
pub const KV_BINDING: &str = "CONTACT_CACHE";

/// The optional Workers Analytics Engine dataset; when bound, one data point per request is
/// written there, for figures across isolates and locations.
pub const ANALYTICS_BINDING: &str = "ANALYTICS";

/// Seconds a cached page lives in KV and Redis (the spec's 3 minutes).
pub const CACHE_TTL_SECONDS: u32 = 180;

/// Configuration every route may use; invalid values are errors naming the variable.
#[derive(Debug, Clone)]
pub struct Config {
    pub cors: CorsPolicy,
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Ok(Self {
            cors: var(env, "CORS_ALLOWED_ORIGINS")
                .map(|raw| CorsPolicy::parse("CORS_ALLOWED_ORIGINS", &raw))
                .transpose()?
                .unwrap_or(CorsPolicy::AnyOrigin),
        })
    }
}

/// What the read path needs: the upstreams and their secrets. Loaded only by routes that use them,
/// so `/health` works on a half-configured deployment.
#[derive(Clone)]
pub struct Upstreams {
    /// `SUPABASE_URL`: PostgREST is at `{url}/rest/v1`, the JWKS at `{url}/auth/v1/.well-known/jwks.json`.
    pub supabase_url: String,
    /// `SUPABASE_ANON_KEY`, sent as `apikey`.
    pub supabase_anon_key: String,
    /// `SUPABASE_JWT_SECRET`: verifies HS256 access tokens.
    pub jwt_secret: String,
    /// `BACKEND_URL`: the Redis cache service.
    pub backend_url: String,
    /// `INTERNAL_AUTH_KEY`: sent to the backend as `X-Internal-Auth`.
    pub internal_auth_key: String,
    /// `REDIS_ENABLED`: whether the backend's Redis layer is consulted (default true).
    pub redis_enabled: bool,
    /// `KV_CACHE_ENABLED`: whether pages are read from and written to KV (default true).
    /// Generations live in KV either way.
    pub kv_cache_enabled: bool,
    /// `SUPABASE_TIMEOUT_MS` (default 5000) and `BACKEND_TIMEOUT_MS` (default 2000).
    pub supabase_timeout_ms: u32,
    pub backend_timeout_ms: u32,
    /// `CACHE_ENCRYPTION_KEY`: seals every page stored in KV (see `contact_list_cache_core::sealed`).
    pub keyring: Keyring,
    /// `KV_TIMEOUT_MS` (default 1000): time budget of one KV read.
    pub kv_timeout_ms: u32,
    /// The TTL (180 s), `STALE_WHILE_REVALIDATE_SECONDS` (default 30) and
    /// `STALE_IF_ERROR_SECONDS` (default 600) of KV copies.
    pub freshness: FreshnessPolicy,
}

impl std::fmt::Debug for Upstreams {
    /// Secrets are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("supabase_url", &self.supabase_url)
            .field("backend_url", &self.backend_url)
            .field("redis_enabled", &self.redis_enabled)
            .field("kv_cache_enabled", &self.kv_cache_enabled)
            .finish_non_exhaustive()
    }
}

impl Upstreams {
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        let url = |name: &'static str| parse_base_url(name, &require_secret(name, var(env, name))?);
        let millis = |name: &'static str, default: u32| {
            var(env, name).map_or(Ok(default), |raw| parse_number(name, &raw, 10..=60_000))
        };
        let seconds = |name: &'static str, default: u64| {
            var(env, name).map_or(Ok(default), |raw| parse_number(name, &raw, 0..=86_400))
        };
        Ok(Self {
            supabase_url: url("SUPABASE_URL")?,
            supabase_anon_key: require_secret("SUPABASE_ANON_KEY", var(env, "SUPABASE_ANON_KEY"))?,
            jwt_secret: require_secret("SUPABASE_JWT_SECRET", var(env, "SUPABASE_JWT_SECRET"))?,
            backend_url: url("BACKEND_URL")?,
            internal_auth_key: require_secret("INTERNAL_AUTH_KEY", var(env, "INTERNAL_AUTH_KEY"))?,
            redis_enabled: var(env, "REDIS_ENABLED").map_or(Ok(true), |raw| parse_flag("REDIS_ENABLED", &raw))?,
            kv_cache_enabled: var(env, "KV_CACHE_ENABLED").map_or(Ok(true), |raw| parse_flag("KV_CACHE_ENABLED", &raw))?,
            supabase_timeout_ms: millis("SUPABASE_TIMEOUT_MS", 5000)?,
            backend_timeout_ms: millis("BACKEND_TIMEOUT_MS", 2000)?,
            keyring: Keyring::parse("CACHE_ENCRYPTION_KEY", &require_secret("CACHE_ENCRYPTION_KEY", var(env, "CACHE_ENCRYPTION_KEY"))?)?,
            kv_timeout_ms: millis("KV_TIMEOUT_MS", 1000)?,
            freshness: FreshnessPolicy {
                ttl_ms: u64::from(CACHE_TTL_SECONDS) * 1000,
                revalidate_ms: seconds("STALE_WHILE_REVALIDATE_SECONDS", 30)? * 1000,
                grace_ms: seconds("STALE_IF_ERROR_SECONDS", 600)? * 1000,
            },
        })
    }

    /// PostgREST's base URL, without a trailing slash.
    pub fn rest_url(&self) -> String {
        format!("{}/rest/v1", self.supabase_url)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/auth/v1/.well-known/jwks.json", self.supabase_url)
    }
}

/// A var or secret as text, `None` when unset or blank.
fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|value| value.to_string()).filter(|v| !v.trim().is_empty())
}
