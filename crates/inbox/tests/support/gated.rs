//! A store whose first commit waits at barriers: two runners brought to the same moment,
//! deterministically (no sleeps).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use marketplace_inbox::sync::{
    Checkpoint, Commit, HandOn, MalformedKey, Mark, Store, StoreError, Stored,
};
use tokio::sync::Barrier;

/// `inner`, its first commit waiting at each of `barriers` in turn.
pub struct Gated<'s> {
    inner: &'s dyn Store,
    barriers: Vec<Arc<Barrier>>,
    used: AtomicBool,
}

impl<'s> Gated<'s> {
    pub fn new(inner: &'s dyn Store, barriers: Vec<Arc<Barrier>>) -> Self {
        Gated {
            inner,
            barriers,
            used: AtomicBool::new(false),
        }
    }
}

impl Store for Gated<'_> {
    fn checkpoint<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Checkpoint, StoreError>> {
        self.inner.checkpoint(account)
    }

    fn marks<'a>(
        &'a self,
        account: &'a str,
        conversations: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, Mark>, StoreError>> {
        self.inner.marks(account, conversations)
    }

    fn message_states<'a>(
        &'a self,
        account: &'a str,
        conversation: &'a str,
        messages: Vec<String>,
    ) -> BoxFuture<'a, Result<HashMap<String, Stored>, StoreError>> {
        self.inner.message_states(account, conversation, messages)
    }

    fn malformed<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<HashSet<MalformedKey>, StoreError>> {
        self.inner.malformed(account)
    }

    fn commit<'a>(
        &'a self,
        commit: Commit,
        hand_on: Option<HandOn<'a>>,
    ) -> BoxFuture<'a, Result<Commit, StoreError>> {
        Box::pin(async move {
            if !self.used.swap(true, Ordering::SeqCst) {
                for barrier in &self.barriers {
                    barrier.wait().await;
                }
            }
            self.inner.commit(commit, hand_on).await
        })
    }
}

/// Runs a step of `account` on `store` whose first chunk is held open inside its commit
/// (its hand-on waits) until a notification was journaled on the same store: that
/// journal insert must be answered while the commit is in flight. How long it took.
pub async fn journal_while_committing<S: Store + Clone + 'static>(
    store: &S,
    account: &marketplace_inbox::Account,
) -> std::time::Duration {
    use marketplace_inbox::sync::journal::{JournalState, NewEntry};
    use marketplace_inbox::sync::{self, Change};
    let (journaled, wait) = std::sync::mpsc::channel::<std::time::Duration>();
    let (inside, in_commit) = tokio::sync::oneshot::channel::<()>();
    let mut inside = Some(inside);
    let mut hold = move |changes: &[Change]| -> std::io::Result<()> {
        assert!(!changes.is_empty());
        if let Some(inside) = inside.take() {
            let _ = inside.send(());
            // Held here, inside the open transaction, until the journal answered.
            wait.recv_timeout(std::time::Duration::from_secs(20))
                .map_err(|_| std::io::Error::other("the journal insert never came back"))?;
        }
        Ok(())
    };
    // A task of its own: the hand-on blocks the thread that runs the commit.
    let (journal_store, marketplace, name) = (
        store.clone(),
        account.marketplace(),
        account.name().to_string(),
    );
    let journal = tokio::spawn(async move {
        let store = journal_store;
        in_commit.await.unwrap();
        let started = std::time::Instant::now();
        let id = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            store.journal_add(NewEntry {
                marketplace,
                account: Some(name.clone()),
                received_at: chrono::Utc::now(),
                raw: "{}".into(),
                dedup_key: format!("{name}:during-commit"),
                target: None,
                state: JournalState::Pending,
            }),
        )
        .await
        .expect("journaled while a commit is in flight")
        .unwrap();
        assert!(id.is_some());
        let took = started.elapsed();
        journaled.send(took).unwrap();
        took
    });
    let synced = sync::sync_account_with(account, store, &mut hold).await;
    let took = journal.await.unwrap();
    let synced = synced.unwrap();
    assert!(synced.finished(), "{:?}", synced.stopped);
    assert!(synced.commits >= 1);
    took
}
