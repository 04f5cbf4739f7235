//! The table and JSON-lines forms of conversations and messages (the JSON contract is in README.md).

use chrono::{DateTime, SecondsFormat, Utc};
use marketplace_inbox::{
    Conversation, ConversationKind, ConversationStatus, Inbox, Message, Unread,
};
use serde_json::{json, Value};

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn kind(k: &ConversationKind) -> String {
    match k {
        ConversationKind::BuyerChat => "buyer_chat".into(),
        ConversationKind::PostPurchaseIssue => "post_purchase_issue".into(),
        ConversationKind::Support => "support".into(),
        ConversationKind::Notifications => "notifications".into(),
        ConversationKind::Unknown(v) => v.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn status(s: Option<&ConversationStatus>) -> Value {
    match s {
        None => Value::Null,
        Some(ConversationStatus::Open) => json!("open"),
        Some(ConversationStatus::Closed) => json!("closed"),
        Some(ConversationStatus::Blocked { .. }) => json!("blocked"),
        Some(ConversationStatus::Unknown(v)) => json!(v),
        Some(other) => json!(format!("{other:?}").to_lowercase()),
    }
}

/// A conversation as one JSON object; `ref` is the shortest form that names it
/// unambiguously in `inbox`.
pub fn conversation_json(inbox: &Inbox, account: &str, c: &Conversation) -> Value {
    let (unread, count) = match c.unread {
        Some(Unread::Flag(f)) => (json!(f), Value::Null),
        Some(Unread::Count(n)) => (json!(n > 0), json!(n)),
        None => (Value::Null, Value::Null),
    };
    json!({
        "marketplace": c.reference.marketplace.as_str(),
        "ref": inbox.display_ref(&c.reference),
        "id": c.reference.id,
        "account": account,
        "kind": kind(&c.kind),
        "status": status(c.status.as_ref()),
        "blocked_reason": match &c.status { Some(ConversationStatus::Blocked { reason }) => json!(reason), _ => Value::Null },
        "unread": unread,
        "unread_count": count,
        "other_party": c.other_party.as_ref().and_then(|p| p.name.clone().or(p.id.clone())),
        "created_at": c.created_at.map(time),
        "last_activity_at": c.last_activity_at.map(time),
    })
}

/// A message as one JSON object.
pub fn message_json(inbox: &Inbox, account: &str, m: &Message) -> Value {
    json!({
        "marketplace": m.conversation.marketplace.as_str(),
        "conversation": inbox.display_ref(&m.conversation),
        "id": m.id,
        "account": account,
        "author_role": m.author.role.as_str(),
        "author": m.author.name.clone().or(m.author.id.clone()),
        "text": m.text,
        "subject": m.subject,
        "created_at": time(m.created_at),
        "read": m.read,
        "status": m.status,
        "attachments": m.attachments.iter().map(|a| json!({"name": a.name, "mime": a.mime, "size": a.size, "url": a.url})).collect::<Vec<_>>(),
    })
}

fn cut(s: &str, n: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() > n {
        format!(
            "{}…",
            one_line
                .chars()
                .take(n.saturating_sub(1))
                .collect::<String>()
        )
    } else {
        one_line
    }
}

/// The table header for conversations.
pub const CONVERSATION_HEADER: &str = "REF                                                  KIND                 STATUS   UNREAD  LAST ACTIVITY";

/// A conversation as a table row.
pub fn conversation_row(inbox: &Inbox, c: &Conversation) -> String {
    let v = conversation_json(inbox, "", c);
    let unread = match c.unread {
        Some(Unread::Count(n)) => n.to_string(),
        Some(Unread::Flag(true)) => "yes".into(),
        Some(Unread::Flag(false)) => "no".into(),
        None => "-".into(),
    };
    format!(
        "{:<52} {:<20} {:<8} {:<7} {}",
        cut(&inbox.display_ref(&c.reference), 52),
        v["kind"].as_str().unwrap_or("-"),
        v["status"].as_str().unwrap_or("-"),
        unread,
        c.last_activity_at.map_or("-".into(), time)
    )
}

/// A message as a table row.
pub fn message_row(m: &Message) -> String {
    let files = if m.attachments.is_empty() {
        String::new()
    } else {
        format!(" [{} file(s)]", m.attachments.len())
    };
    format!(
        "{}  {:<8} {:<20} {}{}",
        time(m.created_at),
        m.author.role.as_str(),
        cut(m.author.name.as_deref().unwrap_or("-"), 20),
        cut(&m.text, 100),
        files
    )
}
