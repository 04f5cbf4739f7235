//! The journal of push notifications: each one received is written here before it is
//! answered, and settled once processed, so that a process killed between the answer and
//! the work loses nothing (pending entries are replayed at start) and a redelivery is
//! recognised by its key and processed once.

use chrono::{DateTime, Utc};

use crate::Marketplace;

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JournalState {
    /// Received and answered; not processed yet.
    Pending,
    /// Processed: what it pointed at was read again.
    Done,
    /// Not acted on (for no configured account, a type not acted on, over budget, or
    /// naming nothing the vendor knows); the reason was logged and counted.
    Ignored,
}

impl JournalState {
    /// `pending`, `done`, `ignored`: as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalState::Pending => "pending",
            JournalState::Done => "done",
            JournalState::Ignored => "ignored",
        }
    }

    /// The state a stored name stands for.
    pub fn parse(text: &str) -> Option<JournalState> {
        match text {
            "pending" => Some(JournalState::Pending),
            "done" => Some(JournalState::Done),
            "ignored" => Some(JournalState::Ignored),
            _ => None,
        }
    }
}

/// A notification to journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    /// Who sent it.
    pub marketplace: Marketplace,
    /// The configured account it is for, when one is.
    pub account: Option<String>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The body as received (UTF-8; other bytes replaced).
    pub raw: String,
    /// Its key: equal for redeliveries of one event ([`crate::push::Notice::dedup_key`]).
    pub dedup_key: String,
    /// What it asks of the account (`conversation:ID`, `message:ID`, `status:ID`), by
    /// which the runs that answer it settle it.
    pub target: Option<String>,
    /// [`JournalState::Pending`] for one to process, else how it was settled at once.
    pub state: JournalState,
}

/// A journaled notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its number in the journal (increasing with arrival).
    pub id: i64,
    /// The rest, as journaled.
    pub entry: NewEntry,
}
