//! One adapter per cache layer.

pub mod kv;
