//! What a notification asks of its account ([`Target`]), how it is carried out
//! ([`run_target`], the same in one process and in a fleet), and, in one process, each
//! account's worklist and loop: targeted syncs and the safety-net poll at the account's
//! interval, one at a time, so that its steps never race each other.
//!
//! Notifications for one target that arrive while it is being synced are kept and merged:
//! it is synced once more afterwards, however many arrived. Fetches caused by
//! notifications are bounded per account ([`BUDGET_PER_MINUTE`]): past it they wait for
//! the next poll, so that a flood of forged notifications cannot spend the seller's rate
//! limit.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use marketplace_inbox::push::Hint;
use marketplace_inbox::sync::journal::JournalState;
use marketplace_inbox::sync::{self, Store};
use marketplace_inbox::{Account, Error, Inbox};
use tokio::sync::{watch, Notify};

use super::Shared;

/// Vendor fetches that notifications may cause per account and minute.
pub const BUDGET_PER_MINUTE: u32 = 60;

/// Notifications journaled per account and minute at most (a burst of as many).
pub const JOURNAL_PER_MINUTE: u32 = 600;

/// What a notification asks of its account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Read a conversation again.
    Conversation(String),
    /// Find a message's conversation (Mercado Libre), then read it again.
    Message(String),
    /// A conversation's status changed: a step over the account's conversations.
    Status(String),
}

impl Target {
    /// The target of a notification's hint; none for one that asks nothing.
    pub fn of(hint: &Hint) -> Option<Target> {
        match hint {
            Hint::Message {
                conversation: Some(c),
                ..
            } => Some(Target::Conversation(c.clone())),
            Hint::Message {
                conversation: None,
                message: Some(m),
            } => Some(Target::Message(m.clone())),
            Hint::Closed { conversation } => Some(Target::Status(conversation.clone())),
            _ => None,
        }
    }

    /// `conversation:ID`, `message:ID`, `status:ID`: as journaled and keyed.
    pub fn key(&self) -> String {
        match self {
            Target::Conversation(id) => format!("conversation:{id}"),
            Target::Message(id) => format!("message:{id}"),
            Target::Status(id) => format!("status:{id}"),
        }
    }

    /// The target a key stands for.
    pub fn parse(key: &str) -> Option<Target> {
        let (kind, id) = key.split_once(':')?;
        let id = id.to_string();
        match kind {
            "conversation" => Some(Target::Conversation(id)),
            "message" => Some(Target::Message(id)),
            "status" => Some(Target::Status(id)),
            _ => None,
        }
    }
}

/// A per-account budget in this process (GCRA): the reads notifications may cause, or
/// the journal writes they may make.
pub struct Budgets {
    per_minute: u32,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl Default for Budgets {
    /// The reads budget: [`BUDGET_PER_MINUTE`].
    fn default() -> Self {
        Budgets::per_minute(BUDGET_PER_MINUTE)
    }
}

impl Budgets {
    /// `n` a minute per account (a burst of as many).
    pub fn per_minute(n: u32) -> Self {
        Budgets {
            per_minute: n,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one of `account`'s budget; false when none is left this minute.
    pub fn spend(&self, account: &str) -> bool {
        let per_minute = self.per_minute;
        let limiter = self.limiters.lock().map(|mut all| {
            all.entry(account.to_string())
                .or_insert_with(|| {
                    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
                    Arc::new(RateLimiter::direct(Quota::per_minute(n)))
                })
                .clone()
        });
        limiter.is_ok_and(|l| l.check().is_ok())
    }
}

/// How a target's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// Read again and committed.
    Done,
    /// Not carried out, for this reason (counted, and the journal entry settled ignored).
    Ignored(&'static str),
    /// Failed for a reason that may pass (an outage, a rate limit, the store busy): the
    /// journal entries stay pending and the work runs again after a backoff.
    Retry(&'static str),
}

/// What a failure of a notification's work comes to: tried again when it may pass.
fn failed(e: &Error, reason: &'static str) -> Option<Ran> {
    e.is_retryable().then_some(Ran::Retry(reason))
}

/// Carries out `target` for `account`: its changes printed inside the commit, as `watch`
/// prints them.
pub async fn run_target(
    inbox: &Inbox,
    account: &Account,
    store: &dyn Store,
    target: &Target,
    json: bool,
    budgets: &Budgets,
) -> Ran {
    let name = account.name();
    if !budgets.spend(name) {
        return Ran::Ignored("over_budget");
    }
    let conversation = match target {
        Target::Status(_) => {
            let outcome = crate::sync::account_pass(inbox, account, store, json).await;
            return match (outcome.committed, outcome.retryable) {
                (true, _) => Ran::Done,
                (false, true) => Ran::Retry("sync_failed"),
                (false, false) => Ran::Ignored("sync_failed"),
            };
        }
        Target::Conversation(id) => id.clone(),
        Target::Message(message) => match account.conversation_of_message(message).await {
            Ok(Some(c)) => {
                if !budgets.spend(name) {
                    return Ran::Ignored("over_budget");
                }
                c.id
            }
            Ok(None) => return Ran::Ignored("no_conversation"),
            Err(e) => {
                log_unknown(name, "message", message, &e);
                return failed(&e, "message_lookup").unwrap_or(Ran::Ignored("unknown_message"));
            }
        },
    };
    let reference = account.reference(conversation.as_str());
    let mut printer = crate::sync::Printer::new(inbox, name, json);
    let synced =
        sync::sync_conversation_with(account, store, &reference, &mut |c: &[sync::Change]| {
            printer.print(c)
        })
        .await;
    if let Err(e) = &synced {
        if !matches!(e, marketplace_inbox::Error::Store(_)) {
            log_unknown(name, "conversation", &conversation, e);
            return failed(e, "conversation_read").unwrap_or(Ran::Ignored("unknown_conversation"));
        }
    }
    let outcome = printer.finish(synced);
    match (outcome.committed, outcome.retryable) {
        (true, _) => Ran::Done,
        (false, true) => Ran::Retry("sync_failed"),
        (false, false) => Ran::Ignored("sync_failed"),
    }
}

/// A journaled notification waiting for its work.
#[derive(Clone, Copy, Debug)]
pub struct Waiting {
    /// Its journal number.
    pub journal: i64,
    /// When it arrived.
    pub received: Instant,
    /// Runs of its work that failed for a reason that may pass.
    pub attempts: u32,
}

/// How long the work of notifications waits after its `attempts`-th transient failure:
/// 2 s doubling, at most 5 minutes (the one retry policy's backoff).
fn retry_after(attempts: u32) -> Duration {
    marketplace_inbox::RetryPolicy {
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(300),
        ..marketplace_inbox::RetryPolicy::default()
    }
    .backoff(attempts.saturating_add(1), 1.0)
}

/// An account's worklist, in one process.
pub struct Queue {
    work: Mutex<BTreeMap<Target, Vec<Waiting>>>,
    wake: Notify,
}

impl Queue {
    /// An empty worklist.
    pub fn new() -> Queue {
        Queue {
            work: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
        }
    }

    /// Adds what a notification asks for; false when it asks for nothing.
    pub fn add(&self, hint: &Hint, waiting: Waiting) -> bool {
        let Some(target) = Target::of(hint) else {
            return false;
        };
        let Ok(mut work) = self.work.lock() else {
            return false;
        };
        work.entry(target).or_default().push(waiting);
        drop(work);
        self.wake.notify_one();
        true
    }

    /// Puts `waiting` back for `target` once `delay` has passed (one attempt more).
    fn again(self: &Arc<Self>, target: Target, waiting: Vec<Waiting>, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Ok(mut work) = queue.work.lock() {
                let entries = work.entry(target).or_default();
                entries.extend(waiting.into_iter().map(|w| Waiting {
                    attempts: w.attempts.saturating_add(1),
                    ..w
                }));
            }
            queue.wake.notify_one();
        });
    }

    fn take(&self) -> BTreeMap<Target, Vec<Waiting>> {
        self.work
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
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
                let outcome = crate::sync::account_pass(
                    &shared.inbox, &account, shared.store.as_ref(), shared.json,
                )
                .await;
                shared.metrics.synced(account.marketplace().as_str(), "poll", outcome.committed);
                next_poll = tokio::time::Instant::now() + interval;
            }
        }
    }
}

/// Does what the notifications so far ask for, each target once.
async fn notified(shared: &Shared, account: &Account, queue: &Arc<Queue>) {
    let marketplace = account.marketplace().as_str();
    for (target, waiting) in queue.take() {
        let ran = run_target(
            &shared.inbox,
            account,
            shared.store.as_ref(),
            &target,
            shared.json,
            &shared.budgets,
        )
        .await;
        shared
            .metrics
            .synced(marketplace, "notification", ran == Ran::Done);
        let state = match ran {
            Ran::Done => {
                for w in &waiting {
                    shared
                        .metrics
                        .stored(marketplace, w.received.elapsed().as_secs_f64());
                }
                JournalState::Done
            }
            Ran::Ignored(reason) => {
                for _ in &waiting {
                    shared.metrics.ignored(marketplace, reason);
                }
                JournalState::Ignored
            }
            Ran::Retry(reason) => {
                // Pending still: back in the worklist after a backoff.
                let attempts = waiting.iter().map(|w| w.attempts).max().unwrap_or(0);
                let delay = retry_after(attempts);
                eprintln!(
                    "inbox: {}: a notification's work failed ({reason}); trying again in {} s",
                    account.name(),
                    delay.as_secs()
                );
                queue.again(target, waiting, delay);
                continue;
            }
        };
        let ids = waiting.iter().map(|w| w.journal).collect();
        if let Err(e) = shared.store.journal_settle(ids, state).await {
            eprintln!(
                "inbox: {}: settling notifications in the journal failed: {e}",
                account.name()
            );
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
