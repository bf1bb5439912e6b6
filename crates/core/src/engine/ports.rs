//! The engine's ports: what a cache layer, a source of truth and the runtime offer it. The worker
//! and the backend implement them with real KV, HTTP, Redis and PostgreSQL; unit tests with fakes.
//!
//! The traits use `async fn` without a `Send` bound on purpose: the worker's futures are not
//! `Send` (they hold JS values), and for the backend's concrete adapters the compiler still sees
//! that their futures, and so the engine's, are `Send`.
#![allow(async_fn_in_trait)]

use crate::layer::CacheLayer;
use crate::time::UnixMillis;

/// A page's body as the layers hand it over: the JSON text served, which the engine passes on
/// without reading. The backend's is a `String`; the worker's may stay in the runtime's memory
/// from KV to the response (`src/body.rs`).
pub trait Body: Clone {
    /// Its size in bytes.
    fn size(&self) -> usize;
}

impl Body for String {
    fn size(&self) -> usize {
        self.len()
    }
}

/// A page as a cache stores it: the JSON body as served, and when it was read from its source
/// (so its age is the same in every layer it is copied to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPage<B = String> {
    pub body: B,
    pub read_at: UnixMillis,
}

impl StoredPage {
    /// A page whose read time is its body's `cached_at`, which every envelope carries; `None`
    /// for a body without one.
    pub fn from_body(body: String) -> Option<Self> {
        crate::envelope::cached_at(&body).map(|read_at| Self { body, read_at })
    }
}

/// Why a layer did not answer, naming the layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("{} did not answer within {budget_ms} ms", layer.as_str())]
    Timeout { layer: CacheLayer, budget_ms: u32 },
    #[error("{}: {reason}", layer.as_str())]
    Failed { layer: CacheLayer, reason: String },
    /// The layer held an entry that does not open (tampered, sealed under an unknown key, moved
    /// from another key): it is never served, and counts as a miss.
    #[error("{} refused an entry: {reason}", layer.as_str())]
    Refused { layer: CacheLayer, reason: String },
}

impl LayerError {
    pub fn failed(layer: CacheLayer, reason: impl std::fmt::Display) -> Self {
        Self::Failed { layer, reason: reason.to_string() }
    }

    /// The layer that failed.
    pub fn layer(&self) -> CacheLayer {
        match self {
            Self::Timeout { layer, .. } | Self::Failed { layer, .. } | Self::Refused { layer, .. } => *layer,
        }
    }
}

/// Why a source gave no page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The caller may not read this page (the source checked membership and said no).
    #[error("the caller is not a member of the workspace")]
    Forbidden,
    #[error(transparent)]
    Failed(#[from] LayerError),
    /// Nothing to answer with, and nothing wrong (a cache copy that cannot be carried forward).
    #[error("declined")]
    Declined,
}

/// One cache layer, bound to the page of one request: it knows its own key.
pub trait Cache {
    /// The body of the pages it holds.
    type Body: Body;
    /// Which layer this is, for headers, logs, metrics and budgets.
    fn layer(&self) -> CacheLayer;
    /// Whether a read here is about as cheap as waiting for another request's (a store in the
    /// same place, such as KV at the edge). The local layers in front are read by every request;
    /// concurrent identical reads share everything below them.
    fn is_local(&self) -> bool {
        false
    }
    /// The page this layer holds, if any.
    async fn get(&self) -> Result<Option<StoredPage<Self::Body>>, LayerError>;
    /// Stores `page`, to be kept for as long as the layer's retention says.
    async fn put(&self, page: &StoredPage<Self::Body>) -> Result<(), LayerError>;
}

/// How a source may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMode {
    /// From a cache of its own if it keeps one (the backend's fallback keeps Redis).
    MayUseItsCache,
    /// From the source of truth, now: a cache above already missed, the caller asked for fresh
    /// data, or no cache can be trusted for this request.
    Fresh,
}

/// One source of pages, bound to the page of one request.
pub trait Source {
    /// The body of the pages it answers.
    type Body: Body;
    /// Which layer answers when this source does (`Database`, `BackendFallback`).
    fn layer(&self) -> CacheLayer;
    /// Whether this source checks the caller's membership itself, and so may be asked when the
    /// edge could not verify it.
    fn checks_membership(&self) -> bool;
    /// Whether this source writes its answer to `cache` itself (no write-back needed there).
    fn fills(&self, cache: CacheLayer) -> bool {
        let _ = cache;
        false
    }
    /// Whether this source answers from a cached copy (carried across the writes since it was
    /// read) rather than from the database: it is asked only when caches may be read, and its
    /// answer is a `HIT`.
    fn is_cache_copy(&self) -> bool {
        false
    }
    /// Whether this source, having declined, keeps the page a source below it answers: a cached
    /// copy that found nothing to carry stores it where its next read will look.
    fn keeps_answers_below(&self) -> bool {
        false
    }
    /// Keeps `page`, answered below after this source declined (see
    /// [`Source::keeps_answers_below`]).
    async fn keep(&self, page: &StoredPage<Self::Body>) -> Result<(), LayerError> {
        let _ = page;
        Ok(())
    }
    /// The page, read as `mode` allows.
    async fn read(&self, mode: SourceMode) -> Result<StoredPage<Self::Body>, SourceError>;
}
