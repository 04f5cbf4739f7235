//! Where a mirror lives: the [`Store`] trait ([`super::SqliteStore`] is the embedded
//! default).
use super::{Change, Checkpoint};
use crate::Error;

/// A store failed (its own error, not a marketplace's).
#[derive(Debug, thiserror::Error)]
#[error("store: {0}")]
pub struct StoreError(String);

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Config { message: e.0 }
    }
}

impl StoreError {
    /// A store error saying `what`.
    pub fn new(what: impl Into<String>) -> Self {
        StoreError(what.into())
    }
}

/// Where checkpoints and the mirrored conversations and messages are kept.
pub trait Store: Send + Sync {
    /// The account's checkpoint (empty before its first step).
    fn checkpoint(&self, account: &str) -> Result<Checkpoint, StoreError>;

    /// What a stored message's status and read state were, if it is stored.
    fn message_state(
        &self,
        account: &str,
        conversation: &str,
        message: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Stores a step's changes and its new checkpoint, all or nothing.
    fn commit(
        &self,
        account: &str,
        checkpoint: &Checkpoint,
        changes: &[Change],
    ) -> Result<(), StoreError>;
}
