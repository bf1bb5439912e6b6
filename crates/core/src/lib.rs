//! Pure logic shared by the contact-list-cache worker and backend: no I/O, no clock, no runtime.
//!
//! Everything here compiles for `wasm32-unknown-unknown` and native targets alike, so the worker
//! and the backend cannot disagree about formats, limits or rules.

pub mod access;
pub mod audit;
pub mod applied;
pub mod cache_key;
pub mod capacity;
pub mod carry;
pub mod coalesce;
pub mod cors;
pub mod cursor;
pub mod engine;
pub mod envelope;
pub mod filter;
pub mod freshness;
pub mod generation;
pub mod invalidation;
pub mod l0;
pub mod layer;
pub mod metrics;
pub mod postgrest;
pub mod query;
pub mod sealed;
pub mod secure;
pub mod settings;
pub mod sql;
pub mod time;
pub mod token;

/// The product name, as reported by `/health` and `/metrics`.
pub const WORKER_NAME: &str = "contact-list-cache";

/// The version of this release, shared by the worker and the backend.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
