//! One worklist per account: what notifications asked for, and the account's loop that
//! runs it — targeted syncs of the notified conversations, and the safety-net poll at the
//! account's interval — one at a time, so that its steps never race each other.
//!
//! Notifications for a conversation that arrive while it is being synced are kept and
//! merged: the loop syncs it once more afterwards, however many arrived. Fetches caused
//! by notifications are bounded per account ([`BUDGET_PER_MINUTE`]): past it, they wait
//! for the next poll, so that a flood of forged notifications cannot spend the seller's
//! rate limit.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use marketplace_inbox::push::Hint;
use marketplace_inbox::sync::journal::JournalState;
use marketplace_inbox::{sync, Account, Error};
use tokio::sync::{watch, Notify};

use super::Shared;

/// Vendor fetches that notifications may cause per account and minute.
pub const BUDGET_PER_MINUTE: u32 = 60;

/// A journaled notification waiting for its work.
#[derive(Clone, Copy, Debug)]
pub struct Waiting {
    /// Its journal number.
    pub journal: i64,
    /// When it arrived.
    pub received: Instant,
}

#[derive(Default)]
struct Work {
    /// Conversations to sync, with the notifications that asked.
    conversations: BTreeMap<String, Vec<Waiting>>,
    /// Messages whose conversation must be asked for first (Mercado Libre).
    messages: Vec<(String, Waiting)>,
    /// Notifications that ask for a poll step (a conversation's status changed).
    statuses: Vec<Waiting>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.conversations.is_empty() && self.messages.is_empty() && self.statuses.is_empty()
    }
}

/// An account's worklist.
pub struct Queue {
    work: Mutex<Work>,
    wake: Notify,
    budget: DefaultDirectRateLimiter,
}

impl Queue {
    /// An empty worklist.
    pub fn new() -> Queue {
        let per_minute = NonZeroU32::new(BUDGET_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Queue {
            work: Mutex::new(Work::default()),
            wake: Notify::new(),
            budget: RateLimiter::direct(Quota::per_minute(per_minute)),
        }
    }

    /// Adds what a notification asks for; false when it asks for nothing to do here.
    pub fn add(&self, hint: &Hint, waiting: Waiting) -> bool {
        let Ok(mut work) = self.work.lock() else {
            return false;
        };
        match hint {
            Hint::Message {
                conversation: Some(c),
                ..
            } => work
                .conversations
                .entry(c.clone())
                .or_default()
                .push(waiting),
            Hint::Message {
                conversation: None,
                message: Some(m),
            } => work.messages.push((m.clone(), waiting)),
            Hint::Closed { .. } => work.statuses.push(waiting),
            _ => return false,
        }
        drop(work);
        self.wake.notify_one();
        true
    }

    fn take(&self) -> Work {
        self.work
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    fn spend(&self) -> bool {
        self.budget.check().is_ok()
    }
}

/// Runs `account`'s worklist and polls it every `interval` (the first at once) until
/// `stop` turns true; the step under way is finished first.
pub async fn run(
    shared: Arc<Shared>,
    account: Account,
    queue: Arc<Queue>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_poll = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = queue.wake.notified() => notified(&shared, &account, &queue).await,
            _ = tokio::time::sleep_until(next_poll) => {
                poll(&shared, &account).await;
                next_poll = tokio::time::Instant::now() + interval;
            }
        }
    }
}

async fn poll(shared: &Shared, account: &Account) -> bool {
    let outcome =
        crate::sync::account_pass(&shared.inbox, account, shared.store.as_ref(), shared.json).await;
    shared
        .metrics
        .synced(account.marketplace().as_str(), "poll", outcome.committed);
    outcome.committed
}

/// Settles journal entries, saying so when the store refuses.
async fn settle(shared: &Shared, account: &Account, waiting: &[Waiting], state: JournalState) {
    if waiting.is_empty() {
        return;
    }
    let ids = waiting.iter().map(|w| w.journal).collect();
    if let Err(e) = shared.store.journal_settle(ids, state).await {
        eprintln!(
            "inbox: {}: settling notifications in the journal failed: {e}",
            account.name()
        );
    }
}

async fn ignore(shared: &Shared, account: &Account, waiting: &[Waiting], reason: &str) {
    for _ in waiting {
        shared
            .metrics
            .ignored(account.marketplace().as_str(), reason);
    }
    settle(shared, account, waiting, JournalState::Ignored).await;
}

/// Does what the notifications so far ask for.
async fn notified(shared: &Shared, account: &Account, queue: &Queue) {
    let mut work = queue.take();
    if work.is_empty() {
        return;
    }
    let name = account.name();
    for (message, waiting) in std::mem::take(&mut work.messages) {
        if !queue.spend() {
            ignore(shared, account, &[waiting], "over_budget").await;
            continue;
        }
        match account.conversation_of_message(&message).await {
            Ok(Some(c)) => work.conversations.entry(c.id).or_default().push(waiting),
            Ok(None) => ignore(shared, account, &[waiting], "no_conversation").await,
            Err(e) => {
                log_unknown(name, "message", &message, &e);
                ignore(shared, account, &[waiting], "unknown_message").await;
            }
        }
    }
    for (id, waiting) in std::mem::take(&mut work.conversations) {
        if !queue.spend() {
            ignore(shared, account, &waiting, "over_budget").await;
            continue;
        }
        let reference = account.reference(id.as_str());
        let step = sync::conversation_step(account, shared.store.as_ref(), &reference).await;
        if let Err(e) = &step {
            log_unknown(name, "conversation", &id, e);
            shared
                .metrics
                .synced(account.marketplace().as_str(), "notification", false);
            ignore(shared, account, &waiting, "unknown_conversation").await;
            continue;
        }
        let outcome = crate::sync::hand_on_step(
            &shared.inbox,
            name,
            step,
            shared.store.as_ref(),
            shared.json,
        )
        .await;
        shared.metrics.synced(
            account.marketplace().as_str(),
            "notification",
            outcome.committed,
        );
        if outcome.committed {
            for w in &waiting {
                shared.metrics.stored(
                    account.marketplace().as_str(),
                    w.received.elapsed().as_secs_f64(),
                );
            }
            settle(shared, account, &waiting, JournalState::Done).await;
        } else {
            ignore(shared, account, &waiting, "sync_failed").await;
        }
    }
    if !work.statuses.is_empty() {
        let statuses = std::mem::take(&mut work.statuses);
        if queue.spend() {
            let committed = poll(shared, account).await;
            let state = if committed {
                JournalState::Done
            } else {
                JournalState::Ignored
            };
            settle(shared, account, &statuses, state).await;
        } else {
            ignore(shared, account, &statuses, "over_budget").await;
        }
    }
}

/// One line for a notification naming something the vendor does not know (or that could
/// not be read); the id is the vendor's, quoted.
fn log_unknown(account: &str, what: &str, id: &str, e: &Error) {
    let line = crate::describe(&anyhow::anyhow!("{e}"));
    eprintln!(
        "{}",
        crate::one_line(
            &format!("inbox: {account}: notified {what} {id:?} was not read: {line}"),
            crate::MAX_LINE
        )
    );
}
