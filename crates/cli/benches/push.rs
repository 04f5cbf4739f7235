//! `inbox serve` against the sandbox playing the vendors' push, each figure from runs made
//! side by side:
//!
//! - time from a buyer message to its event on stdout, p50 and p99: pushed (serve, polls
//!   an hour apart; 40 messages, Mercado Libre and Ozon in turn) against polling (`inbox
//!   watch --interval 60`, 8 messages written at seeded random moments over two
//!   intervals);
//! - requests to the vendor per pushed message;
//! - acknowledgement latency p50/p99 as the vendor sees it, at 500 notifications a
//!   second for 10 s (each a new event for a configured account, so each is journaled).
//!
//! `cargo bench -p inbox-cli --bench push`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Sandbox, Vendor};
use serde_json::{json, Value};

const SECRET: &str = "bench-secret-segment";
const EXAMPLES: [(Vendor, &str); 2] = [
    (Vendor::MercadoLibre, "2000000089077943"),
    (Vendor::Ozon, "99feb3fc-a474-469f-95d5-268b470cc607"),
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child whose stdout lines (JSON) arrive on a channel with the instant they did.
fn spawn(args: &[&str], config: &std::path::Path) -> (Child, mpsc::Receiver<(Instant, Value)>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_inbox"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("inbox");
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send((Instant::now(), v));
                }
            }
        });
    }
    (child, rx)
}

fn stop(mut child: Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill with a pid of our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = child.wait();
}

/// When the line printing `text` arrived (within `limit`).
fn printed(rx: &mpsc::Receiver<(Instant, Value)>, text: &str, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((at, v)) if v["event"] == "new_message" && v["text"] == text => return Some(at),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

fn summary(label: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    println!(
        "  {label:<34} p50 {:>10.2} ms   p99 {:>10.2} ms   ({} samples)",
        percentile(&samples, 0.5) * 1e3,
        percentile(&samples, 0.99) * 1e3,
        samples.len()
    );
}

/// A deterministic value in [0, 1) for `n`.
fn unit(n: u64) -> f64 {
    let mut z = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn main() {
    // Under `cargo test` (no `--bench`): once, small.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (pushes, acks_n, polls, poll_interval, poll_span) = match smoke {
        true => (2u64, 20u64, 1u64, "1", 2.0),
        false => (40, 5_000, 8, "60", 120.0),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = std::env::temp_dir().join(format!("inbox-bench-push-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let sandbox = runtime
        .block_on(Sandbox::start(Config {
            conversations: 5,
            messages_per_conversation: 2,
            push_url: Some(format!("http://127.0.0.1:{port}/notifications/{SECRET}")),
            ..Config::default()
        }))
        .expect("sandbox");
    let config = dir.join("accounts.json");
    std::fs::write(&config, sandbox.accounts_config().to_string()).expect("config");
    let db = dir.join("inbox.db");
    let db_arg = db.to_str().unwrap_or_default().to_string();
    let synced = Command::new(env!("CARGO_BIN_EXE_inbox"))
        .arg("--config")
        .arg(&config)
        .args(["--json", "sync", "--db", &db_arg])
        .env_clear()
        .output()
        .expect("sync");
    assert!(synced.status.success(), "the first sync failed");

    // Pushed.
    let listen = format!("127.0.0.1:{port}");
    let (serve, lines) = spawn(
        &[
            "--json",
            "serve",
            "--listen",
            &listen,
            "--db",
            &db_arg,
            "--notify-secret",
            SECRET,
            "--poll-interval",
            "3600",
        ],
        &config,
    );
    std::thread::sleep(Duration::from_secs(3));
    while lines.try_recv().is_ok() {}
    let requests_before = sandbox.requests();
    let mut pushed = Vec::new();
    for i in 0..pushes {
        let (vendor, conversation) = EXAMPLES[(i % 2) as usize];
        let text = format!("pushed {i}");
        let written = Instant::now();
        assert!(sandbox.buyer_writes(vendor, conversation, &text));
        match printed(&lines, &text, Duration::from_secs(30)) {
            Some(at) => pushed.push(at.duration_since(written).as_secs_f64()),
            None => panic!("{text} not printed in 30 s"),
        }
    }
    let per_message = (sandbox.requests() - requests_before) as f64 / pushes as f64;

    // Acknowledgements at 500 a second.
    let c = sandbox.credentials().clone();
    let acks: Vec<f64> = runtime.block_on(async {
        let client = inbox_core::http_client().expect("client");
        let url = format!("http://{listen}/notifications/{SECRET}/ozon");
        let mut tasks = Vec::new();
        let start = tokio::time::Instant::now();
        for n in 0..acks_n {
            let at = start + Duration::from_micros(n * 2_000);
            let body = json!({"message_type": "TYPE_UPDATE_MESSAGE", "chat_id": EXAMPLES[1].1,
                "message_id": "3000000000817031942", "updated_at": format!("2026-12-02T10:{:02}:{:02}.{:03}Z", n / 60_000, (n / 1000) % 60, n % 1000),
                "seller_id": c.ozon_client_id, "user": {"id": "1", "type": "Customer"}})
            .to_string();
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let sent = Instant::now();
                let answer = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status() == 200 => Some(sent.elapsed().as_secs_f64()),
                    _ => None,
                }
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            if let Ok(Some(secs)) = t.await {
                out.push(secs);
            }
        }
        out
    });
    let answered = acks.len();
    stop(serve);

    // Polled every 60 s.
    let (watch, lines) = spawn(
        &[
            "--json",
            "watch",
            "--interval",
            poll_interval,
            "--db",
            &db_arg,
        ],
        &config,
    );
    std::thread::sleep(Duration::from_secs(3));
    while lines.try_recv().is_ok() {}
    let started = Instant::now();
    let mut moments: Vec<(f64, u64)> = (0..polls).map(|i| (unit(i + 1) * poll_span, i)).collect();
    moments.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut written = Vec::new();
    for (at, i) in &moments {
        let wait = Duration::from_secs_f64(*at).saturating_sub(started.elapsed());
        std::thread::sleep(wait);
        let (vendor, conversation) = EXAMPLES[(i % 2) as usize];
        let text = format!("polled {i}");
        assert!(sandbox.buyer_writes(vendor, conversation, &text));
        written.push((text, Instant::now()));
    }
    let mut polled = Vec::new();
    let mut pending: Vec<(String, Instant)> = written;
    let deadline = Instant::now() + Duration::from_secs(150);
    while !pending.is_empty() && Instant::now() < deadline {
        if let Ok((at, v)) = lines.recv_timeout(Duration::from_secs(1)) {
            if let Some(p) = pending.iter().position(|(t, _)| v["text"] == t.as_str()) {
                let (_, wrote) = pending.swap_remove(p);
                polled.push(at.duration_since(wrote).as_secs_f64());
            }
        }
    }
    stop(watch);

    println!("buyer message → event (Mercado Libre and Ozon in turn):");
    summary("pushed (inbox serve)", pushed.clone());
    summary("polled (inbox watch --interval 60)", polled.clone());
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    println!(
        "  polling's median is {:.0}x push's",
        median(polled) / median(pushed)
    );
    println!("requests to the vendor per pushed message: {per_message:.2}");
    println!("acknowledgements at 500 a second ({answered} of {acks_n} answered 200):");
    summary("ack latency", acks);
    std::fs::remove_dir_all(&dir).ok();
}
