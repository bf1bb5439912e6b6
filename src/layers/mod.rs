//! One adapter per layer, implementing the core engine's ports: the isolate's L0 and KV at the edge, the
//! state home (each workspace's Durable Object, holding its scope states and carry records), the backend
//! (its Redis copy and its fallback read path), Supabase's PostgREST. The engine gives every call
//! its time budget; the other calls here take theirs from `runtime::within`.

pub mod backend;
pub mod home;
pub mod kv;
pub mod l0;
pub mod supabase;
