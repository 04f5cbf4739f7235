//! Webhook endpoints (table `webhooks`) and what is owed to them.
//!
//! - An endpoint keeps `cursor`, the last event it has taken from the log: a new one
//!   starts at the log's end, so it receives what is committed after its creation.
//! - [`SqlStore::fan_out`] moves the events after the cursor that the endpoint's filter
//!   takes into `webhook_queue` (one row per endpoint and event) and advances the cursor
//!   in the same transaction, compare-and-set: any number of processes may run it.
//! - A queued event belongs to a *lane*, its account and conversation: within a lane,
//!   only the oldest pending event is due ([`SqlStore::due_deliveries`]), so one
//!   conversation's events arrive in `seq` order while other lanes go on.
//! - A delivery is claimed for a while ([`SqlStore::claim_delivery`]); a process that
//!   dies holding it loses the claim when it lapses and another delivers (at least once).
//! - Every attempt is kept (`webhook_attempts`); a delivered event leaves the queue, one
//!   that failed its last attempt stays there as `failed` until replayed.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::backend::{args, Arg, Dialect, Row};
use super::events::{append_in, filter_sql, EventFilter};
use super::SqlStore;
use crate::sync::{StoreError, StoreErrorKind};
use crate::Secret;

/// A webhook endpoint as the store holds it.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// Its id (`wh_…`).
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// Only these event types (`None`: all).
    pub types: Option<Vec<String>>,
    /// Only these accounts' events (`None`: all).
    pub accounts: Option<Vec<String>>,
    /// The operator's note.
    pub description: Option<String>,
    /// `enabled` or `disabled`.
    pub state: String,
    /// The signing secret (`whsec_…`).
    pub secret: Secret,
    /// The secret it replaced, still signing until the instant given.
    pub old_secret: Option<(Secret, DateTime<Utc>)>,
    /// The last event taken from the log.
    pub cursor: u64,
    /// Since when every attempt has failed (`None`: the last one succeeded).
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Webhook {
    /// Its JSON form, as the API answers it (never with a secret).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "types": self.types,
            "accounts": self.accounts,
            "description": self.description,
            "state": self.state,
            "created_at": crate::rfc3339(self.created_at),
            "updated_at": crate::rfc3339(self.updated_at),
        })
    }

    /// Its JSON form with `secret` (only when the secret is made: creation, rotation).
    pub fn to_json_with(&self, secret: &Secret) -> Value {
        let mut body = self.to_json();
        if let Some(o) = body.as_object_mut() {
            o.insert("secret".into(), json!(secret.expose()));
        }
        body
    }

    /// The secrets that sign a delivery made at `now`: the current one, and the one it
    /// replaced while that still lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&Secret> {
        let mut secrets = vec![&self.secret];
        if let Some((old, until)) = &self.old_secret {
            if *until > now {
                secrets.push(old);
            }
        }
        secrets
    }

    /// The filter its events pass.
    pub fn filter(&self) -> EventFilter {
        EventFilter {
            types: self.types.clone(),
            accounts: self.accounts.clone(),
        }
    }
}

/// What a change of an endpoint sets (`None`: left as it is).
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    /// A new URL.
    pub url: Option<String>,
    /// New types (`Some(None)`: all).
    pub types: Option<Option<Vec<String>>>,
    /// New accounts (`Some(None)`: all).
    pub accounts: Option<Option<Vec<String>>>,
    /// A new description (`Some(None)`: none).
    pub description: Option<Option<String>>,
    /// `enabled` or `disabled`.
    pub state: Option<String>,
}

/// A delivery that is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The endpoint.
    pub webhook: String,
    /// The event.
    pub seq: u64,
    /// Its lane (account and conversation): a lane's events go out in `seq` order.
    pub lane: String,
    /// Attempts made so far (all rounds).
    pub attempts: u32,
    /// Attempts made before this round (a replay starts a new round).
    pub round_start: u32,
}

/// How an attempt ended, and what follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A 2xx: delivered.
    Delivered,
    /// Tried again at this instant.
    Retry(DateTime<Utc>),
    /// The last attempt failed: kept as failed, replayable.
    Failed,
    /// `410 Gone`: the endpoint is disabled (the event stays owed).
    Gone,
}

/// One attempt, as made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Its row (the deliveries list's cursor).
    pub id: i64,
    /// The endpoint.
    pub webhook: String,
    /// The event.
    pub seq: u64,
    /// Its number for this event at this endpoint (1, 2, …).
    pub attempt: u32,
    /// The HTTP status answered (`None`: no answer).
    pub status: Option<u16>,
    /// What went wrong.
    pub error: Option<String>,
    /// When it was made.
    pub at: DateTime<Utc>,
    /// When the next one is due (`None`: none).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Which events a replay delivers again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Every event after this seq (up to the endpoint's cursor).
    After(u64),
    /// These events.
    Events(Vec<u64>),
}

/// How an endpoint's queue stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backlog {
    /// The endpoint.
    pub webhook: String,
    /// Events it has yet to take from the log (the log's last seq less its cursor).
    pub untaken: u64,
    /// When its oldest pending event was queued.
    pub oldest_pending: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, url, types, accounts, description, state, secret, old_secret,
  old_secret_until, cursor, failing_since, created_at, updated_at";

fn list_of(text: Option<String>) -> Option<Vec<String>> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn list_text(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_default())
}

fn webhook<R: Row>(row: &R) -> Result<Webhook, StoreError> {
    let now = Utc::now();
    let old_secret = match (row.text(7)?, row.time(8)?) {
        (Some(s), Some(until)) => Some((Secret::new(s), until)),
        _ => None,
    };
    Ok(Webhook {
        id: row.text(0)?.unwrap_or_default(),
        url: row.text(1)?.unwrap_or_default(),
        types: list_of(row.text(2)?),
        accounts: list_of(row.text(3)?),
        description: row.text(4)?,
        state: row.text(5)?.unwrap_or_default(),
        secret: Secret::new(row.text(6)?.unwrap_or_default()),
        old_secret,
        cursor: u64::try_from(row.int(9)?.unwrap_or(0)).unwrap_or(0),
        failing_since: row.time(10)?,
        created_at: row.time(11)?.unwrap_or(now),
        updated_at: row.time(12)?.unwrap_or(now),
    })
}

/// The last event numbered, as `conn`'s transaction sees it.
async fn log_end<B: Dialect>(conn: &mut B::Conn) -> Result<i64, StoreError> {
    let rows = B::fetch(
        conn,
        "SELECT value FROM inbox_counters WHERE name = 'changes'".into(),
        vec![],
    )
    .await?;
    match rows.first() {
        Some(r) => Ok(r.int(0)?.unwrap_or(0)),
        None => Ok(0),
    }
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn small(n: Option<i64>) -> u32 {
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

impl<B: Dialect> SqlStore<B> {
    /// Adds an endpoint that receives the events committed from now on.
    pub async fn create_webhook(
        &self,
        id: &str,
        url: &str,
        filter: &EventFilter,
        description: Option<&str>,
        secret: &Secret,
    ) -> Result<Webhook, StoreError> {
        let now = Utc::now();
        let mut tx = B::begin(&self.pool).await?;
        // The log's end as this transaction sees it: every event numbered later commits
        // later, so none is skipped.
        let cursor = log_end::<B>(&mut tx).await?;
        B::execute(
            &mut tx,
            "INSERT INTO webhooks (id, url, types, accounts, description, state, secret, cursor,
               created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'enabled', $6, $7, $8, $8)"
                .into(),
            args![
                id,
                url,
                list_text(&filter.types),
                list_text(&filter.accounts),
                description,
                secret.expose(),
                cursor,
                now
            ],
        )
        .await?;
        B::commit(tx).await?;
        self.webhook(id).await?.ok_or_else(|| {
            StoreError::new(StoreErrorKind::Other, "the webhook just added is not there")
        })
    }

    /// Every endpoint, oldest first.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {COLUMNS} FROM webhooks ORDER BY created_at, id"),
            vec![],
        )
        .await?;
        rows.iter().map(webhook).collect()
    }

    /// The endpoint `id`.
    pub async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"),
            args![id],
        )
        .await?;
        rows.first().map(webhook).transpose()
    }

    /// Changes the endpoint `id`; `None` when there is none. Enabling it again clears its
    /// failing streak.
    pub async fn update_webhook(
        &self,
        id: &str,
        change: &WebhookChange,
    ) -> Result<Option<Webhook>, StoreError> {
        let Some(current) = self.webhook(id).await? else {
            return Ok(None);
        };
        let url = change.url.clone().unwrap_or(current.url);
        let types = change.types.clone().unwrap_or(current.types);
        let accounts = change.accounts.clone().unwrap_or(current.accounts);
        let description = change.description.clone().unwrap_or(current.description);
        let state = change.state.clone().unwrap_or(current.state.clone());
        let failing_since = if state == "enabled" && current.state != "enabled" {
            None
        } else {
            current.failing_since
        };
        let mut conn = self.conn().await?;
        B::execute(
            &mut conn,
            "UPDATE webhooks SET url = $2, types = $3, accounts = $4, description = $5,
               state = $6, failing_since = $7, updated_at = $8 WHERE id = $1"
                .into(),
            args![
                id,
                url,
                list_text(&types),
                list_text(&accounts),
                description,
                state,
                failing_since,
                Utc::now()
            ],
        )
        .await?;
        drop(conn);
        self.webhook(id).await
    }

    /// Gives the endpoint `id` a new secret; the one it had keeps signing until `until`.
    pub async fn rotate_webhook(
        &self,
        id: &str,
        secret: &Secret,
        until: DateTime<Utc>,
    ) -> Result<Option<Webhook>, StoreError> {
        let mut conn = self.conn().await?;
        let changed = B::execute(
            &mut conn,
            "UPDATE webhooks SET old_secret = secret, old_secret_until = $3, secret = $2,
               updated_at = $4 WHERE id = $1"
                .into(),
            args![id, secret.expose(), until, Utc::now()],
        )
        .await?;
        drop(conn);
        if changed == 0 {
            return Ok(None);
        }
        self.webhook(id).await
    }

    /// Removes the endpoint `id` with what it is owed and its attempts; whether it was
    /// there.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = B::begin(&self.pool).await?;
        for table in ["webhook_queue", "webhook_attempts"] {
            B::execute(
                &mut tx,
                format!("DELETE FROM {table} WHERE webhook = $1"),
                args![id],
            )
            .await?;
        }
        let gone = B::execute(
            &mut tx,
            "DELETE FROM webhooks WHERE id = $1".into(),
            args![id],
        )
        .await?;
        B::commit(tx).await?;
        Ok(gone > 0)
    }

    /// Queues for the endpoint `hook` (as read: its cursor and filter) up to `limit`
    /// events after its cursor that its filter takes, and moves the cursor past them;
    /// how many were queued. Nothing when the cursor moved since `hook` was read (another
    /// process queued them).
    pub async fn fan_out(&self, hook: &Webhook, limit: usize) -> Result<usize, StoreError> {
        let id = hook.id.as_str();
        let mut tx = B::begin(&self.pool).await?;
        let end = log_end::<B>(&mut tx).await?;
        let cursor = int(hook.cursor);
        if end <= cursor {
            return Ok(0);
        }
        let mut args: Vec<Arg> = args![cursor, end];
        let Some(condition) = filter_sql::<B>(&hook.filter(), &mut args) else {
            // It takes nothing: the cursor moves on.
            return self.move_cursor(tx, id, cursor, end, 0).await;
        };
        args.push(Arg::from(i64::try_from(limit).unwrap_or(i64::MAX)));
        let seqs = B::fetch(
            &mut tx,
            format!(
                "SELECT ch.seq FROM changes ch WHERE ch.seq > $1 AND ch.seq <= $2{condition}
                 ORDER BY ch.seq LIMIT ${}",
                args.len()
            ),
            args.clone(),
        )
        .await?;
        // A full page ends at its last event; else the log's end.
        let upto = match seqs.last() {
            Some(last) if seqs.len() >= limit => last.int(0)?.unwrap_or(end),
            _ => end,
        };
        let now = Utc::now();
        let mut insert: Vec<Arg> = args![id.to_string(), now, cursor, upto];
        let condition = filter_sql::<B>(&hook.filter(), &mut insert).unwrap_or_default();
        let queued = B::execute(
            &mut tx,
            format!(
                "INSERT INTO webhook_queue (webhook, seq, lane, state, attempts, round_start,
                   next_at, queued_at)
                 SELECT $1, ch.seq, ch.account || ':' || COALESCE(ch.conversation, ''),
                   'pending', 0, 0, $2, $2
                 FROM changes ch WHERE ch.seq > $3 AND ch.seq <= $4{condition}
                 ON CONFLICT (webhook, seq) DO NOTHING"
            ),
            insert,
        )
        .await?;
        self.move_cursor(tx, id, cursor, upto, usize::try_from(queued).unwrap_or(0))
            .await
    }

    async fn move_cursor(
        &self,
        mut tx: B::Tx,
        id: &str,
        from: i64,
        to: i64,
        queued: usize,
    ) -> Result<usize, StoreError> {
        let moved = B::execute(
            &mut tx,
            "UPDATE webhooks SET cursor = $3 WHERE id = $1 AND cursor = $2".into(),
            args![id, from, to],
        )
        .await?;
        if moved == 0 {
            // Another process took these events first; this transaction is dropped.
            return Ok(0);
        }
        B::commit(tx).await?;
        Ok(queued)
    }

    /// Up to `limit` deliveries due at `now` — pending, unclaimed, of an enabled endpoint
    /// — whose lane holds no earlier pending event that is not due as well: each lane's
    /// due events from its oldest on, in `seq` order, lane after lane.
    pub async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Due>, StoreError> {
        // Read beside the writer: a claim (compare-and-set) decides who delivers.
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(
            &mut conn,
            "SELECT q.webhook, q.seq, q.lane, q.attempts, q.round_start FROM webhook_queue q
             JOIN webhooks w ON w.id = q.webhook
             WHERE q.state = 'pending' AND w.state = 'enabled' AND q.next_at <= $1
               AND (q.running_until IS NULL OR q.running_until < $1)
               AND NOT EXISTS (SELECT 1 FROM webhook_queue e WHERE e.webhook = q.webhook
                 AND e.lane = q.lane AND e.state = 'pending' AND e.seq < q.seq
                 AND (e.next_at > $1 OR e.running_until >= $1))
             ORDER BY q.webhook, q.lane, q.seq LIMIT $2"
                .into(),
            args![now, i64::try_from(limit).unwrap_or(i64::MAX)],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Due {
                    webhook: r.text(0)?.unwrap_or_default(),
                    seq: u64::try_from(r.int(1)?.unwrap_or(0)).unwrap_or(0),
                    lane: r.text(2)?.unwrap_or_default(),
                    attempts: small(r.int(3)?),
                    round_start: small(r.int(4)?),
                })
            })
            .collect()
    }

    /// Lets go of claimed deliveries that were not attempted (a lane stopped before
    /// them): they are due again at once.
    pub async fn release_deliveries(&self, due: &[Due]) -> Result<(), StoreError> {
        if due.is_empty() {
            return Ok(());
        }
        let mut tx = B::begin(&self.pool).await?;
        for d in due {
            B::execute(
                &mut tx,
                "UPDATE webhook_queue SET running_until = NULL
                 WHERE webhook = $1 AND seq = $2 AND attempts = $3"
                    .into(),
                args![d.webhook.as_str(), int(d.seq), i64::from(d.attempts)],
            )
            .await?;
        }
        B::commit(tx).await
    }

    /// Claims due deliveries until `until`, in one transaction: those this caller got
    /// (another process may have claimed some since they were listed).
    pub async fn claim_deliveries(
        &self,
        due: &[Due],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Due>, StoreError> {
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = B::begin(&self.pool).await?;
        let mut claimed = Vec::with_capacity(due.len());
        for d in due {
            let got = B::execute(
                &mut tx,
                "UPDATE webhook_queue SET running_until = $4
                 WHERE webhook = $1 AND seq = $2 AND state = 'pending' AND attempts = $5
                   AND (running_until IS NULL OR running_until < $3)"
                    .into(),
                args![
                    d.webhook.as_str(),
                    int(d.seq),
                    now,
                    until,
                    i64::from(d.attempts)
                ],
            )
            .await?;
            if got == 1 {
                claimed.push(d.clone());
            }
        }
        B::commit(tx).await?;
        Ok(claimed)
    }

    /// Records attempts at claimed deliveries and what follows from each, in one
    /// transaction. An endpoint whose attempts have all failed since before
    /// `disable_before` is disabled, with a `webhook.disabled` event, as is one that
    /// answered `410`; the ids of those disabled.
    pub async fn finish_deliveries(
        &self,
        finished: &[(Attempt, DeliveryOutcome)],
        disable_before: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        if finished.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = B::begin(&self.pool).await?;
        let mut disabled = Vec::new();
        for (attempt, outcome) in finished {
            if finish_in::<B>(&mut tx, attempt, outcome, disable_before).await? {
                disabled.push(attempt.webhook.clone());
            }
        }
        B::commit(tx).await?;
        if !disabled.is_empty() {
            self.committed();
        }
        Ok(disabled)
    }

    /// Up to `limit` attempts at the endpoint `id`, newest first, before the attempt
    /// `before` (a cursor) when given.
    pub async fn webhook_attempts(
        &self,
        id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Attempt>, StoreError> {
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(
            &mut conn,
            "SELECT id, webhook, seq, attempt, status, error, at, next_attempt_at
             FROM webhook_attempts WHERE webhook = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
                .into(),
            args![
                id,
                before.unwrap_or(i64::MAX),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    id: r.int(0)?.unwrap_or(0),
                    webhook: r.text(1)?.unwrap_or_default(),
                    seq: u64::try_from(r.int(2)?.unwrap_or(0)).unwrap_or(0),
                    attempt: small(r.int(3)?),
                    status: r.int(4)?.and_then(|s| u16::try_from(s).ok()),
                    error: r.text(5)?,
                    at: r.time(6)?.unwrap_or_else(Utc::now),
                    next_attempt_at: r.time(7)?,
                })
            })
            .collect()
    }

    /// Queues again, for the endpoint `hook`, the events `replay` names that its filter
    /// takes and it has already taken from the log (their ids unchanged): each starts a
    /// new round of attempts now, numbered on from the attempts made before. How many
    /// were queued.
    pub async fn replay_webhook(&self, hook: &Webhook, replay: &Replay) -> Result<u64, StoreError> {
        let id = hook.id.as_str();
        let now = Utc::now();
        let mut values: Vec<Arg> = args![id, now, int(hook.cursor)];
        let which = match replay {
            Replay::After(after) => {
                values.push(Arg::from(int(*after)));
                "ch.seq > $4".to_string()
            }
            Replay::Events(seqs) => {
                values.push(Arg::Ints(seqs.iter().map(|s| int(*s)).collect()));
                B::in_list("ch.seq", "$4")
            }
        };
        let Some(condition) = filter_sql::<B>(&hook.filter(), &mut values) else {
            return Ok(0);
        };
        let mut conn = self.conn().await?;
        B::execute(
            &mut conn,
            format!(
                "INSERT INTO webhook_queue (webhook, seq, lane, state, attempts, round_start,
                   next_at, queued_at)
                 SELECT $1, ch.seq, ch.account || ':' || COALESCE(ch.conversation, ''),
                   'pending', COALESCE(a.n, 0), COALESCE(a.n, 0), $2, $2
                 FROM changes ch
                 LEFT JOIN (SELECT seq, MAX(attempt) AS n FROM webhook_attempts
                   WHERE webhook = $1 GROUP BY seq) a ON a.seq = ch.seq
                 WHERE ch.seq <= $3 AND {which}{condition}
                 ON CONFLICT (webhook, seq) DO UPDATE SET state = 'pending',
                   round_start = webhook_queue.attempts, next_at = $2, queued_at = $2"
            ),
            values,
        )
        .await
    }

    /// Each endpoint's backlog (for metrics).
    pub async fn webhook_backlogs(&self) -> Result<Vec<Backlog>, StoreError> {
        let end = self.last_change().await?;
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(
            &mut conn,
            "SELECT w.id, w.cursor, (SELECT MIN(q.queued_at) FROM webhook_queue q
               WHERE q.webhook = w.id AND q.state = 'pending')
             FROM webhooks w ORDER BY w.id"
                .into(),
            vec![],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let cursor = u64::try_from(r.int(1)?.unwrap_or(0)).unwrap_or(0);
                Ok(Backlog {
                    webhook: r.text(0)?.unwrap_or_default(),
                    untaken: end.saturating_sub(cursor),
                    oldest_pending: r.time(2)?,
                })
            })
            .collect()
    }

    /// Drops the attempts made, and the failed deliveries queued, before `before`
    /// (retention); how many rows.
    pub async fn prune_webhook_history(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let attempts = B::execute(
            &mut conn,
            "DELETE FROM webhook_attempts WHERE at < $1".into(),
            args![before],
        )
        .await?;
        let failed = B::execute(
            &mut conn,
            "DELETE FROM webhook_queue WHERE state = 'failed' AND queued_at < $1".into(),
            args![before],
        )
        .await?;
        Ok(attempts.saturating_add(failed))
    }
}

/// Records one attempt and what follows from it inside `tx`; whether the endpoint was
/// disabled by it.
async fn finish_in<B: Dialect>(
    tx: &mut B::Conn,
    attempt: &Attempt,
    outcome: &DeliveryOutcome,
    disable_before: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (hook_id, seq) = (attempt.webhook.as_str(), int(attempt.seq));
    B::execute(
        tx,
        "INSERT INTO webhook_attempts (webhook, seq, attempt, status, error, at,
           next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            .into(),
        args![
            hook_id,
            seq,
            i64::from(attempt.attempt),
            attempt.status.map(i64::from),
            attempt.error.clone(),
            attempt.at,
            attempt.next_attempt_at
        ],
    )
    .await?;
    let queue = |sql: &str| -> (String, Vec<Arg>) {
        (
            format!("UPDATE webhook_queue SET {sql}, attempts = $3, running_until = NULL WHERE webhook = $1 AND seq = $2"),
            args![hook_id, seq, i64::from(attempt.attempt)],
        )
    };
    let (sql, mut values) = match outcome {
        DeliveryOutcome::Delivered => (
            "DELETE FROM webhook_queue WHERE webhook = $1 AND seq = $2".to_string(),
            args![hook_id, seq],
        ),
        DeliveryOutcome::Retry(_) | DeliveryOutcome::Gone => queue("next_at = $4"),
        DeliveryOutcome::Failed => queue("state = 'failed'"),
    };
    if matches!(outcome, DeliveryOutcome::Retry(_) | DeliveryOutcome::Gone) {
        let next = match outcome {
            DeliveryOutcome::Retry(at) => *at,
            _ => attempt.at,
        };
        values.push(Arg::from(next));
    }
    B::execute(tx, sql, values).await?;
    let streak = match outcome {
        DeliveryOutcome::Delivered => "failing_since = NULL",
        _ => "failing_since = COALESCE(failing_since, $2)",
    };
    B::execute(
        tx,
        format!("UPDATE webhooks SET {streak} WHERE id = $1"),
        args![hook_id, attempt.at],
    )
    .await?;
    // Disabled by this attempt: a 410, or the last of a streak long enough (only once,
    // however many attempts end so at the same time).
    let (why, condition) = match outcome {
        DeliveryOutcome::Delivered => return Ok(false),
        DeliveryOutcome::Gone => ("gone", "$2 IS NOT NULL"),
        _ => ("failing", "failing_since < $2"),
    };
    let disabled = B::execute(
        tx,
        format!(
            "UPDATE webhooks SET state = 'disabled', updated_at = $3
             WHERE id = $1 AND state = 'enabled' AND {condition}"
        ),
        args![hook_id, disable_before, attempt.at],
    )
    .await?
        > 0;
    if !disabled {
        return Ok(false);
    }
    let rows = B::fetch(
        tx,
        format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"),
        args![hook_id],
    )
    .await?;
    if let Some(hook) = rows.first().map(webhook).transpose()? {
        let mut data = hook.to_json();
        if let Some(o) = data.as_object_mut() {
            o.insert("reason".into(), json!(why));
        }
        append_in::<B>(tx, "", "", "webhook.disabled", &data).await?;
    }
    Ok(true)
}
