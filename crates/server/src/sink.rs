//! Where the engine hands what it did: each committed chunk's changes, and notes for
//! the operator.

use marketplace_inbox::sync::Change;
use marketplace_inbox::Inbox;

/// Receives what the engine does. [`Sink::changes`] is called inside each chunk's
/// commit: an error there stores nothing of the chunk, and the next step finds its
/// changes again — so a sink that writes them durably gets each change at least once,
/// and exactly once unless the process dies between its write and the commit.
pub trait Sink: Send + Sync {
    /// One committed chunk's changes of `account` (`inbox` shows references).
    fn changes(&self, inbox: &Inbox, account: &str, changes: &[Change]) -> std::io::Result<()>;

    /// A note for the operator: a malformed element kept raw, a failed step, a lease
    /// lost, a notification not acted on. One line, vendor text escaped. By default a
    /// `tracing` warning.
    fn note(&self, line: &str) {
        tracing::warn!(target: "inbox", "{line}");
    }
}

/// A sink that keeps nothing: the changes are in the store (its `changes` table).
#[derive(Clone, Copy, Debug, Default)]
pub struct Discard;

impl Sink for Discard {
    fn changes(&self, _: &Inbox, _: &str, _: &[Change]) -> std::io::Result<()> {
        Ok(())
    }
}
