//! The table and JSON-lines forms of conversations and messages (the JSON contract is in README.md).

use chrono::{DateTime, Utc};
use marketplace_inbox::{Conversation, Inbox, Message, Unread};

/// An instant as the JSON contract writes it (see [`marketplace_inbox::rfc3339`]).
fn time(t: DateTime<Utc>) -> Option<String> {
    marketplace_inbox::rfc3339(t)
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
    let unread = match c.unread {
        Some(Unread::Count(n)) => n.to_string(),
        Some(Unread::Flag(true)) => "yes".into(),
        Some(Unread::Flag(false)) => "no".into(),
        None => "-".into(),
    };
    format!(
        "{:<52} {:<20} {:<8} {:<7} {}",
        cut(&inbox.display_ref(&c.reference), 52),
        c.kind.as_str(),
        c.status.as_ref().map_or("-", |s| s.as_str()),
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
