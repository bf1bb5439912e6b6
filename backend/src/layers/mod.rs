//! The read-through engine's ports (`contact_list_cache_core::engine`) over this service's own
//! I/O: one Redis entry as a cache, PostgreSQL as the source, tokio as the clock and timers.
//!
//! Every adapter owns what it needs (`Arc`s of the clients, owned keys and queries), so an engine
//! built from them is `'static` and its futures are `Send`: a handler awaits it directly and the
//! write-back runs in a task of its own after the response.

pub mod postgres;
pub mod redis;
pub mod runtime;
