//! What a notification asks of its account ([`Target`]) and how it is carried out
//! ([`run_target`]), the same under either scheduler; the per-account budgets that bound
//! what notifications may cost.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use marketplace_inbox::push::Hint;
use marketplace_inbox::{Account, Error};

use crate::engine::Engine;
use crate::pass::{account_pass, conversation_pass, Outcome};
use crate::text::{describe, one_line, MAX_LINE};

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

impl Ran {
    fn of_step(outcome: &Outcome) -> Ran {
        match (outcome.committed, outcome.retryable) {
            (true, _) => Ran::Done,
            (false, true) => Ran::Retry("sync_failed"),
            (false, false) => Ran::Ignored("sync_failed"),
        }
    }
}

/// What a failure of a notification's work comes to: tried again when it may pass.
fn failed(e: &Error, reason: &'static str, otherwise: &'static str) -> Ran {
    match e.is_retryable() {
        true => Ran::Retry(reason),
        false => Ran::Ignored(otherwise),
    }
}

/// Carries out `target` for `account`: its changes handed to the engine's sink inside
/// the commit.
pub async fn run_target(engine: &Engine, account: &Account, target: &Target) -> Ran {
    let name = account.name();
    let budgets = engine.budgets();
    if !budgets.spend(name) {
        return Ran::Ignored("over_budget");
    }
    let conversation = match target {
        Target::Status(_) => {
            let outcome =
                account_pass(&engine.inbox(), account, engine.store(), engine.sink()).await;
            return Ran::of_step(&outcome);
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
                log_unknown(engine, name, "message", message, &e);
                return failed(&e, "message_lookup", "unknown_message");
            }
        },
    };
    let reference = account.reference(conversation.as_str());
    let synced = conversation_pass(
        &engine.inbox(),
        account,
        engine.store(),
        engine.sink(),
        &reference,
    )
    .await;
    match synced {
        Ok(outcome) => Ran::of_step(&outcome),
        Err(e) => {
            log_unknown(engine, name, "conversation", &conversation, &e);
            failed(&e, "conversation_read", "unknown_conversation")
        }
    }
}

/// One line for a notification naming something the vendor does not know (or that could
/// not be read); the id is the vendor's, quoted.
fn log_unknown(engine: &Engine, account: &str, what: &str, id: &str, e: &Error) {
    let line = describe(&anyhow::anyhow!("{e}"));
    engine.sink().note(&one_line(
        &format!("inbox: {account}: notified {what} {id:?} was not read: {line}"),
        MAX_LINE,
    ));
}
