//! Typed worker configuration read once per request from vars and secrets; binding names live here.

use contact_list_cache_core::cors::CorsPolicy;
use contact_list_cache_core::settings::SettingError;
use worker::Env;

/// The Workers KV namespace that holds cached pages (`[[kv_namespaces]] binding` in wrangler.toml).
pub const KV_BINDING: &str = "CONTACT_CACHE";

/// `CORS_ALLOWED_ORIGINS`: `*` or a comma-separated list of origins.
pub const CORS_ALLOWED_ORIGINS: &str = "CORS_ALLOWED_ORIGINS";

/// Configuration shared by every handler.
#[derive(Debug, Clone)]
pub struct Config {
    pub cors: CorsPolicy,
}

impl Config {
    /// Reads vars with their defaults; a present but malformed value is an error naming it.
    pub fn from_env(env: &Env) -> Result<Self, SettingError> {
        Ok(Self {
            cors: var(env, CORS_ALLOWED_ORIGINS)
                .map(|raw| CorsPolicy::parse(CORS_ALLOWED_ORIGINS, &raw))
                .transpose()?
                .unwrap_or(CorsPolicy::AnyOrigin),
        })
    }
}

/// A var or secret as text, `None` when unset.
fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name).ok().map(|value| value.to_string())
}
