//! `inbox sync` and `inbox watch`: passes over every account at once, each account's
//! changes printed inside its commit (so a step that loses to another runner prints
//! nothing, and one killed before its commit is durable prints the same again next time).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use futures::StreamExt;
use marketplace_inbox::sync::{self, Change, PostgresStore, SqliteStore, Store};
use marketplace_inbox::{Inbox, JsonLine};

use crate::output;

/// Where `--db` points: a `postgres://` or `postgresql://` URL, or a SQLite file.
#[derive(Clone, Debug)]
pub enum Db {
    /// A PostgreSQL database, by URL.
    Postgres(String),
    /// A SQLite file.
    Sqlite(PathBuf),
}

/// Reads `--db`: a PostgreSQL URL, else a path.
pub fn db(text: &str) -> std::result::Result<Db, String> {
    let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Db::Postgres(text.to_string()))
    } else if text.is_empty() {
        Err("the database path is empty".into())
    } else {
        Ok(Db::Sqlite(PathBuf::from(text)))
    }
}

/// PostgreSQL connections a process opens at most.
const POSTGRES_CONNECTIONS: u32 = 16;

/// The sync database: `--db`, else `$XDG_DATA_HOME/inbox/inbox.db` (or
/// `~/.local/share/inbox/inbox.db`).
pub async fn open_store(db: Option<Db>) -> Result<Box<dyn Store>> {
    let path = match db {
        Some(Db::Postgres(url)) => {
            let store = PostgresStore::connect(&url, POSTGRES_CONNECTIONS)
                .await
                .context("opening the PostgreSQL database")?;
            return Ok(Box::new(store));
        }
        Some(Db::Sqlite(p)) => p,
        None => {
            let env = |k: &str| {
                std::env::var_os(k)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            };
            let base = env("XDG_DATA_HOME")
                .or_else(|| env("HOME").map(|h| h.join(".local").join("share")))
                .ok_or_else(|| {
                    anyhow!("no --db given and neither XDG_DATA_HOME nor HOME is set")
                })?;
            base.join("inbox").join("inbox.db")
        }
    };
    let store = SqliteStore::open(&path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::new(store))
}

/// What one pass did, over every account.
#[derive(Default)]
pub struct Pass {
    /// Accounts whose step failed or was not committed.
    pub failed: usize,
    accounts: usize,
    messages: usize,
    conversations: usize,
    malformed: usize,
    skipped: usize,
}

impl Pass {
    /// The one-line summary printed on stderr in table mode.
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

/// One sync pass over every account, `at_once` accounts at a time.
pub async fn pass(inbox: &Inbox, store: &dyn Store, json: bool, at_once: usize) -> Pass {
    let outcomes: Vec<Outcome> = futures::stream::iter(inbox.accounts())
        .map(|account| account_pass(inbox, account, store, json))
        .buffer_unordered(at_once.max(1))
        .collect()
        .await;
    let mut total = Pass::default();
    for o in outcomes {
        total.accounts += 1;
        total.failed += usize::from(!o.committed);
        total.messages += o.messages;
        total.conversations += o.conversations;
        total.malformed += o.malformed;
        total.skipped += o.skipped;
    }
    total
}

#[derive(Default)]
pub(crate) struct Outcome {
    pub committed: bool,
    /// The step failed for a reason that may pass (an outage, a rate limit, a conflict).
    pub retryable: bool,
    /// The step failed because the account must be authorised again.
    pub reauthorize: bool,
    pub messages: usize,
    conversations: usize,
    malformed: usize,
    skipped: usize,
}

pub(crate) async fn account_pass(
    inbox: &Inbox,
    account: &marketplace_inbox::Account,
    store: &dyn Store,
    json: bool,
) -> Outcome {
    let mut printer = Printer::new(inbox, account.name(), json);
    let synced =
        sync::sync_account_with(account, store, &mut |c: &[Change]| printer.print(c)).await;
    printer.finish(synced)
}

/// Prints each committed chunk's changes inside its commit (as JSON lines or table
/// rows) and its notes on stderr, and counts them.
pub(crate) struct Printer<'a> {
    inbox: &'a Inbox,
    name: &'a str,
    json: bool,
    outcome: Outcome,
}

impl<'a> Printer<'a> {
    /// A printer for the changes of account `name`.
    pub(crate) fn new(inbox: &'a Inbox, name: &'a str, json: bool) -> Self {
        Printer {
            inbox,
            name,
            json,
            outcome: Outcome::default(),
        }
    }

    /// Prints one chunk's changes (called inside its commit: an error here stores
    /// nothing of the chunk, and it is found again by the next step).
    pub(crate) fn print(&mut self, changes: &[Change]) -> std::io::Result<()> {
        let (inbox, name) = (self.inbox, self.name);
        let mut lines = Vec::with_capacity(changes.len());
        let mut notes = Vec::new();
        let mut counts = Outcome::default();
        for change in changes {
            match change {
                Change::Message(..) => counts.messages += 1,
                Change::Conversation(..) => counts.conversations += 1,
                Change::Malformed(bad) => {
                    counts.malformed += 1;
                    notes.push(crate::one_line(
                        &format!(
                            "inbox: {name}: {}: malformed element in the {} listing{}, kept raw in the store: {}",
                            bad.marketplace,
                            bad.listed,
                            bad.conversation
                                .as_ref()
                                .map(|c| format!(" of {}", inbox.display_ref(c)))
                                .unwrap_or_default(),
                            bad.error
                        ),
                        crate::MAX_LINE,
                    ));
                }
            }
            let l = line(inbox, name, change, self.json).map_err(|e| {
                eprintln!("inbox: {name}: cannot print a change: {e}");
                std::io::Error::other(e.to_string())
            })?;
            lines.push(l);
        }
        let mut out = std::io::stdout().lock();
        for l in &lines {
            writeln!(out, "{l}")?;
        }
        out.flush()?;
        for n in &notes {
            eprintln!("{n}");
        }
        self.outcome.messages += counts.messages;
        self.outcome.conversations += counts.conversations;
        self.outcome.malformed += counts.malformed;
        Ok(())
    }

    fn failed(&mut self, e: marketplace_inbox::Error) {
        self.outcome.retryable = e.is_retryable();
        self.outcome.reauthorize = matches!(e, marketplace_inbox::Error::Reauthorize { .. });
        crate::report(self.name, e);
    }

    /// What the step did: its skipped conversations and any error on stderr.
    pub(crate) fn finish(
        mut self,
        synced: std::result::Result<sync::Synced, marketplace_inbox::Error>,
    ) -> Outcome {
        let name = self.name;
        match synced {
            Ok(synced) => {
                for s in &synced.skipped {
                    let line = crate::describe(&anyhow!("{}", s.error));
                    eprintln!(
                        "inbox: {name}: {}: {line} — left for the next pass",
                        self.inbox.display_ref(&s.conversation)
                    );
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

/// One change as printed: its JSON form (with `event`), or a table row.
fn line(inbox: &Inbox, account: &str, change: &Change, json: bool) -> anyhow::Result<String> {
    if json {
        return Ok(change.json_line(inbox)?);
    }
    let row = match change {
        Change::Conversation(_, c) => output::conversation_row(inbox, c),
        Change::Message(_, m) => format!(
            "{}  {}",
            inbox.display_ref(&m.conversation),
            output::message_row(m)
        ),
        Change::Malformed(bad) => crate::one_line(
            &format!(
                "{} {} {} {}",
                bad.marketplace,
                account,
                bad.conversation
                    .as_ref()
                    .map_or("-".to_string(), |c| inbox.display_ref(c)),
                bad.error
            ),
            crate::MAX_LINE,
        ),
    };
    Ok(format!("{:<22} {row}", change.event().as_str()))
}

/// Seconds between `inbox watch` passes: a finite number from 0.05 to a year.
pub fn interval(text: &str) -> std::result::Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !secs.is_finite() || !(0.05..=31_536_000.0).contains(&secs) {
        return Err(format!(
            "{text:?}: the interval must be between 0.05 and 31536000 seconds"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}
