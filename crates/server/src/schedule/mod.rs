//! Where accounts' work runs: in this process ([`Local`]), or as graphile_worker jobs on
//! PostgreSQL shared by every process of a fleet ([`jobs`]). Both run the same reconcile
//! step and the same notification work; the [`Scheduler`] is what the push intake hands
//! journaled notifications to.

pub mod jobs;
pub mod local;

use std::sync::Arc;
use std::time::Instant;

use marketplace_inbox::sync::journal::{JournalState, NewEntry};
use marketplace_inbox::sync::{PostgresStore, Store, StoreError};
use serde_json::json;

pub use local::{Local, Waiting};

use crate::work::Target;

/// Where a journaled notification's work goes.
#[derive(Clone)]
pub enum Scheduler {
    /// This process's worklists.
    Local(Arc<Local>),
    /// A job on the fleet's database, in the journal entry's own transaction: any process
    /// of the fleet runs it.
    Jobs(PostgresStore),
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scheduler::Local(_) => "Scheduler::Local",
            Scheduler::Jobs(_) => "Scheduler::Jobs",
        })
    }
}

impl Scheduler {
    /// Journals `entry` (a notification for `account` asking `target`, the entry's own
    /// `target` in its parsed form) in `store` and hands its work on; false when the
    /// journal already held it (a redelivery).
    pub async fn enqueue(
        &self,
        store: &dyn Store,
        entry: NewEntry,
        account: &str,
        target: Option<Target>,
        arrived: Instant,
    ) -> Result<bool, StoreError> {
        match (self, &target) {
            (Scheduler::Jobs(fleet), Some(target)) => {
                let key = target.key();
                let payload = json!({"account": account, "target": key});
                let job_key = jobs::target_key(account, &key);
                let added = fleet
                    .journal_add_with_job(&entry, "inbox_sync_target", &payload, &job_key)
                    .await?;
                Ok(added.is_some())
            }
            _ => {
                let Some(id) = store.journal_add(entry).await? else {
                    return Ok(false);
                };
                let waiting = Waiting {
                    journal: id,
                    received: arrived,
                    attempts: 0,
                };
                let queued = match (self, target) {
                    (Scheduler::Local(local), Some(target)) => local.add(account, target, waiting),
                    _ => false,
                };
                if !queued {
                    store
                        .journal_settle(vec![id], JournalState::Ignored)
                        .await?;
                }
                Ok(true)
            }
        }
    }
}
