//! The table and JSON-lines forms of conversations and messages (the JSON contract is in README.md).

use chrono::{DateTime, Utc};
use marketplace_inbox::{
    Conversation, ConversationKind, ConversationStatus, Inbox, Message, Unread,
};
use serde_json::{json, Value};

/// An instant as the JSON contract writes it (see [`marketplace_inbox::rfc3339`]); a
/// conversation's instant RFC 3339 cannot write is `null`, its raw value in `vendor`.
fn time(t: DateTime<Utc>) -> Option<String> {
    marketplace_inbox::rfc3339(t)
}

fn kind(k: &ConversationKind) -> String {
    k.as_str().to_string()
}

fn status(s: Option<&ConversationStatus>) -> Value {
    s.map_or(Value::Null, |s| json!(s.as_str()))
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
        "created_at": c.created_at.and_then(time),
        "last_activity_at": c.last_activity_at.and_then(time),
        "reply_deadline": c.reply_deadline.and_then(time),
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
        "moderation_reason": m.moderation_reason,
        "kind": m.kind,
        "attachments": m.attachments.iter().map(|a| json!({
            "name": a.name, "mime": a.mime, "size": a.size, "url": a.url, "id": a.id,
            "status": a.status, "downloadable": a.downloadable(),
        })).collect::<Vec<_>>(),
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
        c.last_activity_at
            .and_then(time)
            .unwrap_or_else(|| "-".into())
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
        time(m.created_at).unwrap_or_else(|| "-".into()),
        m.author.role.as_str(),
        cut(m.author.name.as_deref().unwrap_or("-"), 20),
        cut(&m.text, 100),
        files
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn instants_keep_every_digit_and_unwritable_ones_are_null() {
        assert_eq!(
            time(at("2026-11-20T10:00:00.123456789+02:00")).as_deref(),
            Some("2026-11-20T08:00:00.123456789Z")
        );
        assert_eq!(
            time(at("2019-03-13T09:34:26.450-04:00")).as_deref(),
            Some("2019-03-13T13:34:26.450Z")
        );
        // Two instants a microsecond apart stay apart.
        assert_ne!(
            time(at("2026-01-01T00:00:00.000001Z")),
            time(at("2026-01-01T00:00:00.000002Z"))
        );
        let far = DateTime::<Utc>::from_timestamp(400_000_000_000, 0).unwrap();
        assert_eq!(time(far), None, "year {}", far.format("%Y"));
        let zero = at("0000-06-01T00:00:00Z");
        assert_eq!(time(zero), None);
    }
}
