//! The Redis cache service behind the contact-list-cache worker.

pub mod config;
pub mod redis_store;
pub mod routes;
pub mod startup;
