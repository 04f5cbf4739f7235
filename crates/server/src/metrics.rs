//! What `GET /metrics` answers, in the Prometheus text format (prometheus-client).

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A marketplace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByMarketplace {
    /// `mercadolibre`, `ozon`, …
    pub marketplace: String,
}

/// A marketplace and a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByReason {
    /// `mercadolibre`, `ozon`, …
    pub marketplace: String,
    /// Why (`duplicate`, `unknown_seller`, `malformed_json`, …).
    pub reason: String,
}

/// A sync: which marketplace, a poll step or a targeted one, and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BySync {
    /// `mercadolibre`, `ozon`, …
    pub marketplace: String,
    /// `poll` or `notification`.
    pub kind: String,
    /// `committed` or `failed`.
    pub outcome: String,
}

/// A webhook delivery attempt's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByOutcome {
    /// `delivered`, `retrying`, `failed` or `gone`.
    pub outcome: String,
}

/// A webhook endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByWebhook {
    /// Its id.
    pub webhook: String,
}

/// Every metric the push intake and the schedulers keep.
pub struct Metrics {
    registry: Registry,
    received: Family<ByMarketplace, Counter>,
    acknowledged: Family<ByMarketplace, Counter>,
    ignored: Family<ByReason, Counter>,
    rejected: Family<ByReason, Counter>,
    ack_seconds: Family<ByMarketplace, Histogram>,
    stored_seconds: Family<ByMarketplace, Histogram>,
    syncs: Family<BySync, Counter>,
    vendor_requests: Family<ByMarketplace, Gauge>,
    vendor_throttled: Family<ByMarketplace, Gauge>,
    webhook_attempts: Family<ByOutcome, Counter>,
    webhook_oldest: Family<ByWebhook, Gauge>,
    webhook_lag: Family<ByWebhook, Gauge>,
    /// Serialises rendering (the vendor counts are copied in first).
    render: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn mp(marketplace: &str) -> ByMarketplace {
    ByMarketplace {
        marketplace: marketplace.to_string(),
    }
}

fn why(marketplace: &str, reason: &str) -> ByReason {
    ByReason {
        marketplace: marketplace.to_string(),
        reason: reason.to_string(),
    }
}

impl Metrics {
    /// Every family registered, empty.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("inbox");
        let received = Family::<ByMarketplace, Counter>::default();
        let acknowledged = Family::<ByMarketplace, Counter>::default();
        let ignored = Family::<ByReason, Counter>::default();
        let rejected = Family::<ByReason, Counter>::default();
        // From 0.5 ms to about 8 s.
        let ack_seconds = Family::<ByMarketplace, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 15))
        });
        // From 10 ms to about 40 min.
        let stored_seconds = Family::<ByMarketplace, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 18))
        });
        let syncs = Family::<BySync, Counter>::default();
        let vendor_requests = Family::<ByMarketplace, Gauge>::default();
        let vendor_throttled = Family::<ByMarketplace, Gauge>::default();
        registry.register(
            "notifications_received",
            "Notifications received",
            received.clone(),
        );
        registry.register(
            "notifications_acknowledged",
            "Notifications answered with the vendor's success answer",
            acknowledged.clone(),
        );
        registry.register(
            "notifications_ignored",
            "Notifications acknowledged but not acted on, by reason",
            ignored.clone(),
        );
        registry.register(
            "notifications_rejected",
            "Notifications answered with an error, by reason",
            rejected.clone(),
        );
        registry.register(
            "notification_ack_seconds",
            "From a notification's arrival to its answer",
            ack_seconds.clone(),
        );
        registry.register(
            "notification_to_stored_seconds",
            "From a notification's arrival to its conversation stored",
            stored_seconds.clone(),
        );
        registry.register("syncs", "Sync steps, by kind and outcome", syncs.clone());
        registry.register(
            "vendor_requests",
            "Requests sent to the marketplace by this process (retries included)",
            vendor_requests.clone(),
        );
        registry.register(
            "vendor_throttled",
            "Answers with status 429 from the marketplace",
            vendor_throttled.clone(),
        );
        let webhook_attempts = Family::<ByOutcome, Counter>::default();
        let webhook_oldest = Family::<ByWebhook, Gauge>::default();
        let webhook_lag = Family::<ByWebhook, Gauge>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, retrying, failed, gone); a delivery is an attempt whose outcome is delivered",
            webhook_attempts.clone(),
        );
        registry.register(
            "webhook_oldest_undelivered_seconds",
            "Age of the oldest event an enabled or disabled endpoint is still owed",
            webhook_oldest.clone(),
        );
        registry.register(
            "webhook_feed_lag_events",
            "Events committed that an endpoint has not yet taken into its queue",
            webhook_lag.clone(),
        );
        Metrics {
            webhook_attempts,
            webhook_oldest,
            webhook_lag,
            registry,
            received,
            acknowledged,
            ignored,
            rejected,
            ack_seconds,
            stored_seconds,
            syncs,
            vendor_requests,
            vendor_throttled,
            render: Mutex::new(()),
        }
    }

    /// A notification arrived.
    pub fn received(&self, marketplace: &str) {
        self.received.get_or_create(&mp(marketplace)).inc();
    }

    /// A notification was answered with success after `seconds`.
    pub fn acknowledged(&self, marketplace: &str, seconds: f64) {
        self.acknowledged.get_or_create(&mp(marketplace)).inc();
        self.ack_seconds
            .get_or_create(&mp(marketplace))
            .observe(seconds);
    }

    /// A notification was acknowledged but not acted on.
    pub fn ignored(&self, marketplace: &str, reason: &str) {
        self.ignored.get_or_create(&why(marketplace, reason)).inc();
    }

    /// A notification was answered with an error.
    pub fn rejected(&self, marketplace: &str, reason: &str) {
        self.rejected.get_or_create(&why(marketplace, reason)).inc();
    }

    /// A notified conversation was stored `seconds` after its notification arrived.
    pub fn stored(&self, marketplace: &str, seconds: f64) {
        self.stored_seconds
            .get_or_create(&mp(marketplace))
            .observe(seconds);
    }

    /// A sync step ran.
    pub fn synced(&self, marketplace: &str, kind: &str, committed: bool) {
        let labels = BySync {
            marketplace: marketplace.to_string(),
            kind: kind.to_string(),
            outcome: if committed { "committed" } else { "failed" }.to_string(),
        };
        self.syncs.get_or_create(&labels).inc();
    }

    /// A webhook delivery attempt ended so.
    pub fn webhook_attempt(&self, outcome: &str) {
        let labels = ByOutcome {
            outcome: outcome.to_string(),
        };
        self.webhook_attempts.get_or_create(&labels).inc();
    }

    /// The endpoints' backlogs as they stand at `now`.
    pub fn webhook_backlogs(
        &self,
        backlogs: &[marketplace_inbox::sync::Backlog],
        now: chrono::DateTime<chrono::Utc>,
    ) {
        for b in backlogs {
            let labels = ByWebhook {
                webhook: b.webhook.clone(),
            };
            let age = b
                .oldest_pending
                .map_or(0, |t| (now - t).num_seconds().max(0));
            self.webhook_oldest.get_or_create(&labels).set(age);
            self.webhook_lag
                .get_or_create(&labels)
                .set(i64::try_from(b.untaken).unwrap_or(i64::MAX));
        }
    }

    /// The text `GET /metrics` answers.
    pub fn render(&self) -> String {
        let _one = self.render.lock();
        for (marketplace, counts) in marketplace_inbox::request_counts() {
            let set = |g: &Family<ByMarketplace, Gauge>, v: u64| {
                g.get_or_create(&mp(marketplace))
                    .set(i64::try_from(v).unwrap_or(i64::MAX));
            };
            set(&self.vendor_requests, counts.requests);
            set(&self.vendor_throttled, counts.throttled);
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
