//! One module per endpoint family: parse, ask the core, call the layers, respond.

pub mod contacts;
pub mod health;
