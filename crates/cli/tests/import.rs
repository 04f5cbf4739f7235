//! A big seller's first import, killed at seeded moments: `inbox sync` commits in
//! chunks, so each run resumes after the last chunk committed, no conversation committed
//! has its messages read again, and every message ends stored once — on SQLite and on
//! PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use inbox_sandbox::{Config, Vendor};
use serde_json::Value;

mod common;
use common::start;
#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

/// Conversations of the imported account (10 messages each): 50,000 messages and the
/// seeded example's.
const CONVERSATIONS: u64 = 5_000;

/// A message as printed or stored: conversation and id.
type Key = (String, String);

/// What one run printed before it ended (killed or done).
struct Run {
    messages: Vec<Key>,
    success: bool,
}

/// One `inbox sync` run on `db`, SIGKILLed once it printed `kill_after` new messages
/// (never, when `None`); what it printed in all (the pipe read to its end).
fn run(config: &std::path::Path, db: &str, kill_after: Option<usize>) -> Run {
    let mut child = common::inbox_command()
        .arg("--config")
        .arg(config)
        .args(["--json", "sync", "--db", db])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut messages = Vec::new();
    let mut killed = false;
    for line in out.lines().map_while(Result::ok) {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "new_message" {
            // `conversation` is the short reference, `magalu:ID`.
            let conversation = v["conversation"]
                .as_str()
                .and_then(|r| r.rsplit(':').next())
                .unwrap_or_default()
                .to_string();
            messages.push((conversation, v["id"].as_str().unwrap().to_string()));
        }
        if !killed && kill_after.is_some_and(|n| messages.len() >= n) {
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    Run {
        messages,
        success: status.success(),
    }
}

/// Seeded kill points (xorshift): after this many printed messages, each run.
fn kill_points(seed: u64, total: usize) -> [usize; 3] {
    let mut x = seed;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Each run is killed within a fifth to a half of what is left, so every run
    // commits some chunks and leaves some.
    [(); 3].map(|_| {
        let share = 0.2 + 0.3 * ((next() % 1000) as f64 / 1000.0);
        (total as f64 * share / 3.0) as usize
    })
}

/// The messages paths of `vendor`'s conversations and how often each was read.
fn message_reads(sandbox: &inbox_sandbox::Sandbox) -> HashMap<String, u64> {
    sandbox
        .path_counts(Vendor::Magalu)
        .into_iter()
        .filter_map(|(path, n)| {
            let id = path
                .strip_suffix("/messages")?
                .rsplit('/')
                .next()?
                .to_string();
            Some((id, n))
        })
        .collect()
}

/// Imports one Magalu account of 50,000 messages through three kills; `stored` reads
/// the database: the conversations committed and every stored message.
fn import_through_kills(name: &str, db: &str, stored: &dyn Fn() -> (HashSet<String>, Vec<Key>)) {
    let env = start(
        Config {
            conversations: CONVERSATIONS,
            messages_per_conversation: 10,
            ..Config::default()
        },
        name,
    );
    let mut config = env.sandbox.accounts_config();
    config["accounts"]
        .as_array_mut()
        .unwrap()
        .retain(|a| a["marketplace"] == "magalu");
    // Its published limit lifted: the kills, not the pace, are under test.
    config["accounts"][0]["limits"] = serde_json::json!({"reads": {"requests": 0}});
    let path = env.write_config(&config);
    let total = env
        .sandbox
        .stats()
        .iter()
        .find(|a| a.marketplace == "magalu")
        .map(|a| usize::try_from(a.messages).unwrap())
        .unwrap();
    assert!(total >= 50_000, "{total}");

    let mut printed: Vec<Key> = Vec::new();
    let mut handed_on_uncommitted = 0;
    for (i, kill) in kill_points(0x5eed_0025, total).into_iter().enumerate() {
        let (committed_before, stored_before) = stored();
        let reads_before = message_reads(&env.sandbox);
        let ran = run(&path, db, Some(kill));
        assert!(!ran.success, "run {i} was killed");
        let (committed_after, stored_after) = stored();
        assert!(
            stored_after.len() > stored_before.len(),
            "run {i} committed chunks before its kill"
        );
        // The walk resumed: no conversation committed before this run was read again.
        let reads_after = message_reads(&env.sandbox);
        let read_again: Vec<&String> = committed_before
            .iter()
            .filter(|id| reads_after.get(*id) != reads_before.get(*id))
            .collect();
        assert!(read_again.is_empty(), "run {i} read again {read_again:?}");
        // Printed but not committed when the kill came: at most a chunk in flight.
        let stored_now: HashSet<&Key> = stored_after.iter().collect();
        let lost = ran
            .messages
            .iter()
            .filter(|k| !stored_now.contains(k))
            .count();
        assert!(lost <= 1_100, "run {i}: {lost} printed and not committed");
        handed_on_uncommitted += lost;
        assert!(committed_after.len() >= committed_before.len());
        printed.extend(ran.messages);
    }
    let (committed_before, _) = stored();
    let reads_before = message_reads(&env.sandbox);
    let last = run(&path, db, None);
    assert!(last.success, "the last run completes");
    let reads_after = message_reads(&env.sandbox);
    assert!(committed_before
        .iter()
        .all(|id| reads_after.get(id) == reads_before.get(id)));
    printed.extend(last.messages);

    // The store holds exactly the sandbox's messages, each once.
    let (_, stored_keys) = stored();
    assert_eq!(stored_keys.len(), total);
    let distinct: HashSet<&Key> = stored_keys.iter().collect();
    assert_eq!(distinct.len(), total, "none twice");
    // Each handed on at least once, and again only where a kill came between handing a
    // chunk on and its commit.
    let printed_set: HashSet<&Key> = printed.iter().collect();
    assert!(
        distinct.iter().all(|k| printed_set.contains(k)),
        "each handed on"
    );
    let twice = printed.len() - printed_set.len();
    assert_eq!(
        twice, handed_on_uncommitted,
        "again only after a kill mid-chunk"
    );
    // A quiet pass after it finds nothing.
    let quiet = run(&path, db, None);
    assert!(quiet.success && quiet.messages.is_empty());
}

#[test]
fn a_first_import_killed_three_times_resumes_and_stores_each_message_once_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("inbox-import-lite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("inbox.db");
    let stored = || {
        if !db.exists() {
            return (HashSet::new(), Vec::new());
        }
        let conn = rusqlite::Connection::open(&db).unwrap();
        let conversations = conn
            .prepare("SELECT id FROM conversations WHERE mark_version > 0")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let messages = conn
            .prepare("SELECT conversation, id FROM messages")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (conversations, messages)
    };
    import_through_kills("import-lite", db.to_str().unwrap(), &stored);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_first_import_killed_three_times_resumes_and_stores_each_message_once_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("import")) else {
        return;
    };
    let url = db.url.clone();
    let stored = || {
        let conversations: Vec<(String,)> = runtime
            .block_on(pg::rows(
                &url,
                "SELECT id FROM conversations WHERE mark_version > 0",
            ))
            .unwrap_or_default();
        let messages: Vec<Key> = runtime
            .block_on(pg::rows(&url, "SELECT conversation, id FROM messages"))
            .unwrap_or_default();
        (conversations.into_iter().map(|(c,)| c).collect(), messages)
    };
    import_through_kills("import-pg", &db.url, &stored);
    runtime.block_on(db.drop_now());
}
