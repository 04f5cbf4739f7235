//! What `inbox sync`, `watch`, `worker` and `serve` print: each committed chunk's
//! changes on stdout inside its commit (so a step that loses to another runner prints
//! nothing, and one killed before its commit is durable prints the same again next time),
//! and the engine's notes on stderr.

use std::io::Write;
use std::time::Duration;

use inbox_server::text::{one_line, MAX_LINE};
use inbox_server::Sink;
use marketplace_inbox::sync::Change;
use marketplace_inbox::{Inbox, JsonLine};

use crate::output;

/// Prints changes as JSON lines or table rows, and notes on stderr.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// JSON lines rather than a table.
    pub json: bool,
}

impl Sink for Printer {
    fn changes(&self, inbox: &Inbox, account: &str, changes: &[Change]) -> std::io::Result<()> {
        let mut lines = Vec::with_capacity(changes.len());
        for change in changes {
            let l = line(inbox, account, change, self.json).map_err(|e| {
                eprintln!("inbox: {account}: cannot print a change: {e}");
                std::io::Error::other(e.to_string())
            })?;
            lines.push(l);
        }
        let mut out = std::io::stdout().lock();
        for l in &lines {
            writeln!(out, "{l}")?;
        }
        out.flush()
    }

    fn note(&self, line: &str) {
        eprintln!("{line}");
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
        Change::Malformed(bad) => one_line(
            &format!(
                "{} {} {} {}",
                bad.marketplace,
                account,
                bad.conversation
                    .as_ref()
                    .map_or("-".to_string(), |c| inbox.display_ref(c)),
                bad.error
            ),
            MAX_LINE,
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
