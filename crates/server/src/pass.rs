//! Sync passes: one account's step ([`account_pass`]), one conversation's
//! ([`conversation_pass`]), and a pass over every account ([`pass`]), each committed in
//! chunks whose changes go to a [`Sink`] inside their commit.

use anyhow::anyhow;
use futures::StreamExt;
use marketplace_inbox::sync::{self, Change, Store, Synced};
use marketplace_inbox::{Account, ConversationRef, Error, Inbox};

use crate::sink::Sink;
use crate::text::{account_failure, describe, one_line, MAX_LINE};

/// What one account's step did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    /// Every chunk committed and the step ran to its end.
    pub committed: bool,
    /// It failed for a reason that may pass (an outage, a rate limit, a conflict).
    pub retryable: bool,
    /// It failed because the account must be authorised again.
    pub reauthorize: bool,
    /// It failed because the store did (not the account's doing: no backoff).
    pub store_failed: bool,
    /// New or updated messages handed on.
    pub messages: usize,
    /// New or updated conversations handed on.
    pub conversations: usize,
    /// Malformed elements kept raw.
    pub malformed: usize,
    /// Conversations left for the next step (a conflicting mark, an error of their own).
    pub skipped: usize,
}

/// What a pass over every account did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pass {
    /// Accounts whose step failed or was not committed.
    pub failed: usize,
    /// Accounts stepped.
    pub accounts: usize,
    /// Messages handed on.
    pub messages: usize,
    /// Conversations handed on.
    pub conversations: usize,
    /// Malformed elements kept raw.
    pub malformed: usize,
    /// Conversations left for the next pass.
    pub skipped: usize,
}

impl Pass {
    /// The one-line summary.
    pub fn summary(&self) -> String {
        format!(
            "inbox: synced {} of {} accounts: {} new or updated messages, {} conversations, {} malformed elements, {} conversations left for the next pass",
            self.accounts.saturating_sub(self.failed),
            self.accounts,
            self.messages,
            self.conversations,
            self.malformed,
            self.skipped
        )
    }
}

/// One step of every account, `at_once` accounts at a time.
pub async fn pass(inbox: &Inbox, store: &dyn Store, sink: &dyn Sink, at_once: usize) -> Pass {
    let outcomes: Vec<Outcome> = futures::stream::iter(inbox.accounts())
        .map(|account| account_pass(inbox, account, store, sink))
        .buffer_unordered(at_once.max(1))
        .collect()
        .await;
    let mut total = Pass::default();
    for o in outcomes {
        total.accounts = total.accounts.saturating_add(1);
        total.failed = total.failed.saturating_add(usize::from(!o.committed));
        total.messages = total.messages.saturating_add(o.messages);
        total.conversations = total.conversations.saturating_add(o.conversations);
        total.malformed = total.malformed.saturating_add(o.malformed);
        total.skipped = total.skipped.saturating_add(o.skipped);
    }
    total
}

/// One step of `account`: its changes handed to `sink` inside each chunk's commit.
pub async fn account_pass(
    inbox: &Inbox,
    account: &Account,
    store: &dyn Store,
    sink: &dyn Sink,
) -> Outcome {
    let mut counter = Counter::new(inbox, account.name(), sink);
    let synced =
        sync::sync_account_with(account, store, &mut |c: &[Change]| counter.hand_on(c)).await;
    counter.finish(synced)
}

/// Reads one conversation of `account` again: its changes handed to `sink` inside the
/// commit. The vendor's error when the conversation could not be read.
pub async fn conversation_pass(
    inbox: &Inbox,
    account: &Account,
    store: &dyn Store,
    sink: &dyn Sink,
    reference: &ConversationRef,
) -> Result<Outcome, Error> {
    let mut counter = Counter::new(inbox, account.name(), sink);
    let synced = sync::sync_conversation_with(account, store, reference, &mut |c: &[Change]| {
        counter.hand_on(c)
    })
    .await;
    match synced {
        Err(e) if !matches!(e, Error::Store(_)) => Err(e),
        synced => Ok(counter.finish(synced)),
    }
}

/// Hands each chunk to the sink, notes its malformed elements, and counts.
struct Counter<'a> {
    inbox: &'a Inbox,
    name: &'a str,
    sink: &'a dyn Sink,
    outcome: Outcome,
}

impl<'a> Counter<'a> {
    fn new(inbox: &'a Inbox, name: &'a str, sink: &'a dyn Sink) -> Self {
        Counter {
            inbox,
            name,
            sink,
            outcome: Outcome::default(),
        }
    }

    fn hand_on(&mut self, changes: &[Change]) -> std::io::Result<()> {
        self.sink.changes(self.inbox, self.name, changes)?;
        let mut notes = Vec::new();
        for change in changes {
            let o = &mut self.outcome;
            match change {
                Change::Message(..) => o.messages = o.messages.saturating_add(1),
                Change::Conversation(..) => o.conversations = o.conversations.saturating_add(1),
                Change::Malformed(bad) => {
                    o.malformed = o.malformed.saturating_add(1);
                    notes.push(one_line(
                        &format!(
                            "inbox: {}: {}: malformed element in the {} listing{}, kept raw in the store: {}",
                            self.name,
                            bad.marketplace,
                            bad.listed,
                            bad.conversation
                                .as_ref()
                                .map(|c| format!(" of {}", self.inbox.display_ref(c)))
                                .unwrap_or_default(),
                            bad.error
                        ),
                        MAX_LINE,
                    ));
                }
            }
        }
        for n in &notes {
            self.sink.note(n);
        }
        Ok(())
    }

    fn failed(&mut self, e: Error) {
        self.outcome.retryable = e.is_retryable();
        self.outcome.reauthorize = matches!(e, Error::Reauthorize { .. });
        self.outcome.store_failed = matches!(e, Error::Store(_));
        self.sink.note(&account_failure(self.name, e));
    }

    fn finish(mut self, synced: Result<Synced, Error>) -> Outcome {
        match synced {
            Ok(synced) => {
                for s in &synced.skipped {
                    let line = describe(&anyhow!("{}", s.error));
                    self.sink.note(&format!(
                        "inbox: {}: {}: {line} — left for the next pass",
                        self.name,
                        self.inbox.display_ref(&s.conversation)
                    ));
                }
                self.outcome.skipped = synced.skipped.len();
                match synced.stopped {
                    None => self.outcome.committed = true,
                    Some(e) => self.failed(e),
                }
            }
            Err(e) => self.failed(e),
        }
        self.outcome
    }
}
