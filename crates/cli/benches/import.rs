//! A big seller's first `inbox sync`, and `inbox export`, measured per message: peak
//! RSS, CPU and bytes written, at 10⁴, 10⁵ and 10⁶ messages (one Magalu account of 10
//! messages a conversation, limits lifted: memory and CPU are measured, not pace), on
//! SQLite; bytes written on PostgreSQL at 10⁵ when a server answers.
//!
//! With `INBOX_BASELINE_BIN=/path/to/an/older/inbox` each run is made with that binary
//! too, alternately on the same sandbox, and the ratios printed (the README's figures
//! compare the code before the streaming store this way).
//!
//! `cargo bench -p inbox-cli --bench import` (under `cargo test` it runs once, small;
//! `INBOX_BENCH_MESSAGES=10000,100000` picks the sizes of the first sync).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use inbox_sandbox::{Config, Sandbox, Vendor};

#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

/// What one run of `inbox` cost.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    seconds: f64,
    cpu: f64,
    peak_kib: i64,
}

/// The peak resident memory of process `pid` so far (`VmHWM`, KiB; 0 once it is gone).
fn peak_kib(pid: i32) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `command` to its end: wall time, CPU (user + system, `wait4`, which also reaps
/// it) and peak RSS of that process alone (its `VmHWM`, read while it runs: the
/// `ru_maxrss` of a child counts the memory of the parent it was forked from).
#[allow(clippy::zombie_processes)]
fn measured(mut command: Command) -> Cost {
    let started = Instant::now();
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("inbox");
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut peak = 0;
    loop {
        peak = peak.max(peak_kib(pid));
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if waited == pid {
            break;
        }
        assert_eq!(waited, 0, "wait4");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "inbox failed"
    );
    let time = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Cost {
        seconds: started.elapsed().as_secs_f64(),
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_kib: peak,
    }
}

fn inbox(bin: &Path, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin);
    command.arg("--config").arg(config).args(args).env_clear();
    command
}

/// Bytes of a SQLite database: its files (WAL and the journal's file included).
fn sqlite_bytes(db: &Path) -> u64 {
    let Some(dir) = db.parent() else {
        return 0;
    };
    let name = db.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|f| f.starts_with(name)))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// One account of `vendor` alone, its limits lifted, written to `dir`.
fn config(sandbox: &Sandbox, vendor: Vendor, dir: &Path) -> PathBuf {
    let mut config = sandbox.accounts_config();
    if let Some(all) = config["accounts"].as_array_mut() {
        all.retain(|a| a["marketplace"] == vendor.prefix());
        let names: &[&str] = match vendor {
            Vendor::Allegro => &["all", "messages"],
            Vendor::Ozon => &["all"],
            _ => &["reads", "writes"],
        };
        let limits: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .map(|n| (n.to_string(), serde_json::json!({"requests": 0})))
            .collect();
        for a in all.iter_mut() {
            a["limits"] = serde_json::Value::Object(limits.clone());
        }
    }
    let path = dir.join(format!("{}.json", vendor.prefix()));
    std::fs::write(&path, config.to_string()).expect("config");
    path
}

/// A sandbox of `conversations` generated conversations of `messages` each.
fn sandbox(runtime: &tokio::runtime::Runtime, conversations: u64, messages: u64) -> Sandbox {
    runtime
        .block_on(Sandbox::start(Config {
            conversations,
            messages_per_conversation: messages,
            ..Config::default()
        }))
        .expect("sandbox")
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = std::env::temp_dir().join(format!("inbox-bench-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_inbox"));
    let baseline = std::env::var_os("INBOX_BASELINE_BIN").map(PathBuf::from);
    let mut binaries = vec![("this", ours.clone())];
    if let Some(b) = &baseline {
        binaries.push(("baseline", b.clone()));
    }
    // `INBOX_BENCH_MESSAGES=10000,100000` measures those sizes alone.
    let chosen: Vec<u64> = std::env::var("INBOX_BENCH_MESSAGES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let sizes: &[u64] = if smoke {
        &[1_000]
    } else if !chosen.is_empty() {
        &chosen
    } else {
        &[10_000, 100_000, 1_000_000]
    };

    println!(
        "{:<9} {:<9} {:>9} {:>9} {:>10} {:>10} {:>11}",
        "first sync", "binary", "messages", "seconds", "peak MiB", "CPU µs/msg", "bytes/msg"
    );
    for &n in sizes {
        let sandbox = sandbox(&runtime, n / 10, 10);
        let path = config(&sandbox, Vendor::Magalu, &dir);
        let messages = n + 1;
        for (label, bin) in &binaries {
            let db = dir.join(format!("{label}-{n}.db"));
            let cost = measured(inbox(
                bin,
                &path,
                &["--json", "sync", "--db", db.to_str().unwrap_or_default()],
            ));
            let bytes = sqlite_bytes(&db);
            println!(
                "{:<9} {:<9} {:>9} {:>9.1} {:>10.1} {:>10.2} {:>11.0}",
                "sqlite",
                label,
                messages,
                cost.seconds,
                cost.peak_kib as f64 / 1024.0,
                cost.cpu * 1e6 / messages as f64,
                bytes as f64 / messages as f64
            );
            for suffix in ["", "-wal", "-shm", "-push", "-push-wal", "-push-shm"] {
                let mut file = db.clone().into_os_string();
                file.push(suffix);
                std::fs::remove_file(file).ok();
            }
        }
    }

    // PostgreSQL: bytes of WAL and of tables per message, this binary.
    let n = if smoke { 1_000 } else { 100_000 };
    if let Some(db) = runtime.block_on(pg::database("bench_import")) {
        let sandbox = sandbox(&runtime, n / 10, 10);
        let path = config(&sandbox, Vendor::Magalu, &dir);
        let lsn = |url: &str| -> i64 {
            let rows: Vec<(i64,)> = runtime
                .block_on(pg::rows(
                    url,
                    "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint",
                ))
                .unwrap_or_default();
            rows.first().map_or(0, |r| r.0)
        };
        let size = |url: &str| -> i64 {
            let rows: Vec<(i64,)> = runtime
                .block_on(pg::rows(url, "SELECT pg_database_size(current_database())"))
                .unwrap_or_default();
            rows.first().map_or(0, |r| r.0)
        };
        let (wal, before) = (lsn(&db.url), size(&db.url));
        let cost = measured(inbox(&ours, &path, &["--json", "sync", "--db", &db.url]));
        let (wal, grown) = (lsn(&db.url) - wal, size(&db.url) - before);
        let messages = (n + 1) as f64;
        println!(
            "postgres  this      {:>9} {:>9.1} {:>10.1} {:>10.2}   WAL {:.0} B/msg, tables and indexes {:.0} B/msg",
            n + 1,
            cost.seconds,
            cost.peak_kib as f64 / 1024.0,
            cost.cpu * 1e6 / messages,
            wal as f64 / messages,
            grown as f64 / messages
        );
        runtime.block_on(db.drop_now());
    }

    // Export, CPU per message: the output path alone (no store).
    let n = if smoke { 1_000 } else { 100_000 };
    println!(
        "{:<9} {:<9} {:>9} {:>9} {:>10} {:>10}",
        "export", "binary", "messages", "seconds", "peak MiB", "CPU µs/msg"
    );
    for vendor in [Vendor::Ozon, Vendor::Allegro] {
        let sandbox = sandbox(&runtime, n / 100, 100);
        let path = config(&sandbox, vendor, &dir);
        let out = dir.join("export.jsonl");
        // Alternated, three rounds: the median of each.
        let rounds = if smoke { 1 } else { 3 };
        let mut costs: Vec<Vec<Cost>> = vec![Vec::new(); binaries.len()];
        for _ in 0..rounds {
            for (i, (_, bin)) in binaries.iter().enumerate() {
                let cost = measured(inbox(
                    bin,
                    &path,
                    &["export", "--out", out.to_str().unwrap_or_default()],
                ));
                costs[i].push(cost);
            }
        }
        for (i, (label, _)) in binaries.iter().enumerate() {
            let mut c = costs[i].clone();
            c.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
            let mid = c[c.len() / 2];
            println!(
                "{:<9} {:<9} {:>9} {:>9.1} {:>10.1} {:>10.2}",
                vendor.prefix(),
                label,
                n,
                mid.seconds,
                mid.peak_kib as f64 / 1024.0,
                mid.cpu * 1e6 / n as f64
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
