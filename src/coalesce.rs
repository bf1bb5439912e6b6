//! Request coalescing in the isolate: concurrent identical misses make one upstream call.
//!
//! The leader runs the call; followers poll its slot on their own timers (never awaiting the
//! leader's promise, which workerd ties to the leader's request) and take the finished value.
//! A follower that waits longer than its patience, or whose leader was cancelled, makes the call
//! itself.

use contact_list_cache_core::coalesce::{Flights, Lead, Outcome, Role};
use std::future::Future;
use std::thread::LocalKey;
use std::time::Duration;

/// How often a follower looks at its leader's slot.
const POLL_MS: u64 = 2;

/// Who produced a value: this request, or a concurrent identical one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Own,
    Shared,
}

/// A value and who produced it; the leader also gets the flight's [`Lead`], which keeps handing
/// the value to newcomers until it is dropped.
pub struct Joined<T: 'static> {
    pub value: T,
    pub source: Source,
    pub lead: Option<Lead<T>>,
}

/// Runs `call` for `key` unless an identical call is already running in this isolate, in which
/// case its result is returned once it arrives (within `patience_ms`).
pub async fn once<T, F>(flights: &'static LocalKey<Flights<T>>, key: &str, patience_ms: u32, call: impl FnOnce() -> F) -> Joined<T>
where
    T: Clone + 'static,
    F: Future<Output = T>,
{
    let slot = match Flights::join(flights, key) {
        Role::Leader(lead) => {
            let value = call().await;
            lead.finish(value.clone());
            return Joined { value, source: Source::Own, lead: Some(lead) };
        }
        Role::Follower(slot) => slot,
    };
    let mut waited = 0;
    loop {
        match slot.outcome() {
            Outcome::Ready(value) => return Joined { value, source: Source::Shared, lead: None },
            Outcome::Abandoned => break,
            Outcome::Waiting if waited >= u64::from(patience_ms) => break,
            Outcome::Waiting => {
                worker::Delay::from(Duration::from_millis(POLL_MS)).await;
                waited += POLL_MS;
            }
        }
    }
    Joined { value: call().await, source: Source::Own, lead: None }
}
