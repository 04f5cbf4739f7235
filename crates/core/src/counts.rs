//! Process-wide counts of the requests sent to each marketplace and of the 429s they
//! got, for a service's metrics.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// Requests sent to one marketplace so far in this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Attempts sent (each retry counts).
    pub requests: u64,
    /// Answers with status 429.
    pub throttled: u64,
}

fn table() -> &'static Mutex<BTreeMap<&'static str, RequestCounts>> {
    static COUNTS: OnceLock<Mutex<BTreeMap<&'static str, RequestCounts>>> = OnceLock::new();
    COUNTS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Counts one attempt sent to `marketplace`, and whether it was answered 429.
pub(crate) fn count(marketplace: &'static str, throttled: bool) {
    if let Ok(mut t) = table().lock() {
        let c = t.entry(marketplace).or_default();
        c.requests = c.requests.saturating_add(1);
        c.throttled = c.throttled.saturating_add(u64::from(throttled));
    }
}

/// The counts so far, by marketplace (`allegro`, `mercadolibre`, `magalu`, `ozon`).
pub fn request_counts() -> BTreeMap<&'static str, RequestCounts> {
    table().lock().map(|t| t.clone()).unwrap_or_default()
}
