//! The benchmarks' options, from the environment. `BENCH_SHORT=1` runs a benchmark once in a
//! short mode (one round, small sizes) that only checks that it runs and that its counts are
//! right, as CI does; an option set explicitly still wins.

use std::str::FromStr;

/// Whether the short mode is on.
pub fn short() -> bool {
    std::env::var("BENCH_SHORT").is_ok_and(|v| v != "0")
}

/// The option `name`: its environment value, else `short` in the short mode, else `full`.
pub fn option<T: FromStr>(name: &str, full: T, short_value: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if short() { short_value } else { full })
}
