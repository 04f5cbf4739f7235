//! A commit, written: compare-and-set on the checkpoint and on each conversation's
//! mark, then the conversations, messages and malformed elements, then (last, just
//! before the commit is made durable) the numbered change rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::super::store::{row, Commit, StoreError};
use super::super::{message_state, Change, Event};
use super::backend::{args, Arg, Dialect, Row};
use crate::{Message, Role};

/// Writes `commit` inside `tx`, checking every version first.
pub(super) async fn write<B: Dialect>(
    tx: &mut B::Conn,
    commit: &mut Commit,
) -> Result<(), StoreError> {
    let account = commit.account.as_str();
    let now = Utc::now();
    if let Some(id) = &commit.account_id {
        // Held until the commit ends (PostgreSQL; SQLite's writers take turns): a rename
        // or removal waits for it, and then moves or removes what it wrote.
        let rows = B::fetch(
            tx,
            format!("SELECT name FROM accounts WHERE id = $1{}", B::LOCK_SHARED),
            args![id],
        )
        .await?;
        let name = match rows.first() {
            Some(r) => r.text(0)?,
            None => None,
        };
        if name.as_deref() != Some(account) {
            return Err(StoreError::conflict(format!(
                "{account}: renamed or removed since the step began; nothing was written"
            )));
        }
    }
    if let Some(checkpoint) = &commit.checkpoint {
        let data = serde_json::to_string(checkpoint).map_err(|e| row::corrupt(account, e))?;
        let written = match checkpoint.version {
            0 => {
                B::execute(
                    tx,
                    "INSERT INTO checkpoints (account, data, version, updated_at)
                     VALUES ($1, $2, 1, $3) ON CONFLICT (account) DO NOTHING"
                        .into(),
                    args![account, data, now],
                )
                .await?
            }
            v => {
                B::execute(
                    tx,
                    "UPDATE checkpoints SET data = $2, version = version + 1, updated_at = $4
                     WHERE account = $1 AND version = $3"
                        .into(),
                    args![account, data, row::stored(v), now],
                )
                .await?
            }
        };
        if written != 1 {
            return Err(StoreError::synced_since(account));
        }
    }
    let conversations = commit.conversations();
    let newest = newest_new_messages(&commit.changes);
    let mut conflicts = Vec::new();
    // Conversations read with their listing: a batch of upserts per statement, each
    // row's compare-and-set in its `WHERE`; the ids written come back, the others lost.
    let mut rows = Vec::new();
    let mut listed = Vec::new();
    for change in &commit.marks {
        let id = change.reference.id.as_str();
        let Some(c) = conversations.get(id) else {
            continue;
        };
        let mark = &change.mark;
        let last_role = newest.get(id).map(|(_, role)| role.as_str().to_string());
        // Carried in `mark_version`: the version this write makes (the expected + 1).
        let next = row::stored(change.expected).saturating_add(1);
        rows.push(args![
            account,
            c.reference.marketplace.as_str(),
            id,
            c.reference.to_string(),
            c.kind.as_str(),
            c.status.as_ref().map(|s| s.as_str().to_string()),
            c.unread.map(|u| i64::from(u.is_unread())),
            c.unread
                .and_then(|u| u.count())
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
            c.created_at,
            c.last_activity_at.or(mark.last_message_at),
            last_role,
            c.vendor.as_str(),
            crate::json::conversation_without_vendor(c).ok(),
            mark.listing.clone(),
            mark.last_message_at,
            now,
            now,
            next,
        ]);
        listed.push(&change.reference);
    }
    let written = upsert_rows::<B>(tx, CONVERSATIONS, rows, CONVERSATIONS_UPSERT).await?;
    conflicts.extend(
        listed
            .into_iter()
            .filter(|r| !written.contains(r.id.as_str()))
            .cloned(),
    );
    // Conversations a targeted sync read without their listing: one statement each.
    for change in &commit.marks {
        let id = change.reference.id.as_str();
        if conversations.contains_key(id) {
            continue;
        }
        let expected = row::stored(change.expected);
        let mark = &change.mark;
        let (last_role, last_at) = match newest.get(id) {
            Some((at, role)) => (Some(role.as_str().to_string()), Some(*at)),
            None => (None, None),
        };
        let written = B::execute(
            tx,
            "INSERT INTO conversations (account, marketplace, id, ref, vendor,
               last_message_at, last_activity_at, last_author_role, synced_at, updated_at,
               mark_version)
             VALUES ($1, $2, $3, $4, 'null', $5, $5, $6, $7, $7, 1)
             ON CONFLICT (account, id) DO UPDATE SET
               last_message_at = excluded.last_message_at,
               last_activity_at = CASE WHEN $5 IS NOT NULL AND
                   (conversations.last_activity_at IS NULL
                     OR conversations.last_activity_at < $5)
                 THEN $5 ELSE conversations.last_activity_at END,
               last_author_role = CASE WHEN excluded.last_author_role IS NOT NULL
                   AND (conversations.last_message_at IS NULL
                     OR $8 >= conversations.last_message_at)
                 THEN excluded.last_author_role ELSE conversations.last_author_role END,
               synced_at = excluded.synced_at, updated_at = excluded.updated_at,
               mark_version = conversations.mark_version + 1
             WHERE conversations.mark_version = $9"
                .into(),
            args![
                account,
                change.reference.marketplace.as_str(),
                id,
                change.reference.to_string(),
                mark.last_message_at,
                last_role,
                now,
                last_at,
                expected,
            ],
        )
        .await?;
        if written != 1 {
            conflicts.push(change.reference.clone());
        }
    }
    drop(conversations);
    if !conflicts.is_empty() {
        // What belongs to a conversation another runner synced is left to it.
        let lost: std::collections::HashSet<&str> =
            conflicts.iter().map(|r| r.id.as_str()).collect();
        commit
            .changes
            .retain(|c| c.reference().is_none_or(|r| !lost.contains(r.id.as_str())));
        commit
            .marks
            .retain(|m| !lost.contains(m.reference.id.as_str()));
        commit
            .rescans
            .retain(|r| !lost.contains(r.conversation.as_str()));
    }
    commit.conflicts = conflicts;
    // Messages in one statement per batch: a round trip per batch, not per message.
    let mut messages: Vec<&Message> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for change in commit.changes.iter().rev() {
        if let Change::Message(_, m) = change {
            // The same message twice in one statement cannot be upserted: its last form.
            if seen.insert((m.conversation.id.as_str(), m.id.as_str())) {
                messages.push(m);
            }
        }
    }
    messages.reverse();
    let rows = messages
        .iter()
        .map(|m| message_row(account, m, now))
        .collect();
    insert_rows::<B>(tx, MESSAGES, rows, MESSAGES_UPSERT).await?;
    for change in &commit.changes {
        match change {
            Change::Message(..) => {}
            Change::Malformed(bad) => {
                let key = bad.key();
                B::execute(
                    tx,
                    "INSERT INTO malformed (account, marketplace, conversation, listing, raw, error,
                       first_seen, last_seen)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                     ON CONFLICT (account, conversation, raw) DO UPDATE SET error = excluded.error,
                       last_seen = excluded.last_seen"
                        .into(),
                    args![
                        account,
                        bad.marketplace.as_str(),
                        key.conversation,
                        bad.listed.as_str(),
                        key.raw,
                        bad.error.as_str(),
                        commit.at,
                    ],
                )
                .await?;
            }
            Change::Conversation(..) => {}
        }
    }
    for rescan in &commit.rescans {
        let rows = B::fetch(
            tx,
            "SELECT raw FROM malformed WHERE account = $1 AND conversation = $2".into(),
            args![account, rescan.conversation.as_str()],
        )
        .await?;
        for r in rows {
            let raw = r.text(0)?.unwrap_or_default();
            if rescan.seen.contains(&raw) {
                B::execute(
                    tx,
                    "UPDATE malformed SET last_seen = $4
                     WHERE account = $1 AND conversation = $2 AND raw = $3"
                        .into(),
                    args![account, rescan.conversation.as_str(), raw, commit.at],
                )
                .await?;
            } else {
                B::execute(
                    tx,
                    "DELETE FROM malformed WHERE account = $1 AND conversation = $2 AND raw = $3"
                        .into(),
                    args![account, rescan.conversation.as_str(), raw],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Per conversation, the newest message the commit stores for the first time: when it
/// was written and by whom.
fn newest_new_messages(changes: &[Change]) -> HashMap<&str, (DateTime<Utc>, Role)> {
    let mut newest: HashMap<&str, (DateTime<Utc>, Role)> = HashMap::new();
    for change in changes {
        if let Change::Message(Event::NewMessage, m) = change {
            let entry = newest
                .entry(m.conversation.id.as_str())
                .or_insert((m.created_at, m.author.role.clone()));
            if m.created_at >= entry.0 {
                *entry = (m.created_at, m.author.role.clone());
            }
        }
    }
    newest
}

/// The columns of a message row, and what an upsert of one changes.
const MESSAGES: &str = "INSERT INTO messages (account, marketplace, conversation, id, created_at,
  author_role, author_id, author_name, text, status, read, state, vendor, json, updated_at)";
const MESSAGES_UPSERT: &str = "ON CONFLICT (account, conversation, id) DO UPDATE SET
  author_role = excluded.author_role, author_id = excluded.author_id,
  author_name = excluded.author_name, text = excluded.text, status = excluded.status,
  read = excluded.read, state = excluded.state, vendor = excluded.vendor,
  json = excluded.json, updated_at = excluded.updated_at";

fn message_row(account: &str, m: &Message, now: DateTime<Utc>) -> Vec<Arg> {
    args![
        account,
        m.conversation.marketplace.as_str(),
        m.conversation.id.as_str(),
        m.id.as_str(),
        m.created_at,
        m.author.role.as_str(),
        m.author.id.as_deref(),
        m.author.name.as_deref(),
        m.text.as_str(),
        m.status.as_deref(),
        m.read.map(i64::from),
        message_state(m),
        m.vendor.as_str(),
        crate::json::message_without_vendor(m).ok(),
        now,
    ]
}

/// Rows a multi-row statement takes at most (its parameters stay far under both
/// databases' limits).
const ROWS_AT_ONCE: usize = 200;

/// `insert VALUES (…), (…) tail` for `rows` (each the same number of arguments), a
/// batch of rows per statement.
async fn insert_rows<B: Dialect>(
    tx: &mut B::Conn,
    insert: &str,
    rows: Vec<Vec<Arg>>,
    tail: &str,
) -> Result<(), StoreError> {
    for (sql, args) in batches::<B>(insert, rows, tail) {
        B::execute(tx, sql, args).await?;
    }
    Ok(())
}

/// The statements (and their arguments) that write `rows`, [`ROWS_AT_ONCE`] a statement.
fn batches<B: Dialect>(insert: &str, rows: Vec<Vec<Arg>>, tail: &str) -> Vec<(String, Vec<Arg>)> {
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<Vec<Arg>> = rows.by_ref().take(ROWS_AT_ONCE).collect();
        let mut sql = String::with_capacity(insert.len() + tail.len() + batch.len() * 64);
        sql.push_str(insert);
        sql.push_str(" VALUES ");
        let mut args = Vec::new();
        for (i, row) in batch.into_iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..row.len() {
                if j > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&B::placeholder(args.len() + j + 1));
            }
            sql.push(')');
            args.extend(row);
        }
        sql.push(' ');
        sql.push_str(tail);
        out.push((sql, args));
    }
    out
}

/// The columns of a conversation row read with its listing, and what an upsert of one
/// changes: only where its stored mark is the one the step read (`mark_version` carries
/// the version the write makes, one past the expected).
const CONVERSATIONS: &str = "INSERT INTO conversations (account, marketplace, id, ref, kind,
  status, unread, unread_count, created_at, last_activity_at, last_author_role, vendor, json,
  listing, last_message_at, synced_at, updated_at, mark_version)";
const CONVERSATIONS_UPSERT: &str = "ON CONFLICT (account, id) DO UPDATE SET kind = excluded.kind,
  status = excluded.status, unread = excluded.unread, unread_count = excluded.unread_count,
  created_at = excluded.created_at, last_activity_at = excluded.last_activity_at,
  last_author_role = CASE WHEN excluded.last_author_role IS NOT NULL
      AND excluded.last_message_at IS NOT NULL
      AND (conversations.last_message_at IS NULL
        OR excluded.last_message_at > conversations.last_message_at)
    THEN excluded.last_author_role ELSE conversations.last_author_role END,
  vendor = excluded.vendor, json = excluded.json, listing = excluded.listing,
  last_message_at = excluded.last_message_at, synced_at = excluded.synced_at,
  updated_at = excluded.updated_at, mark_version = excluded.mark_version
  WHERE conversations.mark_version = excluded.mark_version - 1
  RETURNING id";

/// [`insert_rows`] for statements that return the first column of each row written.
async fn upsert_rows<B: Dialect>(
    tx: &mut B::Conn,
    insert: &str,
    rows: Vec<Vec<Arg>>,
    tail: &str,
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut written = std::collections::HashSet::new();
    for (sql, args) in batches::<B>(insert, rows, tail) {
        for r in B::fetch(tx, sql, args).await? {
            written.insert(r.text(0)?.unwrap_or_default());
        }
    }
    Ok(written)
}

/// Numbers the commit's changes and writes them to `changes` (what changed, where: the
/// rows hold the data): the numbers are taken last, so that commits take them in the
/// order they become durable.
pub(super) async fn number_changes<B: Dialect>(
    tx: &mut B::Conn,
    commit: &Commit,
) -> Result<(), StoreError> {
    let n = i64::try_from(commit.changes.len()).unwrap_or(i64::MAX);
    if n == 0 {
        return Ok(());
    }
    let last = take_numbers::<B>(tx, n).await?;
    let mut seq = last.saturating_sub(n);
    let at = Utc::now();
    let mut rows = Vec::with_capacity(commit.changes.len());
    for change in in_event_order(&commit.changes) {
        seq = seq.saturating_add(1);
        let (conversation, message) = match change {
            Change::Conversation(_, c) => (Some(c.reference.id.as_str()), None),
            Change::Message(_, m) => (Some(m.conversation.id.as_str()), Some(m.id.as_str())),
            Change::Malformed(bad) => (bad.conversation.as_ref().map(|c| c.id.as_str()), None),
        };
        rows.push(args![
            seq,
            commit.account.as_str(),
            commit.marketplace.as_str(),
            change.event().as_str(),
            conversation,
            message,
            at,
        ]);
    }
    insert_rows::<B>(
        tx,
        "INSERT INTO changes (seq, account, marketplace, event, conversation, message, at)",
        rows,
        "",
    )
    .await?;
    announce::<B>(tx).await
}

/// `changes` in the order their events are numbered: as listed, except that the messages
/// of one conversation come oldest first (vendors list newest first), so that a reader
/// of one conversation's events — a webhook endpoint among them — sees them as written.
fn in_event_order(changes: &[Change]) -> Vec<&Change> {
    let mut ordered: Vec<(usize, &Change)> = changes.iter().enumerate().collect();
    // A message sorts by its conversation's first place in the commit, then its time.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, change) in &ordered {
        if let Change::Message(_, m) = change {
            first.entry(m.conversation.id.as_str()).or_insert(*i);
        }
    }
    ordered.sort_by_key(|(i, change)| match change {
        Change::Message(_, m) => (
            first.get(m.conversation.id.as_str()).copied().unwrap_or(*i),
            Some(m.created_at),
            *i,
        ),
        _ => (*i, None, *i),
    });
    ordered.into_iter().map(|(_, c)| c).collect()
}

/// Tells listeners (PostgreSQL `LISTEN inbox_events`, any process) that events were
/// numbered in this transaction; sent when it commits.
pub(super) async fn announce<B: Dialect>(tx: &mut B::Conn) -> Result<(), StoreError> {
    if B::NOTIFY_EVENTS.is_empty() {
        return Ok(());
    }
    B::batch(tx, B::NOTIFY_EVENTS.to_string()).await
}

/// Takes the next `n` numbers of the store's change sequence (inside the transaction
/// that writes them, last before it commits, so that numbers become visible in order):
/// the last of them.
pub(super) async fn take_numbers<B: Dialect>(tx: &mut B::Conn, n: i64) -> Result<i64, StoreError> {
    let rows = B::fetch(
        tx,
        "UPDATE inbox_counters SET value = value + $1 WHERE name = 'changes' RETURNING value"
            .into(),
        args![n],
    )
    .await?;
    match rows.first() {
        Some(r) => Ok(r.int(0)?.unwrap_or(0)),
        None => Ok(0),
    }
}
