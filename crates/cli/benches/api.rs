//! The HTTP API's read side, each figure from runs made side by side on one SQLite mirror:
//!
//! - `GET /v1/conversations` (a first page of 50, every account or one) from 100
//!   concurrent clients at 10⁵ stored conversations: latency p50 and p99, against the
//!   same page read by a direct SQL query from 100 threads;
//! - a cursor walk of one conversation's 10⁶ messages, 200 a page: the time per page of
//!   the first 100 pages against the last 100 (flat: a keyset, not an offset).
//!
//! `cargo bench -p inbox-cli --bench api` (under `cargo test` it runs once, small).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const KEY: &str = "7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn inbox(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_inbox"))
        .args(args)
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .output()
        .expect("inbox")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

const ACCOUNTS: u64 = 10;

/// Writes `conversations` conversations over [`ACCOUNTS`] accounts, and `messages`
/// messages in the conversation `acc-0`/`c-0`, straight into the mirror's tables.
fn seed(db: &std::path::Path, conversations: u64, messages: u64) {
    let mut conn = rusqlite::Connection::open(db).expect("db");
    let tx = conn.transaction().expect("tx");
    let base: i64 = 1_764_547_200_000_000; // 2025-12-01, in microseconds
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO conversations (account, marketplace, id, ref, kind, status, unread,
                   unread_count, created_at, last_activity_at, last_author_role, vendor, json,
                   listing, last_message_at, synced_at, updated_at, mark_version)
                 VALUES (?1, 'allegro', ?2, ?3, 'buyer_chat', 'open', ?4, ?5, ?6, ?7, 'buyer',
                   ?8, ?9, 'l', ?7, ?7, ?7, 1)",
            )
            .expect("prepare");
        for n in 0..conversations {
            let account = format!("acc-{}", n % ACCOUNTS);
            let id = format!("c-{n}");
            let r = format!("allegro@{account}:{id}");
            let at = base + (n as i64) * 1_000_000;
            let form = json!({"marketplace": "allegro", "ref": r, "id": id, "account": account,
                "kind": "buyer_chat", "status": "open", "blocked_reason": null,
                "unread": n % 3 == 0, "unread_count": n % 3, "other_party": "buyer-login",
                "other_party_id": "123456", "other_party_name": "Buyer Name", "other_party_role": "buyer",
                "created_at": "2025-12-01T00:00:00Z", "last_activity_at": "2025-12-01T00:00:00Z",
                "reply_deadline": null, "references": {"orders": ["29738e61-7f6a-11e8-ac45-09db60ede9d6"], "offers": [], "pack": null, "posting": null}});
            let vendor = json!({"id": id, "read": n % 3 != 0, "lastMessageDateTime": "2025-12-01T00:00:00Z",
                "interlocutor": {"login": "buyer-login", "avatarUrl": "https://a.allegroimg.com/x"}});
            insert
                .execute(rusqlite::params![
                    account,
                    id,
                    r,
                    i64::from(n % 3 == 0),
                    (n % 3) as i64,
                    base,
                    at,
                    vendor.to_string(),
                    form.to_string()
                ])
                .expect("insert");
        }
        let mut insert = tx
            .prepare(
                "INSERT INTO messages (account, marketplace, conversation, id, created_at,
                   author_role, author_id, author_name, text, status, read, state, vendor, json,
                   updated_at)
                 VALUES ('acc-0', 'allegro', 'c-0', ?1, ?2, 'buyer', '123456', 'Buyer Name',
                   'Where is my parcel?', NULL, 1, 's', ?3, ?4, ?2)",
            )
            .expect("prepare");
        for n in 0..messages {
            let id = format!("m-{n:08}");
            let form = json!({"marketplace": "allegro", "conversation": "allegro@acc-0:c-0", "id": id,
                "account": "acc-0", "author_role": "buyer", "text": "Where is my parcel?",
                "created_at": "2025-12-01T00:00:00Z", "read": true, "attachments": []});
            insert
                .execute(rusqlite::params![
                    id,
                    base + n as i64,
                    json!({"id": id}).to_string(),
                    form.to_string()
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
}

fn serve(db: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_inbox"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--insecure-no-secret",
        ])
        .args(["--db", db])
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve")
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (conversations, messages, clients, each) = match smoke {
        true => (1_000u64, 2_000u64, 10usize, 3usize),
        false => (100_000, 1_000_000, 100, 20),
    };
    let dir = std::env::temp_dir().join(format!("inbox-bench-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("inbox.db");
    let db_arg = db.to_str().unwrap_or_default().to_string();
    // The store's schema, and a key.
    let made = inbox(&[
        "--json",
        "keys",
        "create",
        "--db",
        &db_arg,
        "--scope",
        "read",
        "--per-minute",
        "100000000",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let key: Value = serde_json::from_slice(&made.stdout).expect("key");
    let key = key["key"].as_str().expect("key").to_string();
    let seeding = Instant::now();
    seed(&db, conversations, messages);
    eprintln!(
        "api: seeded {conversations} conversations and {messages} messages in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let port = free_port();
    let child = serve(&db_arg, port);
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let http = inbox_core::http_client().expect("client");
    let up = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "serve did not start");

    // The API: 100 clients at once, each its requests in turn.
    let paths: Arc<Vec<String>> = Arc::new(
        (0..each)
            .map(|i| match i % 2 {
                0 => "/v1/conversations?limit=50".to_string(),
                _ => format!(
                    "/v1/conversations?limit=50&account=acc-{}",
                    i as u64 % ACCOUNTS
                ),
            })
            .collect(),
    );
    let mut api: Vec<f64> = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (http, base, key, paths) =
                    (http.clone(), base.clone(), key.clone(), paths.clone());
                tokio::spawn(async move {
                    let mut took = Vec::new();
                    for path in paths.iter() {
                        let began = Instant::now();
                        let answer = http
                            .get(format!("{base}{path}"))
                            .bearer_auth(&key)
                            .send()
                            .await
                            .expect("answer");
                        assert_eq!(answer.status().as_u16(), 200);
                        let page: Value = answer.json().await.expect("page");
                        assert_eq!(page["data"].as_array().map(Vec::len), Some(50));
                        took.push(began.elapsed().as_secs_f64() * 1000.0);
                    }
                    took
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client"));
        }
        all
    });
    // The same pages by direct SQL, 100 threads at once, each its own connection.
    let mut sql: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let db = db.clone();
                let paths = paths.clone();
                s.spawn(move || {
                    let conn = rusqlite::Connection::open(&db).expect("db");
                    let mut took = Vec::new();
                    for path in paths.iter() {
                        let began = Instant::now();
                        let account = path.split("account=").nth(1).map(str::to_string);
                        let sql = "SELECT account, marketplace, id, ref, kind, status, unread, unread_count,
                                     created_at, last_activity_at, vendor, json FROM conversations
                                   WHERE (?1 IS NULL OR account = ?1)
                                   ORDER BY last_activity_at DESC, account, id LIMIT 51";
                        let mut statement = conn.prepare_cached(sql).expect("prepare");
                        let rows: Vec<(String, String)> = statement
                            .query_map([account], |r| Ok((r.get::<_, String>(11)?, r.get::<_, String>(10)?)))
                            .expect("query")
                            .map(|r| r.expect("row"))
                            .collect();
                        assert_eq!(rows.len(), 51);
                        took.push(began.elapsed().as_secs_f64() * 1000.0);
                    }
                    took
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    api.sort_by(f64::total_cmp);
    sql.sort_by(f64::total_cmp);
    let (a50, a99, s50, s99) = (
        percentile(&api, 0.5),
        percentile(&api, 0.99),
        percentile(&sql, 0.5),
        percentile(&sql, 0.99),
    );
    println!(
        "api: GET /v1/conversations at {conversations} conversations, {clients} clients: p50 {a50:.2} ms, p99 {a99:.2} ms; direct SQL p50 {s50:.2} ms, p99 {s99:.2} ms; ratio p50 {:.1}x, p99 {:.1}x",
        a50 / s50.max(1e-6),
        a99 / s99.max(1e-6)
    );

    // A cursor walk of one conversation's messages.
    let mut pages: Vec<f64> = Vec::new();
    let mut seen = 0u64;
    runtime.block_on(async {
        let mut cursor: Option<String> = None;
        loop {
            let mut url =
                format!("{base}/v1/conversations/allegro%40acc-0%3Ac-0/messages?limit=200");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let began = Instant::now();
            let page: Value = http
                .get(url)
                .bearer_auth(&key)
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("page");
            pages.push(began.elapsed().as_secs_f64() * 1000.0);
            seen += page["data"].as_array().map_or(0, |d| d.len() as u64);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
    });
    assert_eq!(seen, messages, "every message once");
    let k = pages.len().min(100);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let (first, last) = (mean(&pages[..k]), mean(&pages[pages.len() - k..]));
    println!(
        "api: cursor walk of {messages} messages, {} pages of 200: first {k} pages {first:.2} ms a page, last {k} {last:.2} ms a page; ratio last/first {:.2}",
        pages.len(),
        last / first.max(1e-6)
    );
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill with a pid of our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let mut child = child;
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
