//! What a read produces: the answer to serve or why there is none, the steps each layer took,
//! and the work left for after the response.

use super::ports::{LayerError, StoredPage};
use crate::layer::{CacheLayer, CacheStatus};

/// Why a layer was not asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The caller asked for fresh data.
    Bypassed,
    /// The caller's membership could not be verified, and this layer does not check it.
    MembershipUnverified,
    /// The page's generation could not be read.
    GenerationUnknown,
    /// A cached copy could not be carried forward (nothing to carry, or a write that moves
    /// contacts across the page).
    NotCarried,
}

/// What happened at one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A copy served (fresh, or within stale-while-revalidate).
    Hit,
    /// No copy.
    Miss,
    /// A copy past stale-while-revalidate, kept aside in case nothing else answers.
    KeptForErrors,
    /// A copy past every window: ignored.
    Expired,
    /// A copy from the generation an invalidation superseded, served within the staleness bound.
    Superseded,
    Skipped(Skip),
    Failed(LayerError),
    /// A source answered.
    Answered,
    /// A source said the caller may not read the page.
    Forbidden,
}

/// One layer's part in a read, in order; the worker and the backend turn these into metrics
/// and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub layer: CacheLayer,
    pub event: Event,
}

/// The answer to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served<B = String> {
    pub body: B,
    pub status: CacheStatus,
    pub layer: CacheLayer,
    /// Seconds since the page was read from its source, when served past its TTL.
    pub age: Option<u64>,
    /// Whether a concurrent identical read produced it.
    pub coalesced: bool,
}

/// Why there is nothing to serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the caller is not a member of the workspace")]
    Forbidden,
    /// Nothing answered; every failure on the way, in order (none: nothing held the page).
    #[error("no layer answered: {}", describe(.0))]
    Unavailable(Vec<LayerError>),
}

fn describe(failures: &[LayerError]) -> String {
    if failures.is_empty() {
        return "nothing holds the page".to_owned();
    }
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A page found below the first cache, as concurrent identical reads share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<B = String> {
    pub(super) page: StoredPage<B>,
    pub(super) layer: CacheLayer,
    pub(super) status: CacheStatus,
    pub(super) age: Option<u64>,
    pub(super) refresh: bool,
}

/// What a shared read hands to every request that joined it.
pub type Shared<B = String> = Result<Found<B>, ReadError>;

/// The work left for after the response: write-backs, a background refresh, and the end of a
/// shared read's flight (held until the write-backs land).
pub struct After<L, B = String> {
    pub(super) writes: Vec<(usize, CacheLayer, StoredPage<B>)>,
    /// Pages for the sources that keep what answered below them (the source's index).
    pub(super) keeps: Vec<(usize, CacheLayer, StoredPage<B>)>,
    pub(super) refresh: bool,
    /// A superseded copy was served: fetch the current page.
    pub(super) fill: bool,
    pub(super) lead: Option<L>,
}

impl<L, B> After<L, B> {
    /// The layers the page will be written to: the caches above, and the layers of the sources
    /// that keep it.
    pub fn writes(&self) -> impl Iterator<Item = CacheLayer> + '_ {
        self.writes.iter().chain(&self.keeps).map(|(_, layer, _)| *layer)
    }

    /// Whether the page will be refreshed in the background.
    pub fn refreshes(&self) -> bool {
        self.refresh
    }

    /// Whether the current page will be fetched after a superseded copy was served.
    pub fn fills(&self) -> bool {
        self.fill
    }

    /// Whether nothing is left to do.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.keeps.is_empty() && !self.refresh && !self.fill && self.lead.is_none()
    }
}

/// A read's result, its steps, and the work left for after the response.
pub struct Outcome<L, B = String> {
    pub result: Result<Served<B>, ReadError>,
    pub steps: Vec<Step>,
    pub after: After<L, B>,
}

