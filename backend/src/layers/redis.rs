//! The Redis cache layer: one sealed entry at one key, as the engine's [`Cache`] port.
//!
//! An entry that does not open (tampered, sealed under an unknown key, moved from another key) is
//! [`LayerError::Refused`]: never served, counted as a miss. A page's read time is its body's
//! `cached_at`. A body without one (stored through `POST /api/cache/store` by a caller that put
//! none) is taken as read now: it is served while Redis keeps it, which its TTL bounds.

use crate::layers::runtime::now;
use crate::redis_store::{RedisStore, Sealed};
use contact_list_cache_core::engine::{Cache, LayerError, StoredPage};
use contact_list_cache_core::envelope::cached_at;
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::sealed::Keyring;
use contact_list_cache_core::time::UnixMillis;
use std::sync::Arc;

/// One Redis entry, sealed with the service's keyring and kept for `ttl_seconds` when stored.
pub struct RedisEntry {
    redis: Arc<RedisStore>,
    keyring: Arc<Keyring>,
    key: String,
    ttl_seconds: u32,
}

impl RedisEntry {
    pub fn new(redis: Arc<RedisStore>, keyring: Arc<Keyring>, key: String, ttl_seconds: u32) -> Self {
        Self { redis, keyring, key, ttl_seconds }
    }
}

impl Cache for RedisEntry {
    type Body = String;

    fn layer(&self) -> CacheLayer {
        CacheLayer::Redis
    }

    /// Redis is this service's own store.
    fn is_local(&self) -> bool {
        true
    }

    async fn get(&self) -> Result<Option<StoredPage>, LayerError> {
        let entry = self.redis.get_sealed(&self.keyring, &self.key).await;
        match entry.map_err(|err| LayerError::failed(CacheLayer::Redis, format!("reading the entry: {err}")))? {
            Sealed::Missing => Ok(None),
            Sealed::Found(body) => Ok(Some(page(body, now()))),
            Sealed::Refused(err) => Err(LayerError::Refused { layer: CacheLayer::Redis, reason: err.to_string() }),
        }
    }

    async fn put(&self, page: &StoredPage) -> Result<(), LayerError> {
        let stored = self.redis.set_sealed(&self.keyring, &self.key, &page.body, self.ttl_seconds).await;
        stored.map_err(|err| LayerError::failed(CacheLayer::Redis, format!("storing the entry: {err}")))
    }
}

/// `body` as a page read at its `cached_at` (as [`StoredPage::from_body`] reads it), or at `now`
/// when it carries none.
fn page(body: String, now: UnixMillis) -> StoredPage {
    let read_at = cached_at(&body).unwrap_or(now);
    StoredPage { body, read_at }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    #[test]
    fn a_page_was_read_when_its_cached_at_says() {
        let body = r#"{"success":true,"data":{},"cached_at":"2025-01-27T10:35:00Z","cache_ttl":180}"#;
        let page = page(body.to_owned(), NOW);
        assert_eq!(page.read_at, UnixMillis::parse_rfc3339("2025-01-27T10:35:00Z").unwrap());
        assert_eq!(page.body, body);
    }

    #[test]
    fn a_body_without_cached_at_is_served_as_read_now() {
        for body in [r#"{"v":3}"#, r#"{"cached_at":"yesterday"}"#, "not json"] {
            assert_eq!(page(body.to_owned(), NOW), StoredPage { body: body.to_owned(), read_at: NOW });
        }
    }
}
