//! Tracing setup: human-readable in a terminal, JSON lines for log collectors.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{DEFAULT_LOG_FILTER, LogFormat};

/// Installs the global subscriber, logging what `filter` (`RUST_LOG` syntax) lets through; an
/// invalid filter falls back to the default one.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = result;
}
