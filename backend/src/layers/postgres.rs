//! PostgreSQL as the engine's [`Source`]: one contact page, or one user's per-filter counts, each
//! read with the statement that also checks the caller's membership (so `checks_membership` is
//! true, and a non-member is [`SourceError::Forbidden`]). It keeps no cache of its own: it fills
//! nothing, and reads the same whatever the [`SourceMode`].

use crate::db::Database;
use crate::layers::runtime::now;
use crate::redis_store::{RedisStore, Sealed};
use anyhow::Context;
use contact_list_cache_core::engine::{LayerError, Source, SourceError, SourceMode, StoredPage};
use contact_list_cache_core::envelope::{ContactListResponse, CountsResponse};
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::query::{ContactQuery, UserId, WorkspaceId};
use contact_list_cache_core::sealed::Keyring;
use contact_list_cache_core::time::UnixMillis;
use serde::Serialize;
use std::sync::Arc;

/// What a source reads.
enum Wanted {
    /// One page of a board's contacts, as the caller asked for it, and where a narrowed list's
    /// total is kept once counted.
    Page(ContactQuery, Option<Totals>),
    /// The caller's per-filter counts.
    Counts,
}

/// Where a narrowed list's total is kept in Redis (sealed, under the list's generation), so its
/// pages count the list once between them, not once each.
pub struct Totals {
    pub redis: Arc<RedisStore>,
    pub keyring: Arc<Keyring>,
    pub key: String,
}

impl Totals {
    async fn get(&self) -> Option<u64> {
        match self.redis.get_sealed(&self.keyring, &self.key).await {
            Ok(Sealed::Found(total)) => total.parse().ok(),
            _ => None,
        }
    }

    async fn put(&self, total: u64, ttl_seconds: u32) {
        if let Err(err) = self.redis.set_sealed(&self.keyring, &self.key, &total.to_string(), ttl_seconds).await {
            tracing::warn!(error = %err, "a list's total was not kept");
        }
    }
}

/// One answer read from PostgreSQL for one caller of one workspace, as the body served (with
/// `cache_ttl` = `ttl_seconds`).
pub struct Postgres {
    db: Arc<Database>,
    workspace: WorkspaceId,
    caller: UserId,
    wanted: Wanted,
    ttl_seconds: u32,
}

impl Postgres {
    /// The page `query` names, as `caller` may read it in `workspace` (a narrowed list's total
    /// kept in `totals`).
    pub fn page(db: Arc<Database>, workspace: WorkspaceId, caller: UserId, query: ContactQuery, totals: Option<Totals>, ttl_seconds: u32) -> Self {
        Self { db, workspace, caller, wanted: Wanted::Page(query, totals), ttl_seconds }
    }

    /// `caller`'s per-filter counts in `workspace`.
    pub fn counts(db: Arc<Database>, workspace: WorkspaceId, caller: UserId, ttl_seconds: u32) -> Self {
        Self { db, workspace, caller, wanted: Wanted::Counts, ttl_seconds }
    }

    /// The body, or `None` when the caller is not a member.
    async fn body(&self, read_at: UnixMillis) -> anyhow::Result<Option<String>> {
        let (workspace, caller, ttl) = (&self.workspace, &self.caller, self.ttl_seconds);
        Ok(match &self.wanted {
            Wanted::Page(query, totals) => {
                let known = match totals {
                    Some(totals) => totals.get().await,
                    None => None,
                };
                let read = self.db.contact_page(workspace, caller, query, known).await.context("reading a contact page")?;
                if let (Some(totals), None, true) = (totals, known, read.member) {
                    totals.put(read.total, ttl).await;
                }
                read.member.then(|| json(&ContactListResponse::new(query, read.contacts, read.total, read_at, ttl)))
            }
            Wanted::Counts => {
                let read = self.db.contact_counts(workspace, caller).await.context("reading contact counts")?;
                read.member.then(|| json(&CountsResponse::new(workspace, caller, read.counts, read_at, ttl)))
            }
        })
    }
}

impl Source for Postgres {
    type Body = String;

    /// The same in every mode: PostgreSQL keeps no cache of its own.
    async fn read(&self, _: SourceMode) -> Result<StoredPage, SourceError> {
        let read_at = now();
        match self.body(read_at).await {
            Ok(Some(body)) => Ok(StoredPage { body, read_at }),
            Ok(None) => Err(SourceError::Forbidden),
            Err(err) => Err(LayerError::failed(CacheLayer::Database, format!("{err:#}")).into()),
        }
    }

    fn layer(&self) -> CacheLayer {
        CacheLayer::Database
    }

    /// Yes: the statement that reads the rows checks it.
    fn checks_membership(&self) -> bool {
        true
    }
}

fn json(body: &impl Serialize) -> String {
    serde_json::to_string(body).expect("a response serializes")
}
