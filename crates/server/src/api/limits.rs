//! Each key's request limit (default [`PER_MINUTE`] a minute, set per key with `inbox keys
//! create --per-minute`), counted by this process with governor's GCRA: a request over
//! it is a `429` saying when to come back.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::problem::Problem;

/// Requests a key may make a minute unless it says otherwise.
pub const PER_MINUTE: u32 = 600;

/// The limiters of the keys seen, by key id.
#[derive(Default)]
pub struct Limits {
    keys: Mutex<HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    /// Counts one request of key `id`, allowed `per_minute`; a 429 when it is over.
    pub fn check(&self, id: &str, per_minute: u32) -> Result<(), Problem> {
        let limiter = {
            let mut keys = match self.keys.lock() {
                Ok(keys) => keys,
                Err(poisoned) => poisoned.into_inner(),
            };
            match keys.get(id) {
                Some((n, limiter)) if *n == per_minute => limiter.clone(),
                _ => {
                    let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
                    let limiter = Arc::new(RateLimiter::direct(Quota::per_minute(rate)));
                    keys.insert(id.to_string(), (per_minute, limiter.clone()));
                    limiter
                }
            }
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Problem::too_many(wait.as_secs().saturating_add(1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_is_told_when_to_come_back_and_others_go_on() {
        let limits = Limits::default();
        for _ in 0..3 {
            assert!(limits.check("key_a", 3).is_ok());
        }
        let refused = limits.check("key_a", 3).unwrap_err();
        let body = serde_json::to_value(&refused).unwrap();
        assert_eq!(body["status"], 429);
        assert!(body["retry_after"].as_u64().unwrap() >= 1);
        assert!(limits.check("key_b", 3).is_ok(), "another key has its own");
    }
}
