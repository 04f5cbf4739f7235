//! Whether and when a request is sent again: the decision ([`decide`], a pure function of
//! what one attempt came to) and the retry quota ([`RetryQuota`]) that bounds how far
//! retries can multiply an outage across every account of a vendor in a process.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::execute::transient_status;
use crate::policy::{Kind, RetryPolicy};

/// What one attempt came to, as far as repeating it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempted {
    /// The vendor answered with this status (and `Retry-After`, when it sent one).
    Answered {
        /// The HTTP status.
        status: u16,
        /// The answer's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// No answer: the connection was refused (the request certainly did not arrive).
    NotConnected,
    /// No answer, and the request may have arrived (a timeout, a reset, a broken body).
    Lost {
        /// The attempt timed out (costs the quota more: a slow vendor).
        timeout: bool,
    },
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep this answer.
    Done,
    /// Refresh the OAuth access token once and send again.
    Refresh,
    /// Send again after this wait, spending `cost` of the retry quota.
    Retry {
        /// The wait.
        wait: Duration,
        /// The quota spent.
        cost: u32,
        /// The vendor said to slow down (429): the account's limiter pauses for `wait`.
        throttled: bool,
    },
}

/// Quota a retry of a transient failure costs.
pub const RETRY_COST: u32 = 5;
/// Quota a retry after a timeout costs.
pub const TIMEOUT_COST: u32 = 10;

/// Decides what follows attempt number `attempt` (from 1) of a request of `kind`:
/// - a 401 on an OAuth account (`oauth`) not yet `refreshed`: refresh once;
/// - a 429: again after `Retry-After` (else the policy's `rate_limited_wait`), whatever
///   the kind (the vendor did nothing);
/// - 408/500/502/503/504, a timeout or a lost connection: again after the backoff, unless
///   it is a write (it may have arrived);
/// - a refused connection: again after the backoff, writes included;
/// - anything else: done.
///
/// `unit` in [0, 1) is the jitter. Attempts and total waiting are bounded by the caller.
pub fn decide(
    attempted: Attempted,
    kind: Kind,
    oauth: bool,
    refreshed: bool,
    attempt: u32,
    retry: &RetryPolicy,
    unit: f64,
) -> Decision {
    let backoff = |cost| Decision::Retry {
        wait: retry.backoff(attempt, unit),
        cost,
        throttled: false,
    };
    match attempted {
        Attempted::Answered { status: 401, .. } if oauth && !refreshed => Decision::Refresh,
        Attempted::Answered {
            status: 429,
            retry_after,
        } => Decision::Retry {
            wait: retry_after.unwrap_or(retry.rate_limited_wait),
            cost: RETRY_COST,
            throttled: true,
        },
        Attempted::Answered { status, .. } if transient_status(status) && kind != Kind::Write => {
            backoff(RETRY_COST)
        }
        Attempted::Answered { .. } => Decision::Done,
        Attempted::NotConnected => backoff(RETRY_COST),
        Attempted::Lost { .. } if kind == Kind::Write => Decision::Done,
        Attempted::Lost { timeout: true } => backoff(TIMEOUT_COST),
        Attempted::Lost { timeout: false } => backoff(RETRY_COST),
    }
}

/// A token bucket of retries (smithy-rs's retry quota): each retry spends [`RETRY_COST`]
/// (a timeout [`TIMEOUT_COST`]), each request answered without a retry gives one back
/// and one answered after retries gives back what they spent. Empty, requests are no
/// longer retried: during an outage thousands of accounts cost the vendor about one
/// request each, not five.
#[derive(Debug)]
pub struct RetryQuota {
    capacity: u32,
    left: Mutex<u32>,
}

/// A marketplace's quota in a process holds this much.
pub const QUOTA_CAPACITY: u32 = 500;

impl RetryQuota {
    /// A full quota of `capacity`.
    pub fn new(capacity: u32) -> RetryQuota {
        RetryQuota {
            capacity,
            left: Mutex::new(capacity),
        }
    }

    /// Spends `cost`; false (nothing spent) when less is left.
    pub fn spend(&self, cost: u32) -> bool {
        let Ok(mut left) = self.left.lock() else {
            return true;
        };
        match left.checked_sub(cost) {
            Some(rest) => {
                *left = rest;
                true
            }
            None => false,
        }
    }

    /// Gives `amount` back, up to the capacity.
    pub fn refund(&self, amount: u32) {
        if let Ok(mut left) = self.left.lock() {
            *left = left.saturating_add(amount).min(self.capacity);
        }
    }

    /// What is left.
    pub fn left(&self) -> u32 {
        self.left.lock().map(|l| *l).unwrap_or(0)
    }
}

/// The retry quota of the vendor at `origin` (scheme, host and port) in this process:
/// every account of a marketplace shares it, since they share its servers and its
/// outages.
pub fn retry_quota(origin: &str) -> &'static RetryQuota {
    static QUOTAS: OnceLock<Mutex<HashMap<String, &'static RetryQuota>>> = OnceLock::new();
    let all = QUOTAS.get_or_init(|| Mutex::new(HashMap::new()));
    match all.lock() {
        Ok(mut all) => all
            .entry(origin.to_string())
            .or_insert_with(|| Box::leak(Box::new(RetryQuota::new(QUOTA_CAPACITY)))),
        // Poisoned (a panic while inserting): a quota of its own, full.
        Err(_) => Box::leak(Box::new(RetryQuota::new(QUOTA_CAPACITY))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_decision_table() {
        let retry = RetryPolicy {
            base_delay: Duration::from_millis(100),
            rate_limited_wait: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let answered = |status| Attempted::Answered {
            status,
            retry_after: None,
        };
        let backoff = |cost| Decision::Retry {
            wait: Duration::from_millis(200),
            cost,
            throttled: false,
        };
        let throttled = |secs| Decision::Retry {
            wait: Duration::from_secs(secs),
            cost: RETRY_COST,
            throttled: true,
        };
        use Kind::{Idempotent, Read, Write};
        #[rustfmt::skip]
        let table: &[(Attempted, Kind, bool, bool, Decision)] = &[
            // what came back               kind        oauth  refreshed  decision
            (answered(200),                 Read,       false, false,     Decision::Done),
            (answered(200),                 Write,      true,  false,     Decision::Done),
            (answered(404),                 Read,       false, false,     Decision::Done),
            (answered(400),                 Write,      false, false,     Decision::Done),
            (answered(401),                 Read,       true,  false,     Decision::Refresh),
            (answered(401),                 Write,      true,  false,     Decision::Refresh),
            (answered(401),                 Read,       true,  true,      Decision::Done),
            (answered(401),                 Read,       false, false,     Decision::Done),
            (answered(403),                 Read,       true,  false,     Decision::Done),
            (answered(429),                 Read,       false, false,     throttled(2)),
            (answered(429),                 Write,      false, false,     throttled(2)),
            (Attempted::Answered { status: 429, retry_after: Some(Duration::from_secs(7)) },
                                            Write,      false, false,     throttled(7)),
            (answered(500),                 Read,       false, false,     backoff(RETRY_COST)),
            (answered(503),                 Idempotent, false, false,     backoff(RETRY_COST)),
            (answered(408),                 Read,       false, false,     backoff(RETRY_COST)),
            (answered(504),                 Read,       false, false,     backoff(RETRY_COST)),
            (answered(500),                 Write,      false, false,     Decision::Done),
            (answered(503),                 Write,      false, false,     Decision::Done),
            (answered(501),                 Read,       false, false,     Decision::Done),
            (Attempted::NotConnected,       Write,      false, false,     backoff(RETRY_COST)),
            (Attempted::NotConnected,       Read,       false, false,     backoff(RETRY_COST)),
            (Attempted::Lost { timeout: true },  Read,  false, false,     backoff(TIMEOUT_COST)),
            (Attempted::Lost { timeout: false }, Idempotent, false, false, backoff(RETRY_COST)),
            (Attempted::Lost { timeout: true },  Write, false, false,     Decision::Done),
            (Attempted::Lost { timeout: false }, Write, false, false,     Decision::Done),
        ];
        for (i, (attempted, kind, oauth, refreshed, expected)) in table.iter().enumerate() {
            // Attempt 2 with no jitter: 100 ms doubled once.
            let got = decide(*attempted, *kind, *oauth, *refreshed, 2, &retry, 1.0);
            assert_eq!(got, *expected, "row {i}: {attempted:?} {kind:?}");
        }
    }

    #[test]
    fn the_quota_runs_out_under_an_outage_and_fills_again_with_successes() {
        let quota = RetryQuota::new(20);
        assert!(quota.spend(RETRY_COST));
        assert!(quota.spend(TIMEOUT_COST));
        assert!(quota.spend(RETRY_COST));
        // 0 left: no more retries, nothing spent by asking.
        assert!(!quota.spend(RETRY_COST));
        assert_eq!(quota.left(), 0);
        for _ in 0..4 {
            quota.refund(1);
        }
        assert!(!quota.spend(RETRY_COST));
        quota.refund(1);
        assert!(quota.spend(RETRY_COST));
        quota.refund(1_000);
        assert_eq!(quota.left(), 20, "never past its capacity");
        // Each vendor origin has one quota in a process, shared by its accounts.
        let ozon = "https://api-seller.ozon.ru";
        assert!(std::ptr::eq(retry_quota(ozon), retry_quota(ozon)));
        assert!(!std::ptr::eq(
            retry_quota(ozon),
            retry_quota("https://api.allegro.pl")
        ));
    }
}
