//! Rate limits enforced as the vendors do, per account or per application: a request
//! past the limit gets 429 with the vendor's body. A limit counts the requests of a
//! sliding window.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Vendor;

/// A limit of one marketplace: at most `requests` per `per`, counting reads, writes, or
/// both.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    /// Which marketplace.
    pub vendor: Vendor,
    /// `Some(false)`: reads only (GET); `Some(true)`: writes only; `None`: every request.
    pub writes: Option<bool>,
    /// Requests allowed…
    pub requests: usize,
    /// …in any window of this length.
    pub per: Duration,
    /// Counted for every account of the application together (Allegro's limit is per
    /// client id), rather than for each account.
    pub per_application: bool,
}

impl Limit {
    /// The vendors' published limits: Allegro 9,000 a minute per application (every
    /// account of the sandbox belongs to one); per account, Mercado Libre 500 reads and
    /// 500 writes a minute, Magalu 200 reads a minute, Ozon 50 a second.
    pub fn published() -> Vec<Limit> {
        let minute = Duration::from_secs(60);
        vec![
            Limit {
                vendor: Vendor::Allegro,
                writes: None,
                requests: 9_000,
                per: minute,
                per_application: true,
            },
            Limit {
                vendor: Vendor::MercadoLibre,
                writes: Some(false),
                requests: 500,
                per: minute,
                per_application: false,
            },
            Limit {
                vendor: Vendor::MercadoLibre,
                writes: Some(true),
                requests: 500,
                per: minute,
                per_application: false,
            },
            Limit {
                vendor: Vendor::Magalu,
                writes: Some(false),
                requests: 200,
                per: minute,
                per_application: false,
            },
            Limit {
                vendor: Vendor::Ozon,
                writes: None,
                requests: 50,
                per: Duration::from_secs(1),
                per_application: false,
            },
        ]
    }
}

impl Limit {
    /// The published rate per second that reads of `vendor` count against.
    pub fn published_read_rate(vendor: Vendor) -> f64 {
        Limit::published()
            .into_iter()
            .find(|l| l.vendor == vendor && l.writes != Some(true))
            .map_or(f64::INFINITY, |l| l.requests as f64 / l.per.as_secs_f64())
    }
}

/// The windows of every configured limit.
pub(crate) struct Windows {
    limits: Vec<(Limit, Mutex<VecDeque<Instant>>)>,
}

impl Windows {
    pub(crate) fn new<'a>(limits: impl IntoIterator<Item = &'a Limit>) -> Self {
        Windows {
            limits: limits
                .into_iter()
                .map(|l| (l.clone(), Mutex::new(VecDeque::new())))
                .collect(),
        }
    }

    /// Counts a request; false when one of its limits is already full.
    pub(crate) fn admit(&self, vendor: Vendor, write: bool) -> bool {
        let now = Instant::now();
        let mut admitted = true;
        for (limit, window) in &self.limits {
            if limit.vendor != vendor || limit.writes.is_some_and(|w| w != write) {
                continue;
            }
            let Ok(mut window) = window.lock() else {
                continue;
            };
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= limit.per)
            {
                window.pop_front();
            }
            if window.len() >= limit.requests {
                admitted = false;
            } else {
                window.push_back(now);
            }
        }
        admitted
    }
}
