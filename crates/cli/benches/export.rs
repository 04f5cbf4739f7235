//! `inbox export` of one account at 50 ms a request, every marketplace, against the
//! sandbox enforcing the vendors' published limits: the sequential walk (`concurrency: 1`)
//! and the default, side by side in one run, each against the vendor's rate-limit floor
//! (requests ÷ the published rate; aim ≤ 1.15×). Prints one row per marketplace.
//!
//! `cargo bench -p inbox-cli --bench export`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Limit, Sandbox, Vendor};
use serde_json::Value;

/// Conversations of 40 messages per marketplace: enough for a few seconds at its limit.
const SIZES: [(Vendor, u64); 4] = [
    (Vendor::Allegro, 200),
    (Vendor::MercadoLibre, 25),
    (Vendor::Magalu, 40),
    (Vendor::Ozon, 200),
];

struct Run {
    seconds: f64,
    requests: u64,
    refused: u64,
    lines: usize,
}

/// One `inbox export` of the marketplace's sandbox account, with `concurrency` when given.
fn export(
    runtime: &tokio::runtime::Runtime,
    vendor: Vendor,
    n: u64,
    concurrency: Option<u32>,
    dir: &Path,
) -> Run {
    let sandbox = runtime
        .block_on(Sandbox::start(Config::paced(
            n,
            40,
            Duration::from_millis(50),
        )))
        .expect("sandbox");
    let mut config = sandbox.accounts_config();
    if let Some(all) = config["accounts"].as_array_mut() {
        all.retain(|a| a["marketplace"] == vendor.prefix());
        for a in all.iter_mut() {
            if let Some(c) = concurrency {
                a["concurrency"] = Value::from(c);
            }
        }
    }
    let file = dir.join(format!("{}.json", vendor.prefix()));
    std::fs::write(&file, config.to_string()).expect("config");
    let out = dir.join(format!("{}.jsonl", vendor.prefix()));
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_inbox"))
        .arg("--config")
        .arg(&file)
        .args(["export", "--out"])
        .arg(&out)
        .env_clear()
        .stderr(Stdio::null())
        .status()
        .expect("inbox");
    let seconds = started.elapsed().as_secs_f64();
    assert!(status.success(), "{vendor:?}: inbox export failed");
    let lines = std::fs::read_to_string(&out)
        .expect("export")
        .lines()
        .count();
    Run {
        seconds,
        requests: sandbox.requests(),
        refused: sandbox.rate_limited(),
        lines,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("inbox-export-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    println!(
        "{:<13} {:>6} {:>9} {:>8} {:>13} {:>9} {:>12} {:>9} {:>13} {:>5}",
        "marketplace",
        "conv.",
        "messages",
        "requests",
        "sequential s",
        "(× floor)",
        "concurrent s",
        "floor s",
        "conc. × floor",
        "429s"
    );
    // `INBOX_BENCH_ONLY=allegro,ozon` runs those alone.
    let only = std::env::var("INBOX_BENCH_ONLY").unwrap_or_default();
    // Under `cargo test` (no `--bench`): once, small.
    let smoke = !std::env::args().any(|a| a == "--bench");
    for (vendor, n) in SIZES {
        if !only.is_empty() && !only.split(',').any(|o| o == vendor.prefix()) {
            continue;
        }
        let n = if smoke { n.min(2) } else { n };
        let one = export(&runtime, vendor, n, Some(1), &dir);
        let all = export(&runtime, vendor, n, None, &dir);
        assert_eq!(one.lines, all.lines, "{vendor:?}: the same messages");
        let floor = all.requests as f64 / Limit::published_read_rate(vendor);
        let sequential_floor = one.requests as f64 / Limit::published_read_rate(vendor);
        println!(
            "{:<13} {:>6} {:>9} {:>8} {:>13.2} {:>8.2}x {:>12.2} {:>9.2} {:>12.2}x {:>5}",
            vendor.prefix(),
            n,
            all.lines,
            all.requests,
            one.seconds,
            one.seconds / sequential_floor,
            all.seconds,
            floor,
            all.seconds / floor,
            one.refused + all.refused
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
