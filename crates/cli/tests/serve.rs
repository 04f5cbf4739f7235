//! `inbox serve` against the sandbox playing the vendors' push: a buyer message reaches
//! its output through a notification with polls an hour apart; the answers are the
//! vendors' own, byte for byte; redeliveries and disorder print a message once; forged
//! notifications change nothing and cost no account a request; nothing is lost when the
//! process dies after answering or was down when the vendor pushed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Vendor};
use serde_json::{json, Value};

mod common;
use common::{inbox, start, EXAMPLES};
#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

const SECRET: &str = "s3cret-path-segment";

/// A free port on loopback (the sandbox must know where to push before serve starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `inbox serve`, its JSON lines arriving on `lines`.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<Value>,
    stderr: mpsc::Receiver<String>,
}

fn serve(
    config: &std::path::Path,
    db: impl AsRef<std::ffi::OsStr>,
    port: u16,
    poll: &str,
) -> Serve {
    let mut child = common::inbox_command()
        .arg("--config")
        .arg(config)
        .args([
            "--json",
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
        ])
        .arg(db.as_ref())
        .args(["--notify-secret", SECRET, "--poll-interval", poll])
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or(Value::String(line)));
        }
    });
    let (etx, stderr) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    let s = Serve {
        child,
        lines,
        stderr,
    };
    // Ready once /readyz says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(port, "GET", "/readyz", None, None).0 != 200 {
        assert!(Instant::now() < deadline, "serve not ready in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

impl Serve {
    /// The JSON lines printed until `want` says stop (or 20 s pass).
    fn until(&self, mut want: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    let done = want(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("not printed in 20 s; printed: {seen:?}");
    }

    /// Every line printed within `wait`.
    fn drain(&self, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) => seen.push(v),
                Err(_) => break,
            }
        }
        seen
    }

    fn stop(mut self) -> String {
        let pid = i32::try_from(self.child.id()).unwrap();
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exited with {status}");
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// One HTTP/1.1 request on loopback: status, headers (lower case) and body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String, Vec<u8>) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new(), Vec::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body).is_err() {
        return (0, String::new(), Vec::new());
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..split]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.get(split + 4..).unwrap_or_default().to_vec();
    (status, head, body)
}

fn post(port: u16, vendor: &str, body: &Value) -> (u16, Vec<u8>) {
    let (status, _, answer) = http(
        port,
        "POST",
        &format!("/notifications/{SECRET}/{vendor}"),
        Some("application/json"),
        Some(body.to_string().as_bytes()),
    );
    (status, answer)
}

fn new_message_with(text: &str) -> impl FnMut(&Value) -> bool + '_ {
    move |v| v["event"] == "new_message" && v["text"] == text
}

/// The sandbox pushing to `port`, its accounts in a config file, and a database that
/// already holds everything (so that serve's first polls print nothing).
fn synced(
    name: &str,
    port: u16,
    retry_for: Duration,
) -> (common::Env, std::path::PathBuf, std::path::PathBuf) {
    let env = start(
        Config {
            conversations: 2,
            messages_per_conversation: 2,
            push_url: Some(format!("http://127.0.0.1:{port}/notifications/{SECRET}")),
            push_retry_for: retry_for,
            ..Config::default()
        },
        name,
    );
    let path = env.write_config(&env.sandbox.accounts_config());
    let db = env.dir.join("inbox.db");
    let out = inbox(&path, &["--json", "sync", "--db", db.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (env, path, db)
}

/// [`synced`] and serve started on it, its first polls done (they find nothing new).
fn quiet(name: &str) -> (common::Env, std::path::PathBuf, Serve, u16) {
    let port = free_port();
    let (env, path, db) = synced(name, port, Duration::from_secs(3600));
    let s = serve(&path, &db, port, "3600");
    assert!(
        s.drain(Duration::from_secs(2)).is_empty(),
        "the first polls printed"
    );
    (env, db, s, port)
}

#[test]
fn a_pushed_buyer_message_is_printed_with_polls_an_hour_apart() {
    let (env, _db, s, port) = quiet("serve-push");
    let before = env.sandbox.pushes();
    for (vendor, id) in EXAMPLES {
        if matches!(vendor, Vendor::MercadoLibre | Vendor::Ozon) {
            let text = format!("pushed on {}", vendor.prefix());
            assert!(env.sandbox.buyer_writes(vendor, id, &text));
            let lines = s.until(new_message_with(&text));
            let line = lines.last().unwrap();
            assert_eq!(line["marketplace"], vendor.prefix());
            assert_eq!(line["account"], vendor.prefix());
        }
    }
    // Both delivered, answered in time: no retry (Ozon's ping may have been tried
    // before serve was up).
    let pushes = env.sandbox.pushes();
    assert_eq!(pushes.failed_attempts, before.failed_attempts, "{pushes:?}");
    assert_eq!(pushes.sent - before.sent, 2, "{pushes:?}");
    assert!(pushes.delivered - before.delivered >= 2, "{pushes:?}");
    // The metrics counted them.
    let (status, _, metrics) = http(port, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("inbox_notifications_acknowledged_total{marketplace=\"ozon\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("inbox_notification_ack_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("inbox_syncs_total{"), "{metrics}");
    let stderr = s.stop();
    assert!(!stderr.contains(SECRET), "the secret was logged: {stderr}");
}

#[test]
fn the_answers_are_the_vendors_own_and_forgeries_change_nothing() {
    let (env, db, s, port) = quiet("serve-answers");
    let before = env.sandbox.received().len();

    // TYPE_PING: version, name and time, nothing else.
    let (status, answer) = post(
        port,
        "ozon",
        &json!({"message_type": "TYPE_PING", "time": "2019-08-24T14:15:22Z"}),
    );
    assert_eq!(status, 200);
    let pong: serde_json::Map<String, Value> = serde_json::from_slice(&answer).unwrap();
    // The set of keys, not their order (serde_json's map order depends on a cargo
    // feature another target may turn on).
    let mut keys: Vec<&str> = pong.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["name", "time", "version"]);
    assert_eq!(pong["name"], "marketplace-inbox");
    assert!(chrono::DateTime::parse_from_rfc3339(pong["time"].as_str().unwrap()).is_ok());
    // A notification for no configured seller: the vendor's success answer, byte for byte.
    let forged = json!({"message_type": "TYPE_NEW_MESSAGE", "chat_id": "99feb3fc-a474-469f-95d5-268b470cc607",
        "message_id": "3000000000817031942", "seller_id": "999999", "user": {"id": "1", "type": "Customer"}});
    assert_eq!(
        post(port, "ozon", &forged),
        (200, br#"{"result":true}"#.to_vec())
    );
    // Mercado Libre: 200; another seller, then the right seller with another application.
    let c = env.sandbox.credentials().clone();
    let ml = |user: &str, app: &str| {
        json!({"resource": "2c92808469fea23a0169febdb0570000", "user_id": user, "topic": "messages",
               "application_id": app, "attempts": 1})
    };
    assert_eq!(
        post(
            port,
            "mercadolibre",
            &ml("1", &c.mercadolibre_application_id)
        )
        .0,
        200
    );
    assert_eq!(
        post(port, "mercadolibre", &ml(&c.mercadolibre_seller_id, "123")).0,
        200
    );
    // A message or chat the vendor does not know, for the right account: acknowledged,
    // one read for that account, nothing stored.
    let unknown_chat = json!({"message_type": "TYPE_NEW_MESSAGE", "chat_id": "00000000-0000-0000-0000-000000000000",
        "message_id": "1", "seller_id": c.ozon_client_id, "user": {"id": "1", "type": "Customer"}});
    assert_eq!(post(port, "ozon", &unknown_chat).0, 200);
    // Malformed JSON on Ozon's route: 400 in Ozon's error form.
    let (status, _, answer) = http(
        port,
        "POST",
        &format!("/notifications/{SECRET}/ozon"),
        Some("application/json"),
        Some(b"{\"message_type\""),
    );
    assert_eq!(status, 400);
    let err: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(err["error"]["code"], "ERROR_PARAMETER_VALUE_MISSED");
    assert!(err["error"]["message"].is_string());
    assert_eq!(err["error"]["details"], Value::Null);
    // Over 64 KiB (2 MiB, and just past the bound): 413. Wrong content type: 415.
    // Wrong secret: no route.
    for size in [2 * 1024 * 1024, 64 * 1024 + 1] {
        let big = vec![b' '; size];
        assert_eq!(
            http(
                port,
                "POST",
                &format!("/notifications/{SECRET}/mercadolibre"),
                Some("application/json"),
                Some(&big)
            )
            .0,
            413,
            "{size} bytes"
        );
    }
    assert_eq!(
        http(
            port,
            "POST",
            &format!("/notifications/{SECRET}/ozon"),
            Some("text/plain"),
            Some(forged.to_string().as_bytes())
        )
        .0,
        415
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/notifications/wrong-secret-value/ozon",
            Some("application/json"),
            Some(forged.to_string().as_bytes())
        )
        .0,
        404
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/notifications/ozon",
            Some("application/json"),
            Some(forged.to_string().as_bytes())
        )
        .0,
        404
    );

    // Nothing printed; the only requests were the unknown chat's, for its own account.
    assert!(s.drain(Duration::from_secs(2)).is_empty());
    let after = env.sandbox.received();
    let caused: Vec<_> = after.iter().skip(before).collect();
    assert!(
        caused.iter().all(|r| r.vendor == Vendor::Ozon
            && r.credential.as_deref() == Some(c.ozon_client_id.as_str())),
        "{caused:?}"
    );
    assert!(
        caused.iter().any(|r| r.path.contains("/v3/chat/history")),
        "{caused:?}"
    );
    let stderr = s.stop();
    assert!(stderr.contains("names no configured account"), "{stderr}");
    // The store holds no message and no journal entry from any forgery (on SQLite the
    // journal is the file beside the mirror).
    let conn = rusqlite::Connection::open(push_journal(&db)).unwrap();
    let journaled: Vec<String> = conn
        .prepare("SELECT dedup_key FROM journal")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        journaled.len(),
        1,
        "only the unknown chat of a real account: {journaled:?}"
    );
    assert!(journaled[0].contains("00000000-0000-0000-0000-000000000000"));
    let state: String = conn
        .query_row("SELECT state FROM journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "ignored");
}

#[test]
fn redeliveries_and_disorder_print_a_message_once() {
    let (env, _db, s, port) = quiet("serve-dedup");
    let c = env.sandbox.credentials().clone();
    let ozon_chat = EXAMPLES[3].1;
    // Written without a push (the account's own), then notified five times, and an older
    // notification after it.
    let first = env
        .sandbox
        .buyer_writes_to(Vendor::Ozon, "ozon", ozon_chat, "once only")
        .unwrap();
    let s_lines = s.until(new_message_with("once only"));
    assert_eq!(
        s_lines.iter().filter(|l| l["text"] == "once only").count(),
        1
    );
    let notice = |id: &str| {
        json!({"message_type": "TYPE_NEW_MESSAGE", "chat_id": ozon_chat, "chat_type": "Buyer_Seller",
               "message_id": id, "created_at": "2026-12-02T10:00:00Z", "seller_id": c.ozon_client_id,
               "user": {"id": "115568", "type": "\u{421}ustomer"}, "data": ["x"]})
    };
    for _ in 0..5 {
        assert_eq!(
            post(port, "ozon", &notice(&first)),
            (200, br#"{"result":true}"#.to_vec())
        );
    }
    assert_eq!(post(port, "ozon", &notice("3000000000817031942")).0, 200);
    let again = s.drain(Duration::from_secs(3));
    assert!(again.iter().all(|l| l["text"] != "once only"), "{again:?}");
    // Mercado Libre: the same notification five times, ids as numbers and strings.
    let ml_pack = EXAMPLES[1].1;
    let id = env
        .sandbox
        .buyer_writes_to(Vendor::MercadoLibre, "mercadolibre", ml_pack, "uma vez")
        .unwrap();
    s.until(new_message_with("uma vez"));
    for attempt in 1..=5 {
        let user = if attempt % 2 == 0 {
            json!(c.mercadolibre_seller_id.parse::<u64>().unwrap())
        } else {
            json!(c.mercadolibre_seller_id)
        };
        let body = json!({"resource": id, "user_id": user, "topic": "messages", "actions": ["created"],
                          "application_id": c.mercadolibre_application_id, "attempts": attempt});
        assert_eq!(post(port, "mercadolibre", &body).0, 200);
    }
    let again = s.drain(Duration::from_secs(3));
    assert!(again.iter().all(|l| l["text"] != "uma vez"), "{again:?}");
    s.stop();
}

#[test]
fn nothing_is_lost_when_serve_dies_after_answering_or_was_down() {
    let port = free_port();
    let (env, path, db) = synced("serve-crash", port, Duration::from_secs(1));
    let s = serve(&path, &db, port, "3600");
    assert!(s.drain(Duration::from_secs(1)).is_empty());
    // The vendor answers slowly: the answer is given, the work is under way, and then
    // the process is killed.
    env.sandbox.set_latency(Duration::from_secs(3));
    let c = env.sandbox.credentials().clone();
    let ozon_chat = EXAMPLES[3].1;
    let id = {
        // Written without the sandbox pushing it, then notified by hand.
        let id = env
            .sandbox
            .buyer_writes_to(Vendor::Ozon, "ozon", ozon_chat, "after the crash")
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        id
    };
    let body = json!({"message_type": "TYPE_NEW_MESSAGE", "chat_id": ozon_chat, "message_id": id,
                      "seller_id": c.ozon_client_id, "user": {"id": "1", "type": "Customer"}});
    let _ = post(port, "ozon", &body);
    std::thread::sleep(Duration::from_millis(300));
    s.kill();
    env.sandbox.set_latency(Duration::ZERO);

    // While serve is down, a Mercado Libre buyer writes: the push fails for a second
    // (this sandbox's "hour"), and the notification lands in missed feeds.
    let ml_pack = EXAMPLES[1].1;
    let missed = env
        .sandbox
        .buyer_writes_to(
            Vendor::MercadoLibre,
            "mercadolibre",
            ml_pack,
            "missed while down",
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.sandbox.pushes().given_up == 0 {
        assert!(Instant::now() < deadline, "the push was not given up");
        std::thread::sleep(Duration::from_millis(100));
    }

    let s = serve(&path, &db, port, "3600");
    let lines = s.until(|v| v["event"] == "new_message" && v["text"] == "after the crash");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["text"] == "after the crash")
            .count(),
        1
    );
    let more = s.until(new_message_with("missed while down"));
    assert_eq!(more.iter().filter(|l| l["id"] == missed).count(), 1);
    // The missed notification is journaled and settled (its message was already stored
    // by then, or stored by it).
    let journal = |db: &std::path::Path| -> Vec<(String, String)> {
        let conn = rusqlite::Connection::open(push_journal(db)).unwrap();
        let rows = conn
            .prepare("SELECT dedup_key, state FROM journal ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !journal(&db)
        .iter()
        .any(|(k, s)| k.contains(&missed) && s == "done")
    {
        assert!(Instant::now() < deadline, "{:?}", journal(&db));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s
        .drain(Duration::from_secs(1))
        .iter()
        .all(|l| l["id"] != missed));
    let stderr = s.stop();
    assert!(
        stderr.contains("from before the last stop are processed now"),
        "{stderr}"
    );
    // Missed feeds were read, and the missed notification journaled and settled.
    assert!(env
        .sandbox
        .received()
        .iter()
        .any(|r| r.path.starts_with("/missed_feeds?app_id=")));
    let states = journal(&db);
    assert!(
        states.iter().any(|(k, s)| k.contains(&id) && s == "done"),
        "{states:?}"
    );
    assert!(
        states
            .iter()
            .any(|(k, s)| k.contains(&missed) && s != "pending"),
        "{states:?}"
    );
}

/// Requests the sandbox received for `path_prefix` (below a marketplace's prefix).
fn requests_to(env: &common::Env, vendor: Vendor, path_prefix: &str) -> usize {
    env.sandbox
        .received()
        .iter()
        .filter(|r| r.vendor == vendor && r.path.starts_with(path_prefix))
        .count()
}

/// Ten notifications for one chat while it is being synced (the vendor answering after
/// 300 ms) cost at most one more sync; a flood of notifications naming messages nobody
/// wrote spends at most the account's budget of reads.
#[test]
fn notifications_coalesce_and_a_flood_spends_only_the_budget() {
    let (env, _db, s, port) = quiet("serve-flood");
    let c = env.sandbox.credentials().clone();
    let chat = EXAMPLES[3].1;
    let notice = |id: u64| {
        json!({"message_type": "TYPE_UPDATE_MESSAGE", "chat_id": chat, "message_id": id.to_string(),
               "updated_at": format!("2026-12-02T10:00:{:02}Z", id % 60), "seller_id": c.ozon_client_id,
               "user": {"id": "1", "type": "Customer"}})
    };
    // One notification: what one targeted sync of that chat costs.
    let before = requests_to(&env, Vendor::Ozon, "/v3/chat/history");
    assert_eq!(post(port, "ozon", &notice(1)).0, 200);
    std::thread::sleep(Duration::from_secs(2));
    let one = requests_to(&env, Vendor::Ozon, "/v3/chat/history") - before;
    assert!(one >= 1);
    env.sandbox.set_latency(Duration::from_millis(300));
    let before = requests_to(&env, Vendor::Ozon, "/v3/chat/history");
    for id in 2..12 {
        assert_eq!(post(port, "ozon", &notice(id)).0, 200);
    }
    std::thread::sleep(Duration::from_secs(6));
    let ten = requests_to(&env, Vendor::Ozon, "/v3/chat/history") - before;
    assert!(
        ten <= 2 * one,
        "ten notifications cost {ten} reads; one costs {one}"
    );
    env.sandbox.set_latency(Duration::ZERO);

    // 150 notifications for messages nobody wrote: each would cost a read.
    let before = requests_to(&env, Vendor::MercadoLibre, "/messages/");
    let flood = Instant::now();
    for i in 0..150u64 {
        let body = json!({"resource": format!("{:032x}", 0xdead_0000_u64 + i), "user_id": c.mercadolibre_seller_id,
                          "topic": "messages", "application_id": c.mercadolibre_application_id});
        assert_eq!(post(port, "mercadolibre", &body).0, 200);
    }
    // Every one settled: read (and found unknown) or left over the budget.
    let counted = |metrics: &str, reason: &str| -> u64 {
        let key = format!("inbox_notifications_ignored_total{{marketplace=\"mercadolibre\",reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let (unknown, over) = loop {
        let (_, _, metrics) = http(port, "GET", "/metrics", None, None);
        let metrics = String::from_utf8_lossy(&metrics).to_string();
        let (unknown, over) = (
            counted(&metrics, "unknown_message"),
            counted(&metrics, "over_budget"),
        );
        if unknown + over >= 150 {
            break (unknown, over);
        }
        assert!(Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let reads = requests_to(&env, Vendor::MercadoLibre, "/messages/") - before;
    // The budget: 60 at once, then one a second.
    let allowed = 60 + flood.elapsed().as_secs() as usize + 1;
    assert!(
        reads <= allowed,
        "{reads} reads for a flood (at most {allowed})"
    );
    assert_eq!(reads as u64, unknown, "each read found the message unknown");
    assert!(over >= 150 - allowed as u64, "{over} left over the budget");
    s.stop();
}

/// On PostgreSQL, serve journals a notification with a job, in one transaction, and the
/// fleet (serve's own engine or an `inbox worker`) runs it: the message is stored once.
#[test]
fn on_postgres_a_notification_is_a_job_the_fleet_runs() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("serve_fleet")) else {
        return;
    };
    let port = free_port();
    let env = start(
        Config {
            conversations: 2,
            messages_per_conversation: 2,
            push_url: Some(format!("http://127.0.0.1:{port}/notifications/{SECRET}")),
            ..Config::default()
        },
        "serve-fleet",
    );
    let path = env.write_config(&env.sandbox.accounts_config());
    let s = serve(&path, &db.url, port, "3600");
    let mut worker = common::inbox_command()
        .arg("--config")
        .arg(&path)
        .args(["--json", "worker", "--db", &db.url, "--concurrency", "4"])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let count = |sql: &'static str| -> i64 {
        let rows: Vec<(i64,)> = runtime.block_on(pg::rows(&db.url, sql)).unwrap_or_default();
        rows.first().map_or(0, |(n,)| *n)
    };
    let all: i64 = env.sandbox.stats().iter().map(|a| a.messages as i64).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count("SELECT COUNT(*) FROM messages") < all {
        assert!(Instant::now() < deadline, "the first sync did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(env
        .sandbox
        .buyer_writes(Vendor::Ozon, EXAMPLES[3].1, "through the fleet"));
    assert!(env
        .sandbox
        .buyer_writes(Vendor::MercadoLibre, EXAMPLES[1].1, "pela frota"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while count("SELECT COUNT(*) FROM messages WHERE text IN ('through the fleet', 'pela frota')")
        < 2
    {
        assert!(Instant::now() < deadline, "not stored through the fleet");
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while count("SELECT COUNT(*) FROM journal WHERE state = 'done'") < 2 {
        assert!(
            Instant::now() < deadline,
            "the journal entries were not settled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE text IN ('through the fleet', 'pela frota')"),
        2
    );
    assert_eq!(
        count("SELECT COUNT(*) - COUNT(DISTINCT (account, conversation, id)) FROM messages"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM journal WHERE state = 'pending'"),
        0
    );
    let pid = i32::try_from(worker.id()).unwrap();
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    assert!(worker.wait().unwrap().success());
    s.stop();
    runtime.block_on(db.drop_now());
}

/// The SQLite file that keeps the journal of notifications beside the mirror `db`.
fn push_journal(db: &std::path::Path) -> std::path::PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push("-push");
    path.into()
}

/// A flood of distinct notifications naming a configured seller (Mercado Libre's seller
/// ids are public) costs the store a bounded number of journal rows; every one is
/// answered as the vendor expects.
#[test]
fn a_flood_for_a_configured_seller_journals_a_bounded_number_of_rows() {
    let (env, db, s, port) = quiet("serve-journal-flood");
    let c = env.sandbox.credentials().clone();
    let flood = Instant::now();
    for i in 0..1_000u64 {
        let body = json!({"resource": format!("{:032x}", 0xf100_0000_u64 + i), "user_id": c.mercadolibre_seller_id,
                          "topic": "messages", "application_id": c.mercadolibre_application_id,
                          "received": format!("2026-12-06T10:00:00.{i:03}Z")});
        assert_eq!(post(port, "mercadolibre", &body).0, 200);
    }
    let seconds = flood.elapsed().as_secs() as usize + 1;
    let conn = rusqlite::Connection::open(push_journal(&db)).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
        .unwrap();
    // The bound: 600 at once, then 10 a second.
    let allowed = 600 + 10 * seconds;
    assert!(
        (rows as usize) <= allowed && rows >= 600,
        "{rows} journal rows for 1,000 notifications (at most {allowed})"
    );
    s.kill();
}

#[test]
fn serve_refuses_to_start_without_a_secret_unless_told() {
    let env = start(Config::default(), "serve-no-secret");
    let path = env.write_config(&env.sandbox.accounts_config());
    let db = env.dir.join("inbox.db");
    let out = inbox(
        &path,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--notify-secret") && stderr.contains("--insecure-no-secret"),
        "{stderr}"
    );
    // Told, it serves the routes without one.
    let port = free_port();
    let mut child = common::inbox_command()
        .arg("--config")
        .arg(&path)
        .args([
            "serve",
            "--insecure-no-secret",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
        ])
        .arg(&db)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(port, "GET", "/readyz", None, None).0 != 200 {
        assert!(Instant::now() < deadline, "serve not ready in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _, _) = http(
        port,
        "POST",
        "/notifications/ozon",
        Some("application/json"),
        Some(br#"{"message_type": "TYPE_PING", "time": "2019-08-24T14:15:22Z"}"#),
    );
    assert_eq!(status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A notification whose work meets an outage (every vendor request answered 503) stays
/// pending and is carried out once the outage passes — not dropped until the next poll
/// (an hour away here).
#[test]
fn a_notifications_work_that_meets_an_outage_is_retried_not_dropped() {
    let (env, db, s, _port) = quiet("serve-outage");
    let (vendor, chat) = EXAMPLES[3];
    env.sandbox.set_outage(true);
    assert!(env
        .sandbox
        .buyer_writes(vendor, chat, "written during the outage"));
    // The push arrives, its work fails on the outage (the client's own retries too).
    let conn = rusqlite::Connection::open(push_journal(&db)).unwrap();
    let pending = || -> i64 {
        conn.query_row(
            "SELECT COUNT(*) FROM journal WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while pending() == 0 {
        assert!(Instant::now() < deadline, "the push was not journaled");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(pending() >= 1, "still pending while the outage lasts");
    env.sandbox.set_outage(false);
    let lines = s.until(new_message_with("written during the outage"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["text"] == "written during the outage")
            .count(),
        1
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pending() > 0 {
        assert!(Instant::now() < deadline, "the entry was not settled");
        std::thread::sleep(Duration::from_millis(100));
    }
    let done: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM journal WHERE state = 'done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(done >= 1);
    s.kill();
}
