//! Every rule of the read path, with in-memory layers, a virtual clock that only moves when every
//! read is waiting on a timer, and a fixed `now`. The layers are the worker's (KV, then Redis; the
//! database, then the backend's fallback, which checks membership and keeps Redis itself).

use super::*;
use crate::coalesce::{Alone, Isolate};
use crate::freshness::FreshnessPolicy;
use crate::time::{Runtime, UnixMillis};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::{pending, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

const NOW: u64 = 1_800_000_000_000;
const SECOND: u64 = 1000;
const POLICY: Policy = Policy {
    freshness: FreshnessPolicy { ttl_ms: 180 * SECOND, revalidate_ms: 30 * SECOND, grace_ms: 600 * SECOND },
    budgets: Budgets { kv_ms: 1000, redis_ms: 2000, database_ms: 5000, fallback_ms: 2000 },
    refresh_lease_ms: 10 * SECOND,
};

/// A clock that moves only when `run` finds every read waiting on a timer: then it jumps to the
/// earliest deadline.
#[derive(Default)]
struct Clock {
    now: Cell<u64>,
    timers: RefCell<BTreeMap<u64, u64>>,
    next_timer: Cell<u64>,
}

#[derive(Clone)]
struct FakeRuntime(Rc<Clock>);

impl FakeRuntime {
    fn at(now: u64) -> Self {
        let clock = Clock::default();
        clock.now.set(now);
        Self(Rc::new(clock))
    }

    fn advance(&self, ms: u64) {
        self.0.now.set(self.0.now.get() + ms);
    }
}

struct Sleep {
    clock: Rc<Clock>,
    id: u64,
    deadline: u64,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.clock.now.get() >= self.deadline {
            self.clock.timers.borrow_mut().remove(&self.id);
            Poll::Ready(())
        } else {
            self.clock.timers.borrow_mut().insert(self.id, self.deadline);
            Poll::Pending
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.clock.timers.borrow_mut().remove(&self.id);
    }
}

impl Runtime for FakeRuntime {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.0.now.get())
    }

    async fn sleep(&self, ms: u32) {
        let id = self.0.next_timer.get();
        self.0.next_timer.set(id + 1);
        Sleep { clock: Rc::clone(&self.0), id, deadline: self.0.now.get() + u64::from(ms) }.await
    }
}

/// Drives `fut` to completion on the virtual clock.
fn run<T>(runtime: &FakeRuntime, fut: impl Future<Output = T>) -> T {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = fut.as_mut().poll(&mut cx) {
            return value;
        }
        let next = runtime.0.timers.borrow().values().min().copied();
        let next = next.expect("every read is waiting, and not on a timer");
        runtime.0.now.set(next.max(runtime.0.now.get()));
    }
}

/// Pending until the flag is set.
struct Gate(Rc<Cell<bool>>);

impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[derive(Clone)]
enum Holds {
    Nothing,
    Page(StoredPage),
    Fails,
    Refuses,
    Hangs,
}

struct FakeCache {
    layer: CacheLayer,
    holds: RefCell<Holds>,
    gets: Cell<u32>,
    puts: RefCell<Vec<StoredPage>>,
    puts_fail: Cell<bool>,
}

impl Cache for Rc<FakeCache> {
    type Body = String;

    fn layer(&self) -> CacheLayer {
        self.layer
    }

    fn is_local(&self) -> bool {
        self.layer == CacheLayer::Kv
    }

    async fn get(&self) -> Result<Option<StoredPage>, LayerError> {
        self.gets.set(self.gets.get() + 1);
        let holds = self.holds.borrow().clone();
        match holds {
            Holds::Nothing => Ok(None),
            Holds::Page(page) => Ok(Some(page)),
            Holds::Fails => Err(LayerError::failed(self.layer, "down")),
            Holds::Refuses => Err(LayerError::Refused { layer: self.layer, reason: "tampered".into() }),
            Holds::Hangs => pending().await,
        }
    }

    async fn put(&self, page: &StoredPage) -> Result<(), LayerError> {
        if self.puts_fail.get() {
            return Err(LayerError::failed(self.layer, "rate limited"));
        }
        self.puts.borrow_mut().push(page.clone());
        *self.holds.borrow_mut() = Holds::Page(page.clone());
        Ok(())
    }
}

#[derive(Clone)]
enum Gives {
    Page(&'static str),
    Forbidden,
    Fails,
    Hangs,
    After(Rc<Cell<bool>>, &'static str),
    Declines,
}

struct FakeSource {
    layer: CacheLayer,
    checks_membership: bool,
    fills: Option<CacheLayer>,
    gives: RefCell<Gives>,
    reads: RefCell<Vec<SourceMode>>,
    clock: FakeRuntime,
    /// A cached copy carried forward, not the database.
    copy: bool,
    /// Whether it keeps, after declining, what answers below it; and what it was given.
    keeper: bool,
    kept: RefCell<Vec<StoredPage>>,
}

impl Source for Rc<FakeSource> {
    type Body = String;

    fn layer(&self) -> CacheLayer {
        self.layer
    }

    fn checks_membership(&self) -> bool {
        self.checks_membership
    }

    fn fills(&self, cache: CacheLayer) -> bool {
        self.fills == Some(cache)
    }

    fn is_cache_copy(&self) -> bool {
        self.copy
    }

    fn keeps_answers_below(&self) -> bool {
        self.keeper
    }

    async fn keep(&self, page: &StoredPage) -> Result<(), LayerError> {
        self.kept.borrow_mut().push(page.clone());
        Ok(())
    }

    async fn read(&self, mode: SourceMode) -> Result<StoredPage, SourceError> {
        self.reads.borrow_mut().push(mode);
        let gives = self.gives.borrow().clone();
        let body = match gives {
            Gives::Page(body) => body,
            Gives::Forbidden => return Err(SourceError::Forbidden),
            Gives::Fails => return Err(LayerError::failed(self.layer, "answered 500").into()),
            Gives::Hangs => pending().await,
            Gives::Declines => return Err(SourceError::Declined),
            Gives::After(gate, body) => {
                Gate(gate).await;
                body
            }
        };
        Ok(StoredPage { body: body.to_owned(), read_at: self.clock.now() })
    }
}

type Worker = Engine<Rc<FakeCache>, Rc<FakeSource>, FakeRuntime, Isolate<Shared>>;

/// The worker's layers: KV and Redis hold nothing, the database and the fallback answer.
struct World {
    kv: Rc<FakeCache>,
    /// KV at the page's key under the generation an invalidation superseded.
    old_kv: Rc<FakeCache>,
    redis: Rc<FakeCache>,
    database: Rc<FakeSource>,
    fallback: Rc<FakeSource>,
    runtime: FakeRuntime,
    engine: Worker,
}

fn cache(layer: CacheLayer) -> Rc<FakeCache> {
    Rc::new(FakeCache { layer, holds: RefCell::new(Holds::Nothing), gets: Cell::new(0), puts: RefCell::default(), puts_fail: Cell::new(false) })
}

fn source(layer: CacheLayer, checks_membership: bool, fills: Option<CacheLayer>, body: &'static str, clock: &FakeRuntime) -> Rc<FakeSource> {
    Rc::new(FakeSource { layer, checks_membership, fills, gives: RefCell::new(Gives::Page(body)), reads: RefCell::default(), clock: clock.clone(), copy: false, keeper: false, kept: RefCell::default() })
}

fn world() -> World {
    let runtime = FakeRuntime::at(NOW);
    let kv = cache(CacheLayer::Kv);
    let old_kv = cache(CacheLayer::Kv);
    let redis = cache(CacheLayer::Redis);
    let database = source(CacheLayer::Database, false, None, "from the database", &runtime);
    let fallback = source(CacheLayer::BackendFallback, true, Some(CacheLayer::Redis), "from the fallback", &runtime);
    let engine = Engine {
        caches: vec![Rc::clone(&kv), Rc::clone(&redis)],
        superseded: vec![Rc::clone(&old_kv)],
        sources: vec![Rc::clone(&database), Rc::clone(&fallback)],
        policy: POLICY,
        runtime: runtime.clone(),
        coalescer: Isolate::default(),
    };
    World { kv, old_kv, redis, database, fallback, runtime, engine }
}

fn request() -> Request {
    Request { mode: Mode::Normal, membership: Membership::Confirmed, generation: GenerationState::Known, key: "page-1".into(), superseded_until: None }
}

/// A page read from its source `age_s` seconds before `NOW`.
fn aged(body: &str, age_s: u64) -> StoredPage {
    StoredPage { body: body.to_owned(), read_at: UnixMillis(NOW - age_s * SECOND) }
}

fn holding(cache: &FakeCache, page: StoredPage) {
    *cache.holds.borrow_mut() = Holds::Page(page);
}

fn giving(source: &FakeSource, gives: Gives) {
    *source.gives.borrow_mut() = gives;
}

/// Neither the database nor the fallback answers.
fn sources_fail(w: &World) {
    giving(&w.database, Gives::Fails);
    giving(&w.fallback, Gives::Fails);
}

fn steps<L>(outcome: &Outcome<L>) -> Vec<(&'static str, Event)> {
    outcome.steps.iter().map(|s| (s.layer.as_str(), s.event.clone())).collect()
}

fn served<L>(outcome: &Outcome<L>) -> (&str, &'static str, &'static str, Option<u64>) {
    let served = outcome.result.as_ref().expect("something is served");
    (served.body.as_str(), served.status.as_str(), served.layer.as_str(), served.age)
}

fn written<L>(outcome: &Outcome<L>) -> Vec<&'static str> {
    outcome.after.writes().map(CacheLayer::as_str).collect()
}

fn read(w: &World, request: &Request) -> Outcome<crate::coalesce::Lead<Shared>> {
    run(&w.runtime, w.engine.read(request))
}

fn read_and_finish(w: &World, request: &Request) -> (Outcome<()>, Vec<LayerError>) {
    let outcome = read(w, request);
    let Outcome { result, steps, after } = outcome;
    let targets: Vec<_> = after.writes.iter().map(|(i, l, p)| (*i, *l, p.clone())).collect();
    let keeps: Vec<_> = after.keeps.iter().map(|(i, l, p)| (*i, *l, p.clone())).collect();
    let refresh = after.refresh;
    let failures = run(&w.runtime, w.engine.finish(request, after));
    (Outcome { result, steps, after: After { writes: targets, keeps, refresh, fill: false, lead: None } }, failures)
}

#[test]
fn a_fresh_copy_in_kv_is_served_and_nothing_else_is_asked() {
    let w = world();
    holding(&w.kv, aged("cached", 179));
    let outcome = read(&w, &request());
    assert_eq!(served(&outcome), ("cached", "HIT", "KV", None));
    assert_eq!(steps(&outcome), [("KV", Event::Hit)]);
    assert_eq!((w.redis.gets.get(), w.database.reads.borrow().len()), (0, 0));
    assert!(outcome.after.is_empty());
}

#[test]
fn a_kv_miss_is_answered_by_redis_and_written_back_to_kv_with_its_read_time() {
    let w = world();
    holding(&w.redis, aged("in redis", 20));
    let (outcome, failures) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome), ("in redis", "HIT", "REDIS", None));
    assert_eq!(steps(&outcome), [("KV", Event::Miss), ("REDIS", Event::Hit)]);
    assert_eq!(written(&outcome), ["KV"]);
    assert!(failures.is_empty());
    assert_eq!(*w.kv.puts.borrow(), [aged("in redis", 20)]);
    assert!(w.redis.puts.borrow().is_empty());
}

#[test]
fn a_miss_everywhere_reads_the_database_and_fills_every_cache() {
    let w = world();
    let (outcome, _) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome), ("from the database", "MISS", "DATABASE", None));
    assert_eq!(steps(&outcome), [("KV", Event::Miss), ("REDIS", Event::Miss), ("DATABASE", Event::Answered)]);
    assert_eq!(written(&outcome), ["KV", "REDIS"]);
    let stored = StoredPage { body: "from the database".into(), read_at: UnixMillis(NOW) };
    assert_eq!((w.kv.puts.borrow()[0].clone(), w.redis.puts.borrow()[0].clone()), (stored.clone(), stored));
    // The caches above missed: the source is asked for fresh data.
    assert_eq!(*w.database.reads.borrow(), [SourceMode::Fresh]);
}

#[test]
fn the_fallback_answers_when_the_database_fails_and_is_not_written_back_to_the_redis_it_fills() {
    let w = world();
    giving(&w.database, Gives::Fails);
    let (outcome, _) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome), ("from the fallback", "MISS", "BACKEND-FALLBACK", None));
    let failed = LayerError::failed(CacheLayer::Database, "answered 500");
    assert_eq!(steps(&outcome)[2..], [("DATABASE", Event::Failed(failed)), ("BACKEND-FALLBACK", Event::Answered)]);
    assert_eq!(written(&outcome), ["KV"]);
    // Redis already missed above: the fallback must not read it again.
    assert_eq!(*w.fallback.reads.borrow(), [SourceMode::Fresh]);
}

#[test]
fn a_copy_just_past_its_ttl_is_served_with_its_age_and_refreshed_once_per_lease() {
    let w = world();
    holding(&w.kv, aged("old", 195));
    let (outcome, _) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome), ("old", "HIT", "KV", Some(195)));
    assert!(outcome.after.refreshes());
    assert!(written(&outcome).is_empty(), "the served copy is not written anywhere");
    // The refresh read the source for fresh data and stored it in both caches.
    assert_eq!(*w.database.reads.borrow(), [SourceMode::Fresh]);
    assert_eq!(w.kv.puts.borrow()[0].body, "from the database");
    assert_eq!(w.redis.puts.borrow()[0].body, "from the database");

    // Another copy past its TTL within the lease: served, not refreshed again.
    holding(&w.kv, aged("old", 196));
    let (outcome, _) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome).1, "HIT");
    assert_eq!(w.database.reads.borrow().len(), 1);
    // After the lease, it is refreshed again.
    w.runtime.advance(10 * SECOND);
    holding(&w.kv, aged("old", 190));
    read_and_finish(&w, &request());
    assert_eq!(w.database.reads.borrow().len(), 2);
}

#[test]
fn the_windows_end_exactly_where_the_policy_says() {
    for (age, status) in [(179, Some("HIT")), (180, Some("HIT")), (209, Some("HIT")), (210, None), (779, None), (780, None)] {
        let w = world();
        holding(&w.kv, aged("copy", age));
        let outcome = read(&w, &request());
        let from_kv = served(&outcome).2 == "KV";
        assert_eq!(from_kv.then(|| served(&outcome).1), status, "age {age}");
    }
}

#[test]
fn an_older_copy_is_kept_aside_and_served_stale_only_when_nothing_answers() {
    let w = world();
    holding(&w.kv, aged("too old", 400));
    let (outcome, _) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome), ("from the database", "MISS", "DATABASE", None));
    assert_eq!(steps(&outcome)[0], ("KV", Event::KeptForErrors));
    // (the database's answer went to both caches; put the old copy back, and nothing in Redis)
    holding(&w.kv, aged("too old", 400));
    *w.redis.holds.borrow_mut() = Holds::Nothing;

    sources_fail(&w);
    let outcome = read(&w, &request());
    assert_eq!(served(&outcome), ("too old", "STALE", "KV", Some(400)));
    assert!(written(&outcome).is_empty());
}

#[test]
fn a_copy_past_every_window_is_never_served() {
    let w = world();
    holding(&w.kv, aged("ancient", 780));
    sources_fail(&w);
    let outcome = read(&w, &request());
    assert_eq!(steps(&outcome)[0], ("KV", Event::Expired));
    let failures = vec![LayerError::failed(CacheLayer::Database, "answered 500"), LayerError::failed(CacheLayer::BackendFallback, "answered 500")];
    assert_eq!(outcome.result, Err(ReadError::Unavailable(failures)));
}

#[test]
fn the_freshest_copy_kept_aside_is_the_one_served_stale() {
    let w = world();
    holding(&w.kv, aged("older", 700));
    holding(&w.redis, aged("newer", 300));
    sources_fail(&w);
    let outcome = read(&w, &request());
    assert_eq!(served(&outcome), ("newer", "STALE", "REDIS", Some(300)));
}

#[test]
fn no_cache_skips_every_cache_reads_fresh_data_and_refreshes_the_caches() {
    let w = world();
    holding(&w.kv, aged("cached", 5));
    let request = Request { mode: Mode::Bypass, ..request() };
    let (outcome, _) = read_and_finish(&w, &request);
    assert_eq!(served(&outcome), ("from the database", "BYPASS", "DATABASE", None));
    assert_eq!(
        steps(&outcome),
        [("KV", Event::Skipped(Skip::Bypassed)), ("REDIS", Event::Skipped(Skip::Bypassed)), ("DATABASE", Event::Answered)]
    );
    assert_eq!(w.kv.gets.get(), 0);
    assert_eq!(*w.database.reads.borrow(), [SourceMode::Fresh]);
    assert_eq!(written(&outcome), ["KV", "REDIS"]);
}

#[test]
fn no_cache_never_falls_back_to_a_stale_copy() {
    let w = world();
    holding(&w.kv, aged("too old", 400));
    sources_fail(&w);
    let outcome = read(&w, &Request { mode: Mode::Bypass, ..request() });
    assert!(matches!(outcome.result, Err(ReadError::Unavailable(_))));
}

#[test]
fn with_the_generation_unknown_no_cache_is_read_or_written() {
    let w = world();
    holding(&w.kv, aged("cached", 5));
    let request = Request { generation: GenerationState::Unknown, ..request() };
    let (outcome, _) = read_and_finish(&w, &request);
    assert_eq!(served(&outcome), ("from the database", "MISS", "DATABASE", None));
    assert_eq!(steps(&outcome)[..2], [("KV", Event::Skipped(Skip::GenerationUnknown)), ("REDIS", Event::Skipped(Skip::GenerationUnknown))]);
    assert!(written(&outcome).is_empty());
    assert!(w.kv.puts.borrow().is_empty() && w.redis.puts.borrow().is_empty());
    // The fallback must not answer from a Redis copy that may predate an invalidation.
    giving(&w.database, Gives::Fails);
    read(&w, &request);
    assert_eq!(*w.fallback.reads.borrow(), [SourceMode::Fresh]);
}

#[test]
fn an_unverified_member_gets_no_cached_page_only_the_source_that_checks_membership() {
    let w = world();
    holding(&w.kv, aged("cached", 5));
    holding(&w.redis, aged("cached", 5));
    let request = Request { membership: Membership::Unverified, ..request() };
    let (outcome, _) = read_and_finish(&w, &request);
    assert_eq!(served(&outcome), ("from the fallback", "MISS", "BACKEND-FALLBACK", None));
    assert_eq!(
        steps(&outcome),
        [
            ("KV", Event::Skipped(Skip::MembershipUnverified)),
            ("REDIS", Event::Skipped(Skip::MembershipUnverified)),
            ("DATABASE", Event::Skipped(Skip::MembershipUnverified)),
            ("BACKEND-FALLBACK", Event::Answered),
        ]
    );
    assert_eq!((w.kv.gets.get(), w.redis.gets.get()), (0, 0));
    assert!(w.database.reads.borrow().is_empty());
    // No cache was consulted here: the fallback checks membership and may answer from its Redis.
    assert_eq!(*w.fallback.reads.borrow(), [SourceMode::MayUseItsCache]);
    // What the fallback answered (after checking membership) is written to KV.
    assert_eq!(written(&outcome), ["KV"]);
}

#[test]
fn a_failing_or_silent_layer_is_skipped_within_its_budget() {
    let w = world();
    *w.kv.holds.borrow_mut() = Holds::Fails;
    *w.redis.holds.borrow_mut() = Holds::Hangs;
    giving(&w.database, Gives::Hangs);
    let outcome = read(&w, &request());
    assert_eq!(served(&outcome), ("from the fallback", "MISS", "BACKEND-FALLBACK", None));
    assert_eq!(
        steps(&outcome),
        [
            ("KV", Event::Failed(LayerError::failed(CacheLayer::Kv, "down"))),
            ("REDIS", Event::Failed(LayerError::Timeout { layer: CacheLayer::Redis, budget_ms: 2000 })),
            ("DATABASE", Event::Failed(LayerError::Timeout { layer: CacheLayer::Database, budget_ms: 5000 })),
            ("BACKEND-FALLBACK", Event::Answered),
        ]
    );
    // Each budget was waited on once: 2 s for Redis, then 5 s for the database.
    assert_eq!(w.runtime.now(), UnixMillis(NOW + 7000));
}

#[test]
fn an_entry_that_does_not_open_is_never_served() {
    let w = world();
    *w.kv.holds.borrow_mut() = Holds::Refuses;
    let outcome = read(&w, &request());
    assert_eq!(served(&outcome).2, "DATABASE");
    assert!(matches!(&outcome.steps[0].event, Event::Failed(LayerError::Refused { .. })));
}

#[test]
fn a_source_refusing_the_caller_ends_the_read_even_with_a_copy_aside() {
    let w = world();
    holding(&w.kv, aged("too old", 400));
    giving(&w.database, Gives::Fails);
    giving(&w.fallback, Gives::Forbidden);
    let outcome = read(&w, &request());
    assert_eq!(outcome.result, Err(ReadError::Forbidden));
    assert_eq!(steps(&outcome).last(), Some(&("BACKEND-FALLBACK", Event::Forbidden)));
    assert!(written(&outcome).is_empty());
}

#[test]
fn write_back_failures_are_reported_and_do_not_change_the_answer() {
    let w = world();
    w.kv.puts_fail.set(true);
    let (outcome, failures) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome).2, "DATABASE");
    assert_eq!(failures, [LayerError::failed(CacheLayer::Kv, "rate limited")]);
    assert_eq!(w.redis.puts.borrow().len(), 1);
}

#[test]
fn concurrent_identical_misses_share_one_read_and_the_leader_holds_it_until_written_back() {
    let w = world();
    let gate = Rc::new(Cell::new(false));
    giving(&w.database, Gives::After(Rc::clone(&gate), "shared"));
    let request = request();
    let open = async {
        w.runtime.sleep(10).await;
        gate.set(true);
    };
    let (a, b, c, ()) = run(&w.runtime, async {
        futures_util::future::join4(w.engine.read(&request), w.engine.read(&request), w.engine.read(&request), open).await
    });
    assert_eq!(w.database.reads.borrow().len(), 1, "one read for three requests");
    for outcome in [&a, &b, &c] {
        assert_eq!(served(outcome), ("shared", "MISS", "DATABASE", None));
    }
    let coalesced: Vec<_> = [&a, &b, &c].iter().map(|o| o.result.as_ref().unwrap().coalesced).collect();
    assert_eq!(coalesced, [false, true, true]);
    assert_eq!((written(&a), written(&b), written(&c)), (vec!["KV", "REDIS"], vec![], vec![]));

    // Until the leader's write-back has landed, a newcomer takes the answer instead of missing.
    let late = read(&w, &request);
    assert_eq!(served(&late), ("shared", "MISS", "DATABASE", None));
    assert!(late.result.as_ref().unwrap().coalesced);
    assert_eq!(w.database.reads.borrow().len(), 1);

    run(&w.runtime, w.engine.finish(&request, a.after));
    assert!(w.engine.coalescer.flights().is_empty(), "the flight ends with the write-back");
    assert_eq!(w.kv.puts.borrow().len(), 1);
}

#[test]
fn a_shared_failure_sends_each_request_to_its_own_copy_aside() {
    let w = world();
    holding(&w.kv, aged("kept", 300));
    sources_fail(&w);
    let request = request();
    let (a, b) = run(&w.runtime, async { futures_util::future::join(w.engine.read(&request), w.engine.read(&request)).await });
    assert_eq!(w.database.reads.borrow().len(), 1);
    assert_eq!(served(&a), ("kept", "STALE", "KV", Some(300)));
    assert_eq!(served(&b), ("kept", "STALE", "KV", Some(300)));
}

#[test]
fn a_follower_whose_leader_went_away_reads_for_itself() {
    let w = world();
    let gate = Rc::new(Cell::new(false));
    giving(&w.database, Gives::After(Rc::clone(&gate), "never"));
    let request = request();
    let follower = run(&w.runtime, async {
        let leader = async {
            let reading = std::pin::pin!(w.engine.read(&request));
            let cancelled = std::pin::pin!(w.runtime.sleep(5));
            // The leader's request is cancelled while it reads: its flight is abandoned.
            assert!(matches!(futures_util::future::select(reading, cancelled).await, futures_util::future::Either::Right(_)));
        };
        let follower = async {
            w.runtime.sleep(1).await;
            giving(&w.database, Gives::Page("own read"));
            w.engine.read(&request).await
        };
        futures_util::future::join(leader, follower).await.1
    });
    assert_eq!(served(&follower), ("own read", "MISS", "DATABASE", None));
    assert!(!follower.result.as_ref().unwrap().coalesced);
    assert_eq!(w.database.reads.borrow().len(), 2);
}

#[test]
fn no_cache_and_unverified_reads_are_never_shared() {
    for request in [Request { mode: Mode::Bypass, ..request() }, Request { membership: Membership::Unverified, ..request() }] {
        let w = world();
        let gate = Rc::new(Cell::new(false));
        giving(&w.database, Gives::After(Rc::clone(&gate), "own"));
        giving(&w.fallback, Gives::After(Rc::clone(&gate), "own"));
        let open = async {
            w.runtime.sleep(10).await;
            gate.set(true);
        };
        let (a, b, ()) = run(&w.runtime, async { futures_util::future::join3(w.engine.read(&request), w.engine.read(&request), open).await });
        let reads = w.database.reads.borrow().len() + w.fallback.reads.borrow().len();
        assert_eq!(reads, 2, "{:?}", request.mode);
        assert!(!a.result.unwrap().coalesced && !b.result.unwrap().coalesced);
    }
}

#[test]
fn a_cache_only_read_tells_a_clean_miss_from_a_failure() {
    let runtime = FakeRuntime::at(NOW);
    let redis = cache(CacheLayer::Redis);
    let engine: Engine<Rc<FakeCache>, Rc<FakeSource>, FakeRuntime, Alone> =
        Engine { caches: vec![Rc::clone(&redis)], superseded: vec![], sources: vec![], policy: POLICY, runtime: runtime.clone(), coalescer: Alone };
    let outcome = run(&runtime, engine.read(&request()));
    assert_eq!(outcome.result, Err(ReadError::Unavailable(vec![])));
    *redis.holds.borrow_mut() = Holds::Fails;
    let outcome = run(&runtime, engine.read(&request()));
    assert_eq!(outcome.result, Err(ReadError::Unavailable(vec![LayerError::failed(CacheLayer::Redis, "down")])));
}

#[test]
fn a_source_below_no_cache_may_answer_from_its_own() {
    let runtime = FakeRuntime::at(NOW);
    let fallback = source(CacheLayer::BackendFallback, true, Some(CacheLayer::Redis), "page", &runtime);
    let engine: Engine<Rc<FakeCache>, Rc<FakeSource>, FakeRuntime, Alone> =
        Engine { caches: vec![], superseded: vec![], sources: vec![Rc::clone(&fallback)], policy: POLICY, runtime: runtime.clone(), coalescer: Alone };
    let outcome = run(&runtime, engine.read(&request()));
    assert_eq!(served(&outcome), ("page", "MISS", "BACKEND-FALLBACK", None));
    assert_eq!(*fallback.reads.borrow(), [SourceMode::MayUseItsCache]);
}

/// The backend awaits the engine inside axum handlers, whose futures must be `Send`: with
/// adapters whose futures are `Send` and no coalescing, the engine's futures are `Send` too.
#[test]
fn the_engines_futures_are_send_over_send_adapters() {
    struct Plain;
    impl Cache for Plain {
        type Body = String;

        fn layer(&self) -> CacheLayer {
            CacheLayer::Redis
        }
        async fn get(&self) -> Result<Option<StoredPage>, LayerError> {
            Ok(None)
        }
        async fn put(&self, _: &StoredPage) -> Result<(), LayerError> {
            Ok(())
        }
    }
    impl Source for Plain {
        type Body = String;

        async fn read(&self, _: SourceMode) -> Result<StoredPage, SourceError> {
            Err(SourceError::Forbidden)
        }
        fn checks_membership(&self) -> bool {
            true
        }
        fn layer(&self) -> CacheLayer {
            CacheLayer::Database
        }
    }
    struct Clock;
    impl Runtime for Clock {
        fn now(&self) -> UnixMillis {
            UnixMillis(NOW)
        }
        async fn sleep(&self, _: u32) {}
    }
    fn send<T: Send>(value: T) -> T {
        value
    }
    let engine = Engine { caches: vec![Plain], superseded: vec![], sources: vec![Plain], policy: POLICY, runtime: Clock, coalescer: Alone };
    let request = request();
    let outcome = run(&FakeRuntime::at(NOW), send(engine.read(&request)));
    assert_eq!(outcome.result, Err(ReadError::Forbidden));
    run(&FakeRuntime::at(NOW), send(engine.finish(&request, outcome.after)));
}

#[test]
fn without_a_local_cache_in_front_even_the_first_cache_is_read_once_for_concurrent_requests() {
    let runtime = FakeRuntime::at(NOW);
    let redis = cache(CacheLayer::Redis);
    holding(&redis, aged("in redis", 3));
    let engine: Worker = Engine { caches: vec![Rc::clone(&redis)], superseded: vec![], sources: vec![], policy: POLICY, runtime: runtime.clone(), coalescer: Isolate::default() };
    let request = request();
    let (a, b) = run(&runtime, async { futures_util::future::join(engine.read(&request), engine.read(&request)).await });
    assert_eq!(redis.gets.get(), 1);
    assert_eq!((served(&a), served(&b).1), (("in redis", "HIT", "REDIS", None), "HIT"));
    assert!(b.result.unwrap().coalesced);
}

/// A read one second-bound after an invalidation at `NOW - ago_ms`.
fn after_invalidation(ago_ms: u64) -> Request {
    Request { superseded_until: Some(UnixMillis(NOW - ago_ms + SECOND)), ..request() }
}

#[test]
fn within_the_bound_after_an_invalidation_the_superseded_copy_is_served_stale_and_the_current_page_fetched() {
    let w = world();
    holding(&w.old_kv, aged("before the write", 20));
    let request = after_invalidation(300);
    let (outcome, failures) = read_and_finish(&w, &request);
    assert_eq!(served(&outcome), ("before the write", "STALE", "KV", Some(20)));
    assert_eq!(steps(&outcome), [("KV", Event::Miss), ("KV", Event::Superseded)]);
    assert!(failures.is_empty());
    // After the response, the current page was read below KV and written back to both caches.
    assert_eq!(w.redis.gets.get(), 1);
    assert_eq!(*w.database.reads.borrow(), [SourceMode::Fresh]);
    assert_eq!(w.kv.puts.borrow()[0].body, "from the database");
    assert_eq!(w.redis.puts.borrow()[0].body, "from the database");
    // The next reader finds it.
    assert_eq!(served(&read(&w, &request)), ("from the database", "HIT", "KV", None));
}

#[test]
fn concurrent_readers_of_an_invalidated_page_are_served_stale_and_cause_one_read() {
    let w = world();
    holding(&w.old_kv, aged("before the write", 20));
    let request = after_invalidation(300);
    let readers: Vec<_> = (0..50).map(|_| w.engine.read(&request)).collect();
    let outcomes = run(&w.runtime, futures_util::future::join_all(readers));
    assert!(outcomes.iter().all(|o| served(o).1 == "STALE"));
    let finishes: Vec<_> = outcomes.into_iter().map(|o| w.engine.finish(&request, o.after)).collect();
    run(&w.runtime, futures_util::future::join_all(finishes));
    assert_eq!(w.database.reads.borrow().len(), 1, "one read for fifty readers");
}

#[test]
fn past_the_bound_nothing_superseded_is_served() {
    let w = world();
    holding(&w.old_kv, aged("before the write", 20));
    let outcome = read(&w, &after_invalidation(1000));
    assert_eq!(served(&outcome), ("from the database", "MISS", "DATABASE", None));
    assert_eq!(w.old_kv.gets.get(), 0);
}

#[test]
fn strict_mode_never_serves_a_superseded_generation() {
    let w = world();
    holding(&w.old_kv, aged("before the write", 20));
    let outcome = read(&w, &request());
    assert_eq!(served(&outcome).2, "DATABASE");
    assert_eq!(w.old_kv.gets.get(), 0);
}

#[test]
fn a_superseded_copy_past_its_own_ttl_is_not_served() {
    let w = world();
    holding(&w.old_kv, aged("old in itself", 215));
    let outcome = read(&w, &after_invalidation(300));
    assert_eq!(served(&outcome).2, "DATABASE");
}

#[test]
fn a_failing_fetch_leaves_the_superseded_copy_served_only_within_the_bound() {
    let w = world();
    holding(&w.old_kv, aged("before the write", 20));
    sources_fail(&w);
    let request = after_invalidation(300);
    let (outcome, failures) = read_and_finish(&w, &request);
    assert_eq!(served(&outcome).1, "STALE");
    assert_eq!(failures.len(), 2, "the database and the fallback failed");
    // Still within the bound: served again, and not fetched again within the lease.
    w.runtime.advance(600);
    let (outcome, _) = read_and_finish(&w, &request);
    assert_eq!(served(&outcome).1, "STALE");
    assert_eq!(w.database.reads.borrow().len(), 1);
    // Past the bound: read through as for any miss.
    w.runtime.advance(200);
    let outcome = read(&w, &request);
    assert!(matches!(outcome.result, Err(ReadError::Unavailable(_))));
}

#[test]
fn no_cache_and_unverified_reads_never_get_a_superseded_copy() {
    for request in [Request { mode: Mode::Bypass, ..after_invalidation(300) }, Request { membership: Membership::Unverified, ..after_invalidation(300) }] {
        let w = world();
        holding(&w.old_kv, aged("before the write", 20));
        let outcome = read(&w, &request);
        assert_ne!(served(&outcome).1, "STALE");
        assert_eq!(w.old_kv.gets.get(), 0);
    }
}

/// The worker's world with a carried KV copy asked before the database.
fn world_with_copy() -> (World, Rc<FakeSource>) {
    let mut w = world();
    let copy = Rc::new(FakeSource { copy: true, ..Rc::try_unwrap(source(CacheLayer::Kv, false, None, "carried", &w.runtime)).ok().unwrap() });
    w.engine.sources.insert(0, Rc::clone(&copy));
    (w, copy)
}

#[test]
fn a_carried_copy_answers_a_miss_as_a_hit_and_is_written_to_every_cache() {
    let (w, _copy) = world_with_copy();
    let (outcome, failures) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome), ("carried", "HIT", "KV", None));
    assert_eq!(steps(&outcome), [("KV", Event::Miss), ("REDIS", Event::Miss), ("KV", Event::Answered)]);
    assert_eq!(written(&outcome), ["KV", "REDIS"]);
    assert!(failures.is_empty());
    assert!(w.database.reads.borrow().is_empty(), "no database read");
}

#[test]
fn a_copy_that_cannot_be_carried_falls_through_to_the_database() {
    let (w, copy) = world_with_copy();
    giving(&copy, Gives::Declines);
    let outcome = read(&w, &request());
    assert_eq!(served(&outcome), ("from the database", "MISS", "DATABASE", None));
    assert_eq!(steps(&outcome), [("KV", Event::Miss), ("REDIS", Event::Miss), ("KV", Event::Skipped(Skip::NotCarried)), ("DATABASE", Event::Answered)]);
}

#[test]
fn a_carried_copy_is_never_asked_when_caches_may_not_be_read() {
    for request in [
        Request { mode: Mode::Bypass, ..request() },
        Request { generation: GenerationState::Unknown, ..request() },
        Request { membership: Membership::Unverified, ..request() },
    ] {
        let (w, copy) = world_with_copy();
        let outcome = read(&w, &request);
        assert!(copy.reads.borrow().is_empty(), "{:?}", steps(&outcome));
        assert_ne!(served(&outcome).0, "carried");
    }
}

#[test]
fn within_the_bound_a_carried_copy_is_served_before_the_superseded_one() {
    let (w, copy) = world_with_copy();
    holding(&w.old_kv, aged("before the write", 20));
    let (outcome, failures) = read_and_finish(&w, &after_invalidation(300));
    assert_eq!(served(&outcome), ("carried", "HIT", "KV", None));
    assert_eq!(steps(&outcome), [("KV", Event::Miss), ("KV", Event::Answered)]);
    assert_eq!(written(&outcome), ["KV", "REDIS"]);
    assert!(failures.is_empty());
    assert_eq!((w.old_kv.gets.get(), w.redis.gets.get(), copy.reads.borrow().len()), (0, 0, 1));
    assert!(w.database.reads.borrow().is_empty(), "no database read");
}

#[test]
fn within_the_bound_a_copy_that_cannot_be_carried_leaves_the_superseded_one_served() {
    let (w, copy) = world_with_copy();
    giving(&copy, Gives::Declines);
    holding(&w.old_kv, aged("before the write", 20));
    let outcome = read(&w, &after_invalidation(300));
    assert_eq!(served(&outcome), ("before the write", "STALE", "KV", Some(20)));
    assert_eq!(steps(&outcome), [("KV", Event::Miss), ("KV", Event::Skipped(Skip::NotCarried)), ("KV", Event::Superseded)]);
    // With no superseded copy held, the copy is asked once and the database answers.
    let w2 = world_with_copy();
    giving(&w2.1, Gives::Declines);
    let outcome = read(&w2.0, &after_invalidation(300));
    assert_eq!(served(&outcome).1, "MISS");
    assert_eq!(w2.1.reads.borrow().len(), 1, "asked once, before the superseded copy");
    assert_eq!(copy.reads.borrow().len(), 1);
}

/// The worker's world with a carried copy that declines, finding nothing to carry, and keeps the
/// page answered below it.
fn world_with_keeper() -> (World, Rc<FakeSource>) {
    let mut w = world();
    let keeper = Rc::new(FakeSource { copy: true, keeper: true, ..Rc::try_unwrap(source(CacheLayer::Kv, false, None, "carried", &w.runtime)).ok().unwrap() });
    giving(&keeper, Gives::Declines);
    w.engine.sources.insert(0, Rc::clone(&keeper));
    (w, keeper)
}

#[test]
fn a_copy_with_nothing_to_carry_keeps_the_database_answer_after_the_response() {
    let (w, keeper) = world_with_keeper();
    let outcome = read(&w, &request());
    assert_eq!(served(&outcome), ("from the database", "MISS", "DATABASE", None));
    assert_eq!(written(&outcome), ["KV", "REDIS", "KV"], "the caches, then the keeper's layer");
    assert!(keeper.kept.borrow().is_empty(), "nothing kept before the response");
    let failures = run(&w.runtime, w.engine.finish(&request(), outcome.after));
    assert!(failures.is_empty());
    let kept: Vec<_> = keeper.kept.borrow().iter().map(|page| page.body.clone()).collect();
    assert_eq!(kept, ["from the database"]);
}

#[test]
fn a_copy_that_does_not_keep_is_given_nothing() {
    let (w, copy) = world_with_copy();
    giving(&copy, Gives::Declines);
    let (outcome, _) = read_and_finish(&w, &request());
    assert_eq!(written(&outcome), ["KV", "REDIS"]);
    assert!(copy.kept.borrow().is_empty());
}

#[test]
fn a_keeper_is_given_nothing_when_nothing_answers_below_or_the_caller_is_refused() {
    let (w, keeper) = world_with_keeper();
    sources_fail(&w);
    let (outcome, _) = read_and_finish(&w, &request());
    assert!(outcome.result.is_err());
    giving(&w.database, Gives::Forbidden);
    let (outcome, _) = read_and_finish(&w, &request());
    assert!(matches!(outcome.result, Err(ReadError::Forbidden)));
    assert!(keeper.kept.borrow().is_empty());
}

#[test]
fn the_fill_after_a_superseded_copy_hands_its_page_to_the_keeper() {
    let (w, keeper) = world_with_keeper();
    holding(&w.old_kv, aged("before the write", 20));
    let (outcome, failures) = read_and_finish(&w, &after_invalidation(300));
    assert_eq!(served(&outcome).1, "STALE");
    assert!(failures.is_empty());
    let kept: Vec<_> = keeper.kept.borrow().iter().map(|page| page.body.clone()).collect();
    assert_eq!(kept, ["from the database"], "the fill's database answer, once");
}

#[test]
fn a_background_refresh_hands_its_page_to_the_keeper() {
    let (w, keeper) = world_with_keeper();
    holding(&w.kv, aged("copy", 200));
    let (outcome, _) = read_and_finish(&w, &request());
    assert_eq!(served(&outcome), ("copy", "HIT", "KV", Some(200)));
    let kept: Vec<_> = keeper.kept.borrow().iter().map(|page| page.body.clone()).collect();
    assert_eq!(kept, ["from the database"]);
}
