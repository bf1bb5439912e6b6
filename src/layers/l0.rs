//! L0, this isolate's memory of the pages and scope states it read from KV (see
//! `contact_list_cache_core::l0` for the rules): a hot page whose scope state and copy are both
//! here is answered with no I/O at all.

use crate::runtime;
use crate::body::{Page, PageBody};
use contact_list_cache_core::engine::{Cache, LayerError};
use contact_list_cache_core::generation::ScopeState;
use contact_list_cache_core::l0::{L0Limits, L0};
use contact_list_cache_core::layer::CacheLayer;
use serde_json::{json, Value};
use std::cell::RefCell;

thread_local! {
    static PAGES: RefCell<L0<Page>> = RefCell::default();
    static STATES: RefCell<L0<ScopeState>> = RefCell::default();
}

/// The share of L0's budget scope states may use (a sixteenth); pages use the rest, so both
/// together stay within `L0_CACHE_MB`.
fn for_states(limits: L0Limits) -> L0Limits {
    L0Limits { max_bytes: limits.max_bytes / 16, ..limits }
}

fn for_pages(limits: L0Limits) -> L0Limits {
    L0Limits { max_bytes: limits.max_bytes - limits.max_bytes / 16, ..limits }
}

/// One page in L0.
pub struct L0Page {
    pub key: String,
    pub limits: L0Limits,
}

impl Cache for L0Page {
    type Body = PageBody;

    fn layer(&self) -> CacheLayer {
        CacheLayer::L0
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn get(&self) -> Result<Option<Page>, LayerError> {
        Ok(PAGES.with(|pages| pages.borrow().get(&self.key, runtime::now(), for_pages(self.limits))))
    }

    async fn put(&self, page: &Page) -> Result<(), LayerError> {
        PAGES.with(|pages| pages.borrow_mut().put(&self.key, page.clone(), runtime::now(), for_pages(self.limits)));
        Ok(())
    }
}

/// The scope state kept at `key`, if read from KV within the bound.
pub fn state(key: &str, limits: L0Limits) -> Option<ScopeState> {
    STATES.with(|states| states.borrow().get(key, runtime::now(), for_states(limits)))
}

/// Keeps a scope state just read from KV.
pub fn keep_state(key: &str, state: &ScopeState, limits: L0Limits) {
    STATES.with(|states| states.borrow_mut().put(key, state.clone(), runtime::now(), for_states(limits)));
}

/// Forgets the states of scopes this isolate just invalidated: its own answers show the
/// invalidation at once (other isolates within the bound).
pub fn forget_states<'a>(keys: impl IntoIterator<Item = &'a str>) {
    STATES.with(|states| {
        let mut states = states.borrow_mut();
        keys.into_iter().for_each(|key| states.remove(key));
    });
}

/// What L0 holds, for `/metrics`: entries and bytes, against the budget.
pub fn usage(limits: L0Limits) -> Value {
    let (pages, page_bytes) = PAGES.with(|pages| (pages.borrow().len(), pages.borrow().bytes()));
    let (states, state_bytes) = STATES.with(|states| (states.borrow().len(), states.borrow().bytes()));
    json!({
        "enabled": limits.enabled(),
        "keep_ms": limits.keep_ms,
        "max_bytes": limits.max_bytes,
        "pages": pages,
        "states": states,
        "bytes": page_bytes + state_bytes,
    })
}
