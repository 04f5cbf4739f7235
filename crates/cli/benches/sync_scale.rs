//! `inbox sync` at scale, each figure a ratio of runs made side by side:
//!
//! - 200 accounts (50 per marketplace) at 50 ms a request: a quiet pass of all of them
//!   at the default concurrency, against the slowest one-account quiet pass and against
//!   the accounts one after another (`--concurrency 1`, the version-1 walk); CPU time of
//!   the `inbox` process per account;
//! - 20,000 conversations per marketplace: bytes a pass writes to the store (the WAL's
//!   growth, read while the bench holds the database open so it is not checkpointed
//!   away) for a quiet pass and one that finds 3 new messages, and the CPU time of each.
//!
//! `cargo bench -p inbox-cli --bench sync_scale`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Sandbox, Vendor};
use serde_json::{json, Value};

/// CPU seconds (user + system) of the children waited for so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given; a zeroed rusage is valid input.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One `inbox sync` pass: seconds, CPU seconds, lines printed.
fn sync(config: &Path, db: &Path, extra: &[&str]) -> (f64, f64, usize) {
    let cpu = children_cpu();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_inbox"))
        .arg("--config")
        .arg(config)
        .args(["--json", "sync", "--db"])
        .arg(db)
        .args(extra)
        .env_clear()
        .stderr(Stdio::inherit())
        .output()
        .expect("inbox sync");
    assert!(out.status.success(), "inbox sync failed");
    let lines = String::from_utf8_lossy(&out.stdout).lines().count();
    (started.elapsed().as_secs_f64(), children_cpu() - cpu, lines)
}

/// The sandbox's accounts, `copies` of each marketplace's (named `<marketplace>-<i>`),
/// with the client limits lifted (the sandbox enforces none here).
fn accounts(sandbox: &Sandbox, copies: usize) -> Value {
    let base = sandbox.accounts_config();
    let mut all = Vec::new();
    for a in base["accounts"].as_array().expect("accounts") {
        let names: &[&str] = match a["marketplace"].as_str() {
            Some("allegro") => &["all", "messages"],
            Some("ozon") => &["all"],
            _ => &["reads", "writes"],
        };
        for i in 0..copies {
            let mut a = a.clone();
            a["name"] = json!(format!("{}-{i}", a["marketplace"].as_str().unwrap_or("x")));
            let limits: serde_json::Map<String, Value> = names
                .iter()
                .map(|n| (n.to_string(), json!({"requests": 0, "per_secs": 1})))
                .collect();
            a["limits"] = Value::Object(limits);
            all.push(a);
        }
    }
    json!({ "accounts": all })
}

fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len())
}

fn main() {
    // Under `cargo test` (no `--bench`): once, small.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (copies, n) = if smoke { (2, 20) } else { (50, 20_000) };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = std::env::temp_dir().join(format!("inbox-bench-sync-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");

    // 200 accounts at 50 ms.
    let sandbox = runtime
        .block_on(Sandbox::start(Config {
            conversations: 5,
            messages_per_conversation: 2,
            ..Config::default()
        }))
        .expect("sandbox");
    let config = dir.join("200.json");
    std::fs::write(&config, accounts(&sandbox, copies).to_string()).expect("config");
    let db = dir.join("200.db");
    let first = sync(&config, &db, &[]);
    sandbox.set_latency(Duration::from_millis(50));
    let mut one = Vec::new();
    for m in ["allegro", "mercadolibre", "magalu", "ozon"] {
        // A configuration of that account alone: its quiet pass, process start included.
        let name = format!("{m}-0");
        let mut alone = accounts(&sandbox, 1);
        if let Some(all) = alone["accounts"].as_array_mut() {
            all.retain(|a| a["name"] == name.as_str());
        }
        let file = dir.join(format!("{m}.json"));
        std::fs::write(&file, alone.to_string()).expect("config");
        one.push((m, sync(&file, &db, &[])));
    }
    let all = sync(&config, &db, &[]);
    let sequential = sync(&config, &db, &["--concurrency", "1"]);
    assert_eq!(all.2 + sequential.2, 0, "quiet passes print nothing");
    let slowest = one.iter().map(|(_, r)| r.0).fold(0.0, f64::max);
    println!("200 accounts (50 per marketplace), 50 ms a request; first pass printed {} lines in {:.2} s", first.2, first.0);
    for (m, r) in &one {
        println!("  one {m:<13} account, quiet pass: {:.3} s", r.0);
    }
    println!(
        "  all 200 at once: {:.3} s = {:.2}x the slowest one-account pass; one after another: {:.2} s ({:.1}x)",
        all.0,
        all.0 / slowest,
        sequential.0,
        sequential.0 / all.0
    );
    let per_account = (all.1 - one.iter().map(|(_, r)| r.1).sum::<f64>() / 4.0) / 199.0;
    println!(
        "  CPU of the quiet pass: {:.3} s for 200 accounts, {:.2} ms per account beyond the process start",
        all.1,
        per_account * 1e3
    );
    drop(sandbox);

    // 20,000 conversations per marketplace.
    let sandbox = runtime
        .block_on(Sandbox::start(Config {
            conversations: n,
            messages_per_conversation: 1,
            ..Config::default()
        }))
        .expect("sandbox");
    let config = dir.join("20k.json");
    std::fs::write(&config, accounts(&sandbox, 1).to_string()).expect("config");
    let db = dir.join("20k.db");
    let imported = sync(&config, &db, &[]);
    println!();
    println!(
        "20,000 conversations per marketplace: first pass printed {} lines in {:.1} s",
        imported.2, imported.0
    );
    // Held open so that the WAL stays after each `inbox sync` exits.
    let holder = rusqlite::Connection::open(&db).expect("db");
    println!(
        "  {:<13} {:>16} {:>12} {:>22} {:>16}",
        "marketplace", "quiet: bytes", "quiet: CPU s", "3 new: bytes written", "3 new: CPU s"
    );
    for vendor in Vendor::ALL {
        let account = format!("{}-0", vendor.prefix());
        let _: (i64, i64, i64) = holder
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("checkpoint");
        let quiet = sync(&config, &db, &["--account", &account]);
        let quiet_bytes = wal_bytes(&db);
        assert_eq!(quiet.2, 0, "{vendor:?}: a quiet pass prints nothing");
        for i in 1..=3u64 {
            let id = match vendor {
                Vendor::Allegro => format!("sbx{i:040}"),
                Vendor::MercadoLibre => (2_000_000_100_000_000u64 + i).to_string(),
                Vendor::Magalu => format!("6628d7a3{i:016x}"),
                Vendor::Ozon => format!("{i:08x}-a474-469f-95d5-{i:012x}"),
            };
            assert!(sandbox.buyer_writes(vendor, &id, "three more"));
        }
        let _: (i64, i64, i64) = holder
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("checkpoint");
        let busy = sync(&config, &db, &["--account", &account]);
        let busy_bytes = wal_bytes(&db);
        assert!(busy.2 >= 3, "{vendor:?}: the new messages were printed");
        println!(
            "  {:<13} {:>16} {:>12.3} {:>22} {:>16.3}",
            vendor.prefix(),
            quiet_bytes,
            quiet.1,
            busy_bytes,
            busy.1
        );
    }
    drop(holder);
    std::fs::remove_dir_all(&dir).ok();
}
