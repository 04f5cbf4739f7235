//! What the request path may do on its own: which requests it may repeat, how often and
//! how long it waits, and how fast it may send. One [`Policy`] per account, shared by
//! every clone of its clients, so every stream and call of an account draws on the same
//! rate limits.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::Method;

/// What repeating a request can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Changes nothing (GETs, Ozon's list and history POSTs): repeated on any transient failure.
    Read,
    /// Repeating it leaves the same state (mark read, PUT of attachment bytes): also
    /// repeated on any transient failure.
    Idempotent,
    /// Creates something (send, upload, declare, start, delete): repeated only when the
    /// request certainly did not reach the vendor (connection refused, 429).
    Write,
    /// A file download: read, but its body is streamed to the caller, not buffered here.
    Download,
}

/// How a vendor's operations are classified beyond their HTTP method.
#[derive(Clone, Copy, Debug, Default)]
pub struct Classify {
    /// POST operations that only read (Ozon's `/v3/chat/list`, `/v3/chat/history`).
    pub read_posts: &'static [&'static str],
    /// POST operations that may be repeated safely (Ozon's `/v2/chat/read`).
    pub idempotent_posts: &'static [&'static str],
    /// Operations that answer with a file.
    pub downloads: &'static [&'static str],
}

impl Classify {
    /// The kind of `operation_id` sent with `method`.
    pub fn kind(&self, method: &Method, operation_id: &str) -> Kind {
        let listed = |ids: &[&str]| ids.iter().any(|id| same_operation(id, operation_id));
        if listed(self.downloads) {
            Kind::Download
        } else if *method == Method::GET || *method == Method::HEAD || listed(self.read_posts) {
            Kind::Read
        } else if *method == Method::PUT
            || *method == Method::PATCH
            || listed(self.idempotent_posts)
        {
            Kind::Idempotent
        } else {
            Kind::Write
        }
    }
}

/// progenitor reports operation ids in snake_case; the specs' may be camelCase.
pub fn same_operation(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.replace('_', "").to_ascii_lowercase();
    norm(a) == norm(b)
}

/// How failed requests are repeated.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1: never repeat).
    pub max_attempts: u32,
    /// The first backoff; each further one doubles, with full jitter.
    pub base_delay: Duration,
    /// The longest single wait.
    pub max_delay: Duration,
    /// The most time spent waiting between attempts of one request; a wait that would
    /// pass it ends the request with its last answer.
    pub max_total_delay: Duration,
    /// The wait after a 429 that names no `Retry-After` (the vendor's own rule).
    pub rate_limited_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_total_delay: Duration::from_secs(90),
            rate_limited_wait: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Never repeat a request.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The backoff before attempt `attempt + 1` (attempt counts from 1), with full
    /// jitter from `unit` in [0, 1).
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        exp.min(self.max_delay).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Which requests a rate limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// Every request.
    All,
    /// Requests that only read (GET, and read-only POSTs).
    Reads,
    /// Everything else.
    Writes,
    /// These operations only.
    Operations(&'static [&'static str]),
}

impl Applies {
    fn matches(self, kind: Kind, operation_id: &str) -> bool {
        match self {
            Applies::All => true,
            Applies::Reads => matches!(kind, Kind::Read | Kind::Download),
            Applies::Writes => matches!(kind, Kind::Write | Kind::Idempotent),
            Applies::Operations(ids) => ids.iter().any(|id| same_operation(id, operation_id)),
        }
    }
}

/// Whose requests a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One account's (one seller's token).
    Account,
    /// Every account of one application (client id) together: in a process, its
    /// accounts share one limiter; across a fleet, each process takes its share
    /// ([`set_fleet_share`]).
    Application,
}

/// A vendor rate limit: at most `requests` per `per`, for the requests it applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    /// A name to override it by (`reads`, `writes`, `all`, `messages`).
    pub name: &'static str,
    /// Requests allowed…
    pub requests: u32,
    /// …per this period.
    pub per: Duration,
    /// Which requests count.
    pub applies: Applies,
    /// Whose requests count.
    pub scope: Scope,
}

impl RateLimit {
    /// A limit of `requests` per `per` for one account.
    pub const fn new(name: &'static str, requests: u32, per: Duration, applies: Applies) -> Self {
        RateLimit {
            name,
            requests,
            per,
            applies,
            scope: Scope::Account,
        }
    }

    /// The same limit, counted for every account of the application together.
    pub const fn per_application(self) -> Self {
        RateLimit {
            scope: Scope::Application,
            ..self
        }
    }
}

/// How many processes share the application-wide limits (1 unless a fleet says more).
static FLEET_SHARE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Tells this process that `processes` processes (itself included) share every
/// application-wide limit: each then sends at most its share of the limit (0 counts
/// as 1). A fleet of workers sets it from the number of live workers.
pub fn set_fleet_share(processes: u32) {
    FLEET_SHARE.store(processes.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// The number of processes sharing the application-wide limits.
pub fn fleet_share() -> u32 {
    FLEET_SHARE
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(1)
}

/// The limiters of application-wide limits, by (marketplace, application, limit,
/// requests, period): accounts of one application in this process share them.
type Shared = std::collections::HashMap<
    (&'static str, String, &'static str, u32, Duration),
    Arc<DefaultDirectRateLimiter>,
>;

fn shared_limiters() -> &'static Mutex<Shared> {
    static SHARED: std::sync::OnceLock<Mutex<Shared>> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| Mutex::new(Shared::new()))
}

/// The share of a published limit the client uses, leaving room for the jitter between
/// when a request leaves and when the vendor counts it.
pub const LIMIT_SHARE: f64 = 0.98;

/// Requests a limiter lets out at once after a pause: two where the share left unused
/// of the published limit holds at least two requests a window (so that a request that
/// waited past its turn — timers round up — does not cost the turn), else one.
fn burst(requests: u32) -> NonZeroU32 {
    let spare = f64::from(requests) * (1.0 - LIMIT_SHARE);
    if spare >= 2.0 {
        NonZeroU32::MIN.saturating_add(1)
    } else {
        NonZeroU32::MIN
    }
}

/// The limiter of `l`, or none when it limits nothing (a zero period or count) or its
/// spacing is beyond what the limiter holds.
fn limiter(l: &RateLimit) -> Option<DefaultDirectRateLimiter> {
    let spacing = l.per.checked_div(l.requests)?.as_secs_f64() / LIMIT_SHARE;
    // The limiter counts in u64 nanoseconds (about 584 years).
    let spacing = Duration::try_from_secs_f64(spacing)
        .ok()
        .filter(|s| s.as_nanos() < u128::from(u64::MAX))?;
    let quota = Quota::with_period(spacing)?.allow_burst(burst(l.requests));
    Some(RateLimiter::direct(quota))
}

/// Who the requests are for, as tracing spans name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labels {
    /// `allegro`, `mercadolibre`, `magalu`, `ozon`.
    pub marketplace: &'static str,
    /// The account's name.
    pub account: String,
}

/// An account's request policy: retries, rate limits, labels. Cheap to clone (shared).
#[derive(Clone)]
pub struct Policy(Arc<PolicyInner>);

struct PolicyInner {
    labels: Labels,
    retry: RetryPolicy,
    classify: Classify,
    limits: Vec<(RateLimit, Arc<DefaultDirectRateLimiter>)>,
    jitter: Mutex<u64>,
    /// No request goes before this instant (a 429's wait).
    paused_until: Mutex<Option<tokio::time::Instant>>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("labels", &self.0.labels)
            .field("retry", &self.0.retry)
            .field(
                "limits",
                &self.0.limits.iter().map(|(l, _)| l).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Policy {
    /// A policy with these retries and limits; limits whose period or count is zero, or
    /// whose spacing is beyond what the limiter holds (centuries), are left out.
    pub fn new(
        labels: Labels,
        retry: RetryPolicy,
        classify: Classify,
        limits: Vec<RateLimit>,
    ) -> Self {
        let limits = limits
            .into_iter()
            .filter_map(|l| {
                let limiter = Arc::new(limiter(&l)?);
                Some((l, limiter))
            })
            .collect();
        let seed = labels
            .account
            .bytes()
            .fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
            });
        Policy(Arc::new(PolicyInner {
            labels,
            retry,
            classify,
            limits,
            jitter: Mutex::new(seed | 1),
            paused_until: Mutex::new(None),
        }))
    }

    /// No retries and no limits: every request goes out once, at once.
    pub fn plain(marketplace: &'static str) -> Self {
        Policy::new(
            Labels {
                marketplace,
                account: String::new(),
            },
            RetryPolicy::none(),
            Classify::default(),
            Vec::new(),
        )
    }

    /// The same policy with other retries and limits (labels and classification kept).
    pub fn adjusted(&self, retry: RetryPolicy, limits: Vec<RateLimit>) -> Policy {
        Policy::new(self.0.labels.clone(), retry, self.0.classify, limits)
    }

    /// The same policy for an account of `application` (its client id): its
    /// application-wide limits use the limiter every account of that application in
    /// this process shares.
    pub fn of_application(&self, application: &str) -> Policy {
        let limits = self
            .0
            .limits
            .iter()
            .map(|(l, own)| {
                if l.scope != Scope::Application {
                    return (l.clone(), own.clone());
                }
                let key = (
                    self.0.labels.marketplace,
                    application.to_string(),
                    l.name,
                    l.requests,
                    l.per,
                );
                let shared = match shared_limiters().lock() {
                    Ok(mut all) => all.entry(key).or_insert_with(|| own.clone()).clone(),
                    Err(_) => own.clone(),
                };
                (l.clone(), shared)
            })
            .collect();
        Policy(Arc::new(PolicyInner {
            labels: self.0.labels.clone(),
            retry: self.0.retry.clone(),
            classify: self.0.classify,
            limits,
            jitter: Mutex::new(self.0.jitter.lock().map(|j| *j).unwrap_or(1)),
            paused_until: Mutex::new(None),
        }))
    }

    /// Whether this policy's limit `name` is the limiter of `other`'s (both accounts
    /// of one application).
    pub fn shares_limit(&self, other: &Policy, name: &str) -> bool {
        let find = |p: &Policy| {
            p.0.limits
                .iter()
                .find(|(l, _)| l.name == name)
                .map(|(_, r)| r.clone())
        };
        matches!((find(self), find(other)), (Some(a), Some(b)) if Arc::ptr_eq(&a, &b))
    }

    /// The labels.
    pub fn labels(&self) -> &Labels {
        &self.0.labels
    }

    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.0.retry
    }

    /// The limits in force.
    pub fn limits(&self) -> impl Iterator<Item = &RateLimit> {
        self.0.limits.iter().map(|(l, _)| l)
    }

    /// The kind of a request.
    pub fn kind(&self, method: &Method, operation_id: &str) -> Kind {
        self.0.classify.kind(method, operation_id)
    }

    /// Waits until every limit that counts this request lets it go. An
    /// application-wide limit shared by a fleet of `n` processes takes `n` of its turns,
    /// so that together they keep to it.
    pub async fn until_ready(&self, kind: Kind, operation_id: &str) {
        let paused = self.0.paused_until.lock().ok().and_then(|p| *p);
        if let Some(until) = paused {
            tokio::time::sleep_until(until).await;
        }
        for (limit, limiter) in &self.0.limits {
            if limit.applies.matches(kind, operation_id) {
                let turns = match limit.scope {
                    Scope::Account => 1,
                    Scope::Application => fleet_share(),
                };
                for _ in 0..turns {
                    limiter.until_ready().await;
                }
            }
        }
    }

    /// Holds every request of the account for `wait` (the vendor answered 429): a
    /// pause already longer is kept.
    pub fn pause(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait.min(Duration::from_secs(24 * 3600));
        if let Ok(mut paused) = self.0.paused_until.lock() {
            if paused.is_none_or(|p| p < until) {
                *paused = Some(until);
            }
        }
    }

    /// A value in [0, 1) for jitter: deterministic for an account name (xorshift).
    pub fn unit(&self) -> f64 {
        let Ok(mut state) = self.0.jitter.lock() else {
            return 0.5;
        };
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_method_and_operation() {
        let c = Classify {
            read_posts: &["ChatAPI_ChatListV3"],
            idempotent_posts: &["ChatAPI_ChatReadV2"],
            downloads: &["downloadAttachmentGET"],
        };
        assert_eq!(c.kind(&Method::GET, "list"), Kind::Read);
        assert_eq!(c.kind(&Method::POST, "chat_api_chat_list_v3"), Kind::Read);
        assert_eq!(
            c.kind(&Method::POST, "chat_api_chat_read_v2"),
            Kind::Idempotent
        );
        assert_eq!(c.kind(&Method::PUT, "change_read_flag"), Kind::Idempotent);
        assert_eq!(c.kind(&Method::POST, "send"), Kind::Write);
        assert_eq!(
            c.kind(&Method::GET, "download_attachment_get"),
            Kind::Download
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_never_overflows() {
        let r = RetryPolicy::default();
        assert_eq!(r.backoff(1, 1.0), Duration::from_millis(200));
        assert_eq!(r.backoff(3, 1.0), Duration::from_millis(800));
        assert_eq!(r.backoff(40, 1.0), r.max_delay);
        assert_eq!(r.backoff(u32::MAX, 0.5), r.max_delay / 2);
    }

    #[test]
    fn a_burst_of_two_only_where_the_unused_share_holds_two_requests() {
        // Allegro 9,000 a minute, Mercado Libre 500, Magalu 200: 2; Ozon 50 a second: 1.
        let b = |n| burst(n).get();
        assert_eq!(
            (b(9_000), b(500), b(200), b(100), b(50), b(1)),
            (2, 2, 2, 2, 1, 1)
        );
    }

    #[test]
    fn jitter_is_deterministic_per_account() {
        let p = |a: &str| {
            Policy::new(
                Labels {
                    marketplace: "ozon",
                    account: a.into(),
                },
                RetryPolicy::default(),
                Classify::default(),
                vec![],
            )
        };
        let (a, b) = (p("x"), p("x"));
        let xs: Vec<f64> = (0..5).map(|_| a.unit()).collect();
        let ys: Vec<f64> = (0..5).map(|_| b.unit()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|u| (0.0..1.0).contains(u)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_request_of_the_account_not_another_account() {
        let policy = |account: &str| {
            Policy::new(
                Labels {
                    marketplace: "allegro",
                    account: account.to_string(),
                },
                RetryPolicy::default(),
                Classify::default(),
                Vec::new(),
            )
        };
        let (one, other) = (policy("one"), policy("other"));
        let began = tokio::time::Instant::now();
        one.pause(Duration::from_secs(3));
        // A shorter pause after it does not shorten it.
        one.clone().pause(Duration::from_secs(1));
        other.until_ready(Kind::Read, "list").await;
        assert_eq!(
            began.elapsed(),
            Duration::ZERO,
            "another account is not held"
        );
        one.until_ready(Kind::Write, "send").await;
        assert_eq!(began.elapsed(), Duration::from_secs(3));
        // Once it has passed, requests go at once.
        one.until_ready(Kind::Read, "list").await;
        assert_eq!(began.elapsed(), Duration::from_secs(3));
    }

    #[test]
    fn accounts_of_one_application_share_its_limiter_and_no_other() {
        let p = |account: &str| {
            Policy::new(
                Labels {
                    marketplace: "allegro",
                    account: account.into(),
                },
                RetryPolicy::default(),
                Classify::default(),
                vec![
                    RateLimit::new("all", 9_000, Duration::from_secs(60), Applies::All)
                        .per_application(),
                    RateLimit::new("messages", 1, Duration::from_secs(1), Applies::All),
                ],
            )
        };
        let a = p("a").of_application("app-one");
        let b = p("b").of_application("app-one");
        let c = p("c").of_application("app-two");
        let alone = p("d");
        assert!(a.shares_limit(&b, "all"), "one application: one limiter");
        assert!(!a.shares_limit(&c, "all"), "another application");
        assert!(!a.shares_limit(&alone, "all"), "no application");
        assert!(
            !a.shares_limit(&b, "messages"),
            "per-account limits stay per account"
        );
        assert_eq!(a.limits().count(), 2);
    }
}
