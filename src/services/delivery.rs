//! Delivery policy, in one place for single sends and broadcasts: what each of Divar's answers
//! means, how long to wait before trying again, and what to do when a token is renewed.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use secrecy::SecretString;

use kenar::{
    PostToken,
    api::{KenarApi, SendError, Subscription},
};

pub use crate::config::RetryPolicy;

/// Divar's `Retry-After` is honoured up to this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl RetryPolicy {
    /// The wait before attempt `attempts + 1`: exponential with jitter, never shorter than
    /// Divar's `Retry-After` (within reason).
    pub fn backoff(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempts.saturating_sub(1) as usize)
            .unwrap_or(self.max_delay);
        retry_after.map_or(backoff, |r| r.min(MAX_RETRY_AFTER).max(backoff))
    }
}

/// Why a send ended as failed; stored in `messages.failure` and `outbox.failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    RecipientRestricted,
    Reconsent,
    RateLimited,
    Unavailable,
    Rejected,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecipientRestricted => "recipient_restricted",
            Self::Reconsent => "reconsent",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "recipient_restricted" => Self::RecipientRestricted,
            "reconsent" => Self::Reconsent,
            "rate_limited" => Self::RateLimited,
            "unavailable" => Self::Unavailable,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }

    /// Trying again later can help (Divar was busy or away), unlike a blocked chat or a body
    /// Divar refuses.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::RateLimited | Self::Unavailable)
    }
}

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Final: retrying cannot help.
    Failed(Failure),
    /// The token no longer works: forget it and ask the person to consent again.
    Reconsent,
    /// Try again after the wait; `failure` is what to record should no attempt be left.
    RetryAfter {
        wait: Duration,
        failure: Failure,
    },
}

/// Classifies Divar's answer to attempt number `attempts` (counting from 1): 412 is final,
/// 401/403 ask for consent again, 429/5xx/timeouts are retried until the attempts run out.
pub fn judge(result: &Result<(), SendError>, attempts: u32, policy: &RetryPolicy) -> Verdict {
    let outcome = match result {
        Ok(()) => "200".to_string(),
        Err(SendError::RecipientRestricted) => "412".into(),
        Err(SendError::Unauthorized { status } | SendError::Rejected { status, .. }) => {
            status.to_string()
        }
        Err(SendError::Throttled { .. }) => "429".into(),
        Err(SendError::Unavailable { .. }) => "unavailable".into(),
    };
    metrics::counter!(crate::observe::API_CALLS, "operation" => "send", "status" => outcome)
        .increment(1);
    // Any answer but a 5xx or no answer at all means Divar's API is there (a 429 or a 412 too).
    let divar = crate::observe::reachability::divar_api();
    if !matches!(result, Err(SendError::Unavailable { .. })) {
        divar.reached();
    }
    let error = match result {
        Ok(()) => return Verdict::Delivered,
        Err(error) => error,
    };
    let failure = match error {
        SendError::RecipientRestricted => return Verdict::Failed(Failure::RecipientRestricted),
        SendError::Unauthorized { .. } => return Verdict::Reconsent,
        SendError::Rejected { status, message } => {
            tracing::warn!(status, %message, "Divar rejected a message");
            return Verdict::Failed(Failure::Rejected);
        }
        SendError::Throttled { .. } => Failure::RateLimited,
        SendError::Unavailable { .. } => {
            // Said once for the outage, and once when Divar answers again.
            divar.failed(error);
            Failure::Unavailable
        }
    };
    if attempts >= policy.max_attempts {
        if failure == Failure::Unavailable {
            // The outage itself was said once; the send's end is on its record and in metrics.
            tracing::debug!(%error, attempts, "giving up on a send");
        } else {
            tracing::warn!(%error, attempts, "giving up on a send");
        }
        return Verdict::Failed(failure);
    }
    let wait = policy.backoff(attempts, error.retry_after());
    if failure == Failure::RateLimited {
        retry_warning(error, wait);
    }
    Verdict::RetryAfter { wait, failure }
}

/// A WARN when Divar throttles a send and it is retried: at most one line every 10 s, naming
/// how many retries it stands for, so a storm of 429s does not flood the log.
/// The log's own pace, on the machine's clock (no test moves it).
fn retry_warning(error: &SendError, wait: Duration) {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    use crate::clock::{Clock, SystemClock};
    static LAST_MS: AtomicI64 = AtomicI64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let retries = SINCE.fetch_add(1, Ordering::Relaxed) + 1;
    let now = SystemClock.now_ms();
    let last = LAST_MS.load(Ordering::Relaxed);
    if now - last >= 10_000
        && LAST_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        SINCE.fetch_sub(retries, Ordering::Relaxed);
        tracing::warn!(
            %error,
            retries,
            wait_ms = wait.as_millis() as u64,
            "Divar throttled sends; retrying them later"
        );
    }
}

/// Subscribes to new messages in the chats of `post_token`, and to the post's updates when the
/// grant's `scope` allows, with a newly issued or refreshed token: a subscription lives as long
/// as the token that made it (kenar-docs `docs/events/ReadMe.md`). A failure is logged, not
/// fatal: sending still works, discovery resumes at the next renewal.
pub async fn subscribe_post_events(
    api: &KenarApi,
    token: &SecretString,
    post_token: &PostToken,
    scope: &str,
) {
    let mut wanted = vec![Subscription::NewMessagesOnPost(post_token.clone())];
    // Only a grant that holds USER_POSTS_GET may hear of the post's removal.
    if scope.split_whitespace().any(|s| s == "USER_POSTS_GET") {
        wanted.push(Subscription::PostUpdates(post_token.clone()));
    }
    for subscription in &wanted {
        let subscribed = api.subscribe(token, subscription).await;
        let status = if subscribed.is_ok() { "ok" } else { "error" };
        metrics::counter!(crate::observe::API_CALLS, "operation" => "subscribe", "status" => status)
            .increment(1);
        if let Err(error) = subscribed {
            tracing::warn!(
                error = format!("{error:#}"),
                "subscribing to the post's events failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }

    #[test]
    fn each_answer_gets_its_verdict() {
        let p = policy();
        assert_eq!(judge(&Ok(()), 1, &p), Verdict::Delivered);
        assert_eq!(
            judge(&Err(SendError::RecipientRestricted), 1, &p),
            Verdict::Failed(Failure::RecipientRestricted)
        );
        assert_eq!(
            judge(&Err(SendError::Unauthorized { status: 403 }), 1, &p),
            Verdict::Reconsent
        );
        let rejected = SendError::Rejected {
            status: 400,
            message: "bad".into(),
        };
        assert_eq!(
            judge(&Err(rejected), 1, &p),
            Verdict::Failed(Failure::Rejected)
        );
        let busy = SendError::Throttled { retry_after: None };
        assert!(matches!(
            judge(&Err(busy.clone()), 2, &p),
            Verdict::RetryAfter {
                failure: Failure::RateLimited,
                ..
            }
        ));
        assert_eq!(
            judge(&Err(busy), 3, &p),
            Verdict::Failed(Failure::RateLimited),
            "the last attempt is final"
        );
    }

    #[test]
    fn retry_after_is_honoured_within_reason() {
        let p = policy();
        let wait = p.backoff(1, Some(Duration::from_secs(5)));
        assert!(wait >= Duration::from_secs(5), "{wait:?}");
        let wait = p.backoff(1, Some(Duration::from_secs(3600)));
        assert!(wait <= MAX_RETRY_AFTER.max(p.max_delay * 2), "{wait:?}");
        for attempt in 1..10 {
            let wait = p.backoff(attempt, None);
            // Jitter adds up to one more delay on top of the capped one.
            assert!(wait <= p.max_delay * 2, "{attempt}: {wait:?}");
        }
    }

    #[test]
    fn failures_round_trip_through_their_stored_names() {
        for f in [
            Failure::RecipientRestricted,
            Failure::Reconsent,
            Failure::RateLimited,
            Failure::Unavailable,
            Failure::Rejected,
        ] {
            assert_eq!(Failure::parse(f.as_str()), Some(f));
        }
        assert_eq!(Failure::parse("nonsense"), None);
    }
}
