//! Events out of `inbox serve` (SQLite, the store's accounts on the sandbox), each figure
//! from runs made side by side:
//!
//! - a buyer message → its `message.created` at a webhook receiver, p50 and p99: pushed
//!   (Mercado Libre and Ozon in turn, 40 messages) against polled every 60 s (Allegro and
//!   Magalu, 8 messages written at seeded moments over two intervals);
//! - sustained deliveries per second from one `serve` to a local receiver (a replay of
//!   every event of a large mirror), against the same receiver posted to directly by a
//!   client with as many requests in flight;
//! - the feed's read rate (`GET /v1/events`, 1,000 a page) against the same pages read
//!   straight from the store.
//!
//! `cargo bench -p inbox-cli --bench webhooks` (under `cargo test` it runs once, small).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Sandbox, Vendor};
use serde_json::{json, Value};

const KEY: &str = "8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d";
const SECRET: &str = "bench-webhook-secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn inbox(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_inbox"))
        .args(args)
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .output()
        .expect("inbox");
    assert!(
        out.status.success(),
        "inbox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(rank).copied().unwrap_or(f64::NAN)
}

fn summary(label: &str, mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let p50 = percentile(&samples, 0.5);
    println!(
        "  {label:<34} p50 {:>10.1} ms   p99 {:>10.1} ms   ({} samples)",
        p50 * 1e3,
        percentile(&samples, 0.99) * 1e3,
        samples.len()
    );
    p50
}

/// A deterministic value in [0, 1) for `n`.
fn unit(n: u64) -> f64 {
    let mut z = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A receiver on loopback answering 204 to everything: each arrival's instant and text.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Receiver {
    fn start(runtime: &tokio::runtime::Runtime) -> Receiver {
        let got: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("listen");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let seen = got.clone();
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let text = event["data"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Ok(mut seen) = seen.lock() {
                    seen.push((Instant::now(), text));
                }
                axum::http::StatusCode::NO_CONTENT
            }
        });
        runtime.spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got }
    }

    fn count(&self) -> usize {
        self.got.lock().map(|g| g.len()).unwrap_or(0)
    }

    /// When `text` arrived, waiting up to `limit`.
    fn arrival(&self, text: &str, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let found = self
                .got
                .lock()
                .ok()
                .and_then(|g| g.iter().find(|(_, t)| t == text).map(|(at, _)| *at));
            if found.is_some() {
                return found;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }
}

/// The store `db` holding `sandbox`'s accounts, Allegro and Magalu polled every
/// `poll` seconds, Mercado Libre and Ozon (which push) hourly.
fn import(dir: &std::path::Path, sandbox: &Sandbox, db: &str, poll: f64) {
    let mut config = sandbox.accounts_config();
    for a in config["accounts"].as_array_mut().expect("accounts") {
        let pushes = matches!(a["marketplace"].as_str(), Some("mercadolibre" | "ozon"));
        a["poll_interval_secs"] = json!(if pushes { 3600.0 } else { poll });
    }
    let path = dir.join("accounts.json");
    std::fs::write(&path, config.to_string()).expect("config");
    inbox(&[
        "accounts",
        "import",
        path.to_str().unwrap_or_default(),
        "--db",
        db,
    ]);
}

fn serve(db: &str, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_inbox"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            db,
        ])
        .args(["--notify-secret", SECRET, "--poll-interval", "3600"])
        .arg("--webhooks-allow-private")
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let up = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "serve did not start");
    child
}

fn stop(mut child: Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill with a pid of our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = child.wait();
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (pushes, polls, poll, span, conversations) = match smoke {
        true => (2u64, 1u64, 1.0, 2.0, 20u64),
        false => (40, 8, 60.0, 120.0, 400),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = std::env::temp_dir().join(format!("inbox-bench-webhooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let receiver = Receiver::start(&runtime);

    // 1. Latency, pushed and polled.
    let port = free_port();
    let sandbox = runtime
        .block_on(Sandbox::start(Config {
            conversations: 3,
            messages_per_conversation: 2,
            push_url: Some(format!("http://127.0.0.1:{port}/notifications/{SECRET}")),
            ..Config::default()
        }))
        .expect("sandbox");
    let db = dir.join("latency.db");
    let db_arg = db.to_str().unwrap_or_default().to_string();
    import(&dir, &sandbox, &db_arg, poll);
    let child = serve(&db_arg, port);
    // The first import done, then the endpoint: it receives what follows.
    std::thread::sleep(Duration::from_secs(5));
    inbox(&[
        "webhooks",
        "add",
        &receiver.url,
        "--types",
        "message.created",
        "--allow-private",
        "--db",
        &db_arg,
    ]);
    let conversation = |v: Vendor| {
        sandbox
            .conversations_of(v, v.prefix())
            .into_iter()
            .next()
            .expect("a conversation")
    };
    let pushers = [
        (Vendor::MercadoLibre, conversation(Vendor::MercadoLibre)),
        (Vendor::Ozon, conversation(Vendor::Ozon)),
    ];
    let mut pushed = Vec::new();
    for i in 0..pushes {
        let (vendor, id) = &pushers[(i % 2) as usize];
        let text = format!("pushed {i}");
        let written = Instant::now();
        assert!(sandbox.buyer_writes(*vendor, id, &text));
        let at = receiver
            .arrival(&text, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{text} was not delivered in 30 s"));
        pushed.push(at.duration_since(written).as_secs_f64());
    }
    let pollers = [
        (Vendor::Allegro, conversation(Vendor::Allegro)),
        (Vendor::Magalu, conversation(Vendor::Magalu)),
    ];
    let started = Instant::now();
    let mut moments: Vec<(f64, u64)> = (0..polls).map(|i| (unit(i + 1) * span, i)).collect();
    moments.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut written = Vec::new();
    for (at, i) in &moments {
        std::thread::sleep(Duration::from_secs_f64(*at).saturating_sub(started.elapsed()));
        let (vendor, id) = &pollers[(i % 2) as usize];
        let text = format!("polled {i}");
        assert!(sandbox.buyer_writes(*vendor, id, &text));
        written.push((text, Instant::now()));
    }
    let mut polled = Vec::new();
    for (text, wrote) in &written {
        let at = receiver
            .arrival(text, Duration::from_secs_f64(poll * 2.0 + 30.0))
            .unwrap_or_else(|| panic!("{text} was not delivered"));
        polled.push(at.duration_since(*wrote).as_secs_f64());
    }
    stop(child);
    println!("buyer message → webhook received:");
    let push_p50 = summary("pushed (Mercado Libre, Ozon)", pushed);
    let poll_p50 = summary(&format!("polled every {poll} s (Allegro, Magalu)"), polled);
    println!("  polling's median is {:.0}x push's", poll_p50 / push_p50);

    // 2. Sustained deliveries: every event of a larger mirror replayed.
    let big = runtime
        .block_on(Sandbox::start(Config {
            conversations,
            messages_per_conversation: 6,
            ..Config::default()
        }))
        .expect("sandbox");
    let db = dir.join("throughput.db");
    let db_arg = db.to_str().unwrap_or_default().to_string();
    import(&dir, &big, &db_arg, 3600.0);
    let port = free_port();
    let child = serve(&db_arg, port);
    let want_messages = 4 * conversations * 6;
    let key = inbox(&[
        "--json",
        "keys",
        "create",
        "--db",
        &db_arg,
        "--scope",
        "events",
        "--per-minute",
        "100000000",
    ])["key"]
        .as_str()
        .expect("key")
        .to_string();
    let http = inbox_core::http_client().expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let feed_page = |after: u64| -> Value {
        runtime.block_on(async {
            http.get(format!("{base}/v1/events?after={after}&limit=1000"))
                .bearer_auth(&key)
                .send()
                .await
                .expect("feed")
                .json::<Value>()
                .await
                .expect("json")
        })
    };
    // Wait for the first import: the feed holds every message.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut after = 0;
        let mut messages = 0u64;
        loop {
            let page = feed_page(after);
            let data = page["data"].as_array().cloned().unwrap_or_default();
            if data.is_empty() {
                break;
            }
            messages += data
                .iter()
                .filter(|e| e["type"] == "message.created")
                .count() as u64;
            after = page["next_after"].as_u64().unwrap_or(after);
        }
        if messages >= want_messages {
            break;
        }
        assert!(Instant::now() < deadline, "the import did not finish");
        std::thread::sleep(Duration::from_secs(2));
    }
    // The feed's read rate, against the store read directly.
    let walk_api = || {
        let started = Instant::now();
        let (mut after, mut n) = (0u64, 0usize);
        loop {
            let page = feed_page(after);
            let data = page["data"].as_array().map_or(0, Vec::len);
            if data == 0 {
                return (n, started.elapsed().as_secs_f64());
            }
            n += data;
            after = page["next_after"].as_u64().unwrap_or(after);
        }
    };
    let store = runtime
        .block_on(marketplace_inbox::sync::SqliteStore::open(&db))
        .expect("store");
    let walk_store = || {
        let started = Instant::now();
        let (mut after, mut n) = (0u64, 0usize);
        loop {
            let page = runtime
                .block_on(store.events_after(after, &Default::default(), 1000))
                .expect("events");
            if page.is_empty() {
                return (n, started.elapsed().as_secs_f64());
            }
            n += page.len();
            after = page.last().and_then(|e| e["seq"].as_u64()).unwrap_or(after);
        }
    };
    let (mut api_rates, mut store_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (n, secs) = walk_api();
        api_rates.push(n as f64 / secs);
        let (n, secs) = walk_store();
        store_rates.push(n as f64 / secs);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.5)
    };
    let (api_rate, store_rate) = (median(api_rates), median(store_rates));

    // Deliveries: every event replayed to the receiver.
    let hook = inbox(&[
        "webhooks",
        "add",
        &receiver.url,
        "--allow-private",
        "--db",
        &db_arg,
    ]);
    let hook_id = hook["id"].as_str().expect("id").to_string();
    let before = receiver.count();
    let queued = inbox(&[
        "webhooks", "replay", &hook_id, "--after", "0", "--db", &db_arg,
    ])["queued"]
        .as_u64()
        .expect("queued") as usize;
    let replayed = Instant::now();
    let deadline = replayed + Duration::from_secs(600);
    while receiver.count() < before + queued {
        assert!(Instant::now() < deadline, "the replay was not delivered");
        std::thread::sleep(Duration::from_millis(5));
    }
    let delivered_in = replayed.elapsed().as_secs_f64();
    let delivery_rate = queued as f64 / delivered_in;
    stop(child);
    // The same receiver posted to directly, 32 requests in flight (the deliverer's).
    let bodies: Vec<String> = (0..queued)
        .map(|i| {
            json!({"id": format!("evt_{i}"), "data": {"text": format!("direct {i}")}}).to_string()
        })
        .collect();
    let before = receiver.count();
    let direct = Instant::now();
    runtime.block_on(async {
        use futures::StreamExt;
        futures::stream::iter(bodies)
            .map(|b| {
                let http = http.clone();
                let url = receiver.url.clone();
                async move {
                    let _ = http
                        .post(url)
                        .header("content-type", "application/json")
                        .body(b)
                        .send()
                        .await;
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    });
    let direct_rate = (receiver.count() - before) as f64 / direct.elapsed().as_secs_f64();
    println!("deliveries from one serve ({queued} events replayed):");
    println!(
        "  {delivery_rate:>10.0} events/s delivered   direct posts {direct_rate:>10.0}/s   ratio {:.2}",
        delivery_rate / direct_rate
    );
    println!("the feed (GET /v1/events, 1,000 a page):");
    println!(
        "  {api_rate:>10.0} events/s over HTTP   store directly {store_rate:>10.0}/s   ratio {:.2}",
        api_rate / store_rate
    );
    std::fs::remove_dir_all(&dir).ok();
}
