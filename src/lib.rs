//! kenar-chat: a Kenar (Divar open platform) chat add-on server, and a local stand-in for Divar.

pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod features;
pub mod observe;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod services;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod web;
pub mod worker;
