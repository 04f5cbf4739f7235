//! `inbox worker` processes sharing one PostgreSQL database: every message of the
//! sandbox stored exactly once, new ones picked up at each account's interval, a worker
//! killed with SIGKILL costs nothing, and SIGTERM stops a worker cleanly.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Vendor};
use serde_json::json;

mod common;
use common::{start, EXAMPLES};
#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

/// Held by each test of this file while it runs: fleets of worker processes share the
/// machine's two cores with PostgreSQL and the sandbox, and their timing bounds are
/// about one fleet at a time.
static ONE_FLEET_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_fleet_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_FLEET_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The key the fleet's tokens are encrypted with in these tests.
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// A database of its own, a sandbox, and the sandbox's accounts in a config file.
struct Fleet {
    runtime: tokio::runtime::Runtime,
    db: pg::TestDb,
    env: common::Env,
    path: std::path::PathBuf,
}

/// A [`Fleet`] for the test `name`: `conversations` generated conversations of two
/// messages per marketplace, the accounts in their OAuth form when `oauth`, each polled
/// every `interval` seconds; none without a PostgreSQL server.
fn fleet(name: &str, conversations: u64, oauth: bool, interval: f64) -> Option<Fleet> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(pg::database(name))?;
    let env = start(
        Config {
            conversations,
            messages_per_conversation: 2,
            ..Config::default()
        },
        &format!("worker-{name}"),
    );
    let mut config = match oauth {
        true => env.sandbox.oauth_accounts_config(),
        false => env.sandbox.accounts_config(),
    };
    for a in config["accounts"].as_array_mut().unwrap() {
        a["poll_interval_secs"] = json!(interval);
    }
    let path = env.write_config(&config);
    Some(Fleet {
        runtime,
        db,
        env,
        path,
    })
}

fn worker(config: &std::path::Path, url: &str) -> Child {
    worker_logging(config, url, Stdio::piped())
}

/// [`worker`], its stderr to `stderr`.
fn worker_logging(config: &std::path::Path, url: &str, stderr: Stdio) -> Child {
    common::inbox_command()
        .arg("--config")
        .arg(config)
        .args(["--json", "worker", "--db", url, "--concurrency", "4"])
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Messages stored, and distinct (account, conversation, id) among them.
fn stored(runtime: &tokio::runtime::Runtime, url: &str) -> (i64, i64) {
    let counted: Vec<(i64, i64)> = runtime
        .block_on(pg::rows(
            url,
            "SELECT COUNT(*), COUNT(DISTINCT (account, conversation, id)) FROM messages",
        ))
        // Before the first worker made the tables, nothing is stored.
        .unwrap_or_default();
    counted.first().copied().unwrap_or((0, 0))
}

/// Workers heard from in the last 10 s.
fn live_workers(runtime: &tokio::runtime::Runtime, url: &str) -> i64 {
    let live: Vec<(i64,)> = runtime
        .block_on(pg::rows(
            url,
            "SELECT COUNT(*) FROM inbox_workers WHERE seen > now() - interval '10 seconds'",
        ))
        .unwrap();
    live.first().map_or(0, |(n,)| *n)
}

fn wait_for(runtime: &tokio::runtime::Runtime, url: &str, want: i64) {
    wait_for_all(runtime, url, want, Duration::from_secs(90));
}

fn stop(mut child: Child) -> std::process::Output {
    // SIGTERM: graceful shutdown.
    let pid = i32::try_from(child.id()).unwrap();
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "a worker did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn workers_share_accounts_and_store_every_message_once_through_a_kill() {
    let _fleet = one_fleet_at_a_time();
    let Some(Fleet {
        runtime,
        db,
        env,
        path,
    }) = fleet("worker", 3, false, 0.5)
    else {
        return;
    };
    let generated = 4 * 3 * 2 + 2 + 2 + 1 + 1;

    let a = worker(&path, &db.url);
    let b = worker(&path, &db.url);
    wait_for(&runtime, &db.url, generated);
    // Both beat, so each takes half of the application-wide limits.
    assert_eq!(live_workers(&runtime, &db.url), 2);

    for (vendor, id) in EXAMPLES {
        assert!(env.sandbox.buyer_writes(vendor, id, "first round"));
    }
    wait_for(&runtime, &db.url, generated + 4);

    // One worker dies without a word; another starts on the same config.
    let mut a = a;
    a.kill().unwrap();
    a.wait().unwrap();
    for (vendor, id) in EXAMPLES {
        assert!(env.sandbox.buyer_writes(vendor, id, "after the kill"));
    }
    let c = worker(&path, &db.url);
    wait_for(&runtime, &db.url, generated + 8);

    for survivor in [b, c] {
        let out = stop(survivor);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Stopped workers leave the count (the killed one ages out).
    assert!(live_workers(&runtime, &db.url) <= 1);
    // Each account has exactly one keyed job left, for its next run. A job the killed
    // worker held may stand beside it unkeyed (the engine retires a locked row that a
    // new run replaces, until its recovery runs it once more).
    let keys: Vec<(Option<String>,)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT key FROM graphile_worker.jobs WHERE key IS NOT NULL ORDER BY key",
        ))
        .unwrap();
    let keys: Vec<&str> = keys.iter().filter_map(|(k,)| k.as_deref()).collect();
    assert_eq!(
        keys,
        [
            "inbox-sync:allegro",
            "inbox-sync:magalu",
            "inbox-sync:mercadolibre",
            "inbox-sync:ozon"
        ]
    );
    runtime.block_on(db.drop_now());
}

/// OAuth accounts without a token to start from: two workers need one at once, one
/// refreshes (the row locked), the other finds the rotated tokens; both go on with them.
#[test]
fn two_workers_refresh_an_oauth_account_once_and_both_go_on() {
    let _fleet = one_fleet_at_a_time();
    let Some(Fleet {
        runtime,
        db,
        env,
        path,
    }) = fleet("tokens", 2, true, 0.3)
    else {
        return;
    };

    // Without the key, a fleet refuses OAuth accounts and says why.
    let refused = common::inbox_command()
        .arg("--config")
        .arg(&path)
        .args(["worker", "--db", &db.url])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("INBOX_TOKEN_KEY"), "{why}");

    let spent: Vec<String> = [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu]
        .iter()
        .map(|v| env.sandbox.refresh_token(*v))
        .collect();
    let a = worker(&path, &db.url);
    let b = worker(&path, &db.url);
    let generated = 4 * 2 * 2 + 2 + 2 + 1 + 1;
    wait_for(&runtime, &db.url, generated);
    for (vendor, id) in EXAMPLES {
        assert!(env.sandbox.buyer_writes(vendor, id, "still there?"));
    }
    wait_for(&runtime, &db.url, generated + 4);
    for vendor in [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu] {
        assert_eq!(
            env.sandbox.refreshes(vendor),
            1,
            "{vendor:?}: one refresh for the fleet"
        );
    }
    for w in [a, b] {
        let out = stop(w);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("invalid_grant"), "{stderr}");
    }
    // Stored encrypted: no token in the clear.
    let rows: Vec<(String, Vec<u8>)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT account, sealed FROM inbox_tokens ORDER BY account",
        ))
        .unwrap();
    let names: Vec<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["allegro", "magalu", "mercadolibre"]);
    for (_, sealed) in &rows {
        let text = String::from_utf8_lossy(sealed);
        for vendor in [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu] {
            assert!(!text.contains(&env.sandbox.refresh_token(vendor)));
        }
        for old in &spent {
            assert!(!text.contains(old.as_str()));
        }
    }
    runtime.block_on(db.drop_now());
}

/// Records every checkpoint commit (the version it replaced, when) so that the test can
/// tell whether a step was ever committed twice from one version, and when each account
/// was first synced.
const AUDIT: &str = "
  CREATE TABLE audit_commits (account TEXT NOT NULL, from_version BIGINT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
  CREATE FUNCTION audit_commit() RETURNS trigger AS $$ BEGIN
    INSERT INTO audit_commits (account, from_version)
      VALUES (NEW.account, CASE WHEN TG_OP = 'INSERT' THEN 0 ELSE OLD.version END);
    RETURN NEW; END $$ LANGUAGE plpgsql;
  CREATE TRIGGER audit_commit AFTER INSERT OR UPDATE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_commit()";

/// The fleet at size: 3 workers on 1,000 accounts × 4 marketplaces of a sandbox that
/// enforces the vendors' published limits (Allegro's per application), every tenth
/// account on OAuth with single-use refresh tokens whose access tokens live 20 s. One
/// worker is killed with SIGKILL mid-run and started again. Afterwards the database holds
/// exactly the sandbox's messages, account by account; no checkpoint was committed twice
/// from one version; every account was synced; the sandbox refused nothing (no 429), and
/// no `invalid_grant` but for grants whose refresh the SIGKILL cut (the window the
/// README names: at most the killed worker's concurrency, each said once and parked).
/// How soon every account was first synced is printed, not asserted: it is a figure of
/// the machine's load, and the benches measure speed.
#[test]
fn three_workers_sync_a_thousand_accounts_per_marketplace_through_a_kill() {
    let _fleet = one_fleet_at_a_time();
    use inbox_sandbox::{Limit, OAuthConfig};
    use std::collections::HashMap;
    const ACCOUNTS: u64 = 1_000;
    const INTERVAL: f64 = 60.0;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("fleet")) else {
        return;
    };
    let env = start(
        Config {
            conversations: 1,
            messages_per_conversation: 2,
            accounts: ACCOUNTS,
            oauth_every: 10,
            limits: Limit::published(),
            oauth: OAuthConfig {
                access_ttl: Duration::from_secs(20),
                ..OAuthConfig::default()
            },
            ..Config::default()
        },
        "worker-fleet",
    );
    let mut config = env.sandbox.accounts_config();
    for a in config["accounts"].as_array_mut().unwrap() {
        a["poll_interval_secs"] = json!(INTERVAL);
    }
    let path = env.write_config(&config);
    let started: chrono::DateTime<chrono::Utc> = runtime.block_on(async {
        let store = marketplace_inbox::sync::PostgresStore::connect(&db.url, 1)
            .await
            .unwrap();
        sqlx::raw_sql(AUDIT).execute(store.pool()).await.unwrap();
        sqlx::query_scalar("SELECT now()")
            .fetch_one(store.pool())
            .await
            .unwrap()
    });
    let expected = |sandbox: &inbox_sandbox::Sandbox| -> HashMap<String, i64> {
        sandbox
            .stats()
            .into_iter()
            .map(|s| (s.account, i64::try_from(s.messages).unwrap()))
            .collect()
    };
    let total = |counts: &HashMap<String, i64>| counts.values().sum::<i64>();
    let want = expected(&env.sandbox);
    assert_eq!(want.len(), 4_000);

    // Each worker's stderr in a file, for the diagnosis of a failure.
    let logs = std::cell::Cell::new(0);
    let spawn = || {
        let n = logs.get() + 1;
        logs.set(n);
        let log = std::fs::File::create(env.dir.join(format!("worker-{n}.log"))).unwrap();
        common::inbox_command()
            .arg("--config")
            .arg(&path)
            .args(["--json", "worker", "--db", &db.url, "--concurrency", "8"])
            .env_clear()
            .env("INBOX_TOKEN_KEY", KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap()
    };
    let diagnose = |want: &HashMap<String, i64>| -> String {
        let got: Vec<(String, i64)> = runtime
            .block_on(pg::rows(
                &db.url,
                "SELECT account, COUNT(*) FROM messages GROUP BY account",
            ))
            .unwrap_or_default();
        let got: HashMap<String, i64> = got.into_iter().collect();
        let short: Vec<String> = want
            .iter()
            .filter(|(a, n)| got.get(*a).copied().unwrap_or(0) < **n)
            .map(|(a, n)| format!("{a} {}/{n}", got.get(a).copied().unwrap_or(0)))
            .take(10)
            .collect();
        let jobs: Vec<(String,)> = runtime
            .block_on(pg::rows(
                &db.url,
                "SELECT concat_ws(' ', key, locked_by, attempts, last_error, run_at) FROM graphile_worker.jobs ORDER BY run_at LIMIT 5",
            ))
            .unwrap_or_default();
        let mut text = format!("accounts short: {short:?}\nearliest jobs: {jobs:?}\n");
        for n in 1..=logs.get() {
            let log = std::fs::read_to_string(env.dir.join(format!("worker-{n}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            text.push_str(&format!("worker {n}: {tail:?}\n"));
        }
        text
    };
    let a = spawn();
    let b = spawn();
    let c = spawn();
    // Mid-run: a third stored, one worker dies without a word.
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored(&runtime, &db.url).0 < total(&want) / 3 {
        assert!(Instant::now() < deadline, "a third not stored in 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut a = a;
    a.kill().unwrap();
    a.wait().unwrap();
    let d = spawn();
    // A SIGKILL between the vendor's rotation of a single-use refresh token and the
    // first write of the new pair loses that grant (the window the README names): such
    // an account is said to need authorising again, once, and is parked. Every other
    // account is synced exactly.
    let lost = || -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        for n in 1..=logs.get() {
            let log = std::fs::read_to_string(env.dir.join(format!("worker-{n}.log")))
                .unwrap_or_default();
            for line in log.lines() {
                if let Some(name) = line
                    .strip_prefix("inbox: ")
                    .and_then(|l| l.strip_suffix(" (no further token calls)"))
                    .and_then(|l| l.split_once(": needs authorising again"))
                    .map(|(name, _)| name.to_string())
                {
                    names.insert(name);
                }
            }
        }
        names
    };
    let settled = |want: &HashMap<String, i64>, limit: Duration| -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let lost = lost();
            let got: Vec<(String, i64, i64)> = runtime
                .block_on(pg::rows(
                    &db.url,
                    "SELECT account, COUNT(*), COUNT(DISTINCT (conversation, id)) FROM messages GROUP BY account",
                ))
                .unwrap_or_default();
            let got: HashMap<String, i64> = got
                .into_iter()
                .map(|(account, n, distinct)| {
                    assert_eq!(n, distinct, "{account}: a message stored twice");
                    (account, n)
                })
                .collect();
            let done = want.iter().all(|(account, n)| {
                lost.contains(account) || got.get(account).copied().unwrap_or(0) == *n
            });
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    if !settled(&want, Duration::from_secs(240)) {
        panic!("not every message stored in 240 s\n{}", diagnose(&want));
    }

    // New buyer messages in accounts across the range, OAuth ones among them.
    for (vendor, account) in [
        (Vendor::Allegro, "allegro-250"),
        (Vendor::MercadoLibre, "mercadolibre-500"),
        (Vendor::Magalu, "magalu-777"),
        (Vendor::Ozon, "ozon-1000"),
        (Vendor::MercadoLibre, "mercadolibre-10"),
    ] {
        let conversations = env.sandbox.conversations_of(vendor, account);
        let conversation = conversations.first().unwrap();
        assert!(env
            .sandbox
            .buyer_writes_to(vendor, account, conversation, "later")
            .is_some());
    }
    let want = expected(&env.sandbox);
    if !settled(&want, Duration::from_secs(120)) {
        panic!("the new messages not stored in 120 s\n{}", diagnose(&want));
    }
    let lost = lost();

    let mut stderr = String::new();
    for w in [b, c, d] {
        let out = stop(w);
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{text}");
        stderr.push_str(&text);
    }
    let per_account: Vec<(String, i64, i64)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT account, COUNT(*), COUNT(DISTINCT (conversation, id)) FROM messages GROUP BY account",
        ))
        .unwrap();
    let got: HashMap<String, i64> = per_account
        .iter()
        .map(|(account, n, distinct)| {
            assert_eq!(n, distinct, "{account}: a message stored twice");
            (account.clone(), *n)
        })
        .collect();
    let kept = |counts: &HashMap<String, i64>| -> HashMap<String, i64> {
        counts
            .iter()
            .filter(|(account, _)| !lost.contains(*account))
            .map(|(a, n)| (a.clone(), *n))
            .collect()
    };
    assert_eq!(
        kept(&got),
        kept(&want),
        "the database holds what the sandbox holds, account by account"
    );
    // At most the grants whose refresh the killed worker had under way (its
    // concurrency is 8), each an OAuth account, each refused once or twice at most.
    assert!(lost.len() <= 8, "{} grants lost: {lost:?}", lost.len());
    for name in &lost {
        let number: u64 = name
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        assert_eq!(number % 10, 0, "{name} is not an OAuth account");
    }
    eprintln!("fleet: {} grants lost to the SIGKILL: {lost:?}", lost.len());

    let twice: Vec<(String, i64, i64)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT account, from_version, COUNT(*) FROM audit_commits
             GROUP BY account, from_version HAVING COUNT(*) > 1",
        ))
        .unwrap();
    assert_eq!(twice, [], "steps committed twice from one version");
    let first: Vec<(String, chrono::DateTime<chrono::Utc>)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT account, min(at) FROM audit_commits GROUP BY account",
        ))
        .unwrap();
    assert!(first.len() + lost.len() >= 4_000, "every account synced");
    let slowest = first.iter().map(|(_, at)| *at).max().unwrap() - started;
    eprintln!(
        "fleet: 4,000 accounts first synced within {:.1} s of the start",
        slowest.as_seconds_f64()
    );

    assert_eq!(env.sandbox.rate_limited(), 0, "the sandbox answered 429");
    assert!(
        env.sandbox.invalid_grants() <= 2 * lost.len() as u64,
        "a refresh token was spent twice: {} refused for {} lost grants",
        env.sandbox.invalid_grants(),
        lost.len()
    );
    if lost.is_empty() {
        assert!(!stderr.contains("invalid_grant"), "{stderr}");
    }
    // Every OAuth account refreshed at least once, per marketplace that has OAuth.
    for vendor in [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu] {
        assert!(env.sandbox.refreshes(vendor) >= ACCOUNTS / 10, "{vendor:?}");
    }
    runtime.block_on(db.drop_now());
}

/// Waits until `want` messages are stored (never more, none twice).
fn wait_for_all(runtime: &tokio::runtime::Runtime, url: &str, want: i64, limit: Duration) {
    assert!(
        stored_within(runtime, url, want, limit),
        "not {want} messages after {limit:?}"
    );
}

/// Whether `want` messages are stored within `limit` (never more, none twice).
fn stored_within(runtime: &tokio::runtime::Runtime, url: &str, want: i64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let (n, distinct) = stored(runtime, url);
        assert_eq!(n, distinct, "no message stored twice");
        assert!(n <= want, "more than the sandbox holds: {n} > {want}");
        if n == want {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The job engine's queries fail for a while (its jobs table away, as while a database
/// is restored or migrated), and every connection of the fleet is cut (a failover): the
/// worker says so, starts its engine again, and what buyers wrote meanwhile is stored once.
#[test]
fn a_worker_survives_its_database_failing_for_a_while() {
    let _fleet = one_fleet_at_a_time();
    let Some(Fleet {
        runtime,
        db,
        env,
        path,
    }) = fleet("cut", 2, false, 0.3)
    else {
        return;
    };
    let generated = 4 * 2 * 2 + 2 + 2 + 1 + 1;
    let mut w = worker(&path, &db.url);
    wait_for(&runtime, &db.url, generated);
    let sql = |statement: &'static str| {
        runtime.block_on(async {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            sqlx::raw_sql(statement).execute(&mut conn).await.unwrap();
        })
    };
    sql("ALTER TABLE graphile_worker._private_jobs RENAME TO _private_jobs_away");
    for (vendor, id) in EXAMPLES {
        assert!(env
            .sandbox
            .buyer_writes(vendor, id, "while the jobs were away"));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(w.try_wait().unwrap().is_none(), "the worker stopped");
    sql("ALTER TABLE graphile_worker._private_jobs_away RENAME TO _private_jobs");
    wait_for(&runtime, &db.url, generated + 4);

    let cut: Vec<(bool,)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        ))
        .unwrap();
    assert!(!cut.is_empty(), "the worker had connections to cut");
    for (vendor, id) in EXAMPLES {
        assert!(env.sandbox.buyer_writes(vendor, id, "after the failover"));
    }
    wait_for(&runtime, &db.url, generated + 8);
    assert!(w.try_wait().unwrap().is_none(), "the worker stopped");
    let out = stop(w);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("starting again in"), "{stderr}");
    runtime.block_on(db.drop_now());
}

#[test]
fn a_worker_makes_durable_progress_on_a_long_first_import_and_completes_it() {
    let _fleet = one_fleet_at_a_time();
    // One Magalu account of 3,000 conversations (30,000 messages) behind 25 ms of
    // latency: its first import is one step of tens of seconds (minutes at Magalu's
    // published rate), checked every 2 s: messages reach PostgreSQL chunk by chunk while
    // it runs, and the step runs to its end (no step limit throws work away).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("long_import")) else {
        return;
    };
    let env = start(
        Config {
            conversations: 3_000,
            messages_per_conversation: 10,
            faults: inbox_sandbox::Faults {
                latency: Duration::from_millis(25),
                ..inbox_sandbox::Faults::default()
            },
            ..Config::default()
        },
        "worker-long-import",
    );
    let mut config = env.sandbox.accounts_config();
    config["accounts"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["marketplace"] == "magalu");
    config["accounts"][0]["limits"] = json!({"reads": {"requests": 0}});
    let path = env.write_config(&config);
    let total: i64 = env
        .sandbox
        .stats()
        .iter()
        .filter(|a| a.marketplace == "magalu")
        .map(|a| a.messages as i64)
        .sum();
    let w = worker(&path, &db.url);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let (stored, distinct) = stored(&runtime, &db.url);
        assert_eq!(stored, distinct, "none twice");
        seen.push(stored);
        if stored == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not imported in 10 minutes: {seen:?}"
        );
    }
    // Durable progress: the count grew in steps while the import ran.
    let partial: Vec<&i64> = seen.iter().filter(|n| **n > 0 && **n < total).collect();
    assert!(partial.len() >= 3, "{seen:?}");
    let out = stop(w);
    assert!(out.status.success());
    runtime.block_on(db.drop_now());
}

#[test]
fn a_worker_whose_config_lacks_an_account_requeues_it_for_the_others() {
    let _fleet = one_fleet_at_a_time();
    let Some(Fleet {
        runtime,
        db,
        env,
        path,
    }) = fleet("unknown_account", 2, false, 0.5)
    else {
        return;
    };
    let generated = 4 * 2 * 2 + 2 + 2 + 1 + 1;
    let full = worker(&path, &db.url);
    wait_for(&runtime, &db.url, generated);
    assert!(stop(full).status.success());

    // A rolling change: this worker's config lacks the Ozon account.
    let mut partial =
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).unwrap())
            .unwrap();
    partial["accounts"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["marketplace"] != "ozon");
    let partial_path = env.dir.join("partial.json");
    std::fs::write(&partial_path, partial.to_string()).unwrap();
    let lacking = worker(&partial_path, &db.url);
    // Ozon's job (due every half second) reaches it several times meanwhile.
    std::thread::sleep(Duration::from_secs(4));
    let out = stop(lacking);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in this worker's configuration"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: Vec<(Option<String>,)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT key FROM graphile_worker.jobs WHERE key = 'inbox-sync:ozon'",
        ))
        .unwrap();
    assert_eq!(
        keys.len(),
        1,
        "Ozon's job is still there for another worker"
    );

    // A worker that knows it syncs it again (within the requeue delay).
    assert!(env
        .sandbox
        .buyer_writes(EXAMPLES[3].0, EXAMPLES[3].1, "still synced"));
    let full = worker(&path, &db.url);
    assert!(stored_within(
        &runtime,
        &db.url,
        generated + 1,
        Duration::from_secs(60)
    ));
    assert!(stop(full).status.success());
    runtime.block_on(db.drop_now());
}

#[test]
fn a_revoked_account_is_parked_not_retried_at_every_interval() {
    let _fleet = one_fleet_at_a_time();
    let Some(Fleet {
        runtime,
        db,
        env,
        path,
    }) = fleet("revoked", 1, true, 0.5)
    else {
        return;
    };
    // The Allegro account alone, its grant revoked by the seller (the vendor answers
    // `invalid_grant`); its step is due every half second.
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["accounts"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["marketplace"] == "allegro");
    config["accounts"][0]["refresh_token"] = json!("revoked-by-the-seller");
    std::fs::write(&path, config.to_string()).unwrap();
    // Each call to the token endpoint is one refused grant.
    let calls = || env.sandbox.invalid_grants();
    let w = worker(&path, &db.url);
    // Ten intervals and more.
    std::thread::sleep(Duration::from_secs(8));
    let out = stop(w);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("parked"), "{stderr}");
    assert!(calls() >= 1, "the grant was tried: {stderr}");
    assert!(calls() <= 2, "{} token calls over ten intervals", calls());
    runtime.block_on(db.drop_now());
}

/// `inbox serve` on the fleet's database refreshes through the fleet's token store too
/// (it reads Mercado Libre's missed feeds with the account's token at start): with a
/// worker beside it, each OAuth account is refreshed once, and no grant is refused.
/// `inbox serve` on the fleet's database (a free port, a secret), with `extra` arguments,
/// its stderr to `stderr`.
fn serve_on(config: &std::path::Path, url: &str, extra: &[&str], stderr: Stdio) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    common::inbox_command()
        .arg("--config")
        .arg(config)
        .args(["--json", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--db", url, "--notify-secret", "fleet-secret-1"])
        .args(extra)
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

#[test]
fn serve_and_a_worker_refresh_an_oauth_account_once() {
    let _fleet = one_fleet_at_a_time();
    let Some(Fleet {
        runtime,
        db,
        env,
        path,
    }) = fleet("serve_tokens", 1, true, 0.3)
    else {
        return;
    };
    let serve = serve_on(&path, &db.url, &[], Stdio::piped());
    let w = worker(&path, &db.url);
    let generated = 4 * 2 + 2 + 2 + 1 + 1;
    wait_for(&runtime, &db.url, generated);
    for vendor in [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu] {
        assert_eq!(
            env.sandbox.refreshes(vendor),
            1,
            "{vendor:?}: one refresh for serve and the worker"
        );
    }
    assert_eq!(env.sandbox.invalid_grants(), 0);
    for p in [serve, w] {
        let out = stop(p);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("invalid_grant"), "{stderr}");
    }
    runtime.block_on(db.drop_now());
}

/// Every connection to the test's database but the killer's own, terminated.
const TERMINATE: &str = "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()";

#[test]
fn a_fleet_loses_no_grant_while_its_database_connections_are_killed() {
    let _fleet = one_fleet_at_a_time();
    use inbox_sandbox::OAuthConfig;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("chaos")) else {
        return;
    };
    // 8 accounts per marketplace, every one that can on OAuth, access tokens living 5 s:
    // a refresh every few seconds per account while the database keeps failing.
    let env = start(
        Config {
            conversations: 1,
            messages_per_conversation: 2,
            accounts: 8,
            oauth_every: 1,
            oauth: OAuthConfig {
                access_ttl: Duration::from_secs(5),
                ..OAuthConfig::default()
            },
            ..Config::default()
        },
        "worker-chaos",
    );
    let mut config = env.sandbox.accounts_config();
    for a in config["accounts"].as_array_mut().unwrap() {
        a["poll_interval_secs"] = json!(1.0);
    }
    let path = env.write_config(&config);
    let expected = || -> i64 {
        env.sandbox
            .stats()
            .into_iter()
            .map(|s| i64::try_from(s.messages).unwrap())
            .sum()
    };
    // The sandbox pushes nothing here: the accounts that push are polled as often as
    // the others.
    let log = std::fs::File::create(env.dir.join("serve.log")).unwrap();
    let serve = serve_on(&path, &db.url, &["--poll-interval", "1"], Stdio::from(log));
    let workers: Vec<Child> = (1..=3)
        .map(|n| {
            let log = std::fs::File::create(env.dir.join(format!("worker-{n}.log"))).unwrap();
            worker_logging(&path, &db.url, Stdio::from(log))
        })
        .collect();
    let logs = || -> String {
        let mut text = String::new();
        for name in ["serve", "worker-1", "worker-2", "worker-3"] {
            let log =
                std::fs::read_to_string(env.dir.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            text.push_str(&format!("{name}: {tail:#?}\n"));
        }
        let jobs: Vec<(String,)> = runtime
            .block_on(pg::rows(
                &db.url,
                "SELECT concat_ws(' ', key, locked_by, attempts, run_at, last_error) FROM graphile_worker.jobs WHERE key IS NOT NULL ORDER BY run_at DESC LIMIT 6",
            ))
            .unwrap_or_default();
        let by_account: Vec<(String, i64)> = runtime
            .block_on(pg::rows(
                &db.url,
                "SELECT account, COUNT(*) FROM messages GROUP BY account ORDER BY account",
            ))
            .unwrap_or_default();
        let short: Vec<String> = env
            .sandbox
            .stats()
            .into_iter()
            .filter_map(|s| {
                let got = by_account
                    .iter()
                    .find(|(a, _)| *a == s.account)
                    .map_or(0, |(_, n)| *n);
                (got < i64::try_from(s.messages).unwrap())
                    .then(|| format!("{} {got}/{}", s.account, s.messages))
            })
            .collect();
        let claims: Vec<(String,)> = runtime
            .block_on(pg::rows(
                &db.url,
                "SELECT concat_ws(' ', account, generation, claimed_until) FROM inbox_tokens WHERE claimed_until > now()",
            ))
            .unwrap_or_default();
        format!("{text}latest jobs: {jobs:#?}\nshort: {short:?}\nlive claims: {claims:?}")
    };
    if !stored_within(&runtime, &db.url, expected(), Duration::from_secs(90)) {
        panic!("not every message stored before the chaos\n{}", logs());
    }

    // A minute of every backend of the database terminated every 3 s, buyers writing
    // meanwhile (seeded: the same accounts and moments every run).
    let began = Instant::now();
    let mut round = 0u64;
    let mut killed = 0i64;
    while began.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(3));
        round += 1;
        let n: Vec<(i64,)> = runtime
            .block_on(pg::rows(&db.url, TERMINATE))
            .unwrap_or_default();
        killed += n.first().map_or(0, |(k,)| *k);
        let vendor = [
            Vendor::Allegro,
            Vendor::MercadoLibre,
            Vendor::Magalu,
            Vendor::Ozon,
        ][usize::try_from(round % 4).unwrap()];
        let account = match round % 8 {
            0 => vendor.prefix().to_string(),
            k => format!("{}-{}", vendor.prefix(), k + 1),
        };
        if let Some(c) = env.sandbox.conversations_of(vendor, &account).first() {
            env.sandbox
                .buyer_writes_to(vendor, &account, c, &format!("during chaos {round}"));
        }
    }
    assert!(killed > 20, "the chaos killed {killed} connections");
    eprintln!("chaos: {round} rounds, {killed} connections terminated");

    // Afterwards: every account synced, every message stored once, no grant lost.
    if !stored_within(&runtime, &db.url, expected(), Duration::from_secs(90)) {
        panic!(
            "{:?} of {} stored 90 s after the chaos\n{}",
            stored(&runtime, &db.url),
            expected(),
            logs()
        );
    }
    let (count, distinct) = stored(&runtime, &db.url);
    assert_eq!((count, distinct), (expected(), expected()));
    assert_eq!(
        env.sandbox.invalid_grants(),
        0,
        "a seller would have to authorise again"
    );
    let refreshes: u64 = [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu]
        .into_iter()
        .map(|v| env.sandbox.refreshes(v))
        .sum();
    eprintln!("chaos: {refreshes} token refreshes, 0 invalid_grant");
    assert!(
        refreshes > 24 * 3,
        "tokens were refreshed during the chaos: {refreshes}"
    );
    for p in workers.into_iter().chain([serve]) {
        stop(p);
    }
    assert!(!logs().contains("invalid_grant"), "{}", logs());
    runtime.block_on(db.drop_now());
}
