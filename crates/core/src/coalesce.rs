//! Request coalescing: the first of several concurrent identical requests does the work, the
//! others wait for its result instead of repeating it; and refresh leases, so one background
//! refresh of a page runs at a time.
//!
//! Single-threaded by design (an isolate runs one thread): the table is shared through `Rc` and
//! results are cloned out of it. Only finished values cross between requests, never a pending
//! future or a promise, so no request ever waits on another request's I/O object (workerd forbids
//! it): followers poll their leader's slot on their own timers.
//!
//! A flight ends when its [`Lead`] is dropped. Between [`Lead::finish`] and that drop, requests
//! that arrive take the finished value at once: a leader holds its `Lead` until the value is
//! stored where the next request will find it (the caches), so no request falls in the gap. A
//! leader dropped before finishing (its request was cancelled) marks its flight abandoned, and
//! its followers then do the work themselves.
use crate::time::{Runtime, UnixMillis};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

type Table<T> = Rc<RefCell<HashMap<String, Rc<Slot<T>>>>>;

/// The flights in progress, by key: a cheap handle on one shared table.
pub struct Flights<T> {
    table: Table<T>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self { table: Rc::default() }
    }
}

impl<T> Clone for Flights<T> {
    fn clone(&self) -> Self {
        Self { table: Rc::clone(&self.table) }
    }
}

/// Where one flight's result arrives.
pub struct Slot<T> {
    state: RefCell<State<T>>,
}

enum State<T> {
    Pending,
    Done(T),
    Abandoned,
}

/// What a waiting follower finds in its flight's slot.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The leader is still working.
    Waiting,
    /// The leader's result.
    Ready(T),
    /// The leader went away without a result: do the work yourself.
    Abandoned,
}

/// The part a request plays for its key.
pub enum Role<T> {
    /// Nobody is working on the key: do the work, [`Lead::finish`] with the result, and drop
    /// the `Lead` once the result is where later requests will find it.
    Leader(Lead<T>),
    /// Someone is: watch this slot.
    Follower(Rc<Slot<T>>),
}

/// The duty of the request doing the work for its key.
pub struct Lead<T> {
    table: Table<T>,
    key: String,
    slot: Rc<Slot<T>>,
}

impl<T> Flights<T> {
    /// Joins the flight for `key`, starting it when there is none.
    pub fn join(&self, key: &str) -> Role<T> {
        let mut in_flight = self.table.borrow_mut();
        if let Some(slot) = in_flight.get(key) {
            return Role::Follower(Rc::clone(slot));
        }
        let slot = Rc::new(Slot { state: RefCell::new(State::Pending) });
        in_flight.insert(key.to_owned(), Rc::clone(&slot));
        Role::Leader(Lead { table: Rc::clone(&self.table), key: key.to_owned(), slot })
    }

    /// How many keys have a flight in progress.
    pub fn len(&self) -> usize {
        self.table.borrow().len()
    }

    /// Whether no flight is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Slot<T> {
    /// The flight's state as a follower sees it.
    pub fn outcome(&self) -> Outcome<T> {
        match &*self.state.borrow() {
            State::Pending => Outcome::Waiting,
            State::Done(value) => Outcome::Ready(value.clone()),
            State::Abandoned => Outcome::Abandoned,
        }
    }
}

impl<T> Lead<T> {
    /// Hands `value` to every follower, and to every request that joins until this `Lead` is
    /// dropped; after that, the next request for the key starts a new flight.
    pub fn finish(&self, value: T) {
        *self.slot.state.borrow_mut() = State::Done(value);
    }
}

impl<T> Drop for Lead<T> {
    fn drop(&mut self) {
        {
            let mut state = self.slot.state.borrow_mut();
            if matches!(*state, State::Pending) {
                *state = State::Abandoned;
            }
        }
        let mut in_flight = self.table.borrow_mut();
        if in_flight.get(&self.key).is_some_and(|current| Rc::ptr_eq(current, &self.slot)) {
            in_flight.remove(&self.key);
        }
    }
}

/// Background refreshes under way, by key: one per key per lease.
#[derive(Debug, Default)]
pub struct Leases {
    since: HashMap<String, UnixMillis>,
}

impl Leases {
    /// Whether a refresh of `key` may start at `now`: no other started within `lease_ms`.
    pub fn claim(&mut self, key: &str, now: UnixMillis, lease_ms: u64) -> bool {
        self.since.retain(|_, since| now.since(*since) < lease_ms);
        if self.since.contains_key(key) {
            return false;
        }
        self.since.insert(key.to_owned(), now);
        true
    }
}

/// A request's part in a shared read.
pub enum Turn<L, W> {
    /// Do the work, hand the result over with [`Finish::finish`], and drop the lead once the
    /// result is where later requests will find it.
    Lead(L),
    /// Someone is doing it: watch for the result.
    Follow(W),
}

/// What a leader does with its result.
pub trait Finish<T> {
    fn finish(&self, value: T);
}

/// What a follower watches.
pub trait Watch<T> {
    fn outcome(&self) -> Outcome<T>;
}

/// How concurrent requests share work: one read per key at a time, one refresh per lease. (Plain
/// functions, no futures of their own: whoever awaits the work keeps its own futures `Send`
/// where they are.)
pub trait Coalesce<T> {
    /// What the leader holds until its result is stored.
    type Lead: Finish<T>;
    /// What a follower watches.
    type Watch: Watch<T>;
    /// Joins the read for `key`, leading it when nobody else is.
    fn join(&self, key: &str) -> Turn<Self::Lead, Self::Watch>;
    /// Whether a background refresh of `key` may start now.
    fn claim_refresh(&self, key: &str, now: UnixMillis, lease_ms: u64) -> bool;
}

/// How often a follower looks at its leader's slot, in milliseconds.
pub const POLL_MS: u32 = 2;

/// Waits for a leader's result, looking every [`POLL_MS`] on the follower's own timer: `None`
/// when the leader went away, or did not finish within `patience_ms` (then do the work yourself).
pub async fn wait_for<T, R: Runtime, W: Watch<T>>(runtime: &R, watch: &W, patience_ms: u32) -> Option<T> {
    let mut waited = 0;
    loop {
        match watch.outcome() {
            Outcome::Ready(value) => return Some(value),
            Outcome::Abandoned => return None,
            Outcome::Waiting if waited >= patience_ms => return None,
            Outcome::Waiting => {
                runtime.sleep(POLL_MS).await;
                waited += POLL_MS;
            }
        }
    }
}

/// No sharing: every request does its own work (the backend, whose Redis is the shared layer).
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

/// A follower that never exists.
pub enum Nobody {}

impl<T> Watch<T> for Nobody {
    fn outcome(&self) -> Outcome<T> {
        match *self {}
    }
}

impl<T> Finish<T> for () {
    fn finish(&self, _: T) {}
}

impl<T> Coalesce<T> for Alone {
    type Lead = ();
    type Watch = Nobody;

    fn join(&self, _: &str) -> Turn<(), Nobody> {
        Turn::Lead(())
    }

    fn claim_refresh(&self, _: &str, _: UnixMillis, _: u64) -> bool {
        true
    }
}

/// Sharing within one isolate (one thread): a flight table and refresh leases.
pub struct Isolate<T> {
    flights: Flights<T>,
    leases: Rc<RefCell<Leases>>,
}

impl<T> Default for Isolate<T> {
    fn default() -> Self {
        Self { flights: Flights::default(), leases: Rc::default() }
    }
}

impl<T> Clone for Isolate<T> {
    fn clone(&self) -> Self {
        Self { flights: self.flights.clone(), leases: Rc::clone(&self.leases) }
    }
}

impl<T: Clone> Isolate<T> {
    /// The flights in progress.
    pub fn flights(&self) -> &Flights<T> {
        &self.flights
    }

    /// Runs `call` for `key` unless an identical call is already running here, in which case its
    /// result is taken once it arrives (within `patience_ms`; after that, or when the leader went
    /// away, `call` runs here). Returns the value and whether it was shared.
    pub async fn once<R: Runtime, F: Future<Output = T>>(&self, runtime: &R, key: &str, patience_ms: u32, call: impl FnOnce() -> F) -> (T, bool) {
        match self.join(key) {
            Turn::Lead(lead) => {
                let value = call().await;
                lead.finish(value.clone());
                (value, false)
            }
            Turn::Follow(slot) => match wait_for(runtime, &slot, patience_ms).await {
                Some(value) => (value, true),
                None => (call().await, false),
            },
        }
    }
}

impl<T> Finish<T> for Lead<T> {
    fn finish(&self, value: T) {
        Lead::finish(self, value);
    }
}

impl<T: Clone> Watch<T> for Rc<Slot<T>> {
    fn outcome(&self) -> Outcome<T> {
        Slot::outcome(self)
    }
}

impl<T: Clone> Coalesce<T> for Isolate<T> {
    type Lead = Lead<T>;
    type Watch = Rc<Slot<T>>;

    fn join(&self, key: &str) -> Turn<Lead<T>, Rc<Slot<T>>> {
        match self.flights.join(key) {
            Role::Leader(lead) => Turn::Lead(lead),
            Role::Follower(slot) => Turn::Follow(slot),
        }
    }

    fn claim_refresh(&self, key: &str, now: UnixMillis, lease_ms: u64) -> bool {
        self.leases.borrow_mut().claim(key, now, lease_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(flights: &Flights<u32>, key: &str) -> Lead<u32> {
        match flights.join(key) {
            Role::Leader(lead) => lead,
            Role::Follower(_) => panic!("expected to lead {key}"),
        }
    }

    fn follow(flights: &Flights<u32>, key: &str) -> Rc<Slot<u32>> {
        match flights.join(key) {
            Role::Follower(slot) => slot,
            Role::Leader(_) => panic!("expected to follow {key}"),
        }
    }

    #[test]
    fn concurrent_requests_for_one_key_share_the_leaders_result() {
        let flights = Flights::default();
        let leader = lead(&flights, "a");
        let followers: Vec<_> = (0..49).map(|_| follow(&flights, "a")).collect();
        assert!(followers.iter().all(|slot| slot.outcome() == Outcome::Waiting));
        leader.finish(7);
        assert!(followers.iter().all(|slot| slot.outcome() == Outcome::Ready(7)));
        drop(leader);
        assert!(flights.is_empty());
    }

    #[test]
    fn different_keys_fly_separately() {
        let flights = Flights::default();
        let a = lead(&flights, "a");
        let b = lead(&flights, "b");
        assert_eq!(flights.len(), 2);
        drop((a, b));
        assert!(flights.is_empty());
    }

    #[test]
    fn a_request_after_the_result_but_before_the_lead_is_dropped_takes_the_result() {
        let flights = Flights::default();
        let leader = lead(&flights, "a");
        leader.finish(5);
        assert_eq!(follow(&flights, "a").outcome(), Outcome::Ready(5));
        drop(leader);
    }

    #[test]
    fn a_request_after_the_flight_ended_starts_a_new_one() {
        let flights = Flights::default();
        let first = lead(&flights, "a");
        let early = follow(&flights, "a");
        first.finish(1);
        drop(first);
        let second = lead(&flights, "a");
        let late = follow(&flights, "a");
        second.finish(2);
        drop(second);
        assert_eq!(early.outcome(), Outcome::Ready(1));
        assert_eq!(late.outcome(), Outcome::Ready(2));
    }

    #[test]
    fn a_leader_dropped_without_a_result_releases_its_followers() {
        let flights = Flights::default();
        let leader = lead(&flights, "a");
        let follower = follow(&flights, "a");
        drop(leader);
        assert_eq!(follower.outcome(), Outcome::Abandoned);
        // and the key is free again
        drop(lead(&flights, "a"));
    }

    #[test]
    fn one_refresh_per_key_per_lease() {
        let mut leases = Leases::default();
        assert!(leases.claim("a", UnixMillis(1_000), 10_000));
        assert!(!leases.claim("a", UnixMillis(10_999), 10_000));
        assert!(leases.claim("b", UnixMillis(10_999), 10_000));
        assert!(leases.claim("a", UnixMillis(11_000), 10_000));
    }
}
