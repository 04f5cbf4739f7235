//! The engine: the accounts, the store and the sink every scheduler runs work with, and
//! the reconcile step — one step of an account, answering when it runs next.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use marketplace_inbox::sync::Store;
use marketplace_inbox::{Account, Inbox, RetryPolicy};

use crate::pass::{account_pass, Outcome};
use crate::sink::Sink;
use crate::work::Budgets;

/// How long an account that must be authorised again waits before it is tried again
/// (no token call can succeed until the seller authorises again).
pub const PARKED: Duration = Duration::from_secs(3600);

/// The longest wait between the steps of an account that keeps failing.
pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// What a scheduler runs work with. Cheap to share (`Arc<Engine>`).
///
/// Its accounts can change while it runs ([`Engine::set_inbox`]: what
/// [`crate::follow`] does when the store's accounts change); schedulers take the
/// current set at each step and stop the work of an account that is gone.
pub struct Engine {
    inbox: RwLock<Arc<Inbox>>,
    /// Raised whenever the accounts change.
    generation: tokio::sync::watch::Sender<u64>,
    /// The store's accounts, when the engine follows them: where an account that must
    /// be authorised again is marked so.
    directory: RwLock<Option<(crate::Directory, crate::directory::Loaded)>>,
    store: Arc<dyn Store>,
    sink: Arc<dyn Sink>,
    /// The vendor reads that notifications may cause, per account.
    budgets: Budgets,
    /// Steps failed in a row, by account (this process's view): the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// When an account runs next, as a reconcile step decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// At its interval (the step committed).
    Interval(Duration),
    /// After a backoff: the step failed `failures` times in a row.
    Backoff {
        /// How long to wait.
        wait: Duration,
        /// Steps failed in a row.
        failures: u32,
    },
    /// Parked: the account must be authorised again.
    Parked(Duration),
}

impl Next {
    /// How long to wait.
    pub fn wait(self) -> Duration {
        match self {
            Next::Interval(d) | Next::Parked(d) | Next::Backoff { wait: d, .. } => d,
        }
    }
}

impl Engine {
    /// An engine over `inbox`'s accounts, mirrored in `store`, handing changes to `sink`.
    pub fn new(inbox: Arc<Inbox>, store: Arc<dyn Store>, sink: Arc<dyn Sink>) -> Engine {
        Engine {
            inbox: RwLock::new(inbox),
            generation: tokio::sync::watch::Sender::new(0),
            directory: RwLock::new(None),
            store,
            sink,
            budgets: Budgets::default(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The accounts, as they are now.
    pub fn inbox(&self) -> Arc<Inbox> {
        match self.inbox.read() {
            Ok(inbox) => inbox.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The account named `name`, as it is now.
    pub fn account(&self, name: &str) -> Option<Account> {
        self.inbox().account(name).cloned()
    }

    /// Replaces the accounts; schedulers start the new ones and stop the work of those
    /// gone.
    pub fn set_inbox(&self, inbox: Inbox) {
        match self.inbox.write() {
            Ok(mut held) => *held = Arc::new(inbox),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(inbox),
        }
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// The accounts of `directory` that `loaded` holds: the engine's accounts, and where
    /// it marks one that must be authorised again.
    pub fn follow(&self, directory: crate::Directory, loaded: crate::directory::Loaded) {
        let inbox = loaded.inbox();
        if let Ok(mut held) = self.directory.write() {
            *held = Some((directory, loaded));
        }
        self.set_inbox(inbox);
    }

    /// Resolves once no account is named `name` any more (removed, renamed, or no longer
    /// active); never while it is there.
    pub async fn gone(&self, name: &str) {
        let mut changes = self.generation.subscribe();
        loop {
            if self.account(name).is_none() {
                return;
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// A receiver told whenever the accounts change.
    pub fn accounts_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The sink.
    pub fn sink(&self) -> &dyn Sink {
        self.sink.as_ref()
    }

    /// The sink, shared.
    pub fn sink_arc(&self) -> Arc<dyn Sink> {
        self.sink.clone()
    }

    /// The per-account budget of reads notifications may cause.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// One step of `account` (its changes to the sink inside each chunk's commit), and
    /// when it runs next: its interval when it committed or the store failed under it, a
    /// backoff with jitter when it failed (doubling, capped at [`BACKOFF_MAX`]),
    /// [`PARKED`] when it must be authorised again.
    pub async fn reconcile(&self, account: &Account) -> (Outcome, Next) {
        let inbox = self.inbox();
        let outcome = account_pass(&inbox, account, self.store(), self.sink()).await;
        let next = self.next(account, &outcome);
        if matches!(next, Next::Parked(_)) {
            self.reauthorize(account.name()).await;
        }
        (outcome, next)
    }

    /// Marks the followed account `name` as waiting to be authorised again: it stops
    /// being synced (no more token calls) until it is connected again.
    async fn reauthorize(&self, name: &str) {
        let found = self.directory.read().ok().and_then(|held| {
            let (directory, loaded) = held.as_ref()?;
            Some((directory.clone(), loaded.id_of(name)?.to_string()))
        });
        let Some((directory, id)) = found else {
            return;
        };
        match directory
            .set_state(&id, marketplace_inbox::sync::AccountState::Reauthorize)
            .await
        {
            Ok(true) => self.sink.note(&format!(
                "inbox: {name}: marked reauthorize; it is synced again once the seller connects it again"
            )),
            Ok(false) => {}
            Err(e) => self.sink.note(&format!(
                "inbox: {name}: could not be marked reauthorize: {e}"
            )),
        }
    }

    /// When `account` runs next after a step that ended in `outcome`.
    pub fn next(&self, account: &Account, outcome: &Outcome) -> Next {
        let name = account.name();
        let interval = account.poll_interval();
        if outcome.committed {
            self.recovered(name);
            return Next::Interval(interval);
        }
        if outcome.reauthorize {
            if !self.follows() {
                self.sink.note(&format!(
                    "inbox: {name}: needs authorising again; parked for {} min (no further token calls)",
                    PARKED.as_secs() / 60
                ));
            }
            return Next::Parked(PARKED);
        }
        // The store failing is the database's doing, shared by every account: the account
        // runs again at its interval, its failures not counted.
        if outcome.store_failed {
            return Next::Interval(interval);
        }
        let failures = self.failed(name);
        Next::Backoff {
            wait: backoff(interval, failures, name),
            failures,
        }
    }

    /// The store's accounts and those loaded last, when the engine follows them.
    pub fn followed(&self) -> Option<(crate::Directory, crate::directory::Loaded)> {
        self.directory.read().ok()?.clone()
    }

    /// The store's accounts, when the engine follows them.
    pub fn directory(&self) -> Option<crate::Directory> {
        self.directory.read().ok()?.as_ref().map(|(d, _)| d.clone())
    }

    /// Whether the engine follows a store's accounts.
    fn follows(&self) -> bool {
        self.directory.read().is_ok_and(|d| d.is_some())
    }

    /// Counts a failed step of `name`; the steps failed in a row.
    fn failed(&self, name: &str) -> u32 {
        let Ok(mut all) = self.failures.lock() else {
            return 1;
        };
        let n = all.entry(name.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// A step of `name` was committed: its failures are forgotten.
    fn recovered(&self, name: &str) {
        if let Ok(mut all) = self.failures.lock() {
            all.remove(name);
        }
    }
}

/// When an account whose last `failures` steps failed runs again: its interval doubled
/// per failure, capped at [`BACKOFF_MAX`] (the one retry policy's backoff), less up to a
/// fifth (a jitter fixed per account and failure, so accounts that failed together
/// spread out).
pub fn backoff(interval: Duration, failures: u32, account: &str) -> Duration {
    let policy = RetryPolicy {
        base_delay: interval,
        max_delay: BACKOFF_MAX,
        ..RetryPolicy::default()
    };
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(failures);
    for b in account.bytes() {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let fifth = (seed % 1000) as f64 / 1000.0 * 0.2;
    policy.backoff(failures.saturating_add(1), 1.0 - fifth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_account_backs_off_doubling_with_jitter_up_to_an_hour() {
        let second = Duration::from_secs(1);
        for (failures, low, high) in [
            (1u32, 1.6, 2.0),
            (2, 3.2, 4.0),
            (5, 25.6, 32.0),
            (12, 2880.0, 3600.0),
            (40, 2880.0, 3600.0),
        ] {
            let wait = backoff(second, failures, "allegro-7").as_secs_f64();
            assert!((low..=high).contains(&wait), "{failures}: {wait}");
            assert_eq!(backoff(second, failures, "allegro-7").as_secs_f64(), wait);
        }
        // Accounts that failed together spread out.
        let waits: std::collections::HashSet<u128> = (0..50)
            .map(|i| backoff(second, 3, &format!("ozon-{i}")).as_millis())
            .collect();
        assert!(waits.len() > 25, "{waits:?}");
        assert!(backoff(Duration::from_secs(86_400), 1, "a") <= BACKOFF_MAX);
    }
}
