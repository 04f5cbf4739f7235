//! Webhooks: the event log delivered to the endpoints the operator adds, signed per the
//! Standard Webhooks specification (`webhook-id`: the event's id, the same on every
//! attempt; `webhook-timestamp`; `webhook-signature`: `v1,` and the base64 HMAC-SHA256
//! of `id.timestamp.body` under each live secret, space-separated).
//!
//! [`Deliverer::run`] runs in `inbox serve` (and, on PostgreSQL, in every `inbox worker`):
//! it takes each endpoint's new events into its queue ([`SqlStore::fan_out`]), then
//! delivers what is due, each delivery claimed in the store for a while so that any
//! number of processes share the work and a process that dies loses nothing (its claims
//! lapse, and another delivers). It wakes when events are committed (this process's
//! commits; on PostgreSQL, any process's through `LISTEN inbox_events`), and at least
//! every quarter of a second for retries that fall due.
//!
//! [`SqlStore::fan_out`]: marketplace_inbox::sync::SqlStore::fan_out

pub mod schedule;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use marketplace_inbox::sync::{
    Attempt, Backlog, DeliveryOutcome, Due, EventFilter, Replay, StoreError, Webhook, WebhookChange,
};
use marketplace_inbox::Secret;

use self::schedule::Schedule;
use self::target::Target;
use crate::directory::on_store;
use crate::metrics::Metrics;
use crate::Directory;

/// How long one delivery may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a claim on a delivery holds: past it, another process may deliver it.
const CLAIM: Duration = Duration::from_secs(30);

/// How often the queues are looked at without a commit to wake them.
const IDLE: Duration = Duration::from_millis(250);

/// Deliveries one process makes at once.
const CONCURRENCY: usize = 32;

/// Events taken into an endpoint's queue per transaction.
const FAN_OUT: usize = 1000;

/// How long the old secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// How much of an answer's body an attempt keeps as its error.
const ERROR_BODY: usize = 200;

/// A new signing secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> Secret {
    use base64::Engine as _;
    let bytes = marketplace_inbox::random_bytes(24);
    Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The `webhook-signature` header of `body` sent as event `id` at `timestamp`: one
/// `v1,…` signature per secret, space-separated.
pub fn signature(secrets: &[&Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| standardwebhooks::Webhook::new(s.expose()).ok())
        .filter_map(|w| w.sign(id, timestamp, body).ok())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The store's webhooks, on whichever backend the directory is.
impl Directory {
    /// Adds an endpoint (see [`marketplace_inbox::sync::SqlStore::create_webhook`]).
    pub async fn create_webhook(
        &self,
        url: &str,
        filter: &EventFilter,
        description: Option<&str>,
    ) -> Result<(Webhook, Secret), StoreError> {
        let id = format!("wh_{}", marketplace_inbox::random_hex(12));
        let secret = new_secret();
        let hook =
            on_store!(self, s => s.create_webhook(&id, url, filter, description, &secret).await)?;
        Ok((hook, secret))
    }

    /// Every endpoint.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        on_store!(self, s => s.webhooks().await)
    }

    /// The endpoint `id`.
    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        on_store!(self, s => s.webhook(id).await)
    }

    /// Changes the endpoint `id`.
    pub async fn update_webhook(
        &self,
        id: &str,
        change: &WebhookChange,
    ) -> Result<Option<Webhook>, StoreError> {
        on_store!(self, s => s.update_webhook(id, change).await)
    }

    /// Gives the endpoint `id` a new secret (the old one signs too for
    /// [`ROTATION_OVERLAP`]); the endpoint and its new secret.
    pub async fn rotate_webhook(&self, id: &str) -> Result<Option<(Webhook, Secret)>, StoreError> {
        let secret = new_secret();
        let until = Utc::now()
            + chrono::Duration::from_std(ROTATION_OVERLAP).unwrap_or(chrono::Duration::zero());
        let hook = on_store!(self, s => s.rotate_webhook(id, &secret, until).await)?;
        Ok(hook.map(|h| (h, secret)))
    }

    /// Removes the endpoint `id`.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        on_store!(self, s => s.delete_webhook(id).await)
    }

    /// Attempts at the endpoint `id`, newest first.
    pub async fn webhook_attempts(
        &self,
        id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Attempt>, StoreError> {
        on_store!(self, s => s.webhook_attempts(id, before, limit).await)
    }

    /// Queues events again for the endpoint `id`; how many.
    pub async fn replay_webhook(&self, id: &str, replay: &Replay) -> Result<u64, StoreError> {
        on_store!(self, s => s.replay_webhook(id, replay).await)
    }

    /// Raised when events may have been committed.
    pub fn event_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        on_store!(self, s => s.event_signal())
    }
}

/// What a delivering process holds.
pub struct Deliverer {
    directory: Directory,
    allow_private: bool,
    schedule: Schedule,
    metrics: Option<Arc<Metrics>>,
    /// The client for endpoints whose addresses are not pinned.
    client: reqwest::Client,
    /// When the log and histories were last pruned.
    pruned: std::sync::Mutex<Option<std::time::Instant>>,
    retention: Duration,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

/// How long events are kept by default.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How a process delivers webhooks and keeps the log.
#[derive(Clone)]
pub struct WebhookOptions {
    /// Let URLs be plain `http` and reach private addresses (`--webhooks-allow-private`).
    pub allow_private: bool,
    /// How long events are kept (default [`RETENTION`]).
    pub retention: Duration,
    /// Where delivery metrics are counted (the process's `/metrics`).
    pub metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOptions")
            .field("allow_private", &self.allow_private)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            allow_private: false,
            retention: RETENTION,
            metrics: None,
        }
    }
}

/// Starts delivering `directory`'s webhooks in this process, until it is asked to stop.
pub fn spawn(
    directory: Directory,
    options: &WebhookOptions,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let deliverer = Arc::new(Deliverer::new(directory, options)?);
    Ok(tokio::spawn(deliverer.run()))
}

/// How often the log is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Deliverer {
    /// Delivers `directory`'s webhooks as `options` say.
    pub fn new(directory: Directory, options: &WebhookOptions) -> anyhow::Result<Deliverer> {
        let client = client(&Target::Any)?;
        Ok(Deliverer {
            directory,
            allow_private: options.allow_private,
            schedule: Schedule::from_env(),
            metrics: options.metrics.clone(),
            client,
            pruned: std::sync::Mutex::new(None),
            retention: options.retention,
        })
    }

    /// Delivers until the process is asked to stop.
    pub async fn run(self: Arc<Self>) {
        let mut signal = self.directory.event_signal();
        let mut stopped = Box::pin(crate::shutdown_signal());
        loop {
            let busy = match self.round().await {
                Ok(busy) => busy,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook deliveries: the store failed; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = &mut stopped => return,
                    }
                    false
                }
            };
            if busy {
                continue;
            }
            tokio::select! {
                _ = signal.changed() => {}
                _ = tokio::time::sleep(IDLE) => {}
                _ = &mut stopped => return,
            }
        }
    }

    /// Takes new events, delivers what is due; whether there may be more to do at once.
    pub async fn round(&self) -> Result<bool, StoreError> {
        self.prune().await;
        let hooks = self.directory.webhooks().await?;
        let mut busy = false;
        for hook in hooks.iter().filter(|h| h.state == "enabled") {
            let queued = on_store!(&self.directory, s => s.fan_out(&hook.id, FAN_OUT).await)?;
            busy |= queued >= FAN_OUT;
        }
        let now = Utc::now();
        let due = on_store!(&self.directory, s => s.due_deliveries(now, CONCURRENCY * 4).await)?;
        busy |= due.len() >= CONCURRENCY * 4;
        let hooks = Arc::new(hooks);
        futures::stream::iter(due)
            .map(|d| {
                let hooks = hooks.clone();
                async move {
                    if let Some(hook) = hooks.iter().find(|h| h.id == d.webhook) {
                        if let Err(e) = self.deliver(hook, &d).await {
                            tracing::warn!(webhook = %d.webhook, seq = d.seq, error = %e, "a webhook delivery could not be recorded");
                        }
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        self.observe().await;
        Ok(busy)
    }

    /// Claims and makes one delivery, and records how it went.
    async fn deliver(&self, hook: &Webhook, due: &Due) -> Result<(), StoreError> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(CLAIM).unwrap_or(chrono::Duration::zero());
        let claimed = on_store!(&self.directory, s => s.claim_delivery(due, now, until).await)?;
        if !claimed {
            return Ok(());
        }
        let event = on_store!(&self.directory, s => s.event(due.seq).await)?;
        let attempt = due.attempts.saturating_add(1);
        let (status, error, retry_after) = match event {
            None => (
                None,
                Some("the event is no longer in the log".to_string()),
                None,
            ),
            Some(event) => self.post(hook, &event).await,
        };
        let at = Utc::now();
        let failed_in_round = attempt.saturating_sub(due.round_start);
        let outcome = match status {
            Some(s) if (200..300).contains(&s) => DeliveryOutcome::Delivered,
            Some(410) => DeliveryOutcome::Gone,
            _ => match self.schedule.next_attempt(
                failed_in_round,
                at,
                retry_after,
                schedule::jitter(),
            ) {
                Some(next) => DeliveryOutcome::Retry(next),
                None => DeliveryOutcome::Failed,
            },
        };
        let record = Attempt {
            id: 0,
            webhook: hook.id.clone(),
            seq: due.seq,
            attempt,
            status,
            error,
            at,
            next_attempt_at: match outcome {
                DeliveryOutcome::Retry(next) => Some(next),
                _ => None,
            },
        };
        let disable_before = self.schedule.disable_before(at);
        on_store!(&self.directory, s => s.finish_delivery(&record, &outcome, disable_before).await)?;
        if let Some(m) = &self.metrics {
            m.webhook_attempt(match outcome {
                DeliveryOutcome::Delivered => "delivered",
                DeliveryOutcome::Retry(_) => "retrying",
                DeliveryOutcome::Failed => "failed",
                DeliveryOutcome::Gone => "gone",
            });
        }
        Ok(())
    }

    /// Posts `event` to the endpoint: the status answered, or what went wrong, and the
    /// receiver's `Retry-After`.
    async fn post(
        &self,
        hook: &Webhook,
        event: &serde_json::Value,
    ) -> (Option<u16>, Option<String>, Option<Duration>) {
        let (url, target) = match target::resolve(&hook.url, self.allow_private).await {
            Ok(checked) => checked,
            Err(why) => return (None, Some(format!("refused: {why}")), None),
        };
        let pinned;
        let client = match &target {
            Target::Any => &self.client,
            Target::Pinned(..) => match client(&target) {
                Ok(c) => {
                    pinned = c;
                    &pinned
                }
                Err(e) => return (None, Some(format!("{e:#}")), None),
            },
        };
        let id = event
            .get("id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        let body = event.to_string().into_bytes();
        let now = Utc::now();
        let timestamp = now.timestamp();
        let signature = signature(&hook.signing_secrets(now), &id, timestamp, &body);
        let sent = client
            .post(url)
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(answer) => {
                let status = answer.status().as_u16();
                let retry_after = answer
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| schedule::retry_after(v, Utc::now()));
                let error = if answer.status().is_success() {
                    None
                } else {
                    let text = answer.text().await.unwrap_or_default();
                    Some(crate::text::one_line(
                        &format!("answered {status}: {text}"),
                        ERROR_BODY,
                    ))
                };
                (Some(status), error, retry_after)
            }
            Err(e) => {
                let why = if e.is_timeout() {
                    "no answer within 15 s".to_string()
                } else {
                    crate::text::describe(&anyhow::Error::new(e))
                };
                (None, Some(why), None)
            }
        }
    }

    /// Drops events, attempts and failed deliveries past the retention, once an hour.
    async fn prune(&self) {
        let due = self
            .pruned
            .lock()
            .map(|mut last| {
                let due = last.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
                if due {
                    *last = Some(std::time::Instant::now());
                }
                due
            })
            .unwrap_or(false);
        if !due {
            return;
        }
        let Some(before) = chrono::Duration::from_std(self.retention)
            .ok()
            .and_then(|r| Utc::now().checked_sub_signed(r))
        else {
            return;
        };
        let pruned = on_store!(&self.directory, s => async {
            let events = s.prune_events(before).await?;
            let history = s.prune_webhook_history(before).await?;
            Ok::<_, StoreError>(events.saturating_add(history))
        }.await);
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "pruning the event log failed");
        }
    }

    /// Sets the backlog gauges.
    async fn observe(&self) {
        let Some(m) = &self.metrics else {
            return;
        };
        let backlogs: Result<Vec<Backlog>, StoreError> =
            on_store!(&self.directory, s => s.webhook_backlogs().await);
        if let Ok(backlogs) = backlogs {
            m.webhook_backlogs(&backlogs, Utc::now());
        }
    }
}

/// A client for `target`: no redirect, [`DELIVERY_TIMEOUT`] in all.
fn client(target: &Target) -> anyhow::Result<reqwest::Client> {
    let timeouts =
        inbox_core::Timeouts::new(Duration::from_secs(10), DELIVERY_TIMEOUT, DELIVERY_TIMEOUT);
    let built = match target {
        Target::Any => inbox_core::http_client_without_redirects(timeouts),
        Target::Pinned(host, addrs) => inbox_core::http_client_pinned(timeouts, host, addrs),
    };
    built.map_err(|e| anyhow::anyhow!("building the webhook client: {e}"))
}

/// The instant a delivery was made, as the deliveries list shows it.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
