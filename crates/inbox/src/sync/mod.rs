//! Keeping a local mirror in step with the marketplaces: one [`sync_account`] step per
//! account finds what changed since the store's checkpoint, and the [`Store`] takes the
//! changes and the new checkpoint in one transaction.
//!
//! A step is stateless apart from what the store holds, so any scheduler can run it. It
//! lists the account's conversations (Allegro and Magalu only those active since the last
//! step, less a look-back window; Mercado Libre and Ozon all of them), reads the messages of
//! the conversations whose listing changed (their last activity, unread state, status or
//! last message), from their last known message less the look-back window, and keeps every
//! message once: dedup is by (account, conversation, message id). Several conversations
//! are read at once ([`Account::concurrency`]) and taken into the step in listing order,
//! so a step finds the same changes in the same order at any concurrency. The look-back window
//! ([`LOOK_BACK`]) catches messages that appear late with an earlier timestamp (moderation).
//!
//! Delivery: every message reaches the store exactly once across any number of steps,
//! including steps that fail or are killed (a step's writes are one transaction). A
//! caller that hands changes on (prints them) does so between [`step`] and
//! [`Step::commit`]: a crash after handing on and before committing hands them on again
//! next time (at-least-once; ids are stable), and clean runs hand each on exactly once.

#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::stream::{FuturesOrdered, StreamExt};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use store::{Store, StoreError};

use crate::listing::{ConversationQuery, MessageQuery};
use crate::{Account, Conversation, ConversationStatus, Error, Inbox, Message, Unread};

/// How far before the last known instant a step looks again, for messages that appear
/// late with an earlier timestamp (Mercado Libre moderation takes up to an hour).
pub const LOOK_BACK: chrono::Duration = chrono::Duration::hours(1);

/// How often a step lists every conversation of a marketplace whose listing has neither
/// an order nor a date filter to rely on (Mercado Libre, Ozon); between sweeps it reads
/// only what its fast paths show.
pub const SWEEP_EVERY: chrono::Duration = chrono::Duration::hours(24);

/// What a step remembers of an account between steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The newest conversation activity seen.
    pub watermark: Option<DateTime<Utc>>,
    /// The newest conversation creation seen (Mercado Libre: its newest order).
    #[serde(default)]
    pub newest_created: Option<DateTime<Utc>>,
    /// When every conversation was last listed.
    #[serde(default)]
    pub last_sweep: Option<DateTime<Utc>>,
    /// Per conversation id: what its listing looked like, to tell it changed.
    pub marks: BTreeMap<String, Mark>,
}

/// What a conversation's listing said at the last step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The listing's own summary (activity, unread state, status, last message id).
    pub listing: String,
    /// The newest message time stored for it.
    pub last_message_at: Option<DateTime<Utc>>,
}

/// What changed.
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
}

/// One change, as stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A conversation, new or updated.
    Conversation(Event, Conversation),
    /// A message, new or updated.
    Message(Event, Message),
}

/// What one step found, not yet stored.
#[derive(Debug)]
pub struct Step {
    account: String,
    checkpoint: Checkpoint,
    /// What changed, in the order found.
    pub changes: Vec<Change>,
}

impl Step {
    /// Stores the changes and the new checkpoint, all or nothing.
    pub fn commit(self, store: &dyn Store) -> Result<Vec<Change>, Error> {
        store
            .commit(&self.account, &self.checkpoint, &self.changes)
            .map_err(Error::from)?;
        Ok(self.changes)
    }
}

/// One step for one account, stored: [`step`] then [`Step::commit`].
pub async fn sync_account(account: &Account, store: &dyn Store) -> Result<Vec<Change>, Error> {
    step(account, store).await?.commit(store)
}

/// Reads what changed for `account` since the store's checkpoint; nothing is stored until
/// the step is committed.
pub async fn step(account: &Account, store: &dyn Store) -> Result<Step, Error> {
    let name = account.name();
    let before = store.checkpoint(name).map_err(Error::from)?;
    let started = Utc::now();
    let walks = listings(account.marketplace(), &before, started);
    let mut p = Progress {
        after: before,
        changes: Vec::new(),
        started,
    };
    let mut visited = std::collections::HashSet::new();
    for listing in walks {
        if listing.sweep {
            p.after.last_sweep = Some(p.started);
        }
        // A walk that may stop mid-page requests no page ahead: it would be wasted.
        let mut conversations = match listing.stop_before {
            Some(_) => account.conversations_ahead(listing.query, 0),
            None => account.conversations(listing.query),
        };
        // Several conversations' messages are read at once (while the listing goes on);
        // they are taken into the step in listing order.
        let mut reads = FuturesOrdered::new();
        let mut listed = true;
        while listed || !reads.is_empty() {
            let room = listed && reads.len() < account.concurrency().max(1);
            tokio::select! {
                biased;
                Some(read) = reads.next(), if !reads.is_empty() => {
                    let (visit, messages): (Visit, Vec<Message>) = read?;
                    visit.apply(account.name(), store, &mut p, messages)?;
                }
                listing_next = conversations.try_next(), if room => {
                    let Some(conversation) = listing_next? else {
                        listed = false;
                        continue;
                    };
                    if let Some(created) = conversation.created_at {
                        // Newest first: past the newest creation already seen, the rest
                        // is known.
                        if listing.stop_before.is_some_and(|at| created < at) {
                            listed = false;
                            continue;
                        }
                        // Capped at the step's start: a time from the future must not
                        // hide what comes before it.
                        p.after.newest_created =
                            p.after.newest_created.max(Some(created.min(p.started)));
                    }
                    // Listed by two walks of one step: read once.
                    if !visited.insert(conversation.reference.id.clone()) {
                        continue;
                    }
                    if let Some(visit) = Visit::plan(&p.after, conversation, listing.reread) {
                        reads.push_back(visit.read(account.clone()));
                    }
                }
                // Not reached: with the listing open and no room, reads are waiting.
                else => break,
            }
        }
    }
    Ok(Step {
        account: name.to_string(),
        checkpoint: p.after,
        changes: p.changes,
    })
}

/// A step under way: the checkpoint as it becomes (it starts as the stored one; a
/// step visits each conversation once), and the changes found.
struct Progress {
    after: Checkpoint,
    changes: Vec<Change>,
    started: DateTime<Utc>,
}

/// One listing a step walks.
struct Walk {
    query: ConversationQuery,
    /// Stop at the first conversation created before this.
    stop_before: Option<DateTime<Utc>>,
    /// Whether it lists every conversation.
    sweep: bool,
    /// Whether every listed conversation's newest messages are read again, changed or not
    /// (Mercado Libre's sweep: a message the seller read elsewhere leaves no trace in any
    /// listing).
    reread: bool,
}

/// What a step lists, per marketplace, at the lowest cost each allows:
/// - Allegro (threads newest activity first) and Magalu (`last_interaction_at_start`): the
///   conversations active since the watermark less [`LOOK_BACK`]; everything the first time.
/// - Mercado Libre and Ozon: everything on the first step and every [`SWEEP_EVERY`];
///   between sweeps the unread conversations (a new buyer message makes its conversation
///   unread), and on Mercado Libre the orders newer than the newest seen less
///   [`LOOK_BACK`] (new conversations).
fn listings(marketplace: crate::Marketplace, before: &Checkpoint, now: DateTime<Utc>) -> Vec<Walk> {
    use crate::Marketplace::*;
    let everything = Walk {
        query: ConversationQuery::new(),
        stop_before: None,
        sweep: true,
        reread: marketplace == MercadoLibre && before.last_sweep.is_some(),
    };
    match marketplace {
        Allegro | Magalu => match before.watermark {
            Some(w) => vec![Walk {
                query: ConversationQuery::new().since(w - LOOK_BACK),
                stop_before: None,
                sweep: false,
                reread: false,
            }],
            None => vec![everything],
        },
        MercadoLibre | Ozon => {
            let swept = before.last_sweep.is_some_and(|at| now - at < SWEEP_EVERY);
            if !swept {
                return vec![everything];
            }
            let mut walks = vec![Walk {
                query: ConversationQuery::new().unread_only(true),
                stop_before: None,
                sweep: false,
                reread: false,
            }];
            if marketplace == MercadoLibre {
                walks.push(Walk {
                    query: ConversationQuery::new(),
                    stop_before: before.newest_created.map(|at| at - LOOK_BACK),
                    sweep: false,
                    reread: false,
                });
            }
            walks
        }
    }
}

/// A listed conversation to read: its listing changed since the checkpoint (or every
/// one is read again).
struct Visit {
    conversation: Conversation,
    listing: String,
    known: Option<Mark>,
    unchanged: bool,
}

impl Visit {
    /// What reading `conversation` takes, by its mark in the checkpoint; `None` when its
    /// listing is as it was.
    fn plan(checkpoint: &Checkpoint, conversation: Conversation, reread: bool) -> Option<Self> {
        let listing = summary(&conversation);
        let known = checkpoint.marks.get(&conversation.reference.id).cloned();
        let unchanged = known.as_ref().is_some_and(|m| m.listing == listing);
        (!unchanged || reread).then_some(Visit {
            conversation,
            listing,
            known,
            unchanged,
        })
    }

    /// Reads its messages from the last known one less the look-back window.
    async fn read(self, account: Account) -> Result<(Visit, Vec<Message>), Error> {
        let mut query = MessageQuery::new();
        if let Some(at) = self.known.as_ref().and_then(|m| m.last_message_at) {
            query = query.since(at - LOOK_BACK);
        }
        let messages = account
            .messages(&self.conversation.reference, query)
            .try_collect()
            .await?;
        Ok((self, messages))
    }

    /// Takes what was read into the step: new and changed messages, the conversation
    /// before them, its new mark.
    fn apply(
        self,
        account: &str,
        store: &dyn Store,
        p: &mut Progress,
        messages: Vec<Message>,
    ) -> Result<(), Error> {
        let Visit {
            conversation,
            listing,
            known,
            unchanged,
        } = self;
        let id = conversation.reference.id.clone();
        if let Some(at) = conversation.last_activity_at {
            // Capped at the step's start (a vendor clock ahead of ours, or a time from
            // the future, must not hide what comes before it).
            p.after.watermark = p.after.watermark.max(Some(at.min(p.started)));
        }
        let mut newest = known.as_ref().and_then(|m| m.last_message_at);
        let found = p.changes.len();
        for message in messages {
            newest = newest.max(Some(message.created_at));
            match store
                .message_state(account, &id, &message.id)
                .map_err(Error::from)?
            {
                None => p.changes.push(Change::Message(Event::NewMessage, message)),
                Some(state) if state != message_state(&message) => p
                    .changes
                    .push(Change::Message(Event::UpdatedMessage, message)),
                Some(_) => {}
            }
        }
        if unchanged && p.changes.len() == found {
            return Ok(());
        }
        let event = if known.is_some() {
            Event::UpdatedConversation
        } else {
            Event::NewConversation
        };
        p.after.marks.insert(
            id,
            Mark {
                listing,
                last_message_at: newest,
            },
        );
        // The conversation before its messages.
        p.changes
            .insert(found, Change::Conversation(event, conversation));
        Ok(())
    }
}

/// One stored step for every account of the inbox, one after another; an account that
/// fails keeps what the others stored.
pub async fn sync(inbox: &Inbox, store: &dyn Store) -> Vec<(String, Result<Vec<Change>, Error>)> {
    let mut out = Vec::new();
    for account in inbox.accounts() {
        out.push((
            account.name().to_string(),
            sync_account(account, store).await,
        ));
    }
    out
}

/// A conversation's listing in a few words: what changes when anything happens in it.
fn summary(c: &Conversation) -> String {
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
    let v = c.vendor.to_value();
    let last = [
        v.get("last_message_id"),
        v.pointer("/last_message/id"),
        v.get("lastMessageDateTime"),
    ]
    .into_iter()
    .flatten()
    .map(|x| x.to_string())
    .collect::<Vec<_>>()
    .join(",");
    format!(
        "{}|{unread}|{status}|{last}",
        c.last_activity_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    )
}

/// What an update of a stored message is judged by: its status and read state.
pub(crate) fn message_state(m: &Message) -> String {
    format!(
        "{}|{}",
        m.status.as_deref().unwrap_or("-"),
        m.read.map_or("-".to_string(), |r| r.to_string())
    )
}
