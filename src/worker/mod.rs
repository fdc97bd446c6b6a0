//! Background work inside the server process.

pub mod outbox;
pub mod purge;
pub mod sampler;
