//! L0, this isolate's memory of the pages it read (see `contact_list_cache_core::l0` for the
//! rules): a hot page whose copy is here and whose scope state the isolate keeps (`home`) is
//! answered with no I/O at all.

use crate::runtime;
use crate::body::{Page, PageBody};
use contact_list_cache_core::engine::{Cache, LayerError};
use contact_list_cache_core::l0::{L0Limits, L0};
use contact_list_cache_core::layer::CacheLayer;
use serde_json::{json, Value};
use std::cell::RefCell;

thread_local! {
    static PAGES: RefCell<L0<Page>> = RefCell::default();
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
        Ok(PAGES.with(|pages| pages.borrow().get(&self.key, runtime::now(), self.limits)))
    }

    async fn put(&self, page: &Page) -> Result<(), LayerError> {
        PAGES.with(|pages| pages.borrow_mut().put(&self.key, page.clone(), runtime::now(), self.limits));
        Ok(())
    }
}

/// What L0 holds, for `/metrics`: pages and their bytes, against the budget; and the scope
/// states the isolate keeps (`home`, a budget of their own, kept with L0 off too).
pub fn usage(limits: L0Limits) -> Value {
    let (pages, bytes) = PAGES.with(|pages| (pages.borrow().len(), pages.borrow().bytes()));
    let (states, state_bytes) = crate::layers::home::usage();
    json!({
        "enabled": limits.enabled(),
        "keep_ms": limits.keep_ms,
        "max_bytes": limits.max_bytes,
        "pages": pages,
        "bytes": bytes,
        "states": states,
        "state_bytes": state_bytes,
    })
}
