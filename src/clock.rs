//! The worker's only clock: the JS `Date`, read at the edge and passed into the core.

use contact_list_cache_core::time::UnixMillis;

/// Now, in milliseconds since the Unix epoch. Inside workerd the clock only advances across I/O,
/// which is what response-time measurements should count anyway.
pub fn now() -> UnixMillis {
    UnixMillis(worker::Date::now().as_millis())
}
