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

use chrono::Utc;
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
const CLAIM: Duration = Duration::from_secs(40);

/// How long a lane goes on delivering its claimed events before it lets go of the rest
/// (so that its last delivery ends well within the claim).
const LANE_TIME: Duration = Duration::from_secs(20);

/// How often the queues are looked at without a commit to wake them.
const IDLE: Duration = Duration::from_millis(250);

/// Lanes one process delivers at once (each lane's events one after another).
const CONCURRENCY: usize = 32;

/// Deliveries taken per round.
const DUE_PER_ROUND: usize = 1000;

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

    /// Queues events again for the endpoint `hook`; how many.
    pub async fn replay_webhook(&self, hook: &Webhook, replay: &Replay) -> Result<u64, StoreError> {
        on_store!(self, s => s.replay_webhook(hook, replay).await)
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
    /// When the backlog gauges were last set.
    observed: std::sync::Mutex<Option<std::time::Instant>>,
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

/// How often the backlog gauges are set.
const OBSERVE_EVERY: Duration = Duration::from_secs(1);

/// Whether `every` has passed since `last` (then `last` becomes now).
fn once_per(last: &std::sync::Mutex<Option<std::time::Instant>>, every: Duration) -> bool {
    last.lock()
        .map(|mut last| {
            let due = last.is_none_or(|t| t.elapsed() >= every);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        })
        .unwrap_or(false)
}

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
            observed: std::sync::Mutex::new(None),
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
        if !hooks.iter().any(|h| h.state == "enabled") {
            return Ok(false);
        }
        let end = self.directory.last_event().await?;
        let mut busy = false;
        for hook in hooks
            .iter()
            .filter(|h| h.state == "enabled" && h.cursor < end)
        {
            let queued = on_store!(&self.directory, s => s.fan_out(hook, FAN_OUT).await)?;
            busy |= queued >= FAN_OUT;
        }
        let now = Utc::now();
        let due = on_store!(&self.directory, s => s.due_deliveries(now, DUE_PER_ROUND).await)?;
        busy |= due.len() >= DUE_PER_ROUND;
        let until = now + chrono::Duration::from_std(CLAIM).unwrap_or(chrono::Duration::zero());
        let claimed = on_store!(&self.directory, s => s.claim_deliveries(&due, now, until).await)?;
        let (lanes, loose) = lanes(&due, &claimed);
        on_store!(&self.directory, s => s.release_deliveries(&loose).await)?;
        let hooks = Arc::new(hooks);
        // Lanes run side by side, each its events in order; what they did is recorded
        // as they end, together when several end at once (one commit for them all),
        // while the others go on.
        let (done, ended) = futures::channel::mpsc::unbounded();
        let delivering = async move {
            futures::stream::iter(lanes)
                .for_each_concurrent(CONCURRENCY, |lane| {
                    let (hooks, done) = (hooks.clone(), done.clone());
                    async move {
                        let ran = self.run_lane(&hooks, lane).await;
                        let _ = done.unbounded_send(ran);
                    }
                })
                .await;
        };
        let recording = async {
            let mut ended = ended.ready_chunks(CONCURRENCY);
            while let Some(chunk) = ended.next().await {
                self.record(chunk).await?;
            }
            Ok::<(), StoreError>(())
        };
        let ((), recorded) = futures::join!(delivering, recording);
        recorded?;
        self.observe().await;
        Ok(busy)
    }

    /// Records what lanes did: their attempts, and the deliveries they did not try.
    async fn record(&self, lanes: Vec<LaneRun>) -> Result<(), StoreError> {
        let mut attempts: Vec<(Attempt, DeliveryOutcome)> = Vec::new();
        let mut untried: Vec<Due> = Vec::new();
        for lane in lanes {
            attempts.extend(lane.attempts);
            untried.extend(lane.untried);
        }
        let disable_before = self.schedule.disable_before(Utc::now());
        on_store!(&self.directory, s => s.finish_deliveries(&attempts, disable_before).await)?;
        on_store!(&self.directory, s => s.release_deliveries(&untried).await)?;
        if let Some(m) = &self.metrics {
            for (_, outcome) in &attempts {
                m.webhook_attempt(match outcome {
                    DeliveryOutcome::Delivered => "delivered",
                    DeliveryOutcome::Retry(_) => "retrying",
                    DeliveryOutcome::Failed => "failed",
                    DeliveryOutcome::Gone => "gone",
                });
            }
        }
        Ok(())
    }

    /// Delivers one lane's claimed events in order, until one is not delivered (it
    /// retries later, and the rest wait for it): what was attempted, and what was not.
    async fn run_lane(&self, hooks: &[Webhook], lane: Vec<Due>) -> LaneRun {
        let Some(hook) = lane
            .first()
            .and_then(|d| hooks.iter().find(|h| h.id == d.webhook))
        else {
            return LaneRun::untried(lane);
        };
        let seqs: Vec<u64> = lane.iter().map(|d| d.seq).collect();
        let events = match on_store!(&self.directory, s => s.events_numbered(&seqs).await) {
            Ok(events) => events,
            // Not read: tried again at once, in the next round.
            Err(_) => return LaneRun::untried(lane),
        };
        let mut done = Vec::with_capacity(lane.len());
        let started = std::time::Instant::now();
        let mut rest = lane.into_iter().peekable();
        while let Some(due) = rest.next_if(|_| started.elapsed() < LANE_TIME) {
            let event = events
                .iter()
                .find(|e| e.get("seq").and_then(serde_json::Value::as_u64) == Some(due.seq));
            let (attempt, outcome) = self.attempt(hook, &due, event).await;
            let go_on = matches!(
                outcome,
                DeliveryOutcome::Delivered | DeliveryOutcome::Failed
            );
            done.push((attempt, outcome));
            if !go_on {
                break;
            }
        }
        LaneRun {
            attempts: done,
            untried: rest.collect(),
        }
    }

    /// Makes one claimed delivery of `event` (`None`: no longer in the log): the attempt
    /// as it went, and what follows.
    async fn attempt(
        &self,
        hook: &Webhook,
        due: &Due,
        event: Option<&serde_json::Value>,
    ) -> (Attempt, DeliveryOutcome) {
        let attempt = due.attempts.saturating_add(1);
        let (status, error, retry_after) = match event {
            None => (
                None,
                Some("the event is no longer in the log".to_string()),
                None,
            ),
            Some(event) => self.post(hook, event).await,
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
        (record, outcome)
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
        if !once_per(&self.pruned, PRUNE_EVERY) {
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
        if !once_per(&self.observed, OBSERVE_EVERY) {
            return;
        }
        let backlogs: Result<Vec<Backlog>, StoreError> =
            on_store!(&self.directory, s => s.webhook_backlogs().await);
        if let Ok(backlogs) = backlogs {
            m.webhook_backlogs(&backlogs, Utc::now());
        }
    }
}

/// What a lane did: its attempts, and the claimed deliveries it did not try.
struct LaneRun {
    attempts: Vec<(Attempt, DeliveryOutcome)>,
    untried: Vec<Due>,
}

impl LaneRun {
    fn untried(lane: Vec<Due>) -> LaneRun {
        LaneRun {
            attempts: Vec::new(),
            untried: lane,
        }
    }
}

/// `claimed` (of `due`, in its order) as lanes, each the claimed prefix of its lane's due
/// events; and the claimed events that follow a gap (another process holds an earlier
/// one), to let go of.
fn lanes(due: &[Due], claimed: &[Due]) -> (Vec<Vec<Due>>, Vec<Due>) {
    let mut lanes: Vec<Vec<Due>> = Vec::new();
    let mut loose = Vec::new();
    let mut broken = false;
    let mut claimed_iter = claimed.iter().peekable();
    let mut last_lane: Option<(&str, &str)> = None;
    for d in due {
        let key = (d.webhook.as_str(), d.lane.as_str());
        if last_lane != Some(key) {
            last_lane = Some(key);
            broken = false;
            lanes.push(Vec::new());
        }
        let got = claimed_iter.peek().is_some_and(|c| *c == d);
        if got {
            claimed_iter.next();
            match (broken, lanes.last_mut()) {
                (false, Some(lane)) => lane.push(d.clone()),
                _ => loose.push(d.clone()),
            }
        } else {
            broken = true;
        }
    }
    lanes.retain(|l| !l.is_empty());
    (lanes, loose)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn due(webhook: &str, lane: &str, seq: u64) -> Due {
        Due {
            webhook: webhook.into(),
            seq,
            lane: lane.into(),
            attempts: 0,
            round_start: 0,
        }
    }

    #[test]
    fn a_lane_is_its_claimed_prefix_and_what_follows_a_gap_is_let_go() {
        let listed = [
            due("a", "x", 1),
            due("a", "x", 2),
            due("a", "x", 3),
            due("a", "y", 4),
            due("b", "x", 5),
            due("b", "x", 6),
        ];
        // Another process got 2 (x of a) and 5 (x of b).
        let claimed: Vec<Due> = listed
            .iter()
            .filter(|d| d.seq != 2 && d.seq != 5)
            .cloned()
            .collect();
        let (lanes, loose) = lanes(&listed, &claimed);
        let seqs: Vec<Vec<u64>> = lanes
            .iter()
            .map(|l| l.iter().map(|d| d.seq).collect())
            .collect();
        assert_eq!(seqs, [vec![1], vec![4]]);
        assert_eq!(loose.iter().map(|d| d.seq).collect::<Vec<_>>(), [3, 6]);
    }

    #[test]
    fn a_signature_verifies_with_the_standard_library_for_each_live_secret() {
        let (one, two) = (new_secret(), new_secret());
        assert!(one.expose().starts_with("whsec_"));
        let header = signature(&[&one, &two], "evt_7", 1_700_000_000, b"{\"a\":1}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        for (secret, part) in [(&one, parts[0]), (&two, parts[1])] {
            let expected = standardwebhooks::Webhook::new(secret.expose())
                .unwrap()
                .sign("evt_7", 1_700_000_000, b"{\"a\":1}")
                .unwrap();
            assert_eq!(part, expected);
        }
    }
}
