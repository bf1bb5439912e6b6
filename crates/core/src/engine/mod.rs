//! The read-through engine: one loop over the cache layers, then the sources, deciding which
//! layer answers, what is served (status, layer, age), what is written back where, and what is
//! refreshed in the background. It does no I/O of its own: the layers, the sources, the clock and
//! the timers come in through [`ports`], so every rule is unit-tested with fakes and a fixed `now`.
//! The worker (KV, the backend's Redis, Supabase, the backend's fallback) and the backend (Redis,
//! PostgreSQL) drive this same engine.
//!
//! The rules, in the order a read meets them (docs/http-api.md, "Where answers come from"):
//! 1. Caches are read only when the caller's membership is confirmed, the page's generation is
//!    known and the caller did not ask for fresh data; otherwise each is skipped, with the reason.
//! 2. A cached copy younger than the TTL is served (`HIT`). One past the TTL but within
//!    stale-while-revalidate is served with its `Age` and refreshed after the response, once per
//!    refresh lease. An older one, within stale-if-error, is kept aside; older still, ignored.
//! 3. Every call has its layer's time budget; a layer that fails or runs out of time is skipped,
//!    never waited on twice and never turned into an answer.
//! 4. Below the local caches in front (KV at the edge), concurrent identical reads share one read
//!    (coalescing), when the caller's membership is confirmed and fresh data was not asked for.
//! 5. Sources are asked in order. One that does not check membership itself is skipped for a
//!    caller the edge could not verify. A source that answers from a cached copy (a page carried
//!    from the generation before, [`Source::is_cache_copy`]) is asked only when caches may be
//!    read, answers `HIT`, and may decline, passing the read on. A source that says "not a
//!    member" ends the read (`Forbidden`). A source is asked for fresh data when a cache above already missed, the caller
//!    asked for it, or no cache can be trusted.
//! 6. When nothing answers, the copy kept aside is served as `STALE` with its `Age`; without one
//!    the read is `Unavailable`, naming every failure.
//! 8. After an invalidation, until the staleness bound (`superseded_until`), a page the local
//!    caches miss may be served from the generation the invalidation superseded, labelled
//!    `STALE` with its `Age` (if it is itself within its TTL or stale-while-revalidate), unless
//!    a source that answers from a cached copy (rule 5) carries the current page first: that
//!    one is asked before the superseded copy, answers `HIT`, and is not asked again below; after
//!    the response, one read per page (shared with concurrent misses) fetches the current page
//!    below the local caches and writes it back. Past the bound nothing superseded is served.
//! 7. A page from a lower layer is written back, after the response, to every cache above it (a
//!    source's page to every cache the source does not fill itself), only while the generation
//!    is known. A shared read's flight ends only once those writes have landed.
//! 9. A source that answers from a cached copy and declined for want of a copy to carry may keep
//!    the page a source below it then answered ([`Source::keeps_answers_below`]), after the
//!    response and only while the generation is known, so that its next read finds one.

mod outcome;
pub mod ports;
mod request;
#[cfg(test)]
mod tests;

pub use outcome::{After, Event, Found, Outcome, ReadError, Served, Shared, Skip, Step};
pub use ports::{Body, Cache, LayerError, Source, SourceError, SourceMode, StoredPage};
pub use request::{Budgets, GenerationState, Mode, Policy, Request};

use crate::access::Membership;
use crate::coalesce::{wait_for, Coalesce, Finish, Turn};
use crate::freshness::{age_seconds, Freshness};
use crate::layer::{CacheLayer, CacheStatus};
use crate::time::Runtime;
use futures_util::future::{select, Either};
use std::future::Future;
use std::pin::pin;

/// The engine for one page: its caches in order (fastest first), its sources in order, the
/// policy, the runtime and how concurrent reads share work.
pub struct Engine<C, S, R, K> {
    pub caches: Vec<C>,
    /// The local caches again, at the page's key under the superseded generation: read when the
    /// local caches miss, before `superseded_until`.
    pub superseded: Vec<C>,
    pub sources: Vec<S>,
    pub policy: Policy,
    pub runtime: R,
    pub coalescer: K,
}

/// What one read gathers on its way down.
struct Trail<B> {
    steps: Vec<Step>,
    writes: Vec<(usize, CacheLayer, StoredPage<B>)>,
    kept: Option<(CacheLayer, StoredPage<B>)>,
    failures: Vec<LayerError>,
    consulted_a_cache: bool,
    /// Whether the sources that answer from a cached copy were already asked.
    copies_asked: bool,
    /// The sources that answer from a cached copy that declined and keep what answers below them.
    keepers: Vec<usize>,
    /// The pages to hand to those sources, after the response (rule 9).
    keeps: Vec<(usize, CacheLayer, StoredPage<B>)>,
}

impl<B> Default for Trail<B> {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            writes: Vec::new(),
            kept: None,
            failures: Vec::new(),
            consulted_a_cache: false,
            copies_asked: false,
            keepers: Vec::new(),
            keeps: Vec::new(),
        }
    }
}

impl<B> Trail<B> {
    fn step(&mut self, layer: CacheLayer, event: Event) {
        if let Event::Failed(err) = &event {
            self.failures.push(err.clone());
        }
        self.steps.push(Step { layer, event });
    }

    /// Keeps `page` aside for stale-if-error, if it is the freshest kept so far.
    fn keep(&mut self, layer: CacheLayer, page: StoredPage<B>) {
        if self.kept.as_ref().is_none_or(|(_, kept)| kept.read_at < page.read_at) {
            self.kept = Some((layer, page));
        }
    }
}

impl<C, S, R, K> Engine<C, S, R, K>
where
    C: Cache,
    S: Source<Body = C::Body>,
    R: Runtime,
    K: Coalesce<Shared<C::Body>>,
{
    /// Reads the page: see the module's rules.
    pub async fn read(&self, request: &Request) -> Outcome<K::Lead, C::Body> {
        let mut trail = Trail::default();
        let access = cache_access(request);
        let local = self.caches.iter().take_while(|cache| cache.is_local()).count();
        for (index, cache) in self.caches[..local].iter().enumerate() {
            if let Err(skip) = access {
                trail.step(cache.layer(), Event::Skipped(skip));
                continue;
            }
            if let Some(hit) = self.look(cache, &mut trail).await {
                self.write_above(index, &hit.page, request, &mut trail);
                let after = After { writes: trail.writes, keeps: Vec::new(), refresh: hit.refresh, fill: false, lead: None };
                return Outcome { result: Ok(served(hit, false)), steps: trail.steps, after };
            }
        }
        if let Some(carried) = self.carried_within_the_bound(request, access, &mut trail).await {
            let after = After { writes: std::mem::take(&mut trail.writes), keeps: Vec::new(), refresh: false, fill: false, lead: None };
            return Outcome { result: carried.map(|found| served(found, false)), steps: trail.steps, after };
        }
        if let Some(copy) = self.superseded_copy(request, access, &mut trail).await {
            let after = After { writes: Vec::new(), keeps: Vec::new(), refresh: false, fill: true, lead: None };
            return Outcome { result: Ok(copy), steps: trail.steps, after };
        }
        let (found, shared, lead) = if request.mode == Mode::Normal && request.membership == Membership::Confirmed {
            match self.coalescer.join(&flight(request)) {
                Turn::Lead(lead) => {
                    let found = self.below(local, request, &mut trail).await;
                    lead.finish(found.clone());
                    (found, false, Some(lead))
                }
                Turn::Follow(watch) => match wait_for(&self.runtime, &watch, self.patience_ms()).await {
                    Some(found) => (found, true, None),
                    None => (self.below(local, request, &mut trail).await, false, None),
                },
            }
        } else {
            (self.below(local, request, &mut trail).await, false, None)
        };
        let refresh = found.as_ref().is_ok_and(|found| found.refresh);
        let result = match found {
            Ok(found) => Ok(served(found, shared)),
            Err(ReadError::Unavailable(failures)) => match trail.kept.take() {
                Some((layer, page)) => Ok(Served {
                    age: Some(age_seconds(page.read_at, self.runtime.now())),
                    body: page.body,
                    status: CacheStatus::Stale,
                    layer,
                    coalesced: false,
                }),
                None => Err(ReadError::Unavailable(failures)),
            },
            Err(ReadError::Forbidden) => Err(ReadError::Forbidden),
        };
        Outcome { result, steps: trail.steps, after: After { writes: trail.writes, keeps: trail.keeps, refresh, fill: false, lead } }
    }

    /// After the response: the write-backs, the end of the flight, then the background refresh or
    /// the fetch of a superseded page's current one (if this request's lease allows it). Returns
    /// what failed, for the logs.
    pub async fn finish(&self, request: &Request, after: After<K::Lead, C::Body>) -> Vec<LayerError> {
        let After { writes, keeps, refresh, fill, lead } = after;
        let mut failures = Vec::new();
        for (index, _, page) in &writes {
            failures.extend(self.put(*index, page).await);
        }
        failures.extend(self.keep(&keeps).await);
        drop(lead);
        if (fill || refresh) && self.coalescer.claim_refresh(&request.key, self.runtime.now(), self.policy.refresh_lease_ms) {
            failures.extend(if fill { self.fill(request).await } else { self.refresh(request).await });
        }
        failures
    }

    /// After a superseded copy was served (once per page per refresh lease): reads the current
    /// page below the local caches and writes it back, unless a concurrent read of it is under
    /// way (which will).
    async fn fill(&self, request: &Request) -> Vec<LayerError> {
        let Turn::Lead(lead) = self.coalescer.join(&flight(request)) else {
            return Vec::new();
        };
        let local = self.caches.iter().take_while(|cache| cache.is_local()).count();
        let mut trail = Trail::default();
        let found = self.below(local, request, &mut trail).await;
        lead.finish(found);
        let mut failures = trail.failures;
        for (index, _, page) in &trail.writes {
            failures.extend(self.put(*index, page).await);
        }
        failures.extend(self.keep(&trail.keeps).await);
        failures
    }

    /// Notes that source `index` declined: if it keeps what answers below it, it is given the
    /// next page a source answers (rule 9).
    fn declined(&self, index: usize, trail: &mut Trail<C::Body>) {
        if self.sources[index].keeps_answers_below() {
            trail.keepers.push(index);
        }
    }

    /// Queues `page`, just answered, for every source waiting to keep it (rule 9).
    fn hand_to_keepers(&self, page: &StoredPage<C::Body>, trail: &mut Trail<C::Body>) {
        let keepers = std::mem::take(&mut trail.keepers);
        trail.keeps.extend(keepers.into_iter().map(|keeper| (keeper, self.sources[keeper].layer(), page.clone())));
    }

    /// Hands each page to the source that keeps it (rule 9).
    async fn keep(&self, keeps: &[(usize, CacheLayer, StoredPage<C::Body>)]) -> Vec<LayerError> {
        let mut failures = Vec::new();
        for (index, layer, page) in keeps {
            failures.extend(self.within(*layer, self.sources[*index].keep(page)).await.err());
        }
        failures
    }

    /// Within the staleness bound after an invalidation, the page carried from the generation
    /// before by a source that answers from a cached copy: current and read from no database, so
    /// it is asked before a superseded copy would be served `STALE` (and not again below).
    async fn carried_within_the_bound(&self, request: &Request, access: Result<(), Skip>, trail: &mut Trail<C::Body>) -> Option<Shared<C::Body>> {
        let until = request.superseded_until?;
        if access.is_err() || self.runtime.now() >= until {
            return None;
        }
        for index in (0..self.sources.len()).filter(|&index| self.sources[index].is_cache_copy()) {
            trail.copies_asked = true;
            if let Some(done) = self.ask(index, SourceMode::Fresh, CacheStatus::Hit, request, trail).await {
                return Some(done);
            }
        }
        None
    }

    /// A copy of the page under the generation its scope superseded, while the staleness bound
    /// allows it (and its own freshness does): served labelled `STALE`, with its `Age`.
    async fn superseded_copy(&self, request: &Request, access: Result<(), Skip>, trail: &mut Trail<C::Body>) -> Option<Served<C::Body>> {
        let until = request.superseded_until?;
        if access.is_err() || self.runtime.now() >= until {
            return None;
        }
        for cache in &self.superseded {
            let Ok(Some(page)) = self.within(cache.layer(), cache.get()).await else { continue };
            let now = self.runtime.now();
            if matches!(self.policy.freshness.of(page.read_at, now), Freshness::Fresh | Freshness::Revalidate) && now < until {
                trail.step(cache.layer(), Event::Superseded);
                let age = Some(age_seconds(page.read_at, now));
                return Some(Served { body: page.body, status: CacheStatus::Stale, layer: cache.layer(), age, coalesced: false });
            }
        }
        None
    }

    /// Everything below the local caches: the other caches from `from` on, then the sources.
    async fn below(&self, from: usize, request: &Request, trail: &mut Trail<C::Body>) -> Shared<C::Body> {
        let access = cache_access(request);
        for (index, cache) in self.caches.iter().enumerate().skip(from) {
            if let Err(skip) = access {
                trail.step(cache.layer(), Event::Skipped(skip));
                continue;
            }
            if let Some(hit) = self.look(cache, trail).await {
                self.write_above(index, &hit.page, request, trail);
                return Ok(hit);
            }
        }
        let mode = if trail.consulted_a_cache || request.mode == Mode::Bypass || request.generation == GenerationState::Unknown {
            SourceMode::Fresh
        } else {
            SourceMode::MayUseItsCache
        };
        let status = if request.mode == Mode::Bypass { CacheStatus::Bypass } else { CacheStatus::Miss };
        for index in self.sources_for(request, trail) {
            if let Some(done) = self.ask(index, mode, status, request, trail).await {
                return done;
            }
        }
        Err(ReadError::Unavailable(trail.failures.clone()))
    }

    /// Asks one source: its page (`status`, or `HIT` from a cached copy), queued for the caches
    /// while the generation is known, or the end of the read when it says "not a member"; `None`
    /// when it declined or failed (noted in `trail`), for the next one to be asked.
    async fn ask(&self, index: usize, mode: SourceMode, status: CacheStatus, request: &Request, trail: &mut Trail<C::Body>) -> Option<Shared<C::Body>> {
        let source = &self.sources[index];
        match self.within(source.layer(), source.read(mode)).await {
            Ok(page) => {
                trail.step(source.layer(), Event::Answered);
                if request.generation == GenerationState::Known {
                    trail.writes.extend(self.targets(source).map(|i| (i, self.caches[i].layer(), page.clone())));
                    self.hand_to_keepers(&page, trail);
                }
                let status = if source.is_cache_copy() { CacheStatus::Hit } else { status };
                Some(Ok(Found { page, layer: source.layer(), status, age: None, refresh: false }))
            }
            Err(SourceError::Declined) => {
                trail.step(source.layer(), Event::Skipped(Skip::NotCarried));
                self.declined(index, trail);
                None
            }
            Err(SourceError::Forbidden) => {
                trail.step(source.layer(), Event::Forbidden);
                Some(Err(ReadError::Forbidden))
            }
            Err(SourceError::Failed(err)) => {
                trail.step(source.layer(), Event::Failed(err));
                None
            }
        }
    }

    /// Reads one cache: a copy to serve, or nothing (a copy for errors is kept in `trail`).
    async fn look(&self, cache: &C, trail: &mut Trail<C::Body>) -> Option<Found<C::Body>> {
        let layer = cache.layer();
        trail.consulted_a_cache = true;
        let page = match self.within(layer, cache.get()).await {
            Ok(Some(page)) => page,
            Ok(None) => {
                trail.step(layer, Event::Miss);
                return None;
            }
            Err(err) => {
                trail.step(layer, Event::Failed(err));
                return None;
            }
        };
        let now = self.runtime.now();
        let (age, refresh) = match self.policy.freshness.of(page.read_at, now) {
            Freshness::Fresh => (None, false),
            Freshness::Revalidate => (Some(age_seconds(page.read_at, now)), true),
            Freshness::StaleIfError => {
                trail.step(layer, Event::KeptForErrors);
                trail.keep(layer, page);
                return None;
            }
            Freshness::Expired => {
                trail.step(layer, Event::Expired);
                return None;
            }
        };
        trail.step(layer, Event::Hit);
        Some(Found { page, layer, status: CacheStatus::Hit, age, refresh })
    }

    /// Reads the page from the sources again and stores it in every cache (stale-while-revalidate).
    async fn refresh(&self, request: &Request) -> Vec<LayerError> {
        let mut failures = Vec::new();
        let mut trail = Trail::default();
        for index in self.sources_for(request, &mut trail) {
            let source = &self.sources[index];
            match self.within(source.layer(), source.read(SourceMode::Fresh)).await {
                Ok(page) => {
                    if request.generation == GenerationState::Known {
                        for index in self.targets(source) {
                            failures.extend(self.put(index, &page).await);
                        }
                        self.hand_to_keepers(&page, &mut trail);
                        failures.extend(self.keep(&trail.keeps).await);
                    }
                    return failures;
                }
                Err(SourceError::Forbidden) => return failures,
                Err(SourceError::Failed(err)) => failures.push(err),
                Err(SourceError::Declined) => self.declined(index, &mut trail),
            }
        }
        failures
    }

    /// Plans the write-back of a page found in cache `index` to every cache above it, while the
    /// generation is known.
    fn write_above(&self, index: usize, page: &StoredPage<C::Body>, request: &Request, trail: &mut Trail<C::Body>) {
        if request.generation == GenerationState::Known {
            trail.writes.extend(self.caches[..index].iter().enumerate().map(|(i, above)| (i, above.layer(), page.clone())));
        }
    }

    /// The sources that may be asked for this request; the others are recorded as skipped.
    fn sources_for(&self, request: &Request, trail: &mut Trail<C::Body>) -> Vec<usize> {
        let unverified = request.membership == Membership::Unverified;
        let mut asked = Vec::new();
        for (index, source) in self.sources.iter().enumerate() {
            if source.is_cache_copy() && trail.copies_asked {
                continue;
            }
            let skip = match cache_access(request) {
                Err(skip) if source.is_cache_copy() => Some(skip),
                _ if unverified && !source.checks_membership() => Some(Skip::MembershipUnverified),
                _ => None,
            };
            match skip {
                Some(skip) => trail.step(source.layer(), Event::Skipped(skip)),
                None => asked.push(index),
            }
        }
        asked
    }

    /// The caches a page from `source` is written back to: those it does not fill itself.
    fn targets<'a>(&'a self, source: &'a S) -> impl Iterator<Item = usize> + 'a {
        self.caches.iter().enumerate().filter(|(_, cache)| !source.fills(cache.layer())).map(|(i, _)| i)
    }

    async fn put(&self, index: usize, page: &StoredPage<C::Body>) -> Option<LayerError> {
        let cache = &self.caches[index];
        self.within(cache.layer(), cache.put(page)).await.err()
    }

    /// How long a follower waits for a shared read: every budget below the local caches.
    fn patience_ms(&self) -> u32 {
        let budgets = &self.policy.budgets;
        let caches = self.caches.iter().skip_while(|c| c.is_local()).map(|c| budgets.of(c.layer()));
        caches.chain(self.sources.iter().map(|s| budgets.of(s.layer()))).fold(0u32, u32::saturating_add)
    }

    /// Runs `call` within `layer`'s budget.
    async fn within<T, E: From<LayerError>>(&self, layer: CacheLayer, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        within(&self.runtime, layer, self.policy.budgets.of(layer), call).await
    }
}

/// Runs `call`, a call to `layer`, giving up after `budget_ms` with [`LayerError::Timeout`].
pub async fn within<R: Runtime, T, E: From<LayerError>>(runtime: &R, layer: CacheLayer, budget_ms: u32, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    match select(pin!(call), pin!(runtime.sleep(budget_ms))).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(LayerError::Timeout { layer, budget_ms }.into()),
    }
}

/// The key concurrent identical reads of `request`'s page share.
fn flight(request: &Request) -> String {
    format!("{}|{:?}", request.key, request.generation)
}

/// Whether caches may be read for `request`, and if not, why.
fn cache_access(request: &Request) -> Result<(), Skip> {
    if request.mode == Mode::Bypass {
        Err(Skip::Bypassed)
    } else if request.membership == Membership::Unverified {
        Err(Skip::MembershipUnverified)
    } else if request.generation == GenerationState::Unknown {
        Err(Skip::GenerationUnknown)
    } else {
        Ok(())
    }
}

fn served<B>(found: Found<B>, coalesced: bool) -> Served<B> {
    Served { body: found.page.body, status: found.status, layer: found.layer, age: found.age, coalesced }
}
