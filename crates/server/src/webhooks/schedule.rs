//! When a failed delivery is tried again: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h
//! after each failure, ±20 % jitter; a receiver's `Retry-After` replaces the delay,
//! clamped to between one and two times the scheduled one. After the last, the event has
//! failed at that endpoint. An endpoint failing every attempt for 5 days is disabled.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The delays after the first attempt's failure, the second's, … (seven retries).
pub const RETRY_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// How long an endpoint may fail every attempt before it is disabled.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

/// The environment variable that scales every delay above (a factor such as `0.01`):
/// for tests and rehearsals, never for production.
pub const SCALE_ENV: &str = "INBOX_WEBHOOK_TIME_SCALE";

/// The retry schedule, its delays scaled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    scale: f64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { scale: 1.0 }
    }
}

impl Schedule {
    /// The published schedule, scaled by [`SCALE_ENV`] when it holds a positive number.
    pub fn from_env() -> Schedule {
        let scale = std::env::var(SCALE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1.0)
            .unwrap_or(1.0);
        Schedule { scale }
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.scale)
    }

    /// The delay scheduled after the `failed`-th failed attempt of a round (1-based),
    /// before jitter; `None` after the last.
    pub fn scheduled(&self, failed: u32) -> Option<Duration> {
        let i = usize::try_from(failed.checked_sub(1)?).ok()?;
        RETRY_DELAYS.get(i).map(|d| self.scaled(*d))
    }

    /// When the next attempt is due after the `failed`-th failure of a round at `now`:
    /// the scheduled delay with `jitter` (in −1…1, as ±20 %), or the receiver's
    /// `retry_after` clamped to 1–2× the scheduled delay; `None` after the last.
    pub fn next_attempt(
        &self,
        failed: u32,
        now: DateTime<Utc>,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<DateTime<Utc>> {
        let scheduled = self.scheduled(failed)?;
        let delay = match retry_after {
            Some(asked) => asked.clamp(scheduled, scheduled.saturating_mul(2)),
            None => scheduled.mul_f64(1.0 + 0.2 * jitter.clamp(-1.0, 1.0)),
        };
        let delay = chrono::Duration::from_std(delay).ok()?;
        now.checked_add_signed(delay)
    }

    /// Before when an endpoint's failing streak must have begun for it to be disabled
    /// at `now`.
    pub fn disable_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        chrono::Duration::from_std(self.scaled(DISABLE_AFTER))
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(now)
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (the time from `now` until then).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    (at - now).to_std().ok()
}

/// A jitter in −1…1 from the operating system's randomness.
pub fn jitter() -> f64 {
    let bytes = marketplace_inbox::random_bytes(4);
    let mut word = [0u8; 4];
    for (w, b) in word.iter_mut().zip(bytes) {
        *w = b;
    }
    f64::from(u32::from_le_bytes(word)) / f64::from(u32::MAX) * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_delays_hold_with_jitter_and_retry_after() {
        let s = Schedule::default();
        let now = Utc::now();
        let secs = |at: Option<DateTime<Utc>>| (at.unwrap() - now).num_milliseconds();
        assert_eq!(secs(s.next_attempt(1, now, None, 0.0)), 5_000);
        assert_eq!(secs(s.next_attempt(1, now, None, 1.0)), 6_000);
        assert_eq!(secs(s.next_attempt(1, now, None, -1.0)), 4_000);
        assert_eq!(secs(s.next_attempt(2, now, None, 0.0)), 300_000);
        assert_eq!(secs(s.next_attempt(7, now, None, 0.0)), 36_000_000);
        assert_eq!(s.next_attempt(8, now, None, 0.0), None);
        // Retry-After: kept within 1–2× the scheduled delay.
        let asked = |n| Some(Duration::from_secs(n));
        assert_eq!(secs(s.next_attempt(1, now, asked(7), 1.0)), 7_000);
        assert_eq!(secs(s.next_attempt(1, now, asked(1), 0.0)), 5_000);
        assert_eq!(secs(s.next_attempt(1, now, asked(3600), 0.0)), 10_000);
        assert_eq!(retry_after(" 12 ", now), asked(12));
        let later = now + chrono::Duration::seconds(30);
        let date = later.to_rfc2822();
        let parsed = retry_after(&date, now).unwrap().as_secs();
        assert!((29..=30).contains(&parsed), "{parsed}");
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(
            (now - s.disable_before(now)).num_days(),
            5,
            "five days of failures disable"
        );
        for _ in 0..100 {
            let j = jitter();
            assert!((-1.0..=1.0).contains(&j));
        }
    }
}
