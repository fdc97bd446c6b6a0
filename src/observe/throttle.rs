//! Log lines that anyone on the internet can cause (a crafted callback URL) are said at most once
//! a minute per kind, so they cannot flood the log or page an operator on demand.

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

const EVERY: Duration = Duration::from_secs(60);

static LAST: LazyLock<Mutex<HashMap<&'static str, Instant>>> = LazyLock::new(Default::default);

/// Whether a line of kind `key` may be written now: the first time, then once a minute. Keys
/// are a fixed set of names (never text from a request), so the map stays small.
pub fn once_a_minute(key: &'static str) -> bool {
    let now = Instant::now();
    let mut last = LAST.lock().expect("never poisoned");
    match last.get(key) {
        Some(at) if now.duration_since(*at) < EVERY => false,
        _ => {
            last.insert(key, now);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_kind_is_said_once_a_minute_and_kinds_apart() {
        assert!(super::once_a_minute("test-a"));
        assert!(!super::once_a_minute("test-a"));
        assert!(super::once_a_minute("test-b"));
    }
}
