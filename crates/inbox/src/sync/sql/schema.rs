//! The schema, written once for both backends (column types from the backend), and the
//! migrations that bring any earlier database to it in place.
//!
//! Version 7 adds webhook endpoints and their deliveries. Version 6 adds the HTTP API's sends. Version 5 adds the store's accounts and connect links. Version 4: instants are real instants (`TIMESTAMPTZ` on PostgreSQL, integer
//! microseconds since 1970 in UTC on SQLite); conversations and messages keep their
//! JSON form and what a read side sorts and filters on; `changes` numbers every stored
//! change in commit order.

use chrono::{DateTime, Utc};

use super::super::store::{StoreError, StoreErrorKind};
use super::backend::{args, Dialect, Row};

/// The schema version this build writes.
pub(crate) const VERSION: i64 = 7;

/// The tables of version 4.
const V4: &str = "
CREATE TABLE checkpoints (
  account TEXT PRIMARY KEY, data TEXT NOT NULL, version {int} NOT NULL DEFAULT 1,
  updated_at {time});
CREATE TABLE conversations (
  account TEXT NOT NULL, marketplace TEXT NOT NULL, id TEXT NOT NULL, ref TEXT NOT NULL,
  kind TEXT, status TEXT, unread {int}, unread_count {int}, created_at {time},
  last_activity_at {time}, last_author_role TEXT, vendor TEXT NOT NULL, json TEXT,
  listing TEXT, last_message_at {time}, synced_at {time}, updated_at {time} NOT NULL,
  mark_version {int} NOT NULL DEFAULT 0,
  PRIMARY KEY (account, id));
CREATE INDEX conversations_activity ON conversations (last_activity_at DESC, account, id);
CREATE INDEX conversations_account_activity ON conversations (account, last_activity_at DESC, id);
CREATE INDEX conversations_updated ON conversations (updated_at);
CREATE TABLE messages (
  account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
  id TEXT NOT NULL, created_at {time} NOT NULL, author_role TEXT NOT NULL, author_id TEXT,
  author_name TEXT, text TEXT NOT NULL, status TEXT, read {int}, state TEXT NOT NULL,
  vendor TEXT NOT NULL, json TEXT, updated_at {time} NOT NULL,
  PRIMARY KEY (account, conversation, id));
CREATE INDEX messages_created ON messages (account, conversation, created_at, id);
CREATE TABLE malformed (
  account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
  listing TEXT NOT NULL, raw TEXT NOT NULL, error TEXT NOT NULL,
  first_seen {time} NOT NULL, last_seen {time} NOT NULL,
  PRIMARY KEY (account, conversation, raw));
CREATE TABLE journal (
  id {serial}, marketplace TEXT NOT NULL, account TEXT,
  received_at {time} NOT NULL, raw TEXT NOT NULL, dedup_key TEXT NOT NULL,
  state TEXT NOT NULL, target TEXT, UNIQUE (marketplace, dedup_key));
CREATE INDEX journal_pending ON journal (state, id);
CREATE TABLE changes (
  seq {int} PRIMARY KEY, account TEXT NOT NULL, marketplace TEXT NOT NULL,
  event TEXT NOT NULL, conversation TEXT, message TEXT, at {time} NOT NULL, data TEXT);
CREATE TABLE inbox_counters (name TEXT PRIMARY KEY, value {int} NOT NULL);
INSERT INTO inbox_counters (name, value) VALUES ('changes', 0);
";

/// Version 5: the accounts a store holds (see [`super::accounts`]), the links that
/// connect them (see [`super::links`]) and the HTTP API's keys (see [`super::keys`]).
const V5: &str = "
CREATE TABLE accounts (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, marketplace TEXT NOT NULL,
  state TEXT NOT NULL, seller_id TEXT, settings TEXT NOT NULL, credentials TEXT NOT NULL,
  created_at {time} NOT NULL, updated_at {time} NOT NULL, version {int} NOT NULL DEFAULT 1,
  credentials_expire_at {time});
CREATE UNIQUE INDEX accounts_seller ON accounts (marketplace, seller_id);
INSERT INTO inbox_counters (name, value) VALUES ('accounts', 0);
CREATE TABLE connect_links (
  id TEXT PRIMARY KEY, marketplace TEXT NOT NULL, name TEXT NOT NULL, return_to TEXT,
  reconnect {int} NOT NULL DEFAULT 0, state_hash TEXT UNIQUE, verifier TEXT,
  redirect_uri TEXT, created_at {time} NOT NULL, expires_at {time} NOT NULL,
  opened_at {time}, done_at {time}, outcome TEXT);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, label TEXT, scopes TEXT NOT NULL,
  accounts TEXT, created_at {time} NOT NULL, revoked_at {time});
";

/// Version 6: the HTTP API's sends, each under the idempotency key its caller gave (see
/// [`super::sends`]), and the newest-first indexes with conversations of no activity
/// last on both backends.
const V6: &str = "
CREATE TABLE sends (
  id TEXT PRIMARY KEY, api_key TEXT NOT NULL, idempotency_key TEXT NOT NULL,
  body_hash TEXT NOT NULL, account TEXT NOT NULL, ref TEXT NOT NULL, state TEXT NOT NULL,
  message_id TEXT, error TEXT, answer TEXT, created_at {time} NOT NULL,
  updated_at {time} NOT NULL, running_until {time},
  UNIQUE (api_key, idempotency_key));
ALTER TABLE api_keys ADD COLUMN per_minute {int};
DROP INDEX conversations_activity;
DROP INDEX conversations_account_activity;
CREATE INDEX conversations_activity ON conversations (last_activity_at {newest}, account, id);
CREATE INDEX conversations_account_activity ON conversations (account, last_activity_at {newest}, id);
";

/// Version 7: webhook endpoints, each with the last event it has taken (`cursor`), the
/// deliveries still owed (`webhook_queue`, one row per endpoint and event, ordered within
/// its `lane`: the event's conversation) and every attempt made (see [`super::webhooks`]).
const V7: &str = "
CREATE TABLE webhooks (
  id TEXT PRIMARY KEY, url TEXT NOT NULL, types TEXT, accounts TEXT, description TEXT,
  state TEXT NOT NULL, secret TEXT NOT NULL, old_secret TEXT, old_secret_until {time},
  cursor {int} NOT NULL, failing_since {time}, created_at {time} NOT NULL,
  updated_at {time} NOT NULL);
CREATE TABLE webhook_queue (
  webhook TEXT NOT NULL, seq {int} NOT NULL, lane TEXT NOT NULL, state TEXT NOT NULL,
  attempts {int} NOT NULL, round_start {int} NOT NULL, next_at {time} NOT NULL,
  running_until {time}, queued_at {time} NOT NULL, PRIMARY KEY (webhook, seq));
CREATE INDEX webhook_queue_due ON webhook_queue (state, next_at);
CREATE INDEX webhook_queue_lane ON webhook_queue (webhook, lane, state, seq);
CREATE TABLE webhook_attempts (
  id {serial}, webhook TEXT NOT NULL, seq {int} NOT NULL, attempt {int} NOT NULL,
  status {int}, error TEXT, at {time} NOT NULL, next_attempt_at {time});
CREATE INDEX webhook_attempts_webhook ON webhook_attempts (webhook, id);
CREATE INDEX changes_at ON changes (at);
";

/// Versions 1 to 3 (instants as RFC 3339 text), as the landed code created them: a
/// database of any earlier version is first brought to version 3 this way.
const V1: &str = "
CREATE TABLE checkpoints (account TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE conversations (
  account TEXT NOT NULL, marketplace TEXT NOT NULL, id TEXT NOT NULL, ref TEXT NOT NULL,
  kind TEXT, status TEXT, unread {int}, last_activity_at TEXT, vendor TEXT NOT NULL,
  PRIMARY KEY (account, id));
CREATE TABLE messages (
  account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
  id TEXT NOT NULL, created_at TEXT NOT NULL, author_role TEXT NOT NULL, author TEXT,
  text TEXT NOT NULL, status TEXT, read {int}, state TEXT NOT NULL, vendor TEXT NOT NULL,
  PRIMARY KEY (account, conversation, id));
";
const V2: &str = "
ALTER TABLE checkpoints ADD COLUMN version {int} NOT NULL DEFAULT 1;
ALTER TABLE conversations ADD COLUMN listing TEXT;
ALTER TABLE conversations ADD COLUMN last_message_at TEXT;
ALTER TABLE conversations ADD COLUMN mark_version {int} NOT NULL DEFAULT 0;
CREATE TABLE malformed (
  account TEXT NOT NULL, marketplace TEXT NOT NULL, conversation TEXT NOT NULL,
  listing TEXT NOT NULL, raw TEXT NOT NULL, error TEXT NOT NULL,
  first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
  PRIMARY KEY (account, conversation, raw));
";
const V3: &str = "
CREATE TABLE journal (
  id {serial}, marketplace TEXT NOT NULL, account TEXT,
  received_at TEXT NOT NULL, raw TEXT NOT NULL, dedup_key TEXT NOT NULL,
  state TEXT NOT NULL, target TEXT, UNIQUE (marketplace, dedup_key));
";

/// `ddl` with the backend's column types.
fn ddl<D: Dialect>(ddl: &str) -> String {
    ddl.replace("{int}", D::INT)
        .replace("{time}", D::TIME)
        .replace("{serial}", D::SERIAL)
        .replace("{newest}", D::NEWEST_FIRST)
}

/// Brings the database to [`VERSION`] inside one transaction (another process starting
/// at the same time waits, then finds it done).
pub(crate) async fn migrate<D: Dialect>(pool: &D::Pool) -> Result<(), StoreError> {
    let mut tx = D::begin(pool).await?;
    let version = D::schema_version(&mut tx).await?;
    if version > VERSION {
        return Err(StoreError::new(
            StoreErrorKind::Corrupt,
            format!("the database has schema version {version}; this build knows up to {VERSION}"),
        ));
    }
    if version == VERSION {
        return Ok(());
    }
    if version == 0 {
        D::batch(&mut tx, ddl::<D>(V4)).await?;
    } else if version < 4 {
        if version < 1 {
            D::batch(&mut tx, ddl::<D>(V1)).await?;
        }
        if version < 2 {
            D::batch(&mut tx, ddl::<D>(V2)).await?;
            move_marks_out_of_checkpoints::<D>(&mut tx).await?;
        }
        if version < 3 {
            D::batch(&mut tx, ddl::<D>(V3)).await?;
        }
        from_v3::<D>(&mut tx).await?;
    }
    if version < 5 {
        D::batch(&mut tx, ddl::<D>(V5)).await?;
    }
    if version < 6 {
        D::batch(&mut tx, ddl::<D>(V6)).await?;
    }
    D::batch(&mut tx, ddl::<D>(V7)).await?;
    D::set_schema_version(&mut tx, VERSION).await?;
    D::commit(tx).await
}

/// Version 1 kept every mark inside the checkpoint's JSON (`marks: {id: {listing,
/// last_message_at}}`); version 2 keeps each on its conversation's row.
async fn move_marks_out_of_checkpoints<D: Dialect>(tx: &mut D::Conn) -> Result<(), StoreError> {
    #[derive(serde::Deserialize)]
    struct V1Mark {
        listing: String,
        last_message_at: Option<DateTime<Utc>>,
    }
    #[derive(serde::Deserialize)]
    struct V1Checkpoint {
        #[serde(flatten)]
        rest: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        marks: std::collections::BTreeMap<String, V1Mark>,
    }
    let rows = D::fetch(tx, "SELECT account, data FROM checkpoints".into(), vec![]).await?;
    for row in rows {
        let account = row.text(0)?.unwrap_or_default();
        let data = row.text(1)?.unwrap_or_default();
        let old: V1Checkpoint = serde_json::from_str(&data)
            .map_err(|e| super::super::store::row::corrupt(&account, e))?;
        for (id, mark) in old.marks {
            D::execute(
                tx,
                "UPDATE conversations SET listing = $3, last_message_at = $4, mark_version = 1
                 WHERE account = $1 AND id = $2"
                    .into(),
                args![
                    &account,
                    id,
                    mark.listing,
                    mark.last_message_at.map(v3_time)
                ],
            )
            .await?;
        }
        let small = serde_json::to_string(&old.rest)
            .map_err(|e| super::super::store::row::corrupt(&account, e))?;
        D::execute(
            tx,
            "UPDATE checkpoints SET data = $2 WHERE account = $1".into(),
            args![&account, small],
        )
        .await?;
    }
    Ok(())
}

/// An instant as versions 1 to 3 wrote it.
fn v3_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// An instant as versions 1 to 3 wrote it, read back (none when unreadable).
fn from_v3_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The tables version 3 had, renamed aside and copied from by [`from_v3`].
const V3_TABLES: [&str; 5] = [
    "checkpoints",
    "conversations",
    "messages",
    "malformed",
    "journal",
];

/// Rows copied per statement while migrating.
const BATCH: i64 = 500;

/// Version 3 to 4: the tables are renamed aside, created anew, and their rows copied
/// over with each instant parsed from its text (exactly, to the nanosecond's
/// microsecond), then the old tables dropped. What version 3 did not keep stays empty:
/// a row's JSON form (`json`) is written when the vendor next shows the row; the
/// author's name-or-id goes to `author_name`. Message states keep their version-3 form,
/// which [`super::super::state_changed`] compares without attachments.
async fn from_v3<D: Dialect>(tx: &mut D::Conn) -> Result<(), StoreError> {
    for table in V3_TABLES {
        D::batch(tx, format!("ALTER TABLE {table} RENAME TO v3_{table}")).await?;
    }
    // PostgreSQL keeps index names across a rename: free the ones version 4 reuses.
    D::batch(tx, "DROP INDEX IF EXISTS journal_pending".into()).await?;
    D::batch(tx, ddl::<D>(V4)).await?;
    D::execute(
        tx,
        "INSERT INTO checkpoints (account, data, version) SELECT account, data, version FROM v3_checkpoints"
            .into(),
        vec![],
    )
    .await?;
    let now = chrono::Utc::now();
    copy::<D>(
        tx,
        "SELECT account, marketplace, id, ref, kind, status, unread, last_activity_at, vendor,
           listing, last_message_at, mark_version FROM v3_conversations
         {after} ORDER BY account, id LIMIT {limit}",
        &[0, 2],
        |row| {
            Ok((
                "INSERT INTO conversations (account, marketplace, id, ref, kind, status, unread,
                   last_activity_at, vendor, listing, last_message_at, mark_version, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                args![
                    row.text(0)?,
                    row.text(1)?,
                    row.text(2)?,
                    row.text(3)?,
                    row.text(4)?.map(|k| unquote(&k)),
                    row.text(5)?.map(|s| unquote(&s)),
                    row.int(6)?,
                    from_v3_time(row.text(7)?),
                    row.text(8)?,
                    row.text(9)?,
                    from_v3_time(row.text(10)?),
                    row.int(11)?,
                    now,
                ],
            ))
        },
    )
    .await?;
    copy::<D>(
        tx,
        "SELECT account, marketplace, conversation, id, created_at, author_role, author, text,
           status, read, state, vendor FROM v3_messages
         {after} ORDER BY account, conversation, id LIMIT {limit}",
        &[0, 2, 3],
        |row| {
            let created = from_v3_time(row.text(4)?).unwrap_or(DateTime::<Utc>::MIN_UTC);
            Ok((
                "INSERT INTO messages (account, marketplace, conversation, id, created_at,
                   author_role, author_name, text, status, read, state, vendor, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                args![
                    row.text(0)?,
                    row.text(1)?,
                    row.text(2)?,
                    row.text(3)?,
                    created,
                    row.text(5)?,
                    row.text(6)?,
                    row.text(7)?,
                    row.text(8)?,
                    row.int(9)?,
                    row.text(10)?,
                    row.text(11)?,
                    now,
                ],
            ))
        },
    )
    .await?;
    copy::<D>(
        tx,
        "SELECT account, marketplace, conversation, listing, raw, error, first_seen, last_seen
         FROM v3_malformed {after} ORDER BY account, conversation, raw LIMIT {limit}",
        &[0, 2, 4],
        |row| {
            Ok((
                "INSERT INTO malformed (account, marketplace, conversation, listing, raw, error,
                   first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                args![
                    row.text(0)?,
                    row.text(1)?,
                    row.text(2)?,
                    row.text(3)?,
                    row.text(4)?,
                    row.text(5)?,
                    from_v3_time(row.text(6)?).unwrap_or(now),
                    from_v3_time(row.text(7)?).unwrap_or(now),
                ],
            ))
        },
    )
    .await?;
    // The journal keeps its numbers (a pending entry's job names it).
    let rows = D::fetch(
        tx,
        "SELECT id, marketplace, account, received_at, raw, dedup_key, state, target
         FROM v3_journal ORDER BY id"
            .into(),
        vec![],
    )
    .await?;
    for row in rows {
        D::execute(
            tx,
            "INSERT INTO journal (id, marketplace, account, received_at, raw, dedup_key, state,
               target) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                .into(),
            args![
                row.int(0)?,
                row.text(1)?,
                row.text(2)?,
                from_v3_time(row.text(3)?).unwrap_or(now),
                row.text(4)?,
                row.text(5)?,
                row.text(6)?,
                row.text(7)?,
            ],
        )
        .await?;
    }
    D::after_journal_copy(tx).await?;
    for table in V3_TABLES {
        D::batch(tx, format!("DROP TABLE v3_{table}")).await?;
    }
    Ok(())
}

/// Version 3 wrote `kind` and `status` as JSON strings (`"thread"`): the word.
fn unquote(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => o.keys().next().cloned().unwrap_or_default(),
        _ => text.to_string(),
    }
}

type Insert = (&'static str, Vec<super::backend::Arg>);

/// Copies the rows `select` gives through `insert`, a page at a time: `{after}` becomes
/// the condition that the columns numbered `key` (the table's key, in `ORDER BY` order)
/// come after the last row copied, `{limit}` the page size.
async fn copy<D: Dialect>(
    tx: &mut D::Conn,
    select: &str,
    key: &[usize],
    insert: impl Fn(&D::Row) -> Result<Insert, StoreError>,
) -> Result<(), StoreError> {
    let order = select
        .rsplit_once("ORDER BY ")
        .and_then(|(_, rest)| rest.split_once(" LIMIT"))
        .map(|(columns, _)| columns.to_string())
        .unwrap_or_default();
    let mut last: Option<Vec<String>> = None;
    loop {
        let limit = BATCH.to_string();
        let (sql, args) = match &last {
            None => (
                select.replace("{after}", "").replace("{limit}", &limit),
                Vec::new(),
            ),
            Some(values) => {
                let params = (1..=values.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let after = format!("WHERE ({order}) > ({params})");
                let args = values.iter().map(super::backend::Arg::from).collect();
                (
                    select.replace("{after}", &after).replace("{limit}", &limit),
                    args,
                )
            }
        };
        let rows = D::fetch(tx, sql, args).await?;
        for row in &rows {
            let (sql, args) = insert(row)?;
            D::execute(tx, sql.into(), args).await?;
        }
        let Some(row) = rows.last() else {
            return Ok(());
        };
        let mut values = Vec::with_capacity(key.len());
        for &i in key {
            values.push(row.text(i)?.unwrap_or_default());
        }
        last = Some(values);
        if i64::try_from(rows.len()).unwrap_or(0) < BATCH {
            return Ok(());
        }
    }
}
