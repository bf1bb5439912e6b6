//! Request coalescing: the first of several concurrent identical requests does the work, the
//! others wait for its result instead of repeating it.
//!
//! Single-threaded by design (an isolate runs one thread): the table lives in a `thread_local!`
//! and results are shared through `Rc`. Only finished values cross between requests, never a
//! pending future or a promise, so no request ever waits on another request's I/O object.
//!
//! A flight ends when its [`Lead`] is dropped. Between [`Lead::finish`] and that drop, requests
//! that arrive take the finished value at once: a leader holds its `Lead` until the value is
//! stored where the next request will find it (the caches), so no request falls in the gap. A
//! leader dropped before finishing (its request was cancelled) marks its flight abandoned, and
//! its followers then do the work themselves.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::thread::LocalKey;

/// The flights in progress, by key.
pub struct Flights<T> {
    in_flight: RefCell<HashMap<String, Rc<Slot<T>>>>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self { in_flight: RefCell::new(HashMap::new()) }
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
pub enum Role<T: 'static> {
    /// Nobody is working on the key: do the work, [`Lead::finish`] with the result, and drop
    /// the `Lead` once the result is where later requests will find it.
    Leader(Lead<T>),
    /// Someone is: watch this slot.
    Follower(Rc<Slot<T>>),
}

/// The duty of the request doing the work for its key.
pub struct Lead<T: 'static> {
    flights: &'static LocalKey<Flights<T>>,
    key: String,
    slot: Rc<Slot<T>>,
}

impl<T> Flights<T> {
    /// Joins the flight for `key`, starting it when there is none.
    pub fn join(flights: &'static LocalKey<Self>, key: &str) -> Role<T> {
        flights.with(|table| {
            let mut in_flight = table.in_flight.borrow_mut();
            if let Some(slot) = in_flight.get(key) {
                return Role::Follower(Rc::clone(slot));
            }
            let slot = Rc::new(Slot { state: RefCell::new(State::Pending) });
            in_flight.insert(key.to_owned(), Rc::clone(&slot));
            Role::Leader(Lead { flights, key: key.to_owned(), slot })
        })
    }

    /// How many keys have a flight in progress.
    pub fn len(&self) -> usize {
        self.in_flight.borrow().len()
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
        let slot = &self.slot;
        // During thread teardown the table may already be gone; then there is nothing to remove.
        let _ = self.flights.try_with(|table| {
            let mut in_flight = table.in_flight.borrow_mut();
            if in_flight.get(&self.key).is_some_and(|current| Rc::ptr_eq(current, slot)) {
                in_flight.remove(&self.key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static FLIGHTS: Flights<u32> = Flights::default();
    }

    fn lead(key: &str) -> Lead<u32> {
        match Flights::join(&FLIGHTS, key) {
            Role::Leader(lead) => lead,
            Role::Follower(_) => panic!("expected to lead {key}"),
        }
    }

    fn follow(key: &str) -> Rc<Slot<u32>> {
        match Flights::join(&FLIGHTS, key) {
            Role::Follower(slot) => slot,
            Role::Leader(_) => panic!("expected to follow {key}"),
        }
    }

    #[test]
    fn concurrent_requests_for_one_key_share_the_leaders_result() {
        let leader = lead("a");
        let followers: Vec<_> = (0..49).map(|_| follow("a")).collect();
        assert!(followers.iter().all(|slot| slot.outcome() == Outcome::Waiting));
        leader.finish(7);
        assert!(followers.iter().all(|slot| slot.outcome() == Outcome::Ready(7)));
        drop(leader);
        assert!(FLIGHTS.with(Flights::is_empty));
    }

    #[test]
    fn different_keys_fly_separately() {
        let a = lead("a");
        let b = lead("b");
        assert_eq!(FLIGHTS.with(Flights::len), 2);
        drop((a, b));
        assert!(FLIGHTS.with(Flights::is_empty));
    }

    #[test]
    fn a_request_after_the_result_but_before_the_lead_is_dropped_takes_the_result() {
        let leader = lead("a");
        leader.finish(5);
        assert_eq!(follow("a").outcome(), Outcome::Ready(5));
        drop(leader);
    }

    #[test]
    fn a_request_after_the_flight_ended_starts_a_new_one() {
        let first = lead("a");
        let early = follow("a");
        first.finish(1);
        drop(first);
        let second = lead("a");
        let late = follow("a");
        second.finish(2);
        drop(second);
        assert_eq!(early.outcome(), Outcome::Ready(1));
        assert_eq!(late.outcome(), Outcome::Ready(2));
    }

    #[test]
    fn a_leader_dropped_without_a_result_releases_its_followers() {
        let leader = lead("a");
        let follower = follow("a");
        drop(leader);
        assert_eq!(follower.outcome(), Outcome::Abandoned);
        // and the key is free again
        drop(lead("a"));
    }
}
