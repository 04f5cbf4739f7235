//! `inbox sync` against a sandbox in another process: the first pass imports and prints
//! everything, later passes print exactly what changed, and a restart prints nothing old.

use inbox_sandbox::{Config, Vendor};
use serde_json::Value;

mod common;
use common::{inbox, start, EXAMPLES};
#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

fn pass(path: &std::path::Path, db: &std::path::Path) -> Vec<Value> {
    pass_on(path, db.to_str().unwrap())
}

/// One `inbox sync` on `db` (a path or a `postgres://` URL).
fn pass_on(path: &std::path::Path, db: &str) -> Vec<Value> {
    common::printed(inbox(path, &["--json", "sync", "--db", db]))
}

fn messages(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["event"] == "new_message")
        .collect()
}

#[test]
fn sync_prints_everything_once_then_only_what_changed() {
    let env = start(Config::default(), "sync");
    let path = env.write_config(&env.sandbox.accounts_config());
    let db = env.dir.join("inbox.db");

    let first = pass(&path, &db);
    let imported = messages(&first);
    // 12 generated conversations of 6 messages and each example's, on all four.
    assert_eq!(imported.len(), 4 * 12 * 6 + 2 + 2 + 1 + 1);
    assert_eq!(
        first
            .iter()
            .filter(|l| l["event"] == "new_conversation")
            .count(),
        4 * 13
    );
    let mut keys: Vec<String> = imported
        .iter()
        .map(|m| format!("{}/{}/{}", m["account"], m["conversation"], m["id"]))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), imported.len(), "none twice");

    assert!(
        messages(&pass(&path, &db)).is_empty(),
        "nothing new, nothing printed"
    );

    for (vendor, id) in EXAMPLES {
        assert!(env
            .sandbox
            .buyer_writes(vendor, id, &format!("news in {id}")));
    }
    let third = pass(&path, &db);
    let new = messages(&third);
    assert_eq!(new.len(), 4, "{third:?}");
    for (_, id) in EXAMPLES {
        assert!(
            new.iter().any(|m| m["text"] == format!("news in {id}")),
            "{id}"
        );
    }
    // A new process on the same database: nothing old again.
    assert!(messages(&pass(&path, &db)).is_empty());

    let count: u64 = rusqlite_count(&db);
    assert_eq!(count, imported.len() as u64 + 4);
}

/// Messages in the database, read as a user would with sqlite3.
fn rusqlite_count(db: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    u64::try_from(n).unwrap()
}

#[test]
fn syncs_killed_at_random_points_lose_and_duplicate_nothing() {
    let env = start(Config::default(), "sync-kill");
    let path = env.write_config(&env.sandbox.accounts_config());
    let db = env.dir.join("inbox.db");
    // A seeded sequence of kill delays (xorshift): the same run every time.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let rounds = 8;
    let generated = 4 * 12 * 6 + 2 + 2 + 1 + 1;
    let mut interrupted = 0;
    for round in 0..rounds {
        for (vendor, id) in EXAMPLES {
            assert!(env
                .sandbox
                .buyer_writes(vendor, id, &format!("round {round} before, {id}")));
        }
        let mut child = common::inbox_command()
            .arg("--config")
            .arg(&path)
            .args(["--json", "sync", "--db"])
            .arg(&db)
            .env_clear()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // A buyer writes while the pass runs.
        let (vendor, id) = EXAMPLES[round % 4];
        assert!(env
            .sandbox
            .buyer_writes(vendor, id, &format!("round {round} during, {id}")));
        // And one held by moderation, to appear later with its earlier time.
        let (vendor, id) = EXAMPLES[(round + 1) % 4];
        let held = std::time::Duration::from_millis(300);
        assert!(env.sandbox.buyer_writes_later(
            vendor,
            id,
            &format!("round {round} held, {id}"),
            held
        ));
        if round % 3 != 2 {
            // Killed at a seeded point of the pass (SIGKILL: no cleanup of any kind).
            std::thread::sleep(std::time::Duration::from_millis(next() % 400));
            let _ = child.kill();
            let _ = child.wait();
            // Short of what the sandbox shows: the kill landed mid-pass.
            let so_far = generated + 5 * (round + 1);
            if db.exists() && rusqlite_count(&db) < so_far as u64 {
                interrupted += 1;
            }
        }
        let _ = child.wait();
    }
    assert!(interrupted > 0, "no kill landed inside a pass");
    // Once the held messages are visible, one clean pass brings the store level with the
    // sandbox.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let last = pass(&path, &db);
    assert!(
        last.iter().all(|l| l["event"] != "updated_message"),
        "{last:?}"
    );
    let written = 4 * rounds + rounds + rounds;
    assert_eq!(
        rusqlite_count(&db),
        (generated + written) as u64,
        "every message exactly once"
    );
    assert!(messages(&pass(&path, &db)).is_empty());
}

/// Two `inbox sync` processes started together on one database.
fn two_at_once(
    path: &std::path::Path,
    db: impl AsRef<std::ffi::OsStr>,
) -> (Vec<Value>, Vec<String>) {
    let db = db.as_ref();
    let spawn = || {
        common::inbox_command()
            .arg("--config")
            .arg(path)
            .args(["--json", "sync", "--db"])
            .arg(db)
            .env_clear()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Both read at once: a run prints each step's changes before committing it, so one
    // left blocked on a full pipe would hold its transaction open against the other.
    let (a, b) = (spawn(), spawn());
    let b = std::thread::spawn(move || b.wait_with_output().unwrap());
    let a = a.wait_with_output().unwrap();
    let b = b.join().unwrap();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for out in [a, b] {
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        // A run that lost to the other says so and exits 1; nothing else may fail.
        if !out.status.success() {
            assert!(stderr.contains("store conflict"), "{stderr}");
        }
        errors.push(stderr);
        lines.extend(common::json_lines(&String::from_utf8(out.stdout).unwrap()));
    }
    (lines, errors)
}

fn keys(lines: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = messages(lines)
        .iter()
        .map(|m| format!("{}/{}/{}", m["account"], m["conversation"], m["id"]))
        .collect();
    keys.sort();
    keys
}

#[test]
fn two_syncs_at_once_on_one_database_print_each_message_once() {
    let env = start(
        Config {
            conversations: 4,
            messages_per_conversation: 3,
            ..Config::default()
        },
        "sync-twice",
    );
    let path = env.write_config(&env.sandbox.accounts_config());
    let generated = 4 * 4 * 3 + 2 + 2 + 1 + 1;
    for round in 0..2 {
        let db = env.dir.join(format!("fresh-{round}.db"));
        let (lines, errors) = two_at_once(&path, &db);
        let mut all = keys(&lines);
        assert_eq!(all.len(), generated, "{errors:?}");
        all.dedup();
        assert_eq!(all.len(), generated, "none twice");
        assert!(
            errors.iter().all(|e| !e.contains("already exists")),
            "{errors:?}"
        );
        assert_eq!(rusqlite_count(&db), generated as u64);
    }
    // On one database, with new messages between the races.
    let db = env.dir.join("shared.db");
    assert_eq!(messages(&pass(&path, &db)).len(), generated);
    let mut written = 0;
    for round in 0..2 {
        for (vendor, id) in EXAMPLES {
            assert!(env
                .sandbox
                .buyer_writes(vendor, id, &format!("race {round}")));
            written += 1;
        }
        let (lines, _) = two_at_once(&path, &db);
        let mut printed = keys(&lines);
        // What one lost, the next pass prints: none is printed twice.
        printed.extend(keys(&pass(&path, &db)));
        let n = printed.len();
        printed.dedup();
        assert_eq!(n, printed.len(), "none twice");
        assert_eq!(n, 4, "round {round}");
    }
    assert_eq!(rusqlite_count(&db), (generated + written) as u64);
}

#[test]
fn malformed_elements_are_reported_once_and_cost_nothing_else() {
    let env = start(
        Config {
            conversations: 3,
            messages_per_conversation: 2,
            ..Config::default()
        },
        "sync-malformed",
    );
    let path = env.write_config(&env.sandbox.accounts_config());
    let db = env.dir.join("inbox.db");
    let raw = serde_json::json!({"message_id": {"not": "an id"}, "data": ["broken"]});
    env.sandbox.inject(inbox_sandbox::Injection {
        vendor: Vendor::Ozon,
        path: "/v3/chat/history".into(),
        body_contains: Some(EXAMPLES[3].1.into()),
        array: "/messages".into(),
        raw: raw.clone(),
    });
    let first = pass(&path, &db);
    assert_eq!(messages(&first).len(), 4 * 3 * 2 + 2 + 2 + 1 + 1);
    let bad: Vec<&Value> = first.iter().filter(|l| l["event"] == "malformed").collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0]["marketplace"], "ozon");
    assert_eq!(bad[0]["account"], "ozon");
    assert_eq!(bad[0]["conversation"], format!("ozon:{}", EXAMPLES[3].1));
    assert!(bad[0]["error"].as_str().unwrap().contains("ozon"));
    assert_eq!(
        serde_json::from_str::<Value>(bad[0]["raw"].as_str().unwrap()).unwrap(),
        raw
    );
    assert!(env
        .sandbox
        .buyer_writes(Vendor::Ozon, EXAMPLES[3].1, "still here"));
    // The table form: one line for it on stdout at first sight, and one on stderr.
    let out = inbox(&path, &["sync", "--db", db.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("still here"), "{stdout}");
    assert!(!stdout.contains("malformed"), "reported once: {stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("synced 4 of 4 accounts"));
    assert!(pass(&path, &db).is_empty());
}

/// `--db postgres://…`: the same passes as on SQLite, two processes racing on one
/// database, each message printed once and stored once.
#[test]
fn on_postgres_two_syncs_at_once_print_each_message_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("cli")) else {
        return;
    };
    let env = start(
        Config {
            conversations: 4,
            messages_per_conversation: 3,
            ..Config::default()
        },
        "sync-postgres",
    );
    let path = env.write_config(&env.sandbox.accounts_config());
    let generated = 4 * 4 * 3 + 2 + 2 + 1 + 1;
    let (lines, errors) = two_at_once(&path, &db.url);
    let mut all = keys(&lines);
    assert_eq!(all.len(), generated, "{errors:?}");
    all.dedup();
    assert_eq!(all.len(), generated, "none twice");
    assert!(
        messages(&pass_on(&path, &db.url)).is_empty(),
        "a quiet pass"
    );
    for (vendor, id) in EXAMPLES {
        assert!(env.sandbox.buyer_writes(vendor, id, "no postgres"));
    }
    let (lines, _) = two_at_once(&path, &db.url);
    let mut printed = keys(&lines);
    printed.extend(keys(&pass_on(&path, &db.url)));
    let n = printed.len();
    printed.dedup();
    assert_eq!(n, printed.len(), "none twice");
    assert_eq!(n, 4);
    let stored: Vec<(i64,)> = runtime
        .block_on(pg::rows(&db.url, "SELECT COUNT(*) FROM messages"))
        .unwrap();
    assert_eq!(stored, [(generated as i64 + 4,)]);
    runtime.block_on(db.drop_now());
}
