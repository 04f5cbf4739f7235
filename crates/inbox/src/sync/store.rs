//! Where a mirror lives: the [`Store`] trait ([`super::SqlStore`] on SQLite or
//! PostgreSQL), what a commit writes ([`Commit`]) and how a store fails ([`StoreError`]).

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::{Change, Checkpoint, Mark};
use crate::{Cause, ConversationRef, Marketplace};

/// What kind of failure a [`StoreError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Another runner committed this account (or conversation) first since the step
    /// began: nothing was written. The next step starts from what it stored.
    Conflict,
    /// The store could not be reached or was busy (locked database, lost connection).
    Unavailable,
    /// What the store holds cannot be read (an unreadable checkpoint, a schema newer
    /// than this build).
    Corrupt,
    /// What was asked for is not there (an account by a name no account has).
    NotFound,
    /// Anything else (a failed statement, a full disk).
    Other,
}

impl StoreErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::Conflict => "conflict",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Corrupt => "corrupt",
            StoreErrorKind::NotFound => "not found",
            StoreErrorKind::Other => "failed",
        }
    }
}

/// A store failed (its own error, not a marketplace's): a kind, a message, and the
/// driver's error as `source()`.
#[derive(Debug, thiserror::Error)]
#[error("store {}: {message}", kind.as_str())]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Cause>,
}

impl StoreError {
    /// A store error of `kind` saying `message`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error with its cause.
    pub fn with_source(mut self, source: impl Into<Cause>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A conflict: another runner committed first.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Conflict, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether running the step again may succeed: a conflict (the next step starts from
    /// the winner's checkpoint) or an unavailable store.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Conflict | StoreErrorKind::Unavailable
        )
    }
}

/// Which listing a malformed element came from; written `conversations` or `messages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listed {
    /// The account's conversations.
    Conversations,
    /// One conversation's messages.
    Messages,
}

impl Listed {
    /// `conversations` or `messages`.
    pub fn as_str(self) -> &'static str {
        match self {
            Listed::Conversations => "conversations",
            Listed::Messages => "messages",
        }
    }
}

/// An element of a listing that did not decode, kept as received.
#[derive(Clone, Debug, PartialEq)]
pub struct Malformed {
    /// Which marketplace.
    pub marketplace: Marketplace,
    /// The account's name.
    pub account: String,
    /// The conversation it belongs to, when it is a message.
    pub conversation: Option<ConversationRef>,
    /// Which listing.
    pub listed: Listed,
    /// Why it did not decode.
    pub error: String,
    /// The element's JSON text, as received.
    pub raw: String,
}

impl Malformed {
    /// What identifies it in the store: its conversation's id (empty for a
    /// conversation) and its text.
    pub fn key(&self) -> MalformedKey {
        MalformedKey {
            conversation: self
                .conversation
                .as_ref()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
            raw: self.raw.clone(),
        }
    }
}

/// A stored malformed element's identity: (conversation id or empty, raw text).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MalformedKey {
    /// The conversation's id; empty for an element of the conversation listing.
    pub conversation: String,
    /// The element's JSON text.
    pub raw: String,
}

/// A listing read whole in one step: the malformed elements it holds are exactly those
/// seen, so stored ones it no longer holds (they decode now, or are gone) are cleared.
#[derive(Clone, Debug, PartialEq)]
pub struct Rescan {
    /// The conversation whose messages were read whole, or empty for the conversation
    /// listing.
    pub conversation: String,
    /// The raw texts of the malformed elements seen in it.
    pub seen: HashSet<String>,
}

/// A conversation's new mark, written only if its stored mark is still the one the
/// step read (`expected`, 0 when it had none).
#[derive(Clone, Debug, PartialEq)]
pub struct MarkChange {
    /// The conversation.
    pub reference: ConversationRef,
    /// The mark version the step read.
    pub expected: u64,
    /// The new mark.
    pub mark: Mark,
}

/// Everything one step (or one targeted sync) writes, all or nothing.
#[derive(Clone, Debug)]
pub struct Commit {
    /// The account's name.
    pub account: String,
    /// The store's account it must still be, under that name (see
    /// [`crate::Account::stored_as`]); `None` for accounts from elsewhere.
    pub account_id: Option<String>,
    /// Its marketplace.
    pub marketplace: Marketplace,
    /// When the step began (first and last seen of malformed elements).
    pub at: DateTime<Utc>,
    /// The account's new checkpoint, written only if the stored one still has
    /// `checkpoint.version` (0: none stored), and then stored with the next version.
    /// `None` for a targeted sync, which leaves the checkpoint alone.
    pub checkpoint: Option<Checkpoint>,
    /// Conversation marks, each compare-and-set on its own version.
    pub marks: Vec<MarkChange>,
    /// New and updated conversations and messages, and newly seen malformed elements, in
    /// the order found.
    pub changes: Vec<Change>,
    /// Listings read whole: malformed elements stored for them and not seen are cleared.
    pub rescans: Vec<Rescan>,
    /// Filled by the store: conversations whose marks another runner changed since they
    /// were read. Nothing of them was written (their changes are taken out of
    /// `changes`); the rest of the commit was.
    pub conflicts: Vec<ConversationRef>,
}

impl Commit {
    /// The conversations the commit's changes hold, by id (written with their marks).
    pub(crate) fn conversations(&self) -> HashMap<&str, &crate::Conversation> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::Conversation(_, c) => Some((c.reference.id.as_str(), c)),
                _ => None,
            })
            .collect()
    }
}

impl StoreError {
    /// The conflict of a commit that found the account's checkpoint, or the mark of
    /// `what` (a conversation), changed since its step began.
    pub(crate) fn synced_since(what: impl fmt::Display) -> Self {
        Self::conflict(format!(
            "another runner synced {what} since this step began; nothing stored"
        ))
    }
}

/// Called inside each commit, after every check passed and before it is made durable:
/// where a caller hands the changes on (prints them). When it fails, nothing of that
/// commit is stored; when the process dies after it, nothing of that commit is stored
/// and the next step finds the same changes again (at least once, never for a commit
/// that lost a conflict). A step commits in chunks and calls it once per chunk.
pub type HandOn<'h> = &'h mut (dyn FnMut(&[Change]) -> std::io::Result<()> + Send);

/// Runs `hand_on` (when given) with `changes`; its failure is a store error, so that the
/// commit around it is not made.
pub(crate) fn hand_on(hand_on: Option<HandOn<'_>>, changes: &[Change]) -> Result<(), StoreError> {
    match hand_on {
        Some(hand_on) => hand_on(changes).map_err(|e| {
            StoreError::new(StoreErrorKind::Other, "handing the changes on failed").with_source(e)
        }),
        None => Ok(()),
    }
}

/// What the store holds of a message, to tell whether it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Its state as stored ([`super::message_state`]).
    pub state: String,
}

/// Where checkpoints and the mirrored conversations and messages are kept. Callable from
/// many tasks at once; every method is async and does its blocking work off the async
/// threads.
pub trait Store: Send + Sync {
    /// The account's checkpoint (empty, version 0, before its first step).
    fn checkpoint<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Checkpoint, StoreError>>;

    /// The stored marks of these conversations (by id); those without one are absent.
    fn marks<'a>(
        &'a self,
        account: &'a str,
        conversations: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, Mark>, StoreError>>;

    /// What is stored of these messages of one conversation, by id; messages not stored
    /// are absent. One call per conversation read.
    fn message_states<'a>(
        &'a self,
        account: &'a str,
        conversation: &'a str,
        messages: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, Stored>, StoreError>>;

    /// The malformed elements stored for the account.
    fn malformed<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<HashSet<MalformedKey>, StoreError>>;

    /// Stores a commit after checking that the checkpoint is still the version it was
    /// read at (else [`StoreErrorKind::Conflict`] and nothing written) and each mark
    /// too (a conversation whose mark changed is left out and named in
    /// [`Commit::conflicts`]; the rest is written). `hand_on`, when given, runs inside it
    /// with the changes written; the commit is given back as written.
    fn commit<'a>(
        &'a self,
        commit: Commit,
        hand_on: Option<HandOn<'a>>,
    ) -> BoxFuture<'a, Result<Commit, StoreError>>;

    /// Journals a push notification; its number, or `None` when an entry of the same
    /// marketplace and key is already there (a redelivery: nothing is written).
    fn journal_add<'a>(
        &'a self,
        entry: super::journal::NewEntry,
    ) -> BoxFuture<'a, Result<Option<i64>, StoreError>> {
        let _ = entry;
        Box::pin(async { Err(no_journal()) })
    }

    /// The entries still [`super::journal::JournalState::Pending`], oldest first.
    fn journal_pending<'a>(
        &'a self,
    ) -> BoxFuture<'a, Result<Vec<super::journal::Entry>, StoreError>> {
        Box::pin(async { Err(no_journal()) })
    }

    /// Settles entries (by number) as `state`.
    fn journal_settle<'a>(
        &'a self,
        ids: Vec<i64>,
        state: super::journal::JournalState,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let _ = (ids, state);
        Box::pin(async { Err(no_journal()) })
    }

    /// Removes settled entries received before `before` (their keys no longer keep a
    /// redelivery out); how many.
    fn journal_prune<'a>(
        &'a self,
        before: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let _ = before;
        Box::pin(async { Err(no_journal()) })
    }
}

fn no_journal() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "this store keeps no journal of notifications",
    )
}

/// How the store reads back what it keeps: the checkpoint's JSON, versions as signed
/// 64-bit integers, journal rows.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) mod row {
    use super::{Checkpoint, StoreError, StoreErrorKind};

    /// A checkpoint whose JSON cannot be read or written.
    pub(crate) fn corrupt(account: &str, e: serde_json::Error) -> StoreError {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("the checkpoint of {account} is unreadable"),
        )
        .with_source(e)
    }

    /// The checkpoint a store's row holds (its JSON and version), or the empty one.
    pub(crate) fn checkpoint(
        account: &str,
        row: Option<(String, i64)>,
    ) -> Result<Checkpoint, StoreError> {
        let Some((text, v)) = row else {
            return Ok(Checkpoint::default());
        };
        let mut checkpoint: Checkpoint =
            serde_json::from_str(&text).map_err(|e| corrupt(account, e))?;
        checkpoint.version = version(v);
        Ok(checkpoint)
    }

    /// A journal row read back.
    pub(crate) fn journal_entry(
        id: i64,
        marketplace: &str,
        account: Option<String>,
        received_at: Option<chrono::DateTime<chrono::Utc>>,
        raw: String,
        (dedup_key, target): (String, Option<String>),
    ) -> Result<crate::sync::journal::Entry, StoreError> {
        let marketplace: crate::Marketplace = marketplace.parse().map_err(|_| {
            StoreError::new(
                StoreErrorKind::Corrupt,
                format!("journal entry {id} names no marketplace this build knows"),
            )
        })?;
        Ok(crate::sync::journal::Entry {
            id,
            entry: crate::sync::journal::NewEntry {
                marketplace,
                account,
                received_at: received_at.unwrap_or_else(chrono::Utc::now),
                raw,
                dedup_key,
                target,
                state: crate::sync::journal::JournalState::Pending,
            },
        })
    }

    /// A stored version (a negative one reads as none).
    pub(crate) fn version(v: i64) -> u64 {
        u64::try_from(v).unwrap_or(0)
    }

    /// A version as stored.
    pub(crate) fn stored(v: u64) -> i64 {
        i64::try_from(v).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Listed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
