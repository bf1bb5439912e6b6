//! One module per endpoint family: parse, ask the core, call the layers, respond.

pub mod audit;
pub mod contacts;
pub mod counts;
pub mod dashboard;
pub mod health;
pub mod invalidate;
pub mod live;
pub mod metrics;
pub mod warm;
