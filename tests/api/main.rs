//! Black-box tests over real HTTP on loopback: the add-on and the simulated Divar in one
//! process, on SQLite and on PostgreSQL (`TEST_DATABASE_URL`).

mod addon_flow;
mod availability;
mod broadcast;
mod browser;
mod cli;
mod composer;
mod erasure;
mod fairness;
mod forms;
mod health;
mod helpers;
mod identity;
mod media;
mod operations;
mod outage;
mod outbox_processes;
mod privacy;
mod retention;
mod sandbox_api;
mod sandbox_oauth;
mod sandbox_screens;
mod schema;
mod security;
mod session_init;
mod store;
mod weight;

// The features' own tests (tests/api/features/*.rs), listed by build.rs.
include!(concat!(env!("OUT_DIR"), "/feature_tests.rs"));
