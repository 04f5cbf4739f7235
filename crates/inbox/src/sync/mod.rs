//! Keeping a local mirror in step with the marketplaces: one step per account
//! ([`sync_account_with`], [`sync_account`]) finds what changed since the store's
//! checkpoint, and the [`Store`] takes the changes, the marks of the conversations read
//! and the checkpoint in compare-and-set commits, a chunk at a time ([`CHUNK_MESSAGES`],
//! [`CHUNK_CONVERSATIONS`]): memory is bounded by a chunk, and a step stopped at any
//! moment resumes after its last chunk. [`sync`] runs a step for every account of an
//! [`Inbox`] at once; [`sync_conversation`] reads one conversation (what a push
//! notification calls).
//!
//! Against the local sandbox (`inbox-sandbox`), twice on one store: the first pass
//! imports everything, the second finds nothing new. With real accounts the configuration
//! comes from `InboxConfig::from_file("accounts.json")` and the store from
//! `SqliteStore::open("mirror.db").await`.
//!
//! ```
//! # #[cfg(all(feature = "sqlite", feature = "allegro", feature = "mercadolibre", feature = "magalu", feature = "ozon"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! use marketplace_inbox::sync::{self, SqliteStore};
//! use marketplace_inbox::{Inbox, InboxConfig, JsonLine};
//!
//! let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
//! let inbox = Inbox::from_config(&InboxConfig::from_value(sandbox.accounts_config())?)?;
//! let store = SqliteStore::in_memory().await?;
//! let mut found = 0;
//! for synced in sync::sync(&inbox, &store, sync::ACCOUNTS_AT_ONCE).await {
//!     for change in synced.item?.changes {
//!         // One JSON line, as `inbox --json sync` prints it.
//!         println!("{}", change.json_line(&inbox)?);
//!         found += 1;
//!     }
//! }
//! let mut again = 0;
//! for synced in sync::sync(&inbox, &store, sync::ACCOUNTS_AT_ONCE).await {
//!     again += synced.item?.changes.len();
//! }
//! assert!(found > 0);
//! assert_eq!(again, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! # #[cfg(not(all(feature = "sqlite", feature = "allegro", feature = "mercadolibre", feature = "magalu", feature = "ozon")))]
//! # fn main() {}
//! ```
//!
//! A step is stateless apart from what the store holds, so any scheduler can run it.
//! What it lists is the marketplace's answer (its adapter's plan): Allegro and Magalu the
//! conversations active since the last step less a look-back window; Mercado Libre and
//! Ozon their unread conversations (and Mercado Libre its newest orders); each of them
//! everything on the first step and every [`SWEEP_EVERY`]. It reads the messages of the
//! conversations whose listing changed, from their last known message less the look-back
//! window ([`LOOK_BACK`], for messages that appear late with an earlier timestamp), and
//! keeps every message once: dedup is by (account, conversation, message id). Several
//! conversations are read at once ([`Account::concurrency`]) and taken into the step in
//! listing order, so a step finds the same changes in the same order at any concurrency.
//!
//! Delivery:
//! - every message reaches the store exactly once across any number of steps, including
//!   steps that fail, are killed, or race another runner: each chunk is one transaction
//!   and checks that the checkpoint is still the version the step follows, else nothing
//!   is written and the step stops with a conflict; a conversation whose mark another
//!   runner changed skips only itself ([`Skipped`]) and the rest of the chunk commits;
//! - a caller that hands changes on does so inside each chunk's commit
//!   ([`sync_account_with`]): a chunk that loses a conflict hands nothing on, and a crash
//!   after handing on and before the commit is durable hands that chunk's changes on
//!   again next time;
//! - a conversation or message that does not decode costs only itself: it is stored raw
//!   ([`Malformed`]) and reported once ([`Change::Malformed`]), everything else is
//!   stored and the checkpoint advances; it is read again when its conversation is next
//!   read and at each sweep, and cleared once it decodes;
//! - a conversation whose messages cannot be read (retries exhausted) is skipped
//!   ([`Skipped`]) without holding the others back: its mark does not advance and the
//!   step's watermark stays at or before it, so the next step reads it again;
//! - every instant kept is capped at the step's start: a time from the future never hides
//!   what comes after it.

pub mod journal;
mod plan;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
mod store;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::{FuturesOrdered, StreamExt};
use serde::{Deserialize, Serialize};

pub(crate) use plan::Walk;
pub(crate) use plan::{by_activity, by_unread, summary, vendor_field};
#[doc(hidden)]
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::backend;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::{
    check_event_types, event_types, AccountState, ApiKey, Backend, Claim, ConnectLink,
    ConversationFilter, ConversationKey, EventFilter, Imported, LinkKey, MessageKey, SendRecord,
    SqlStore, StoredAccount, StoredConversation, StoredMessage, UnreadCount,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::{Attempt, Backlog, DeliveryOutcome, Due, Replay, Webhook, WebhookChange};
#[cfg(feature = "postgres")]
pub use sql::{Postgres, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sql::{Sqlite, SqliteStore};
pub use store::{
    Commit, HandOn, Listed, Malformed, MalformedKey, MarkChange, Rescan, Store, StoreError,
    StoreErrorKind, Stored,
};

use crate::listing::MessageQuery;
use crate::{Account, Conversation, ConversationRef, Error, Inbox, Message, Tagged};

/// How far before the last known instant a step looks again, for messages that appear
/// late with an earlier timestamp (Mercado Libre moderation takes up to an hour).
pub const LOOK_BACK: chrono::Duration = chrono::Duration::hours(1);

/// How often a step lists every conversation (and reads again those holding malformed
/// elements); between sweeps it reads only what the marketplace's fast paths show.
pub const SWEEP_EVERY: chrono::Duration = chrono::Duration::hours(24);

/// How many accounts [`sync`] (and `inbox sync`) steps at once by default. Each account
/// is still paced by its own rate limiter.
pub const ACCOUNTS_AT_ONCE: usize = 256;

/// A step commits what it found once it holds this many conversations (or
/// [`CHUNK_MESSAGES`] messages), so memory is bounded by a chunk, not by the account's
/// history, and a step killed at any moment loses at most one chunk's reads.
pub const CHUNK_CONVERSATIONS: usize = 50;

/// A step commits what it found once it holds this many changes.
pub const CHUNK_MESSAGES: usize = 1_000;

/// What a step remembers of an account between steps (small: per-conversation marks are
/// rows of their own).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The version stored (0: none yet); a commit is made only on this version.
    #[serde(skip)]
    pub version: u64,
    /// The newest conversation activity seen (capped at the step's start).
    pub watermark: Option<DateTime<Utc>>,
    /// The newest conversation creation seen (Mercado Libre: its newest order).
    #[serde(default)]
    pub newest_created: Option<DateTime<Utc>>,
    /// When every conversation was last listed.
    #[serde(default)]
    pub last_sweep: Option<DateTime<Utc>>,
    /// When the step that has not finished its walks yet began (chunks of it are
    /// committed; the rest of the checkpoint is still the one before it): the next step
    /// walks again and reads only what those chunks did not store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walking: Option<DateTime<Utc>>,
}

impl Checkpoint {
    /// The same checkpoint, ignoring the version.
    fn same(&self, other: &Checkpoint) -> bool {
        (
            self.watermark,
            self.newest_created,
            self.last_sweep,
            self.walking,
        ) == (
            other.watermark,
            other.newest_created,
            other.last_sweep,
            other.walking,
        )
    }
}

/// What a conversation's listing said at the last step that read it, and how far its
/// messages are stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    /// The listing's own summary (activity, unread state, status, last message); `None`
    /// when only a targeted sync has read it.
    pub listing: Option<String>,
    /// The newest message time stored for it (capped at the read's start).
    pub last_message_at: Option<DateTime<Utc>>,
    /// The stored version (0: none); a commit changes the mark only on this version.
    pub version: u64,
    /// When it was last committed.
    pub synced_at: Option<DateTime<Utc>>,
}

/// What changed; written as [`Event::as_str`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A message not stored before.
    NewMessage,
    /// A stored message whose text, attachments, status or read state changed.
    UpdatedMessage,
    /// A conversation not stored before.
    NewConversation,
    /// A stored conversation whose listing changed.
    UpdatedConversation,
    /// An element that does not decode, seen for the first time.
    Malformed,
}

impl Event {
    /// `new_message`, `updated_message`, `new_conversation`, `updated_conversation` or
    /// `malformed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::NewMessage => "new_message",
            Event::UpdatedMessage => "updated_message",
            Event::NewConversation => "new_conversation",
            Event::UpdatedConversation => "updated_conversation",
            Event::Malformed => "malformed",
        }
    }
}

/// One change, as stored.
///
/// Its `serde` form is the line `inbox sync --json` prints: the conversation or message
/// in [its JSON form](crate#json) with `event`, or the malformed element's `event`
/// (`malformed`), `marketplace`, `account`, `conversation`, `listing`, `error`, `raw`.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A conversation, new or updated.
    Conversation(Event, Conversation),
    /// A message, new or updated.
    Message(Event, Message),
    /// An element that does not decode (reported once).
    Malformed(Malformed),
}

impl Change {
    /// What happened.
    pub fn event(&self) -> Event {
        match self {
            Change::Conversation(e, _) | Change::Message(e, _) => *e,
            Change::Malformed(_) => Event::Malformed,
        }
    }

    /// The conversation it concerns, when known (a malformed conversation has none).
    pub fn reference(&self) -> Option<&ConversationRef> {
        match self {
            Change::Conversation(_, c) => Some(&c.reference),
            Change::Message(_, m) => Some(&m.conversation),
            Change::Malformed(m) => m.conversation.as_ref(),
        }
    }
}

/// A conversation a step could not read (its error after retries), or whose mark
/// another runner changed while the step read it; it is read again next step.
#[derive(Debug)]
pub struct Skipped {
    /// The conversation.
    pub conversation: ConversationRef,
    /// Why.
    pub error: Error,
}

/// What a step did: what it committed, in chunks.
#[derive(Debug)]
#[non_exhaustive]
pub struct Synced {
    /// What changed, in the order found (as stored). Only [`sync_account`], [`sync`] and
    /// [`sync_conversation`] collect them; the `_with` forms hand each chunk's changes
    /// on instead and leave this empty.
    pub changes: Vec<Change>,
    /// Conversations left for the next step.
    pub skipped: Vec<Skipped>,
    /// How many commits the step made (0: it found nothing to store).
    pub commits: usize,
    /// The error that stopped the step after it had committed `commits` chunks (the
    /// next step resumes from them). `None` when the step ran to its end.
    pub stopped: Option<Error>,
}

impl Synced {
    /// Whether the step ran to its end.
    pub fn finished(&self) -> bool {
        self.stopped.is_none()
    }
}

/// A commit that would store nothing new (a quiet step): it is not sent to the store.
fn writes_nothing(commit: &Commit) -> bool {
    commit.changes.is_empty()
        && commit.marks.is_empty()
        && commit.rescans.is_empty()
        && commit.checkpoint.is_none()
}

/// One step for one account, committed in chunks, collecting every change it stores
/// into [`Synced::changes`] (memory grows with what the step finds: a first import of a
/// big account is better handed on chunk by chunk with [`sync_account_with`]).
pub async fn sync_account(account: &Account, store: &dyn Store) -> Result<Synced, Error> {
    let mut found = Vec::new();
    let mut collect = |changes: &[Change]| {
        found.extend_from_slice(changes);
        Ok(())
    };
    let mut synced = sync_account_with(account, store, &mut collect).await?;
    synced.changes = found;
    Ok(synced)
}

/// One step for one account: it lists what may have changed since the store's
/// checkpoint, reads what did, and commits a chunk whenever it holds
/// [`CHUNK_CONVERSATIONS`] conversations or [`CHUNK_MESSAGES`] changes, running
/// `hand_on` with each chunk's changes inside that chunk's commit. Memory is bounded by
/// a chunk; a step stopped at any moment resumes, at the next step, after its last
/// committed chunk (no conversation committed is read again, unless it changed).
///
/// An error before anything was committed is returned as `Err`; one after is
/// [`Synced::stopped`].
pub async fn sync_account_with(
    account: &Account,
    store: &dyn Store,
    hand_on: HandOn<'_>,
) -> Result<Synced, Error> {
    let name = account.name();
    let before = store.checkpoint(name).await?;
    let bad = store.malformed(name).await?;
    let started = Utc::now();
    let mut run = Run::new(account, store, before.clone(), bad, started, Some(hand_on));
    let mut failed = None;
    for walk in account.sync_walks(&before, started) {
        if let Err(e) = run.walk(walk).await {
            failed = Some(e);
            break;
        }
    }
    let result = match failed {
        None => run.finish().await,
        Some(e) => Err(e),
    };
    run.outcome(result)
}

/// One stored step for every account of the inbox, `at_once` accounts at a time (each
/// paced by its own limiter), collecting their changes; one slow or failing account
/// delays no other. Results come as each account finishes; an account that fails keeps
/// what the others stored.
pub async fn sync(inbox: &Inbox, store: &dyn Store, at_once: usize) -> Vec<Tagged<Synced>> {
    futures::stream::iter(inbox.accounts())
        .map(|account| async move {
            Tagged {
                account: account.name().to_string(),
                item: sync_account(account, store).await,
            }
        })
        .buffer_unordered(at_once.max(1))
        .collect()
        .await
}

/// Reads and stores one conversation's new and changed messages from its mark, with the
/// same dedup, events and compare-and-set (on the conversation's mark) as a step: a step
/// and a targeted sync of one conversation never both store a message. The account's
/// checkpoint is left alone. A lost compare-and-set is [`StoreErrorKind::Conflict`].
pub async fn sync_conversation(
    account: &Account,
    store: &dyn Store,
    conversation: &ConversationRef,
) -> Result<Synced, Error> {
    let mut found = Vec::new();
    let mut collect = |changes: &[Change]| {
        found.extend_from_slice(changes);
        Ok(())
    };
    let mut synced = sync_conversation_with(account, store, conversation, &mut collect).await?;
    synced.changes = found;
    Ok(synced)
}

/// [`sync_conversation`], running `hand_on` with its changes inside its commit.
pub async fn sync_conversation_with(
    account: &Account,
    store: &dyn Store,
    conversation: &ConversationRef,
    hand_on: HandOn<'_>,
) -> Result<Synced, Error> {
    account.check(conversation)?;
    let name = account.name();
    let started = Utc::now();
    let id = conversation.id.clone();
    let known = store.marks(name, vec![id.clone()]).await?.remove(&id);
    let bad = store.malformed(name).await?;
    let mut run = Run::new(
        account,
        store,
        Checkpoint::default(),
        bad,
        started,
        Some(hand_on),
    );
    let reference = account.reference(id);
    let read = read_messages(
        account,
        store,
        &reference,
        known.as_ref(),
        &run.bad_conversations,
    )
    .await?;
    let expected = known.as_ref().map_or(0, |m| m.version);
    let mut mark = known.unwrap_or_default();
    let before = mark.last_message_at;
    let found = run.take(&reference, read, &mut mark.last_message_at);
    if found || mark.last_message_at != before || !run.rescans.is_empty() {
        run.marks.push(MarkChange {
            reference: reference.clone(),
            expected,
            mark,
        });
    }
    let commit = run.chunk(None);
    let commit = run.commit(commit).await?;
    if let Some(lost) = commit.conflicts.first() {
        return Err(StoreError::synced_since(lost).into());
    }
    run.outcome(Ok(()))
}

/// A conversation's last activity and creation, by which the checkpoint is held back
/// when it is left for the next step.
type Held = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A step under way: the checkpoint as it becomes (it starts as the stored one; a step
/// visits each conversation once), what it found since its last committed chunk, and
/// what it committed.
struct Run<'a, 'h> {
    account: &'a Account,
    store: &'a dyn Store,
    hand_on: Option<HandOn<'h>>,
    /// The checkpoint stored when the step began.
    before: Checkpoint,
    after: Checkpoint,
    started: DateTime<Utc>,
    /// When the walk began (an unfinished walk resumed: when it first began).
    walk_started: DateTime<Utc>,
    /// The version of the checkpoint now stored.
    version: u64,
    changes: Vec<Change>,
    marks: Vec<MarkChange>,
    rescans: Vec<store::Rescan>,
    /// The activity and creation of each conversation of the chunk under way.
    pending: HashMap<String, Held>,
    skipped: Vec<Skipped>,
    commits: usize,
    /// Malformed elements stored or found in this step.
    bad: HashSet<MalformedKey>,
    /// Conversations holding stored malformed messages.
    bad_conversations: Arc<HashSet<String>>,
    visited: HashSet<String>,
    /// The earliest activity and creation of a conversation that could not be read.
    held_activity: Option<DateTime<Utc>>,
    held_created: Option<DateTime<Utc>>,
}

impl<'a, 'h> Run<'a, 'h> {
    fn new(
        account: &'a Account,
        store: &'a dyn Store,
        after: Checkpoint,
        bad: HashSet<MalformedKey>,
        started: DateTime<Utc>,
        hand_on: Option<HandOn<'h>>,
    ) -> Self {
        let bad_conversations = Arc::new(
            bad.iter()
                .filter(|k| !k.conversation.is_empty())
                .map(|k| k.conversation.clone())
                .collect(),
        );
        Run {
            account,
            store,
            hand_on,
            walk_started: after.walking.unwrap_or(started).min(started),
            version: after.version,
            before: after.clone(),
            after,
            started,
            changes: Vec::new(),
            marks: Vec::new(),
            rescans: Vec::new(),
            pending: HashMap::new(),
            skipped: Vec::new(),
            commits: 0,
            bad,
            bad_conversations,
            visited: HashSet::new(),
            held_activity: None,
            held_created: None,
        }
    }

    /// Walks one listing: plans each page's conversations (one mark lookup a page) and
    /// reads those that changed, several at once, taking them in listing order and
    /// committing a chunk whenever one is full.
    async fn walk(&mut self, walk: Walk) -> Result<(), Error> {
        let account = self.account;
        let store = self.store;
        // A walk that may stop mid-page requests no page ahead: it would be wasted.
        let mut pages = account
            .conversation_pages(walk.query.clone(), walk.stop_before.is_none())
            .pages();
        let mut pending: VecDeque<Visit> = VecDeque::new();
        let mut reads = FuturesOrdered::new();
        // The mark lookup of the page being planned (its conversations, whether the walk
        // stops there, and the lookup), polled with the reads.
        let mut marking: Option<Marking<'_>> = None;
        let mut listed = true;
        let mut seen_bad = HashSet::new();
        let skipped_before = self.skipped.len();
        let at_once = account.concurrency().max(1);
        loop {
            // A full chunk is committed while reads go on: those under way are polled
            // with the commit (a read holding the store's connection, in a pool of one,
            // must be able to give it back) and planned ones start as others end, so the
            // vendor's rate is not left unused; what they read goes into the next chunk.
            // A mark lookup under way is waited for first: its answer plans the page.
            if self.full() && marking.is_none() {
                let mut read_meanwhile = Vec::new();
                {
                    let flush = self.flush();
                    tokio::pin!(flush);
                    loop {
                        tokio::select! {
                            biased;
                            flushed = &mut flush => {
                                flushed?;
                                break;
                            }
                            Some(read) = reads.next(), if !reads.is_empty() => read_meanwhile.push(read),
                        }
                    }
                }
                for read in read_meanwhile {
                    self.apply(read);
                }
            }
            while !self.full() && reads.len() < at_once {
                let Some(visit) = pending.pop_front() else {
                    break;
                };
                reads.push_back(visit.read(account, store, self.bad_conversations.clone()));
            }
            if !listed && reads.is_empty() && marking.is_none() && pending.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some(read) = reads.next(), if !reads.is_empty() => self.apply(read),
                marks = async {
                    match marking.as_mut() {
                        Some(m) => (&mut m.lookup).await,
                        None => std::future::pending().await,
                    }
                }, if marking.is_some() => {
                    let Some(Marking { conversations, stop, .. }) = marking.take() else {
                        continue;
                    };
                    pending.extend(self.visits(&walk, conversations, marks?));
                    listed = !stop;
                }
                page = pages.next(), if listed && marking.is_none() && pending.is_empty() && reads.len() < at_once && !self.full() => match page {
                    None => listed = false,
                    Some(Err(e)) => return Err(e),
                    Some(Ok(page)) => {
                        let (conversations, stop) = self.listed(&walk, page.items, &mut seen_bad)?;
                        if conversations.is_empty() {
                            listed = !stop;
                        } else {
                            let ids = conversations.iter().map(|c| c.reference.id.clone()).collect();
                            marking = Some(Marking {
                                conversations,
                                stop,
                                lookup: store.marks(account.name(), ids),
                            });
                        }
                    }
                },
                else => break,
            }
        }
        if walk.sweep && self.skipped.len() == skipped_before {
            self.after.last_sweep = Some(self.started);
            let stored = self.bad.iter().any(|k| k.conversation.is_empty());
            if stored || !seen_bad.is_empty() {
                self.rescans.push(store::Rescan {
                    conversation: String::new(),
                    seen: seen_bad,
                });
            }
        }
        Ok(())
    }

    /// Whether the chunk under way is full.
    fn full(&self) -> bool {
        self.marks.len() >= CHUNK_CONVERSATIONS || self.changes.len() >= CHUNK_MESSAGES
    }

    /// Commits the chunk under way with the checkpoint as it stood before the step (so
    /// that a step stopped later walks again), marked as walking.
    async fn flush(&mut self) -> Result<(), Error> {
        let checkpoint = Checkpoint {
            version: self.version,
            walking: Some(self.walk_started),
            ..self.before.clone()
        };
        let commit = self.chunk(Some(checkpoint));
        self.commit(commit).await?;
        Ok(())
    }

    /// The chunk under way, taken out of the run.
    fn chunk(&mut self, checkpoint: Option<Checkpoint>) -> Commit {
        Commit {
            account: self.account.name().to_string(),
            account_id: self.account.stored_id().map(str::to_string),
            marketplace: self.account.marketplace(),
            at: self.started,
            checkpoint,
            marks: std::mem::take(&mut self.marks),
            changes: std::mem::take(&mut self.changes),
            rescans: std::mem::take(&mut self.rescans),
            conflicts: Vec::new(),
        }
    }

    /// Stores a chunk (nothing when it holds nothing); conversations whose marks another
    /// runner changed are left for the next step.
    async fn commit(&mut self, commit: Commit) -> Result<Commit, Error> {
        let chunk = std::mem::take(&mut self.pending);
        if writes_nothing(&commit) {
            return Ok(commit);
        }
        let wrote_checkpoint = commit.checkpoint.is_some();
        let hand_on = self.hand_on.as_mut().map(|h| &mut **h as HandOn<'_>);
        let commit = self.store.commit(commit, hand_on).await?;
        self.commits += 1;
        if wrote_checkpoint {
            self.version += 1;
        }
        for lost in &commit.conflicts {
            if let Some((activity, created)) = chunk.get(&lost.id) {
                self.held_activity = min_some(self.held_activity, *activity);
                self.held_created = min_some(self.held_created, *created);
            }
            self.skipped.push(Skipped {
                conversation: lost.clone(),
                error: StoreError::synced_since(lost).into(),
            });
        }
        Ok(commit)
    }

    /// The conversations one page of a listing gives to plan (malformed ones recorded,
    /// those already visited by this step left out), and whether the walk stops there.
    fn listed(
        &mut self,
        walk: &Walk,
        items: Vec<Result<Conversation, Error>>,
        seen_bad: &mut HashSet<String>,
    ) -> Result<(Vec<Conversation>, bool), Error> {
        let mut listed = Vec::new();
        let mut stop = false;
        for item in items {
            let conversation = match item {
                Ok(c) => c,
                Err(e) => {
                    let Some(raw) = e.malformed_raw().map(|r| r.to_string()) else {
                        return Err(e);
                    };
                    seen_bad.insert(raw.clone());
                    self.malformed(None, Listed::Conversations, &e, raw);
                    continue;
                }
            };
            if let Some(created) = conversation.created_at {
                // Newest first: past the newest creation already seen, the rest is known.
                if walk.stop_before.is_some_and(|at| created < at) {
                    stop = true;
                    break;
                }
                self.after.newest_created = self
                    .after
                    .newest_created
                    .max(Some(created.min(self.started)));
            }
            // Listed by two walks of one step: read once.
            if self.visited.insert(conversation.reference.id.clone()) {
                listed.push(conversation);
            }
        }
        Ok((listed, stop))
    }

    /// The visits listed conversations ask for, given their stored marks.
    fn visits(
        &self,
        walk: &Walk,
        listed: Vec<Conversation>,
        mut marks: HashMap<String, Mark>,
    ) -> Vec<Visit> {
        let walk_started = self.walk_started;
        listed
            .into_iter()
            .filter_map(|conversation| {
                let known = marks.remove(&conversation.reference.id);
                let listing = self.account.sync_summary(&conversation);
                let unchanged = known
                    .as_ref()
                    .is_some_and(|m| m.listing.as_deref() == Some(listing.as_str()));
                // Read again unless a chunk of this very walk already did.
                let reread = walk.reread
                    && known
                        .as_ref()
                        .and_then(|m| m.synced_at)
                        .is_none_or(|at| at < walk_started);
                let retry =
                    walk.sweep && self.bad_conversations.contains(&conversation.reference.id);
                (!unchanged || reread || retry).then_some(Visit {
                    conversation,
                    listing,
                    known,
                    unchanged,
                })
            })
            .collect()
    }

    /// Records a malformed element; reported when not stored before.
    fn malformed(
        &mut self,
        conversation: Option<&ConversationRef>,
        listed: Listed,
        error: &Error,
        raw: String,
    ) {
        let bad = Malformed {
            marketplace: self.account.marketplace(),
            account: self.account.name().to_string(),
            conversation: conversation.cloned(),
            listed,
            error: error.to_string(),
            raw,
        };
        if self.bad.insert(bad.key()) {
            self.changes.push(Change::Malformed(bad));
        }
    }

    /// Takes one conversation's read messages into the step; `newest` advances to the
    /// newest message time (capped at the start). True when anything new was found.
    fn take(
        &mut self,
        reference: &ConversationRef,
        read: Read,
        newest: &mut Option<DateTime<Utc>>,
    ) -> bool {
        let found = self.changes.len();
        let Read {
            messages,
            states,
            malformed,
            whole,
        } = read;
        for message in messages {
            *newest = (*newest).max(Some(message.created_at.min(self.started)));
            match states.get(&message.id) {
                None => self
                    .changes
                    .push(Change::Message(Event::NewMessage, message)),
                Some(stored) if state_changed(&stored.state, &message_state(&message)) => self
                    .changes
                    .push(Change::Message(Event::UpdatedMessage, message)),
                Some(_) => {}
            }
        }
        let mut seen = HashSet::new();
        for (error, raw) in malformed {
            seen.insert(raw.clone());
            self.malformed(Some(reference), Listed::Messages, &error, raw);
        }
        if whole && (self.bad_conversations.contains(&reference.id) || !seen.is_empty()) {
            self.rescans.push(store::Rescan {
                conversation: reference.id.clone(),
                seen,
            });
        }
        self.changes.len() > found
    }

    /// Takes what a visit read into the step: the conversation, then its new and
    /// changed messages, and its new mark; or, when the read failed, leaves it for the
    /// next step.
    fn apply(&mut self, read: Result<(Visit, Read), (Visit, Error)>) {
        let (visit, read) = match read {
            Ok(done) => done,
            Err((visit, error)) => {
                let c = &visit.conversation;
                self.held_activity = min_some(self.held_activity, c.last_activity_at);
                self.held_created = min_some(self.held_created, c.created_at);
                self.skipped.push(Skipped {
                    conversation: c.reference.clone(),
                    error,
                });
                return;
            }
        };
        let Visit {
            conversation,
            listing,
            known,
            unchanged,
        } = visit;
        if let Some(at) = conversation.last_activity_at {
            self.after.watermark = self.after.watermark.max(Some(at.min(self.started)));
        }
        let found = self.changes.len();
        let before = known.as_ref().and_then(|m| m.last_message_at);
        let mut newest = before;
        let news = self.take(&conversation.reference, read, &mut newest);
        if unchanged && !news && newest == before {
            return;
        }
        let event = match &known {
            Some(m) if m.listing.is_some() => Event::UpdatedConversation,
            _ => Event::NewConversation,
        };
        self.pending.insert(
            conversation.reference.id.clone(),
            (conversation.last_activity_at, conversation.created_at),
        );
        self.marks.push(MarkChange {
            reference: conversation.reference.clone(),
            expected: known.as_ref().map_or(0, |m| m.version),
            mark: Mark {
                listing: Some(listing),
                last_message_at: newest,
                version: 0,
                synced_at: None,
            },
        });
        // The conversation before its messages.
        self.changes
            .insert(found, Change::Conversation(event, conversation));
    }

    /// Commits the last chunk with the step's checkpoint, held at or before anything
    /// left for the next step.
    async fn finish(&mut self) -> Result<(), Error> {
        let before = self.before.clone();
        if let Some(held) = self.held_activity {
            self.after.watermark = self.after.watermark.map(|w| w.min(held));
        }
        if let Some(held) = self.held_created {
            self.after.newest_created = self.after.newest_created.map(|c| c.min(held));
        }
        self.after.walking = None;
        let stored_before = Checkpoint {
            walking: if self.commits > 0 {
                Some(self.walk_started)
            } else {
                before.walking
            },
            ..before
        };
        // Marks and changes are stored only with the checkpoint's compare-and-set.
        let dirty = !self.after.same(&stored_before)
            || !self.changes.is_empty()
            || !self.marks.is_empty()
            || !self.rescans.is_empty();
        let checkpoint = dirty.then(|| Checkpoint {
            version: self.version,
            ..self.after.clone()
        });
        let commit = self.chunk(checkpoint);
        self.commit(commit).await?;
        Ok(())
    }

    /// What the step did, given how it ended: an error before any commit is the step's
    /// error; after one, the step stopped there.
    fn outcome(self, result: Result<(), Error>) -> Result<Synced, Error> {
        let stopped = match result {
            Ok(()) => None,
            Err(e) if self.commits == 0 => return Err(e),
            Err(e) => Some(e),
        };
        Ok(Synced {
            changes: Vec::new(),
            skipped: self.skipped,
            commits: self.commits,
            stopped,
        })
    }
}

fn min_some(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A page's conversations waiting for their stored marks.
struct Marking<'s> {
    conversations: Vec<Conversation>,
    /// Whether the walk stops after this page.
    stop: bool,
    lookup: futures::future::BoxFuture<'s, Result<HashMap<String, Mark>, StoreError>>,
}

/// A listed conversation to read: its listing changed since its mark (or it is read
/// again anyway).
#[derive(Debug)]
struct Visit {
    conversation: Conversation,
    listing: String,
    known: Option<Mark>,
    unchanged: bool,
}

impl Visit {
    async fn read(
        self,
        account: &Account,
        store: &dyn Store,
        bad_conversations: Arc<HashSet<String>>,
    ) -> Result<(Visit, Read), (Visit, Error)> {
        match read_messages(
            account,
            store,
            &self.conversation.reference,
            self.known.as_ref(),
            &bad_conversations,
        )
        .await
        {
            Ok(read) => Ok((self, read)),
            Err(e) => Err((self, e)),
        }
    }
}

/// One conversation's messages as read: the decoded ones, what is stored of those, and
/// the malformed ones (error, raw text).
struct Read {
    messages: Vec<Message>,
    states: HashMap<String, Stored>,
    malformed: Vec<(Error, String)>,
    /// Whether the conversation was read from its first message.
    whole: bool,
}

/// Reads a conversation's messages from its mark less the look-back window (whole when
/// it has no mark or holds malformed messages), and what is stored of those read.
async fn read_messages(
    account: &Account,
    store: &dyn Store,
    reference: &ConversationRef,
    known: Option<&Mark>,
    bad_conversations: &HashSet<String>,
) -> Result<Read, Error> {
    let since = known
        .and_then(|m| m.last_message_at)
        .filter(|_| !bad_conversations.contains(&reference.id))
        .map(plan::back);
    let mut query = MessageQuery::new();
    if let Some(at) = since {
        query = query.since(at);
    }
    let mut listing = account.messages(reference, query);
    let (mut messages, mut malformed) = (Vec::new(), Vec::new());
    while let Some(item) = listing.next().await {
        match item {
            Ok(m) => messages.push(m),
            Err(e) => match e.malformed_raw().map(|r| r.to_string()) {
                Some(raw) => malformed.push((e, raw)),
                None => return Err(e),
            },
        }
    }
    let ids = messages.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
    // A conversation with no stored mark has no stored message (every commit that stores
    // messages stores their conversation's mark): nothing to look up.
    let states = if ids.is_empty() || known.is_none() {
        HashMap::new()
    } else {
        store
            .message_states(account.name(), &reference.id, ids)
            .await?
    };
    Ok(Read {
        messages,
        states,
        malformed,
        whole: since.is_none(),
    })
}

/// What an update of a stored message is judged by: its status, read state, text and
/// attachments (by id, name, type, size and verdict: not by download URL, which some
/// vendors sign anew on every read), as `status|read|t:TEXT|a:ATTACHMENTS` with the last
/// two as FNV-1a digests.
pub fn message_state(m: &Message) -> String {
    let mut attachments = Fnv::new();
    for a in &m.attachments {
        for part in [&a.id, &a.name, &a.mime, &a.status] {
            attachments.write(part.as_deref().unwrap_or("\u{0}").as_bytes());
            attachments.write(b"\x1f");
        }
        attachments.write(&a.size.unwrap_or(u64::MAX).to_le_bytes());
        attachments.write(b"\x1e");
    }
    let mut text = Fnv::new();
    text.write(m.text.as_bytes());
    format!(
        "{}|{}|t:{:016x}|a:{:016x}",
        m.status.as_deref().unwrap_or("-"),
        m.read.map_or("-".to_string(), |r| r.to_string()),
        text.0,
        attachments.0
    )
}

/// Whether a message's state changed since `stored`. A state stored by schema version 3
/// (`status|read` only) is compared on those two.
pub(crate) fn state_changed(stored: &str, now: &str) -> bool {
    if stored.contains("|t:") {
        return stored != now;
    }
    let base = now.split_once("|t:").map_or(now, |(base, _)| base);
    stored != base
}

/// The 64-bit FNV-1a digest: stable across builds and platforms.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_tell_edits_and_read_version_3_states() {
        let now = "DELIVERED|true|t:00000000000000aa|a:00000000000000bb";
        assert!(!state_changed(now, now));
        assert!(state_changed(
            "DELIVERED|true|t:00000000000000ab|a:00000000000000bb",
            now
        ));
        assert!(!state_changed("DELIVERED|true", now), "v3: status and read");
        assert!(state_changed("DELIVERED|false", now));
        let mut a = Fnv::new();
        a.write(b"hello");
        assert_eq!(a.0, 0xa430_d846_80aa_bd0b, "FNV-1a of 'hello'");
    }
}
