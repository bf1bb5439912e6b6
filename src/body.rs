//! A page's body at the edge: text made in the wasm (read from the database or the backend,
//! carried across writes), or the plaintext WebCrypto opened from KV, left in the runtime's
//! memory so that a KV hit hands it to the response without copying it into the wasm and out.

use contact_list_cache_core::engine::{Body, StoredPage};
use std::borrow::Cow;
use worker::js_sys::Uint8Array;

#[derive(Clone)]
pub enum PageBody {
    Text(String),
    /// Opened from KV: bytes of UTF-8 JSON (sealed by this worker from text, and authenticated
    /// when opened), in the runtime's memory.
    Opened(Uint8Array),
}

impl Body for PageBody {
    fn size(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Opened(bytes) => bytes.length() as usize,
        }
    }
}

impl PageBody {
    /// The body as text, for what reads it in the wasm (carrying a page across writes, sealing
    /// it for KV, storing it in Redis): an opened body is copied in.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Text(text) => Cow::Borrowed(text),
            Self::Opened(bytes) => {
                Cow::Owned(String::from_utf8(bytes.to_vec()).unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()))
            }
        }
    }
}

impl From<String> for PageBody {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

/// A page at the edge.
pub type Page = StoredPage<PageBody>;

/// A page whose body is text.
pub fn text_page(page: StoredPage) -> Page {
    Page { body: PageBody::Text(page.body), read_at: page.read_at }
}
