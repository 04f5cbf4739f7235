//! A store whose first commit waits at barriers: two runners brought to the same moment,
//! deterministically (no sleeps).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use marketplace_inbox::sync::{
    Checkpoint, Commit, HandOn, Mark, MalformedKey, Store, StoreError, Stored,
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
