//! Keeping a local mirror in step with the marketplaces: one [`step`] per account finds
//! what changed since the store's checkpoint, and the [`Store`] takes the changes, the
//! new checkpoint and the marks of the conversations read in one compare-and-set
//! transaction. [`sync`] runs a step for every account of an [`Inbox`] at once;
//! [`sync_conversation`] reads one conversation (what a push notification calls).
//!
//! Against the local sandbox (`inbox-sandbox`), twice on one store: the first pass
//! imports everything, the second finds nothing new. With real accounts the configuration
//! comes from `InboxConfig::from_file("accounts.json")` and the store from
//! `SqliteStore::open("mirror.db")`.
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
//! let store = SqliteStore::in_memory()?;
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
//!   steps that fail, are killed, or race another runner: a commit is one transaction and
//!   checks that the checkpoint (and each conversation's mark) is still the version the
//!   step started from, else nothing is written and the step fails with a conflict;
//! - a caller that hands changes on does so inside the commit ([`Step::commit_with`]):
//!   a step that loses a conflict hands nothing on, and a crash after handing on and
//!   before the commit is durable hands the same changes on again next time;
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
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::{FuturesOrdered, StreamExt};
use serde::{Deserialize, Serialize};

pub(crate) use plan::Walk;
pub(crate) use plan::{by_activity, by_unread, summary, vendor_field};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{
    Commit, HandOn, Listed, Malformed, MalformedKey, MarkChange, Rescan, Store, StoreError,
    StoreErrorKind,
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
}

impl Checkpoint {
    /// The same checkpoint, ignoring the version.
    fn same(&self, other: &Checkpoint) -> bool {
        (self.watermark, self.newest_created, self.last_sweep)
            == (other.watermark, other.newest_created, other.last_sweep)
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
}

/// What changed; written as [`Event::as_str`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A message not stored before.
    NewMessage,
    /// A stored message whose status or read state changed.
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

/// A conversation a step could not read (its error after retries); it is read again
/// next step.
#[derive(Debug)]
pub struct Skipped {
    /// The conversation.
    pub conversation: ConversationRef,
    /// Why.
    pub error: Error,
}

/// What a committed step did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Synced {
    /// What changed, in the order found (as stored).
    pub changes: Vec<Change>,
    /// Conversations left for the next step.
    pub skipped: Vec<Skipped>,
}

/// What one step found, not yet stored.
#[derive(Debug)]
pub struct Step {
    commit: Commit,
    skipped: Vec<Skipped>,
}

impl Step {
    /// What changed, in the order found.
    pub fn changes(&self) -> &[Change] {
        &self.commit.changes
    }

    /// Conversations the step could not read.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Stores the changes, the checkpoint and the marks, all or nothing
    /// ([`StoreErrorKind::Conflict`] when another runner committed first).
    pub async fn commit(self, store: &dyn Store) -> Result<Synced, Error> {
        self.commit_with(store, None).await
    }

    /// [`Step::commit`], running `hand_on` with the changes inside the commit: nothing is
    /// handed on by a step that loses a conflict, and what was handed on before a crash
    /// is found again by the next step.
    pub async fn commit_with(
        self,
        store: &dyn Store,
        hand_on: Option<HandOn>,
    ) -> Result<Synced, Error> {
        let Step { commit, skipped } = self;
        let commit = if writes_nothing(&commit) {
            store::hand_on(hand_on, &commit.changes)?;
            commit
        } else {
            store.commit(commit, hand_on).await?
        };
        Ok(Synced {
            changes: commit.changes,
            skipped,
        })
    }
}

/// A commit that would store nothing new (a quiet step): it is not sent to the store.
fn writes_nothing(commit: &Commit) -> bool {
    commit.changes.is_empty()
        && commit.marks.is_empty()
        && commit.rescans.is_empty()
        && commit.checkpoint.is_none()
}

/// One step for one account, stored: [`step`] then [`Step::commit`].
pub async fn sync_account(account: &Account, store: &dyn Store) -> Result<Synced, Error> {
    step(account, store).await?.commit(store).await
}

/// One stored step for every account of the inbox, `at_once` accounts at a time (each
/// paced by its own limiter); one slow or failing account delays no other. Results come
/// as each account finishes; an account that fails keeps what the others stored.
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

/// Reads and stores one conversation's new messages from its mark, with the same dedup,
/// events and compare-and-set (on the conversation's mark) as a step: a step and a
/// targeted sync of one conversation never both store a message. The account's
/// checkpoint is left alone.
pub async fn sync_conversation(
    account: &Account,
    store: &dyn Store,
    conversation: &ConversationRef,
) -> Result<Synced, Error> {
    conversation_step(account, store, conversation)
        .await?
        .commit(store)
        .await
}

/// What [`sync_conversation`] would store, not yet stored: commit it with
/// [`Step::commit_with`] to hand its changes on inside the commit.
pub async fn conversation_step(
    account: &Account,
    store: &dyn Store,
    conversation: &ConversationRef,
) -> Result<Step, Error> {
    account.check(conversation)?;
    let name = account.name();
    let started = Utc::now();
    let id = conversation.id.clone();
    let known = store.marks(name, vec![id.clone()]).await?.remove(&id);
    let bad = store.malformed(name).await?;
    let mut run = Run::new(account, Checkpoint::default(), bad, started);
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
            reference,
            expected,
            mark,
        });
    }
    let commit = Commit {
        account: name.to_string(),
        marketplace: account.marketplace(),
        at: started,
        checkpoint: None,
        marks: run.marks,
        changes: run.changes,
        rescans: run.rescans,
    };
    Ok(Step {
        commit,
        skipped: Vec::new(),
    })
}

/// Reads what changed for `account` since the store's checkpoint; nothing is stored until
/// the step is committed.
pub async fn step(account: &Account, store: &dyn Store) -> Result<Step, Error> {
    let name = account.name();
    let before = store.checkpoint(name).await?;
    let bad = store.malformed(name).await?;
    let started = Utc::now();
    let mut run = Run::new(account, before.clone(), bad, started);
    for walk in account.sync_walks(&before, started) {
        run.walk(store, walk).await?;
    }
    Ok(run.finish(before))
}

/// A step under way: the checkpoint as it becomes (it starts as the stored one; a step
/// visits each conversation once) and what it found.
struct Run<'a> {
    account: &'a Account,
    after: Checkpoint,
    started: DateTime<Utc>,
    changes: Vec<Change>,
    marks: Vec<MarkChange>,
    rescans: Vec<store::Rescan>,
    skipped: Vec<Skipped>,
    /// Malformed elements stored or found in this step.
    bad: HashSet<MalformedKey>,
    /// Conversations holding stored malformed messages.
    bad_conversations: Arc<HashSet<String>>,
    visited: HashSet<String>,
    /// The earliest activity and creation of a conversation that could not be read.
    held_activity: Option<DateTime<Utc>>,
    held_created: Option<DateTime<Utc>>,
}

impl<'a> Run<'a> {
    fn new(
        account: &'a Account,
        after: Checkpoint,
        bad: HashSet<MalformedKey>,
        started: DateTime<Utc>,
    ) -> Self {
        let bad_conversations = Arc::new(
            bad.iter()
                .filter(|k| !k.conversation.is_empty())
                .map(|k| k.conversation.clone())
                .collect(),
        );
        Run {
            account,
            after,
            started,
            changes: Vec::new(),
            marks: Vec::new(),
            rescans: Vec::new(),
            skipped: Vec::new(),
            bad,
            bad_conversations,
            visited: HashSet::new(),
            held_activity: None,
            held_created: None,
        }
    }

    /// Walks one listing: plans each page's conversations (one mark lookup a page) and
    /// reads those that changed, several at once, taking them in listing order.
    async fn walk(&mut self, store: &dyn Store, walk: Walk) -> Result<(), Error> {
        let account = self.account;
        // A walk that may stop mid-page requests no page ahead: it would be wasted.
        let mut pages = account
            .conversation_pages(walk.query.clone(), walk.stop_before.is_none())
            .pages();
        let mut pending: VecDeque<Visit> = VecDeque::new();
        let mut reads = FuturesOrdered::new();
        let mut listed = true;
        let mut seen_bad = HashSet::new();
        let skipped_before = self.skipped.len();
        let at_once = account.concurrency().max(1);
        loop {
            while reads.len() < at_once {
                let Some(visit) = pending.pop_front() else {
                    break;
                };
                reads.push_back(visit.read(account, store, self.bad_conversations.clone()));
            }
            if !listed && reads.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                Some(read) = reads.next(), if !reads.is_empty() => self.apply(read),
                page = pages.next(), if listed && pending.is_empty() && reads.len() < at_once => match page {
                    None => listed = false,
                    Some(Err(e)) => return Err(e),
                    Some(Ok(page)) => {
                        let (visits, stop) = self.plan(store, &walk, page.items, &mut seen_bad).await?;
                        pending.extend(visits);
                        listed = !stop;
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

    /// The visits one page of a listing asks for, and whether the walk stops there.
    async fn plan(
        &mut self,
        store: &dyn Store,
        walk: &Walk,
        items: Vec<Result<Conversation, Error>>,
        seen_bad: &mut HashSet<String>,
    ) -> Result<(Vec<Visit>, bool), Error> {
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
        if listed.is_empty() {
            return Ok((Vec::new(), stop));
        }
        let ids = listed.iter().map(|c| c.reference.id.clone()).collect();
        let mut marks = store.marks(self.account.name(), ids).await?;
        let visits = listed
            .into_iter()
            .filter_map(|conversation| {
                let known = marks.remove(&conversation.reference.id);
                let listing = self.account.sync_summary(&conversation);
                let unchanged = known
                    .as_ref()
                    .is_some_and(|m| m.listing.as_deref() == Some(listing.as_str()));
                let retry =
                    walk.sweep && self.bad_conversations.contains(&conversation.reference.id);
                (!unchanged || walk.reread || retry).then_some(Visit {
                    conversation,
                    listing,
                    known,
                    unchanged,
                })
            })
            .collect();
        Ok((visits, stop))
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
                Some(state) if *state != message_state(&message) => self
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
        self.marks.push(MarkChange {
            reference: conversation.reference.clone(),
            expected: known.as_ref().map_or(0, |m| m.version),
            mark: Mark {
                listing: Some(listing),
                last_message_at: newest,
                version: 0,
            },
        });
        // The conversation before its messages.
        self.changes
            .insert(found, Change::Conversation(event, conversation));
    }

    /// The step, its checkpoint held at or before anything left for the next step.
    fn finish(mut self, before: Checkpoint) -> Step {
        if let Some(held) = self.held_activity {
            self.after.watermark = self.after.watermark.map(|w| w.min(held));
        }
        if let Some(held) = self.held_created {
            self.after.newest_created = self.after.newest_created.map(|c| c.min(held));
        }
        // Marks and changes are stored only with the checkpoint's compare-and-set.
        let dirty = !self.after.same(&before)
            || !self.changes.is_empty()
            || !self.marks.is_empty()
            || !self.rescans.is_empty();
        let checkpoint = dirty.then_some(Checkpoint {
            version: before.version,
            ..self.after
        });
        Step {
            commit: Commit {
                account: self.account.name().to_string(),
                marketplace: self.account.marketplace(),
                at: self.started,
                checkpoint,
                marks: self.marks,
                changes: self.changes,
                rescans: self.rescans,
            },
            skipped: self.skipped,
        }
    }
}

fn min_some(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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

/// One conversation's messages as read: the decoded ones, the stored states of those,
/// and the malformed ones (error, raw text).
struct Read {
    messages: Vec<Message>,
    states: HashMap<String, String>,
    malformed: Vec<(Error, String)>,
    /// Whether the conversation was read from its first message.
    whole: bool,
}

/// Reads a conversation's messages from its mark less the look-back window (whole when
/// it has no mark or holds malformed messages), and the stored states of those read.
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
    let states = if ids.is_empty() {
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

/// What an update of a stored message is judged by: its status and read state.
pub fn message_state(m: &Message) -> String {
    format!(
        "{}|{}",
        m.status.as_deref().unwrap_or("-"),
        m.read.map_or("-".to_string(), |r| r.to_string())
    )
}
