//! Typed worker configuration: every var, secret and binding name, read once per isolate (vars and
//! secrets do not change while an isolate lives) into one `Config`.

use crate::error::AppError;
use crate::limits::Limiters;
use contact_list_cache_core::capacity::parse_ratio;
use contact_list_cache_core::cors::CorsPolicy;
use contact_list_cache_core::engine::{Budgets, Policy};
use contact_list_cache_core::freshness::FreshnessPolicy;
use contact_list_cache_core::l0::L0Limits;
use contact_list_cache_core::sealed::Keyring;
use contact_list_cache_core::secure::RotatingSecret;
use contact_list_cache_core::settings::{parse_base_url, parse_flag, parse_number, require_secret, Secret, SettingError};
use std::cell::OnceCell;
use std::rc::Rc;
use worker::Env;

/// The Workers KV namespace that holds cached pages (`[[kv_namespaces]] binding` in wrangler.toml).
pub const KV_BINDING: &str = "CONTACT_CACHE";

/// The optional Workers Analytics Engine dataset; when bound, one data point per request is
/// written there, for figures across isolates and locations.
pub const ANALYTICS_BINDING: &str = "ANALYTICS";

/// The optional service binding to the live channel's worker (live/); unbound, nothing is pushed.
pub const LIVE_BINDING: &str = "LIVE";

/// Seconds a cached page lives in KV and Redis (the spec's 3 minutes).
pub const CACHE_TTL_SECONDS: u32 = 180;

/// How long one background refresh of a page holds off others in an isolate.
const REFRESH_LEASE_MS: u64 = 10_000;

/// The whole configuration. What every route needs is checked at load; what only the read and
/// invalidation routes need (`upstreams`) is kept with its error, so `/health` answers on a
/// half-configured deployment and those routes name the missing variable.
#[derive(Debug)]
pub struct Config {
    /// `ENVIRONMENT` (default `development`).
    pub environment: Environment,
    /// `CORS_ALLOWED_ORIGINS` (default `*`).
    pub cors: CorsPolicy,
    /// `METRICS_TOKEN` (and, while it rotates, `METRICS_TOKEN_PREVIOUS`): when set, `/metrics`,
    /// `/api/cache/stats` and the deep `/health` require it as a bearer token; in production
    /// they are not served without it.
    pub metrics_token: Option<RotatingSecret>,
    /// `WEBHOOK_SECRET`: the shared secret of `POST /api/cache/webhook`; while it rotates,
    /// `WEBHOOK_SECRET_PREVIOUS` is accepted too.
    pub webhook_secret: Option<RotatingSecret>,
    /// `KV_STORAGE_LIMIT_BYTES` (default 1 GiB, the Workers Free plan's KV storage; 0 = no limit)
    /// and `KV_WARN_RATIO` (default 0.8): `/api/cache/stats` warns when its estimate of KV's use
    /// reaches that share of the limit.
    pub kv_storage_limit_bytes: u64,
    pub kv_warn_ratio: f64,
    upstreams: Result<Rc<Upstreams>, SettingError>,
}

/// What the read and invalidation paths need: the upstreams, their secrets, the cache policy.
#[derive(Debug)]
pub struct Upstreams {
    /// `SUPABASE_URL`: PostgREST is at `{url}/rest/v1`, the JWKS at `{url}/auth/v1/.well-known/jwks.json`.
    pub supabase_url: String,
    /// `SUPABASE_ANON_KEY`, sent as `apikey`.
    pub supabase_anon_key: Secret,
    /// `SUPABASE_JWT_SECRET`: verifies HS256 access tokens.
    pub jwt_secret: Secret,
    /// `BACKEND_URL`: the Redis cache service.
    pub backend_url: String,
    /// `INTERNAL_AUTH_KEY`: sent to the backend as `X-Internal-Auth` (with the caller's own
    /// token on every call that reads a user's data).
    pub internal_auth_key: Secret,
    /// `BACKEND_METRICS_TOKEN`: the backend's `METRICS_TOKEN`, sent with the call for its
    /// statistics (`/api/cache/stats` here shows the backend's part only with it).
    pub backend_metrics_token: Option<Secret>,
    /// `REDIS_ENABLED`: whether the backend's Redis layer is consulted (default true).
    pub redis_enabled: bool,
    /// `KV_CACHE_ENABLED`: whether pages are read from and written to KV (default true).
    /// Scope states live in the state home either way (`crate::layers::home`).
    pub kv_cache_enabled: bool,
    /// `CACHE_ENCRYPTION_KEY`: seals every page stored in KV (see `contact_list_cache_core::sealed`).
    pub keyring: Keyring,
    /// The TTL (180 s), `STALE_WHILE_REVALIDATE_SECONDS` (default 30), `STALE_IF_ERROR_SECONDS`
    /// (default 600), and the budgets `KV_TIMEOUT_MS` (1000), `BACKEND_TIMEOUT_MS` (2000, Redis
    /// and the fallback) and `SUPABASE_TIMEOUT_MS` (5000).
    pub policy: Policy,
    /// `STALENESS_BOUND_MS` (default 1000, at most 60000): how long after an invalidation a page
    /// of the generation it superseded may still be served, labelled stale; 0 = strict, never.
    pub staleness_bound_ms: u64,
    /// `REFRESH_DEBOUNCE_MS` (default 250, at most 5000): invalidations of one scope within this
    /// window make one refresh of its hot pages, at the window's end.
    pub refresh_debounce_ms: u32,
    /// `REFRESH_AHEAD_PAGES` (default 24, at most 200; 0 = off): how many of a scope's pages read
    /// in the last 10 s are refreshed right after it is invalidated (the most recent first).
    pub refresh_ahead_pages: u32,
    /// The isolate's L0: pages kept for at most `STALENESS_BOUND_MS` after they were read from
    /// KV, within `L0_CACHE_MB` (default 32, at most 96; 0 = off) of memory. (Scope states are
    /// kept apart, by `crate::layers::home`.)
    pub l0: L0Limits,
    /// The Rate Limiting bindings (`LIMIT_*`, see `crate::limits`).
    pub limiters: Limiters,
}

/// `ENVIRONMENT`: which deployment this is. Production refuses what the others allow for
/// convenience (observers without `METRICS_TOKEN`, limited routes without their bindings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Test,
    Staging,
    Production,
}

impl Environment {
    fn parse(raw: &str) -> Result<Self, SettingError> {
        match raw.trim() {
            "development" => Ok(Self::Development),
            "test" => Ok(Self::Test),
            "staging" => Ok(Self::Staging),
            "production" => Ok(Self::Production),
            _ => Err(SettingError::Invalid { name: "ENVIRONMENT", expected: "development, test, staging or production".into(), got: raw.to_owned() }),
        }
    }
}

thread_local! {
    static LOADED: OnceCell<Result<Rc<Config>, SettingError>> = const { OnceCell::new() };
}

impl Config {
    /// This isolate's configuration, read from `env` the first time.
    pub fn load(env: &Env) -> Result<Rc<Config>, SettingError> {
        LOADED.with(|loaded| loaded.get_or_init(|| Self::read(env).map(Rc::new)).clone())
    }

    fn read(env: &Env) -> Result<Self, SettingError> {
        let environment = var(env, "ENVIRONMENT").map_or(Ok(Environment::Development), |raw| Environment::parse(&raw))?;
        Ok(Self {
            environment,
            cors: var(env, "CORS_ALLOWED_ORIGINS")
                .map(|raw| CorsPolicy::parse("CORS_ALLOWED_ORIGINS", &raw))
                .transpose()?
                .unwrap_or(CorsPolicy::AnyOrigin),
            metrics_token: var(env, "METRICS_TOKEN").map(|token| RotatingSecret::new(token, var(env, "METRICS_TOKEN_PREVIOUS"))),
            webhook_secret: var(env, "WEBHOOK_SECRET").map(|current| RotatingSecret::new(current, var(env, "WEBHOOK_SECRET_PREVIOUS"))),
            kv_storage_limit_bytes: var(env, "KV_STORAGE_LIMIT_BYTES").map_or(Ok(1 << 30), |raw| parse_number("KV_STORAGE_LIMIT_BYTES", &raw, 0..=u64::MAX))?,
            kv_warn_ratio: var(env, "KV_WARN_RATIO").map_or(Ok(0.8), |raw| parse_ratio("KV_WARN_RATIO", &raw))?,
            upstreams: Upstreams::read(env, environment).map(Rc::new),
        })
    }

    /// The upstreams, or the error naming what is missing or malformed.
    pub fn upstreams(&self) -> Result<&Rc<Upstreams>, AppError> {
        self.upstreams.as_ref().map_err(|err| AppError::Config(err.clone()))
    }
}

impl Upstreams {
    fn read(env: &Env, environment: Environment) -> Result<Self, SettingError> {
        let secret = |name: &'static str| require_secret(name, var(env, name)).map(Secret::new);
        let url = |name: &'static str| parse_base_url(name, secret(name)?.expose());
        let flag = |name: &'static str| var(env, name).map_or(Ok(true), |raw| parse_flag(name, &raw));
        let millis = |name: &'static str, default: u32| var(env, name).map_or(Ok(default), |raw| parse_number(name, &raw, 10..=60_000));
        let seconds = |name: &'static str, default: u64| var(env, name).map_or(Ok(default), |raw| parse_number(name, &raw, 0..=86_400));
        let backend_ms = millis("BACKEND_TIMEOUT_MS", 2000)?;
        let staleness_bound_ms = var(env, "STALENESS_BOUND_MS").map_or(Ok(1000), |raw| parse_number("STALENESS_BOUND_MS", &raw, 0..=60_000))?;
        Ok(Self {
            supabase_url: url("SUPABASE_URL")?,
            supabase_anon_key: secret("SUPABASE_ANON_KEY")?,
            jwt_secret: secret("SUPABASE_JWT_SECRET")?,
            backend_url: url("BACKEND_URL")?,
            internal_auth_key: secret("INTERNAL_AUTH_KEY")?,
            backend_metrics_token: var(env, "BACKEND_METRICS_TOKEN").map(Secret::new),
            redis_enabled: flag("REDIS_ENABLED")?,
            kv_cache_enabled: flag("KV_CACHE_ENABLED")?,
            keyring: Keyring::parse("CACHE_ENCRYPTION_KEY", secret("CACHE_ENCRYPTION_KEY")?.expose())?,
            policy: Policy {
                freshness: FreshnessPolicy {
                    ttl_ms: u64::from(CACHE_TTL_SECONDS) * 1000,
                    revalidate_ms: seconds("STALE_WHILE_REVALIDATE_SECONDS", 30)? * 1000,
                    grace_ms: seconds("STALE_IF_ERROR_SECONDS", 600)? * 1000,
                },
                budgets: Budgets {
                    kv_ms: millis("KV_TIMEOUT_MS", 1000)?,
                    redis_ms: backend_ms,
                    database_ms: millis("SUPABASE_TIMEOUT_MS", 5000)?,
                    fallback_ms: backend_ms,
                },
                refresh_lease_ms: REFRESH_LEASE_MS,
            },
            refresh_debounce_ms: var(env, "REFRESH_DEBOUNCE_MS").map_or(Ok(250), |raw| parse_number("REFRESH_DEBOUNCE_MS", &raw, 0..=5_000))?,
            refresh_ahead_pages: var(env, "REFRESH_AHEAD_PAGES").map_or(Ok(24), |raw| parse_number("REFRESH_AHEAD_PAGES", &raw, 0..=200))?,
            l0: L0Limits {
                keep_ms: staleness_bound_ms,
                max_bytes: var(env, "L0_CACHE_MB").map_or(Ok(32), |raw| parse_number("L0_CACHE_MB", &raw, 0..=96))? << 20,
            },
            staleness_bound_ms,
            limiters: Limiters::read(env, environment)?,
        })
    }

    /// PostgREST's base URL, without a trailing slash.
    pub fn rest_url(&self) -> String {
        format!("{}/rest/v1", self.supabase_url)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/auth/v1/.well-known/jwks.json", self.supabase_url)
    }

    /// The budgets of one call to each layer.
    pub fn budgets(&self) -> &Budgets {
        &self.policy.budgets
    }
}

/// A var or secret as text, `None` when unset or blank.
fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|value| value.to_string()).filter(|v| !v.trim().is_empty())
}
