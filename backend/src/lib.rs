//! The Redis cache service behind the contact-list-cache worker.

pub mod access;
pub mod audit;
pub mod auth;
pub mod capture;
pub mod config;
pub mod db;
pub mod db_target;
pub mod error;
pub mod healthcheck;
pub mod layers;
pub mod redis_store;
pub mod routes;
pub mod startup;
pub mod state;
pub mod stats;
pub mod tls;
pub mod tracing_id;
