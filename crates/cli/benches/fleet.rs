//! `inbox worker` fleets on PostgreSQL, each figure a ratio of runs made side by side
//! against one sandbox of 10,000 accounts (2,500 per marketplace) answering after 50 ms,
//! the vendors' published limits enforced (Allegro's per application):
//!
//! - quiet account passes per second with 1, 2 and 4 workers (then 1 again, to show the
//!   drift between runs), `--concurrency 16` each, every account due all the time; the
//!   ratio to one worker says how close to linear it is;
//! - rows PostgreSQL writes (inserted + updated + deleted, from `pg_stat_database`) and
//!   WAL bytes per quiet pass, the job engine's own bookkeeping included;
//! - resident memory of one worker at 4 (the fixed cost), 1,000 and 10,000 accounts.
//!
//! Passes are counted by the account leases' fencing tokens (one per step taken); "CPU
//! busy" is the whole machine's (sandbox, PostgreSQL and workers share it).
//! `cargo bench -p inbox-cli --bench fleet` (needs the PostgreSQL server of
//! `INBOX_TEST_POSTGRES`, as the tests do).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Limit, Sandbox};
use serde_json::json;

#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

const PER_MARKETPLACE: u64 = 2_500;
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const MEASURE: Duration = Duration::from_secs(30);
const WARM_UP: Duration = Duration::from_secs(10);

fn worker(config: &Path, url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_inbox"))
        .arg("--config")
        .arg(config)
        .args(["worker", "--db", url, "--concurrency", "16"])
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("inbox worker")
}

fn stop(children: Vec<Child>) {
    for child in &children {
        let pid = i32::try_from(child.id()).expect("pid");
        // SAFETY: kill with a pid of our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    for mut child in children {
        let status = child.wait().expect("wait");
        assert!(status.success(), "a worker failed: {status}");
    }
}

/// Resident memory of a process, in MB.
fn rss_mb(child: &Child) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Busy and total jiffies of the machine's CPUs so far (`/proc/stat`).
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    // idle and iowait are the 4th and 5th.
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// What the database has seen so far: steps taken (fences), rows written, WAL position.
#[derive(Clone, Copy, Debug)]
struct Counters {
    steps: i64,
    rows: i64,
    wal: f64,
}

async fn counters(pool: &sqlx::PgPool) -> Counters {
    let steps: Option<i64> = sqlx::query_scalar("SELECT sum(fence)::BIGINT FROM inbox_leases")
        .fetch_one(pool)
        .await
        .unwrap_or(None);
    let rows: i64 = sqlx::query_scalar(
        "SELECT (tup_inserted + tup_updated + tup_deleted)::BIGINT FROM pg_stat_database
         WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(0);
    let wal: f64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::FLOAT8")
            .fetch_one(pool)
            .await
            .unwrap_or(0.0);
    Counters {
        steps: steps.unwrap_or(0),
        rows,
        wal,
    }
}

/// Accounts that have been synced once.
async fn synced(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM checkpoints")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

fn config_file(dir: &Path, name: &str, sandbox: &Sandbox, keep: usize) -> std::path::PathBuf {
    let mut config = sandbox.accounts_config();
    if let Some(all) = config["accounts"].as_array_mut() {
        all.truncate(keep);
        for a in all.iter_mut() {
            a["poll_interval_secs"] = json!(1);
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, config.to_string()).expect("config");
    path
}

fn main() {
    // Under `cargo test` (no `--bench`): once, small.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (per_marketplace, measure, warm_up) = match smoke {
        true => (5, Duration::from_secs(1), Duration::from_secs(1)),
        false => (PER_MARKETPLACE, MEASURE, WARM_UP),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = runtime.block_on(pg::database("bench_fleet")) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("inbox-bench-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let sandbox = runtime
        .block_on(Sandbox::start(Config {
            conversations: 1,
            messages_per_conversation: 1,
            accounts: per_marketplace,
            limits: Limit::published(),
            ..Config::default()
        }))
        .expect("sandbox");
    let all = config_file(&dir, "10k.json", &sandbox, usize::MAX);
    let pool = runtime
        .block_on(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&db.url),
        )
        .expect("pool");

    // Every account synced once, so that the passes measured are quiet.
    let started = Instant::now();
    let first = (0..4).map(|_| worker(&all, &db.url)).collect::<Vec<_>>();
    while runtime.block_on(synced(&pool)) < 4 * per_marketplace as i64 {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "first sync took over 15 min"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "10,000 accounts first synced by 4 workers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    sandbox.set_latency(Duration::from_millis(50));
    stop(first);

    println!(
        "quiet passes, 50 ms a request, --concurrency 16 per worker, {} s measured after {} s:",
        measure.as_secs(),
        warm_up.as_secs()
    );
    println!(
        "  {:>7} {:>10} {:>10} {:>14} {:>16} {:>12} {:>10}",
        "workers", "passes/s", "vs 1", "rows/pass", "WAL bytes/pass", "RSS MB (1st)", "CPU busy"
    );
    let mut base = None;
    let mut rss_10k = f64::NAN;
    let counts: &[usize] = if smoke { &[1] } else { &[1, 2, 4, 1] };
    for &workers in counts {
        let running: Vec<Child> = (0..workers).map(|_| worker(&all, &db.url)).collect();
        std::thread::sleep(warm_up);
        let before = runtime.block_on(counters(&pool));
        let cpu_before = cpu_jiffies();
        std::thread::sleep(measure);
        let after = runtime.block_on(counters(&pool));
        let cpu_after = cpu_jiffies();
        let busy = (cpu_after.0 - cpu_before.0) as f64 / (cpu_after.1 - cpu_before.1).max(1) as f64;
        let rss = running.first().map_or(f64::NAN, rss_mb);
        stop(running);
        let passes = (after.steps - before.steps) as f64;
        let rate = passes / measure.as_secs_f64();
        let one = *base.get_or_insert(rate);
        if workers == 1 {
            rss_10k = rss;
        }
        println!(
            "  {:>7} {:>10.1} {:>9.2}x {:>14.1} {:>16.0} {:>12.1} {:>9.0}%",
            workers,
            rate,
            rate / one,
            (after.rows - before.rows) as f64 / passes.max(1.0),
            (after.wal - before.wal) / passes.max(1.0),
            rss,
            busy * 100.0
        );
    }

    if smoke {
        drop(pool);
        runtime.block_on(db.drop_now());
        std::fs::remove_dir_all(&dir).ok();
        return;
    }
    // Resident memory against the number of accounts.
    let mut memory = Vec::new();
    for (keep, label) in [(4usize, "4"), (1_000, "1,000")] {
        let file = config_file(&dir, &format!("{keep}.json"), &sandbox, keep);
        let child = worker(&file, &db.url);
        std::thread::sleep(WARM_UP + Duration::from_secs(10));
        memory.push((label, rss_mb(&child)));
        stop(vec![child]);
    }
    memory.push(("10,000", rss_10k));
    let fixed = memory.first().map_or(0.0, |(_, mb)| *mb);
    println!("resident memory of one worker:");
    for (label, mb) in &memory {
        println!(
            "  {label:>6} accounts: {mb:.1} MB ({:.2}x the 4-account worker)",
            mb / fixed
        );
    }
    let per_account = (rss_10k - fixed) / 9_996.0 * 1024.0;
    println!("  {per_account:.1} kB per account beyond the fixed cost");
    drop(pool);
    runtime.block_on(db.drop_now());
    std::fs::remove_dir_all(&dir).ok();
}
