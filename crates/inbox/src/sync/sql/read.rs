//! The mirror's read side: conversations newest first and a conversation's messages
//! oldest (or newest) first, each page a keyset walk (the sort key and the row's id, never
//! an offset), filtered in SQL on the columns kept for it; unread counts per account.
//! Rows come back in their JSON form (the line `inbox --json` prints, references in full,
//! `vendor` included), rebuilt from the columns for a row stored without one (migrated
//! from version 3, renamed, or known only from a notification so far).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::backend::{Arg, Dialect, Row};
use super::SqlStore;
use crate::sync::{StoreError, StoreErrorKind};
use crate::Marketplace;

/// Which conversations a read lists; every filter left `None` lets all through.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationFilter {
    /// Only these accounts (by name); `Some(vec![])` lists nothing.
    pub accounts: Option<Vec<String>>,
    /// Only this marketplace's.
    pub marketplace: Option<Marketplace>,
    /// Only unread ones (`true`) or only read ones (`false`).
    pub unread: Option<bool>,
    /// Only those of this status (`open`, `closed`, `blocked`, or a vendor's value).
    pub status: Option<String>,
    /// Only those whose mirror record changed at or after this instant.
    pub updated_since: Option<DateTime<Utc>>,
    /// Only those whose last message is the buyer's (`true`), or not (`false`).
    pub reply_needed: Option<bool>,
}

/// Where a walk of conversations stands: the last one returned (newest activity first,
/// then account and id).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversationKey {
    /// Its last activity (`None` sorts after every instant).
    pub at: Option<DateTime<Utc>>,
    /// Its account.
    pub account: String,
    /// Its id.
    pub id: String,
}

/// Where a walk of a conversation's messages stands: the last one returned.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MessageKey {
    /// When it was created.
    pub at: DateTime<Utc>,
    /// Its id.
    pub id: String,
}

/// A conversation as the mirror holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredConversation {
    /// Its place in the newest-first order.
    pub key: ConversationKey,
    /// Its marketplace.
    pub marketplace: Marketplace,
    /// Its JSON form.
    pub json: Value,
}

/// A message as the mirror holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMessage {
    /// Its place in its conversation's order.
    pub key: MessageKey,
    /// Its JSON form.
    pub json: Value,
}

/// One account's unread conversations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadCount {
    /// The account.
    pub account: String,
    /// Its marketplace.
    pub marketplace: Marketplace,
    /// Conversations with something unread.
    pub conversations: u64,
    /// Unread messages, when every such conversation says how many.
    pub messages: Option<u64>,
}

const CONVERSATION: &str = "account, marketplace, id, ref, kind, status, unread, unread_count,
  created_at, last_activity_at, vendor, json";

const MESSAGE: &str = "m.account, m.marketplace, m.conversation, m.id, m.created_at,
  m.author_role, m.author_id, m.author_name, m.text, m.status, m.read, m.vendor, m.json,
  c.ref";

/// A statement being built: each value bound once, numbered in order.
#[derive(Clone)]
struct Statement {
    sql: String,
    args: Vec<Arg>,
}

impl Statement {
    fn new(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// The placeholder of `value`, bound next.
    fn bind(&mut self, value: impl Into<Arg>) -> String {
        self.args.push(value.into());
        format!("${}", self.args.len())
    }
}

/// An instant as the JSON forms write it.
fn instant(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    })
}

/// The vendor's object as stored: JSON when it is JSON, else its text (none when empty).
fn vendor(text: Option<String>) -> Value {
    match text {
        None => Value::Null,
        Some(t) if t.is_empty() => Value::Null,
        Some(t) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
    }
}

/// A stored JSON form with `vendor` set from the row's `vendor` column; `None` when the
/// row holds no form (or one that does not read as an object).
pub(super) fn json_form(json: Option<String>, vendor_text: Option<String>) -> Option<Value> {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(&json?) else {
        return None;
    };
    object.insert("vendor".into(), vendor(vendor_text));
    Some(Value::Object(object))
}

/// A reference in full (the stored one when it names its account).
fn full_ref(stored: Option<String>, marketplace: &str, account: &str, id: &str) -> String {
    stored
        .filter(|r| r.contains('@'))
        .unwrap_or_else(|| format!("{marketplace}@{account}:{id}"))
}

fn conversation<R: Row>(row: &R) -> Result<StoredConversation, StoreError> {
    let account = row.text(0)?.unwrap_or_default();
    let marketplace_text = row.text(1)?.unwrap_or_default();
    let id = row.text(2)?.unwrap_or_default();
    let at = row.time(9)?;
    let json = match json_form(row.text(11)?, row.text(10)?) {
        Some(form) => form,
        None => json!({
            "marketplace": marketplace_text,
            "ref": full_ref(row.text(3)?, &marketplace_text, &account, &id),
            "id": id,
            "account": account,
            "kind": row.text(4)?.unwrap_or_else(|| "thread".into()),
            "status": row.text(5)?,
            "unread": row.int(6)?.map(|u| u != 0),
            "unread_count": row.int(7)?,
            "created_at": instant(row.time(8)?),
            "last_activity_at": instant(at),
            "vendor": vendor(row.text(10)?),
        }),
    };
    Ok(StoredConversation {
        key: ConversationKey { at, account, id },
        marketplace: marketplace_of(&marketplace_text)?,
        json,
    })
}

fn message<R: Row>(row: &R) -> Result<StoredMessage, StoreError> {
    let account = row.text(0)?.unwrap_or_default();
    let marketplace = row.text(1)?.unwrap_or_default();
    let conversation = row.text(2)?.unwrap_or_default();
    let id = row.text(3)?.unwrap_or_default();
    let at = row.time(4)?.unwrap_or_default();
    let json = match json_form(row.text(12)?, row.text(11)?) {
        Some(form) => form,
        None => json!({
            "marketplace": marketplace,
            "conversation": full_ref(row.text(13)?, &marketplace, &account, &conversation),
            "id": id,
            "account": account,
            "author_role": row.text(5)?,
            "author_id": row.text(6)?,
            "author_name": row.text(7)?,
            "text": row.text(8)?.unwrap_or_default(),
            "status": row.text(9)?,
            "read": row.int(10)?.map(|r| r != 0),
            "created_at": instant(Some(at)),
            "attachments": [],
            "vendor": vendor(row.text(11)?),
        }),
    };
    Ok(StoredMessage {
        key: MessageKey { at, id },
        json,
    })
}

/// A stored marketplace name, read back.
fn marketplace_of(name: &str) -> Result<Marketplace, StoreError> {
    name.parse().map_err(|_| {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("a stored row names the unknown marketplace {name:?}"),
        )
    })
}

/// Whether a conversation has something unread, as SQL.
const UNREAD: &str = "(COALESCE(unread, 0) <> 0 OR COALESCE(unread_count, 0) > 0)";

/// The statement selecting the conversations `filter` lets through (`None`: it names no
/// account, so none).
fn filtered<B: Dialect>(filter: &ConversationFilter) -> Option<Statement> {
    let mut q = Statement::new(format!(
        "SELECT {CONVERSATION} FROM conversations WHERE 1 = 1"
    ));
    if let Some(names) = &filter.accounts {
        if names.is_empty() {
            return None;
        }
        let p = q.bind(names.clone());
        q.sql += &format!(" AND {}", B::in_list("account", &p));
    }
    if let Some(m) = filter.marketplace {
        let p = q.bind(m.as_str());
        q.sql += &format!(" AND marketplace = {p}");
    }
    match filter.unread {
        Some(true) => q.sql += &format!(" AND {UNREAD}"),
        Some(false) => q.sql += &format!(" AND NOT {UNREAD}"),
        None => {}
    }
    if let Some(status) = &filter.status {
        let p = q.bind(status.as_str());
        q.sql += &format!(" AND status = {p}");
    }
    if let Some(since) = filter.updated_since {
        let p = q.bind(since);
        q.sql += &format!(" AND updated_at >= {p}");
    }
    match filter.reply_needed {
        Some(true) => q.sql += " AND last_author_role = 'buyer'",
        Some(false) => q.sql += " AND (last_author_role IS NULL OR last_author_role <> 'buyer')",
        None => {}
    }
    Some(q)
}

impl<B: Dialect> SqlStore<B> {
    /// Up to `limit` conversations passing `filter`, newest activity first (those with
    /// none last), after `after` when given.
    pub async fn conversations_page(
        &self,
        filter: &ConversationFilter,
        after: Option<&ConversationKey>,
        limit: usize,
    ) -> Result<Vec<StoredConversation>, StoreError> {
        let Some(base) = filtered::<B>(filter) else {
            return Ok(Vec::new());
        };
        let mut conn = self.read_conn().await?;
        let mut rows = Vec::new();
        // Those with activity, newest first: a range on the activity index from the
        // walk's position (row values, so that the database seeks instead of scanning).
        if after.is_none_or(|k| k.at.is_some()) {
            let mut q = base.clone();
            q.sql += " AND last_activity_at IS NOT NULL";
            if let Some(ConversationKey {
                at: Some(t),
                account,
                id,
            }) = after
            {
                let (t1, t2) = (q.bind(*t), q.bind(*t));
                let (a, i) = (q.bind(account.as_str()), q.bind(id.as_str()));
                q.sql += &format!(
                    " AND last_activity_at <= {t1} AND NOT (last_activity_at = {t2} AND (account, id) <= ({a}, {i}))"
                );
            }
            let l = q.bind(i64::try_from(limit).unwrap_or(i64::MAX));
            q.sql += &format!(
                " ORDER BY last_activity_at {}, account, id LIMIT {l}",
                B::NEWEST_FIRST
            );
            for row in B::fetch(&mut conn, q.sql, q.args).await? {
                rows.push(conversation(&row)?);
            }
        }
        // Then those without, by account and id.
        if rows.len() < limit {
            let mut q = base;
            q.sql += " AND last_activity_at IS NULL";
            if let Some(ConversationKey {
                at: None,
                account,
                id,
            }) = after
            {
                let (a, i) = (q.bind(account.as_str()), q.bind(id.as_str()));
                q.sql += &format!(" AND (account, id) > ({a}, {i})");
            }
            let left = limit.saturating_sub(rows.len());
            let l = q.bind(i64::try_from(left).unwrap_or(i64::MAX));
            q.sql += &format!(" ORDER BY account, id LIMIT {l}");
            for row in B::fetch(&mut conn, q.sql, q.args).await? {
                rows.push(conversation(&row)?);
            }
        }
        Ok(rows)
    }

    /// The conversation `id` of `account`.
    pub async fn stored_conversation(
        &self,
        account: &str,
        id: &str,
    ) -> Result<Option<StoredConversation>, StoreError> {
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {CONVERSATION} FROM conversations WHERE account = $1 AND id = $2"),
            super::backend::args![account, id],
        )
        .await?;
        rows.first().map(conversation).transpose()
    }

    /// Up to `limit` messages of `account`'s conversation `conversation`, oldest first
    /// (newest first when `newest_first`), after `after` when given.
    pub async fn messages_page(
        &self,
        account: &str,
        conversation: &str,
        newest_first: bool,
        after: Option<&MessageKey>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut q = Statement::new(format!(
            "SELECT {MESSAGE} FROM messages m LEFT JOIN conversations c
               ON c.account = m.account AND c.id = m.conversation
             WHERE m.account = $1 AND m.conversation = $2"
        ));
        q.args = super::backend::args![account, conversation];
        let (past, order) = match newest_first {
            true => ("<", "DESC"),
            false => (">", "ASC"),
        };
        if let Some(key) = after {
            // A row value: the database seeks to the position instead of scanning to it.
            let (t, i) = (q.bind(key.at), q.bind(key.id.as_str()));
            q.sql += &format!(" AND (m.created_at, m.id) {past} ({t}, {i})");
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let l = q.bind(limit);
        q.sql += &format!(" ORDER BY m.created_at {order}, m.id {order} LIMIT {l}");
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(&mut conn, q.sql, q.args).await?;
        rows.iter().map(message).collect()
    }

    /// The message `id` of `account`'s conversation `conversation`.
    pub async fn stored_message(
        &self,
        account: &str,
        conversation: &str,
        id: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!(
                "SELECT {MESSAGE} FROM messages m LEFT JOIN conversations c
                   ON c.account = m.account AND c.id = m.conversation
                 WHERE m.account = $1 AND m.conversation = $2 AND m.id = $3"
            ),
            super::backend::args![account, conversation, id],
        )
        .await?;
        rows.first().map(message).transpose()
    }

    /// Each account's unread conversations (accounts with none are left out), by
    /// account; only `accounts` when given.
    pub async fn unread_counts(
        &self,
        accounts: Option<&[String]>,
    ) -> Result<Vec<UnreadCount>, StoreError> {
        let mut q = Statement::new(format!(
            "SELECT account, marketplace, COUNT(*), CAST(SUM(unread_count) AS BIGINT), COUNT(unread_count)
             FROM conversations WHERE {UNREAD}"
        ));
        if let Some(names) = accounts {
            if names.is_empty() {
                return Ok(Vec::new());
            }
            let p = q.bind(names.to_vec());
            q.sql += &format!(" AND {}", B::in_list("account", &p));
        }
        q.sql += " GROUP BY account, marketplace ORDER BY account";
        let mut conn = self.read_conn().await?;
        let rows = B::fetch(&mut conn, q.sql, q.args).await?;
        rows.iter()
            .map(|row| {
                let count = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
                let conversations = count(row.int(2)?);
                let counted = count(row.int(4)?);
                let messages = match counted == conversations {
                    true => Some(count(row.int(3)?)),
                    false => None,
                };
                Ok(UnreadCount {
                    account: row.text(0)?.unwrap_or_default(),
                    marketplace: marketplace_of(&row.text(1)?.unwrap_or_default())?,
                    conversations,
                    messages,
                })
            })
            .collect()
    }
}
