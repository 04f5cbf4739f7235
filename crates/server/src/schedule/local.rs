//! The in-process scheduler: each account's worklist and loop — targeted syncs and the
//! reconcile step when it is due — one at a time, so that its steps never race each
//! other.
//!
//! Notifications for one target that arrive while it is being synced are kept and merged:
//! it is synced once more afterwards, however many arrived. A target whose work failed
//! for a reason that may pass goes back in the worklist after a backoff, its journal
//! entries still pending.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use marketplace_inbox::sync::journal::JournalState;
use marketplace_inbox::{Account, Marketplace, RetryPolicy};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::engine::{Engine, Next};
use crate::metrics::Metrics;
use crate::work::{run_target, Ran, Target};

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
    RetryPolicy {
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(300),
        ..RetryPolicy::default()
    }
    .backoff(attempts.saturating_add(1), 1.0)
}

/// An account's worklist.
struct Queue {
    work: Mutex<BTreeMap<Target, Vec<Waiting>>>,
    wake: Notify,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            work: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
        }
    }

    /// Adds what a notification asks for.
    fn add(&self, target: Target, waiting: Waiting) -> bool {
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

/// The in-process scheduler of an engine's accounts. It follows the engine's accounts:
/// one that appears gets a loop, one that is gone has its loop (and the step under way)
/// stopped.
pub struct Local {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    push_poll: Option<Duration>,
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    stop: watch::Sender<bool>,
    loops: Mutex<Vec<JoinHandle<()>>>,
}

impl Local {
    /// Starts a loop per account of `engine`. Accounts whose marketplace pushes (Mercado
    /// Libre, Ozon) are reconciled every `push_poll` when it is given (the safety net
    /// under their notifications), the others at their own interval.
    pub fn start(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        push_poll: Option<Duration>,
    ) -> Arc<Local> {
        let (stop, _) = watch::channel(false);
        let local = Arc::new(Local {
            engine: engine.clone(),
            metrics,
            push_poll,
            queues: Mutex::new(HashMap::new()),
            stop,
            loops: Mutex::new(Vec::new()),
        });
        local.start_new();
        let follower = tokio::spawn(follow(local.clone(), engine.accounts_changed()));
        if let Ok(mut all) = local.loops.lock() {
            all.push(follower);
        }
        local
    }

    /// Starts the loop of every account that has none.
    fn start_new(self: &Arc<Self>) {
        let Ok(mut queues) = self.queues.lock() else {
            return;
        };
        let mut started = Vec::new();
        for account in self.engine.inbox().accounts() {
            if queues.contains_key(account.name()) {
                continue;
            }
            let queue = Arc::new(Queue::new());
            queues.insert(account.name().to_string(), queue.clone());
            let pushed = matches!(
                account.marketplace(),
                Marketplace::MercadoLibre | Marketplace::Ozon
            );
            let interval = match self.push_poll {
                Some(poll) if pushed => poll,
                _ => account.poll_interval(),
            };
            started.push(tokio::spawn(run(
                self.clone(),
                account.name().to_string(),
                queue,
                interval,
                self.stop.subscribe(),
            )));
        }
        drop(queues);
        if let Ok(mut all) = self.loops.lock() {
            all.retain(|l| !l.is_finished());
            all.extend(started);
        }
    }

    /// Hands a journaled notification's work (`target`) to its account's worklist; false
    /// when the account is not this scheduler's.
    pub fn add(&self, account: &str, target: Target, waiting: Waiting) -> bool {
        let queue = self
            .queues
            .lock()
            .ok()
            .and_then(|q| q.get(account).cloned());
        queue.is_some_and(|q| q.add(target, waiting))
    }

    /// Stops every loop, letting the steps under way finish for up to `grace`; false
    /// when some were still running (their notifications stay pending in the journal).
    pub async fn stop(&self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let loops = self
            .loops
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        tokio::time::timeout(grace, futures::future::join_all(loops))
            .await
            .is_ok()
    }
}

/// Starts the loops of accounts that appear, until the scheduler stops.
async fn follow(local: Arc<Local>, mut changes: watch::Receiver<u64>) {
    let mut stop = local.stop.subscribe();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                local.start_new();
            }
        }
    }
}

/// Runs the worklist of the account named `name` and reconciles it when due (the first
/// time at once) until `stop` turns true (the step under way is finished first) or the
/// account is gone from the engine (the step under way is stopped). A committed step
/// runs again after `interval`; a failing account backs off, one that must be authorised
/// again is parked (notifications still run its targets).
async fn run(
    local: Arc<Local>,
    name: String,
    queue: Arc<Queue>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_poll = tokio::time::Instant::now();
    let engine = local.engine.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(account) = engine.account(&name) else {
            break;
        };
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = engine.gone(&name) => break,
            _ = queue.wake.notified() => {
                tokio::select! {
                    _ = notified(&local, &account, &queue) => {}
                    _ = engine.gone(&name) => break,
                }
            }
            _ = tokio::time::sleep_until(next_poll) => {
                let step = tokio::select! {
                    step = engine.reconcile(&account) => step,
                    _ = engine.gone(&name) => break,
                };
                let (outcome, next) = step;
                local.metrics.synced(account.marketplace().as_str(), "poll", outcome.committed);
                let wait = match next {
                    Next::Interval(_) => interval,
                    other => other.wait(),
                };
                next_poll = tokio::time::Instant::now() + wait;
            }
        }
    }
    // Gone: its worklist goes too (a later account of that name gets a new loop).
    if let Ok(mut queues) = local.queues.lock() {
        if queues.get(&name).is_some_and(|q| Arc::ptr_eq(q, &queue)) {
            queues.remove(&name);
        }
    }
    engine.sink().note(&format!(
        "inbox: {name}: no longer synced here (removed or renamed)"
    ));
}

/// Does what the notifications so far ask for, each target once.
async fn notified(local: &Local, account: &Account, queue: &Arc<Queue>) {
    let marketplace = account.marketplace().as_str();
    let (engine, metrics) = (&local.engine, &local.metrics);
    for (target, waiting) in queue.take() {
        let ran = run_target(engine, account, &target).await;
        metrics.synced(marketplace, "notification", ran == Ran::Done);
        let state = match ran {
            Ran::Done => {
                for w in &waiting {
                    metrics.stored(marketplace, w.received.elapsed().as_secs_f64());
                }
                JournalState::Done
            }
            Ran::Ignored(reason) => {
                for _ in &waiting {
                    metrics.ignored(marketplace, reason);
                }
                JournalState::Ignored
            }
            Ran::Retry(reason) => {
                // Pending still: back in the worklist after a backoff.
                let attempts = waiting.iter().map(|w| w.attempts).max().unwrap_or(0);
                let delay = retry_after(attempts);
                engine.sink().note(&format!(
                    "inbox: {}: a notification's work failed ({reason}); trying again in {} s",
                    account.name(),
                    delay.as_secs()
                ));
                queue.again(target, waiting, delay);
                continue;
            }
        };
        let ids = waiting.iter().map(|w| w.journal).collect();
        if let Err(e) = engine.store().journal_settle(ids, state).await {
            engine.sink().note(&format!(
                "inbox: {}: settling notifications in the journal failed: {e}",
                account.name()
            ));
        }
    }
}
