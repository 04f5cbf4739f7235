//! What a step lists, and how a listed conversation says it changed: the pieces each
//! marketplace's adapter puts together for its own API (see `Adapter::sync_walks` and
//! `Adapter::sync_summary`), so the step itself has no per-marketplace code.

use chrono::{DateTime, Utc};

use super::{Checkpoint, LOOK_BACK, SWEEP_EVERY};
use crate::listing::ConversationQuery;
use crate::{Conversation, ConversationStatus, Unread};

/// One listing a step walks.
#[derive(Clone, Debug)]
pub(crate) struct Walk {
    /// What to list.
    pub query: ConversationQuery,
    /// Stop at the first conversation created before this (a newest-first listing).
    pub stop_before: Option<DateTime<Utc>>,
    /// Whether it lists every conversation (a sweep: it clears what it no longer finds).
    pub sweep: bool,
    /// Whether every listed conversation's newest messages are read again, changed or
    /// not (a message the seller read elsewhere may leave no trace in any listing).
    pub reread: bool,
}

impl Walk {
    /// Every conversation.
    pub(crate) fn everything(reread: bool) -> Self {
        Walk {
            query: ConversationQuery::new(),
            stop_before: None,
            sweep: true,
            reread,
        }
    }

    fn fast(query: ConversationQuery) -> Self {
        Walk {
            query,
            stop_before: None,
            sweep: false,
            reread: false,
        }
    }
}

/// `t` less the look-back window, or the earliest instant when that is out of range.
pub(crate) fn back(t: DateTime<Utc>) -> DateTime<Utc> {
    t.checked_sub_signed(LOOK_BACK)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether a sweep is due: none yet, or the last one [`SWEEP_EVERY`] ago or more.
pub(crate) fn sweep_due(before: &Checkpoint, now: DateTime<Utc>) -> bool {
    before
        .last_sweep
        .is_none_or(|at| now.signed_duration_since(at) >= SWEEP_EVERY)
}

/// For listings that can be asked for the conversations active since an instant: those
/// active since the watermark less [`LOOK_BACK`]; everything the first time and every
/// [`SWEEP_EVERY`].
pub(crate) fn by_activity(before: &Checkpoint, now: DateTime<Utc>) -> Vec<Walk> {
    match before.watermark {
        Some(w) if !sweep_due(before, now) => {
            vec![Walk::fast(ConversationQuery::new().since(back(w)))]
        }
        _ => vec![Walk::everything(false)],
    }
}

/// For listings with neither an order nor a date filter to rely on: everything the
/// first time and every [`SWEEP_EVERY`] (reading every conversation's newest messages
/// again when `reread_on_sweep`); between sweeps the unread conversations (a new buyer
/// message makes its conversation unread), and with `newest_first_orders` the
/// conversations created since the newest seen less [`LOOK_BACK`] (new ones).
pub(crate) fn by_unread(
    before: &Checkpoint,
    now: DateTime<Utc>,
    reread_on_sweep: bool,
    newest_first_orders: bool,
) -> Vec<Walk> {
    if sweep_due(before, now) {
        return vec![Walk::everything(
            reread_on_sweep && before.last_sweep.is_some(),
        )];
    }
    let mut walks = vec![Walk::fast(ConversationQuery::new().unread_only(true))];
    if newest_first_orders {
        walks.push(Walk {
            stop_before: before.newest_created.map(back),
            ..Walk::fast(ConversationQuery::new())
        });
    }
    walks
}

/// A conversation's listing in a few words — its last activity, unread state, status,
/// and `last`, what the vendor's listing says of its last message — so that anything
/// happening in it changes the words.
pub(crate) fn summary(c: &Conversation, last: &[Option<String>]) -> String {
    let unread = match c.unread {
        Some(Unread::Flag(f)) => f.to_string(),
        Some(Unread::Count(n)) => n.to_string(),
        None => "-".into(),
    };
    let status = match &c.status {
        Some(ConversationStatus::Blocked { reason }) => {
            format!("blocked:{}", reason.as_deref().unwrap_or(""))
        }
        Some(s) => format!("{s:?}"),
        None => "-".into(),
    };
    let last = last.iter().flatten().cloned().collect::<Vec<_>>().join(",");
    format!(
        "{}|{unread}|{status}|{last}",
        c.last_activity_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    )
}

/// The JSON text of one field of the vendor's object (`/last_message_id`), if present.
pub(crate) fn vendor_field(c: &Conversation, pointer: &str) -> Option<String> {
    c.vendor.to_value().pointer(pointer).map(|v| v.to_string())
}
