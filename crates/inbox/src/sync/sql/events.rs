//! The event log: every change the store commits, as an event, read from the `changes`
//! table (numbered in commit order inside each commit: see the module above) with the
//! conversation or message it names in its JSON form, as the mirror holds it now.
//!
//! An event is `{"id": "evt_SEQ", "seq", "type", "created_at", "account",
//! "marketplace", "data"}`; `type` is `message.created`, `message.updated`,
//! `conversation.created`, `conversation.updated` or `element.malformed` (changes of the
//! mirror), or `send.updated`, `account.connected`, `account.reauthorize` or
//! `account.removed`, appended with their object ([`SqlStore::append_event`]), or
//! `webhook.disabled` (an endpoint that kept failing, with no account).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::backend::{args, Arg, Dialect, Row};
use super::read::json_form;
use super::write::take_numbers;
use super::SqlStore;
use crate::sync::{StoreError, StoreErrorKind};

/// The event types, by the change's event name.
const TYPES: [(&str, &str); 10] = [
    ("new_message", "message.created"),
    ("updated_message", "message.updated"),
    ("new_conversation", "conversation.created"),
    ("updated_conversation", "conversation.updated"),
    ("malformed", "element.malformed"),
    ("send_updated", "send.updated"),
    ("account_connected", "account.connected"),
    ("account_reauthorize", "account.reauthorize"),
    ("account_removed", "account.removed"),
    ("webhook_disabled", "webhook.disabled"),
];

/// An event's row: the change, and the message or conversation it names.
const SELECT: &str = "SELECT ch.seq, ch.account, ch.marketplace, ch.event, ch.conversation,
   ch.message, ch.at, m.json, m.vendor, c.json, c.vendor, c.ref, ch.data
 FROM changes ch
 LEFT JOIN messages m ON ch.message IS NOT NULL AND m.account = ch.account
   AND m.conversation = ch.conversation AND m.id = ch.message
 LEFT JOIN conversations c ON c.account = ch.account AND c.id = ch.conversation";

/// Every event type the log holds.
pub fn event_types() -> impl Iterator<Item = &'static str> {
    TYPES.iter().map(|(_, t)| *t)
}

/// Refuses a type the log does not hold: why, naming it (at most 64 characters of it)
/// and the types there are.
pub fn check_event_types(types: &[String]) -> Result<(), String> {
    match types
        .iter()
        .find(|t| !event_types().any(|k| k == t.as_str()))
    {
        None => Ok(()),
        Some(bad) => Err(format!(
            "unknown event type {:?}: the types are {}",
            bad.chars().take(64).collect::<String>(),
            event_types().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Which events a read takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these types (`None`: all).
    pub types: Option<Vec<String>>,
    /// Only these accounts' (`None`: all; empty: none).
    pub accounts: Option<Vec<String>>,
}

impl<B: Dialect> SqlStore<B> {
    /// Up to `limit` events after `after` (a `seq`), oldest first.
    pub async fn events_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Value>, StoreError> {
        let mut args: Vec<Arg> = vec![Arg::Int(Some(i64::try_from(after).unwrap_or(i64::MAX)))];
        let mut sql = format!("{SELECT} WHERE ch.seq > $1");
        let Some(condition) = filter_sql::<B>(filter, &mut args) else {
            return Ok(Vec::new());
        };
        sql += &condition;
        args.push(Arg::Int(Some(i64::try_from(limit).unwrap_or(i64::MAX))));
        sql += &format!(" ORDER BY ch.seq LIMIT ${}", args.len());
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(&mut conn, sql, args).await?;
        rows.iter().map(event).collect()
    }

    /// Appends an event that is not a change of the mirror — `kind` one of
    /// `send.updated`, `account.connected`, `account.reauthorize`, `account.removed` —
    /// with its object, numbered after every event committed so far; its seq.
    pub async fn append_event(
        &self,
        account: &str,
        marketplace: crate::Marketplace,
        kind: &str,
        data: &Value,
    ) -> Result<u64, StoreError> {
        let mut tx = B::begin(&self.pool).await?;
        let seq = append_in::<B>(&mut tx, account, marketplace.as_str(), kind, data).await?;
        B::commit(tx).await?;
        self.committed();
        Ok(seq)
    }

    /// The events numbered `seqs` that the log holds, oldest first.
    pub async fn events_numbered(&self, seqs: &[u64]) -> Result<Vec<Value>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<i64> = seqs
            .iter()
            .map(|s| i64::try_from(*s).unwrap_or(i64::MAX))
            .collect();
        let sql = format!(
            "{SELECT} WHERE {} ORDER BY ch.seq",
            B::in_list("ch.seq", "$1")
        );
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(&mut conn, sql, vec![Arg::Ints(list)]).await?;
        rows.iter().map(event).collect()
    }

    /// Drops the events committed before `before` (the log's retention), except those
    /// a webhook endpoint still owes; how many.
    pub async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        B::execute(
            &mut conn,
            "DELETE FROM changes WHERE at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_queue q
               WHERE q.seq = changes.seq AND q.state = 'pending')"
                .into(),
            args![before],
        )
        .await
    }
}

/// The condition (` AND …`, its lists bound in `args`) that keeps only what `filter`
/// takes of `changes ch`; `None` when it takes nothing.
pub(super) fn filter_sql<B: Dialect>(filter: &EventFilter, args: &mut Vec<Arg>) -> Option<String> {
    let mut sql = String::new();
    if let Some(accounts) = &filter.accounts {
        if accounts.is_empty() {
            return None;
        }
        args.push(Arg::Texts(accounts.clone()));
        sql += &format!(
            " AND {}",
            B::in_list("ch.account", &format!("${}", args.len()))
        );
    }
    if let Some(types) = &filter.types {
        let events: Vec<String> = TYPES
            .iter()
            .filter(|(_, t)| types.iter().any(|w| w == t))
            .map(|(e, _)| e.to_string())
            .collect();
        if events.is_empty() {
            return None;
        }
        args.push(Arg::Texts(events));
        sql += &format!(
            " AND {}",
            B::in_list("ch.event", &format!("${}", args.len()))
        );
    }
    Some(sql)
}

/// Appends an event of type `kind` with `data` inside `tx`, numbered after every event
/// committed so far; its seq.
pub(super) async fn append_in<B: Dialect>(
    tx: &mut B::Conn,
    account: &str,
    marketplace: &str,
    kind: &str,
    data: &Value,
) -> Result<u64, StoreError> {
    let change = TYPES
        .iter()
        .find(|(_, t)| *t == kind)
        .map(|(e, _)| *e)
        .ok_or_else(|| StoreError::new(StoreErrorKind::Other, format!("no event type {kind:?}")))?;
    let seq = take_numbers::<B>(tx, 1).await?;
    B::execute(
        tx,
        "INSERT INTO changes (seq, account, marketplace, event, at, data)
         VALUES ($1, $2, $3, $4, $5, $6)"
            .into(),
        args![
            seq,
            account,
            marketplace,
            change,
            chrono::Utc::now(),
            data.to_string()
        ],
    )
    .await?;
    super::write::announce::<B>(tx).await?;
    Ok(u64::try_from(seq).unwrap_or(0))
}

fn event<R: Row>(row: &R) -> Result<Value, StoreError> {
    let seq = row.int(0)?.unwrap_or(0);
    let account = row.text(1)?.unwrap_or_default();
    let marketplace = row.text(2)?.unwrap_or_default();
    let change = row.text(3)?.unwrap_or_default();
    let conversation = row.text(4)?;
    let message = row.text(5)?;
    let kind = TYPES
        .iter()
        .find(|(e, _)| *e == change)
        .map_or(change.as_str(), |(_, t)| t);
    let reference = row.text(11)?.or_else(|| {
        conversation
            .as_ref()
            .map(|id| format!("{marketplace}@{account}:{id}"))
    });
    let kept = row
        .text(12)?
        .and_then(|d| serde_json::from_str::<Value>(&d).ok());
    let data = match kind {
        "message.created" | "message.updated" => json_form(row.text(7)?, row.text(8)?),
        "conversation.created" | "conversation.updated" => json_form(row.text(9)?, row.text(10)?),
        _ => kept,
    }
    .unwrap_or_else(|| {
        // The row no longer holds it (purged), or a malformed element: where it was.
        json!({"marketplace": marketplace, "account": account, "conversation": reference,
               "id": message})
    });
    Ok(json!({
        "id": format!("evt_{seq}"),
        "seq": seq,
        "type": kind,
        "created_at": row.time(6)?.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        "account": account,
        "marketplace": marketplace,
        "data": data,
    }))
}
