//! Use cases joining the store and the Kenar client. Nothing here knows about HTTP handlers.

pub mod delivery;
pub mod entry_links;
pub mod messaging;
pub mod pacing;
pub mod vault;
