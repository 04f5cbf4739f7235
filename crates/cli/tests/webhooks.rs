//! Webhooks end to end on the sandbox: `inbox serve` delivers buyer messages to a
//! receiver in this test, which verifies every signature with the Standard Webhooks
//! library; retries on the schedule (scaled down by `INBOX_WEBHOOK_TIME_SCALE`), a
//! receiver's `Retry-After`, `410`, replay, rotation, per-conversation order while one
//! conversation fails, the CLI's commands, and private addresses refused without
//! `--webhooks-allow-private`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use inbox_api_client::{types, InboxApi};
use inbox_sandbox::{Config, Vendor};
use serde_json::{json, Value};

mod common;
use common::{api_key, free_port, inbox_command, inbox_keyed, ok, start, stop, within, Env};
#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

const KEY: &str = "6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

/// The delays of the retry schedule here: 5 s becomes 50 ms, 5 min 3 s.
const SCALE: &str = "0.01";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    event: Value,
    at: Instant,
    answered: u16,
}

/// What the receiver answers: by path and the event's text, for the n-th time it sees
/// that event (1-based): a status and a `Retry-After`.
type Policy = Box<dyn Fn(&str, &str, usize) -> (u16, Option<&'static str>) + Send + Sync>;

/// A webhook receiver on loopback.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// Requests whose answer has begun (a sender killed meanwhile leaves one unanswered).
    begun: Arc<std::sync::atomic::AtomicUsize>,
}

impl Receiver {
    fn start(runtime: &tokio::runtime::Runtime, policy: Policy) -> Receiver {
        Self::start_slow(runtime, policy, Duration::ZERO)
    }

    /// A receiver that takes `delay` over each answer.
    fn start_slow(runtime: &tokio::runtime::Runtime, policy: Policy, delay: Duration) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let policy = Arc::new(policy);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let begun = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let state = (got.clone(), policy, begun.clone());
        let app = axum::Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
                let (got, policy, begun) = state.clone();
                async move {
                    begun.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let text = event["data"]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let mut got = got.lock().unwrap();
                    let nth = 1 + got
                        .iter()
                        .filter(|r| r.path == uri.path() && r.headers["webhook-id"] == id.as_str())
                        .count();
                    let (status, retry_after) = policy(uri.path(), &text, nth);
                    got.push(Received {
                        path: uri.path().to_string(),
                        headers: headers.clone(),
                        body: body.to_vec(),
                        event,
                        at: Instant::now(),
                        answered: status,
                    });
                    let mut answer = axum::http::Response::builder()
                        .status(StatusCode::from_u16(status).unwrap());
                    if let Some(after) = retry_after {
                        answer = answer.header("retry-after", after);
                    }
                    answer.body(axum::body::Body::from("ok")).unwrap()
                }
            },
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        Receiver { base, got, begun }
    }

    /// Requests being answered now.
    fn in_flight(&self) -> usize {
        let answered = self.got.lock().unwrap().len();
        self.begun
            .load(std::sync::atomic::Ordering::SeqCst)
            .saturating_sub(answered)
    }

    fn at(&self, path: &str) -> Vec<Received> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// What `path` got for the message whose text is `text`.
    fn with_text(&self, path: &str, text: &str) -> Vec<Received> {
        self.at(path)
            .into_iter()
            .filter(|r| r.event["data"]["text"] == text)
            .collect()
    }
}

/// Verifies a delivery's signature with `secret` as the Standard Webhooks library does.
fn verified(r: &Received, secret: &str) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&r.body, &r.headers)
        .is_ok()
}

/// `inbox serve` on `db` with the retry schedule scaled down, `extra` arguments.
fn serve(db: &str, extra: &[&str]) -> (std::process::Child, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = inbox_command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--insecure-no-secret", "--db", db, "--poll-interval", "1"])
        .args(extra)
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .env("INBOX_WEBHOOK_TIME_SCALE", SCALE)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let up = within(Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "serve did not start on {base}");
    (child, base)
}

/// A store holding the sandbox's four accounts, each polled every second.
fn store(env: &Env) -> String {
    let db = env.dir.join("inbox.db").to_str().unwrap().to_string();
    let mut accounts = env.sandbox.accounts_config();
    for a in accounts["accounts"].as_array_mut().unwrap() {
        a["poll_interval_secs"] = json!(1.0);
    }
    let path = env.write_config(&accounts);
    ok(inbox_keyed(
        KEY,
        &["accounts", "import", path.to_str().unwrap(), "--db", &db],
    ));
    db
}

fn millis(a: &Value, b: &Value) -> i64 {
    let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (t(b) - t(a)).num_milliseconds()
}

#[test]
fn webhooks_deliver_each_event_signed_with_retries_order_replay_and_rotation() {
    let env = start(
        Config {
            conversations: 2,
            messages_per_conversation: 1,
            ..Config::default()
        },
        "webhooks",
    );
    let db = store(&env);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // `/hook`: "retry-me" fails twice then passes; "slow-down" asks for a pause once;
    // "x-1" fails twice; `/gone` answers 410.
    let receiver = Receiver::start(
        &runtime,
        Box::new(|path, text, nth| match (path, text) {
            ("/gone", _) => (410, None),
            (_, "retry-me") | (_, "x-1") if nth <= 2 => (500, None),
            (_, "slow-down") if nth == 1 => (503, Some("1")),
            _ => (204, None),
        }),
    );
    let (admin, _) = api_key(KEY, &db, &["--scope", "read,write,admin,events"]);
    let (server, base) = serve(&db, &["--webhooks-allow-private"]);
    let api = InboxApi::with_base_url(&base, admin.as_str()).unwrap();
    let sandbox = &env.sandbox;
    let allegro = sandbox.conversations_of(Vendor::Allegro, Vendor::Allegro.prefix());
    let (x, y) = (&allegro[0], &allegro[1]);

    // Let the first import finish before the endpoint exists: it gets only what follows.
    let (_, events) = runtime.block_on(async {
        let mut last = (0, 0);
        loop {
            let page = api
                .list_events()
                .limit(1000)
                .send()
                .await
                .unwrap()
                .into_inner();
            let n = page.data.len();
            if n >= 16 && n == last.0 {
                return (n, page.next_after);
            }
            last = (n, page.next_after);
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    });
    assert!(events > 0);

    let hook = runtime
        .block_on(
            api.create_webhook()
                .body(types::NewWebhook {
                    url: format!("{}/hook", receiver.base),
                    types: Some(vec!["message.created".into()]),
                    accounts: None,
                    description: Some("the helpdesk".into()),
                })
                .send(),
        )
        .unwrap()
        .into_inner();
    let secret = hook.secret.clone();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(hook.state, inbox_api_client::enums::WebhookState::Enabled);
    let listed = runtime
        .block_on(api.list_webhooks().send())
        .unwrap()
        .into_inner();
    assert_eq!(listed.data.len(), 1);
    let raw_list = serde_json::to_string(&listed).unwrap();
    assert!(!raw_list.contains(&secret), "a list shows no secret");

    // One buyer message: one delivery, signed, its id the event's in the feed.
    assert!(sandbox.buyer_writes(Vendor::Allegro, x, "hello-1"));
    assert!(
        within(Duration::from_secs(30), || !receiver
            .with_text("/hook", "hello-1")
            .is_empty()),
        "hello-1 was not delivered"
    );
    let first = receiver.with_text("/hook", "hello-1");
    assert_eq!(first.len(), 1);
    let hello = &first[0];
    assert!(verified(hello, &secret), "the signature does not verify");
    assert!(!verified(hello, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert_eq!(hello.headers["content-type"], "application/json");
    let hello_id = hello.headers["webhook-id"].to_str().unwrap().to_string();
    assert_eq!(hello.event["id"], json!(hello_id));
    assert_eq!(hello.event["type"], "message.created");
    assert_eq!(hello.event["marketplace"], "allegro");
    let ts: i64 = hello.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    let feed: Vec<Value> = runtime.block_on(async {
        let page = api
            .list_events()
            .limit(1000)
            .types("message.created")
            .send()
            .await
            .unwrap()
            .into_inner();
        page.data
            .into_iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .filter(|e| e["data"]["text"] == "hello-1")
            .collect()
    });
    assert_eq!(feed.len(), 1, "one message.created in the feed");
    assert_eq!(feed[0]["id"], json!(hello_id));

    // 500, 500, then 2xx: the same webhook-id three times, three attempts recorded.
    assert!(sandbox.buyer_writes(Vendor::Allegro, y, "retry-me"));
    assert!(
        within(Duration::from_secs(30), || receiver
            .with_text("/hook", "retry-me")
            .len()
            >= 3),
        "retry-me was not tried three times"
    );
    let tries = receiver.with_text("/hook", "retry-me");
    assert_eq!(tries.len(), 3);
    let ids: Vec<&str> = tries
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert_eq!(
        tries.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 204]
    );
    assert!(tries.iter().all(|r| verified(r, &secret)));
    let attempts = |event_id: &str| -> Vec<Value> {
        let page = runtime
            .block_on(api.list_webhook_deliveries().id(&hook.id).limit(200).send())
            .unwrap()
            .into_inner();
        let mut mine: Vec<Value> = page
            .data
            .into_iter()
            .map(|d| serde_json::to_value(d).unwrap())
            .filter(|d| d["event_id"] == event_id)
            .collect();
        mine.reverse();
        mine
    };
    let retry = attempts(ids[0]);
    assert_eq!(
        retry
            .iter()
            .map(|a| (a["attempt"].clone(), a["status"].clone()))
            .collect::<Vec<_>>(),
        [
            (json!(1), json!(500)),
            (json!(2), json!(500)),
            (json!(3), json!(204))
        ]
    );
    // 5 s and 5 min scaled by 0.01, ±20 %.
    let first_delay = millis(&retry[0]["at"], &retry[0]["next_attempt_at"]);
    assert!((40..=60).contains(&first_delay), "{first_delay} ms");
    let second_delay = millis(&retry[1]["at"], &retry[1]["next_attempt_at"]);
    assert!((2400..=3600).contains(&second_delay), "{second_delay} ms");
    assert!(retry[2]["next_attempt_at"].is_null());

    // Retry-After: 1 s asked, the scheduled 50 ms allows at most twice that.
    assert!(sandbox.buyer_writes(Vendor::Allegro, y, "slow-down"));
    assert!(within(Duration::from_secs(30), || receiver
        .with_text("/hook", "slow-down")
        .len()
        >= 2));
    let slow_id = receiver.with_text("/hook", "slow-down")[0].headers["webhook-id"]
        .to_str()
        .unwrap()
        .to_string();
    let slow = attempts(&slow_id);
    assert_eq!(slow[0]["status"], json!(503));
    assert_eq!(millis(&slow[0]["at"], &slow[0]["next_attempt_at"]), 100);

    // Order per conversation: x-1 fails twice (3 s of retries); x-2 waits for it, y-1
    // in another conversation does not.
    assert!(sandbox.buyer_writes(Vendor::Allegro, x, "x-1"));
    assert!(sandbox.buyer_writes(Vendor::Allegro, x, "x-2"));
    assert!(sandbox.buyer_writes(Vendor::Allegro, y, "y-1"));
    assert!(
        within(Duration::from_secs(30), || !receiver
            .with_text("/hook", "x-2")
            .is_empty()),
        "x-2 was not delivered"
    );
    let x1 = receiver.with_text("/hook", "x-1");
    let x2 = receiver.with_text("/hook", "x-2");
    let y1 = receiver.with_text("/hook", "y-1");
    assert_eq!(x1.len(), 3);
    assert_eq!(x1[2].answered, 204);
    assert_eq!(x2.len(), 1);
    assert_eq!(y1.len(), 1);
    assert!(x2[0].at >= x1[2].at, "x-2 came before x-1 was delivered");
    assert!(y1[0].at < x1[2].at, "y-1 waited for another conversation");
    let seq = |r: &Received| r.event["seq"].as_u64().unwrap();
    assert!(seq(&x1[0]) < seq(&x2[0]));

    // Replay by id: the same id again.
    let replayed = runtime
        .block_on(
            api.replay_webhook()
                .id(&hook.id)
                .body(types::Replay {
                    after: None,
                    event_ids: vec![hello_id.clone()],
                })
                .send(),
        )
        .unwrap()
        .into_inner();
    assert_eq!(replayed.queued, 1);
    assert!(within(Duration::from_secs(30), || receiver
        .with_text("/hook", "hello-1")
        .len()
        == 2));
    let again = receiver.with_text("/hook", "hello-1");
    assert_eq!(again[1].headers["webhook-id"], hello_id.as_str());
    assert_eq!(again[1].body, again[0].body, "the same event again");
    // And by seq, from the CLI: every message.created from hello-1 on.
    let hello_seq = hello.event["seq"].as_u64().unwrap();
    let before = receiver.at("/hook").len();
    let out = ok(inbox_keyed(
        KEY,
        &[
            "webhooks",
            "replay",
            &hook.id,
            "--after",
            &(hello_seq - 1).to_string(),
            "--db",
            &db,
        ],
    ));
    let queued = serde_json::from_str::<Value>(out.trim()).unwrap()["queued"]
        .as_u64()
        .unwrap();
    assert_eq!(queued, 6, "hello-1, retry-me, slow-down, x-1, x-2, y-1");
    assert!(within(Duration::from_secs(30), || receiver
        .at("/hook")
        .len()
        >= before + 6));

    // Rotation: both secrets sign for a day.
    let rotated = runtime
        .block_on(api.rotate_webhook_secret().id(&hook.id).send())
        .unwrap()
        .into_inner();
    assert_ne!(rotated.secret, secret);
    assert!(sandbox.buyer_writes(Vendor::Allegro, x, "after-rotation"));
    assert!(within(Duration::from_secs(30), || !receiver
        .with_text("/hook", "after-rotation")
        .is_empty()));
    let signed = &receiver.with_text("/hook", "after-rotation")[0];
    let signatures = signed.headers["webhook-signature"].to_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    assert!(verified(signed, &rotated.secret));
    assert!(verified(signed, &secret));

    // 410 disables, with a webhook.disabled event.
    let gone = runtime
        .block_on(
            api.create_webhook()
                .body(types::NewWebhook {
                    url: format!("{}/gone", receiver.base),
                    types: None,
                    accounts: Some(vec![Vendor::Ozon.prefix().to_string()]),
                    description: None,
                })
                .send(),
        )
        .unwrap()
        .into_inner();
    let ozon = sandbox.conversations_of(Vendor::Ozon, Vendor::Ozon.prefix());
    assert!(sandbox.buyer_writes(Vendor::Ozon, &ozon[0], "to a gone endpoint"));
    assert!(within(Duration::from_secs(30), || {
        let now = runtime
            .block_on(api.get_webhook().id(&gone.id).send())
            .unwrap()
            .into_inner();
        now.state == inbox_api_client::enums::WebhookState::Disabled
    }));
    assert!(receiver.at("/gone").iter().all(|r| r.answered == 410));
    let disabled = runtime
        .block_on(
            api.list_events()
                .limit(1000)
                .types("webhook.disabled")
                .send(),
        )
        .unwrap()
        .into_inner();
    assert_eq!(disabled.data.len(), 1);
    assert_eq!(
        serde_json::to_value(&disabled.data[0]).unwrap()["data"]["id"],
        json!(gone.id)
    );
    // Nothing but Allegro's messages reached /hook (types), nothing but Ozon's /gone.
    assert!(receiver
        .at("/hook")
        .iter()
        .all(|r| r.event["type"] == "message.created"));
    assert!(receiver
        .at("/gone")
        .iter()
        .all(|r| r.event["account"] == Vendor::Ozon.prefix()));

    // Every delivery /hook got verifies; no id stands for two events.
    let mut by_id: HashMap<String, Vec<u8>> = HashMap::new();
    for r in receiver.at("/hook") {
        assert!(verified(&r, &rotated.secret) || verified(&r, &secret));
        let id = r.headers["webhook-id"].to_str().unwrap().to_string();
        let body = by_id.entry(id).or_insert_with(|| r.body.clone());
        assert_eq!(*body, r.body);
    }

    // The metrics count the attempts by outcome and the backlog per endpoint.
    let metrics = runtime.block_on(async {
        inbox_core::http_client()
            .unwrap()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for line in [
        "inbox_webhook_attempts_total{outcome=\"delivered\"}",
        "inbox_webhook_attempts_total{outcome=\"retrying\"}",
        "inbox_webhook_attempts_total{outcome=\"gone\"}",
        "inbox_webhook_oldest_undelivered_seconds{webhook=",
        "inbox_webhook_feed_lag_events{webhook=",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }

    // The CLI lists and removes.
    let listed = ok(inbox_keyed(KEY, &["webhooks", "list", "--db", &db]));
    assert_eq!(listed.lines().count(), 2);
    assert!(!listed.contains("whsec_"));
    ok(inbox_keyed(
        KEY,
        &["webhooks", "remove", &gone.id, "--db", &db],
    ));
    let out = stop(server);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&secret) && !stderr.contains(&rotated.secret));

    // Without --webhooks-allow-private: loopback, private and plain http are refused
    // when added and when delivered.
    let (server, base) = serve(&db, &[]);
    let api = InboxApi::with_base_url(&base, admin.as_str()).unwrap();
    for url in [
        format!("{}/private", receiver.base),
        format!("https://127.0.0.1:{}/private", free_port()),
        "https://localhost/private".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://[::1]/private".to_string(),
        "http://example.com/hook".to_string(),
    ] {
        let refused = runtime.block_on(
            api.create_webhook()
                .body(types::NewWebhook {
                    url: url.clone(),
                    types: None,
                    accounts: None,
                    description: None,
                })
                .send(),
        );
        let status = refused.err().and_then(|e| e.status()).map(|s| s.as_u16());
        assert_eq!(status, Some(422), "{url}");
    }
    // One added from the CLI anyway (as an operator might): refused at each delivery.
    let out = ok(inbox_keyed(
        KEY,
        &[
            "webhooks",
            "add",
            &format!("{}/private", receiver.base),
            "--allow-private",
            "--db",
            &db,
        ],
    ));
    let private: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(private["secret"].as_str().unwrap().starts_with("whsec_"));
    let private_id = private["id"].as_str().unwrap().to_string();
    assert!(sandbox.buyer_writes(Vendor::Allegro, x, "to a private address"));
    assert!(
        within(Duration::from_secs(30), || {
            let page = runtime
                .block_on(api.list_webhook_deliveries().id(&private_id).send())
                .unwrap()
                .into_inner();
            page.data.iter().any(|d| {
                d.status.is_none()
                    && d.error
                        .as_deref()
                        .is_some_and(|e| e.contains("not a public address") || e.contains("https"))
            })
        }),
        "the private endpoint was not refused"
    );
    assert!(
        receiver.at("/private").is_empty(),
        "a private address was reached"
    );
    let out = stop(server);
    assert!(out.status.success());
}

/// A fleet on PostgreSQL — two `inbox worker`s and `inbox serve` — delivering to one
/// receiver while buyers write; one worker is SIGKILLed while deliveries are in flight.
/// Every event the log holds reaches the receiver at least once, and every `webhook-id`
/// the receiver saw is one stored event, its body that event.
#[test]
fn a_fleet_killed_mid_delivery_delivers_every_event_at_least_once_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("webhooks_fleet")) else {
        return;
    };
    let env = start(
        Config {
            conversations: 3,
            messages_per_conversation: 2,
            ..Config::default()
        },
        "webhooks-fleet",
    );
    let mut accounts = env.sandbox.accounts_config();
    for a in accounts["accounts"].as_array_mut().unwrap() {
        a["poll_interval_secs"] = json!(0.5);
    }
    let path = env.write_config(&accounts);
    ok(inbox_keyed(
        KEY,
        &[
            "accounts",
            "import",
            path.to_str().unwrap(),
            "--db",
            &db.url,
        ],
    ));
    // Each answer takes 150 ms, so that deliveries are under way when the kill comes.
    let receiver = Receiver::start_slow(
        &runtime,
        Box::new(|_, _, _| (200, None)),
        Duration::from_millis(150),
    );
    let out = ok(inbox_keyed(
        KEY,
        &[
            "webhooks",
            "add",
            &format!("{}/fleet", receiver.base),
            "--allow-private",
            "--db",
            &db.url,
        ],
    ));
    let secret = serde_json::from_str::<Value>(out.trim()).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    // It receives what commits from now on: not the accounts' import before it.
    let from: Vec<(i64,)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT value FROM inbox_counters WHERE name = 'changes'",
        ))
        .unwrap();
    let from = from[0].0;
    let process = |args: &[&str]| {
        inbox_command()
            .args(args)
            .args(["--db", &db.url, "--webhooks-allow-private"])
            .env_clear()
            .env("INBOX_TOKEN_KEY", KEY)
            .env("INBOX_WEBHOOK_TIME_SCALE", SCALE)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // The first worker alone at first, so that what is in flight is its own.
    let mut a = process(&["worker", "--concurrency", "4"]);

    // Buyers write through the whole run (seeded: conversation by conversation).
    let vendors = [
        Vendor::Allegro,
        Vendor::MercadoLibre,
        Vendor::Magalu,
        Vendor::Ozon,
    ];
    let conversations: Vec<(Vendor, String)> = vendors
        .iter()
        .flat_map(|v| {
            env.sandbox
                .conversations_of(*v, v.prefix())
                .into_iter()
                .map(move |c| (*v, c))
        })
        .collect();
    let mut written = 0usize;
    let mut write = |n: usize| {
        for _ in 0..n {
            let (vendor, id) = &conversations[written * 7 % conversations.len()];
            assert!(env
                .sandbox
                .buyer_writes(*vendor, id, &format!("fleet {written}")));
            written += 1;
        }
    };
    assert!(
        within(Duration::from_secs(90), || receiver.at("/fleet").len()
            >= 30),
        "the worker delivered nothing"
    );
    write(8);
    // Mid-delivery: the receiver is answering the worker, which dies without a word.
    assert!(
        within(Duration::from_secs(30), || receiver.in_flight() > 0),
        "nothing was in flight"
    );
    a.kill().unwrap();
    a.wait().unwrap();
    let cut = receiver.in_flight();
    // The rest of the fleet: another worker and serve; buyers go on writing.
    let b = process(&["worker", "--concurrency", "4"]);
    let served = process(&["serve", "--listen", &listen, "--insecure-no-secret"]);
    write(8);
    let stored = || -> Vec<(i64, String, String)> {
        runtime
            .block_on(pg::rows(
                &db.url,
                "SELECT seq, event, account FROM changes ORDER BY seq",
            ))
            .unwrap()
            .into_iter()
            .filter(|(seq, _, _): &(i64, String, String)| *seq > from)
            .collect()
    };
    let seen = || -> std::collections::HashSet<String> {
        receiver
            .at("/fleet")
            .iter()
            .map(|r| r.headers["webhook-id"].to_str().unwrap().to_string())
            .collect()
    };
    // Every stored event arrives (the killed worker's claims lapse after 30 s).
    let all_arrived = within(Duration::from_secs(120), || {
        let messages = stored()
            .iter()
            .filter(|(_, e, _)| e == "new_message")
            .count();
        messages >= 4 * 3 * 2 + 6 + 16
            && stored()
                .iter()
                .all(|(seq, _, _)| seen().contains(&format!("evt_{seq}")))
    });
    let events = stored();
    let missing: Vec<i64> = events
        .iter()
        .map(|(seq, _, _)| *seq)
        .filter(|seq| !seen().contains(&format!("evt_{seq}")))
        .collect();
    assert!(all_arrived, "events never delivered: {missing:?}");
    // No phantom: each id is one stored event, and its body is that event.
    let by_seq: HashMap<i64, (String, String)> = events
        .iter()
        .map(|(seq, e, acc)| (*seq, (e.clone(), acc.clone())))
        .collect();
    for r in receiver.at("/fleet") {
        assert!(verified(&r, &secret));
        let id = r.headers["webhook-id"].to_str().unwrap();
        let seq: i64 = id.strip_prefix("evt_").unwrap().parse().unwrap();
        let (_, account) = by_seq
            .get(&seq)
            .unwrap_or_else(|| panic!("{id} is no stored event"));
        assert_eq!(r.event["id"], id);
        assert_eq!(r.event["seq"], json!(seq));
        assert_eq!(r.event["account"], json!(account));
    }
    let texts: std::collections::HashSet<String> = receiver
        .at("/fleet")
        .iter()
        .filter_map(|r| r.event["data"]["text"].as_str().map(str::to_string))
        .collect();
    for n in 0..written {
        assert!(
            texts.contains(&format!("fleet {n}")),
            "fleet {n} was not delivered"
        );
    }
    let got = receiver.at("/fleet").len();
    eprintln!(
        "fleet: {} events stored after the endpoint, {got} deliveries received, {} distinct, {cut} cut off by the kill",
        events.len(),
        seen().len()
    );
    for child in [b, served] {
        let out = stop(child);
        assert!(out.status.success());
    }
}
