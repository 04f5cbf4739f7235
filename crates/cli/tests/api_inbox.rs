//! The HTTP API over the mirror, on the sandbox's four marketplaces, driven through the
//! client generated from the spec: cursor walks while buyers write, every filter, a key
//! limited to one account, hostile references, idempotent sends (in turn and at once),
//! a send whose answer was lost, mark-read, attachments both ways and a file address
//! that points elsewhere.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::time::Duration;

use inbox_api_client::{types, InboxApi};
use inbox_sandbox::{Config, Faults, Vendor};
use serde_json::{json, Value};

mod common;
use common::{api_key, ok, serve_store, start, stop, within, Env, EXAMPLES};

const KEY: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

const VENDORS: [Vendor; 4] = [
    Vendor::Allegro,
    Vendor::MercadoLibre,
    Vendor::Magalu,
    Vendor::Ozon,
];

/// A running service on a store holding the sandbox's four accounts (polled every
/// second), with a key of every scope.
struct Service {
    env: Env,
    db: String,
    base: String,
    serve: Option<std::process::Child>,
    admin: String,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Service {
    fn start(config: Config, name: &str) -> Service {
        let env = start(config, name);
        let db = env.dir.join("inbox.db").to_str().unwrap().to_string();
        let mut accounts = env.sandbox.accounts_config();
        for a in accounts["accounts"].as_array_mut().unwrap() {
            a["poll_interval_secs"] = json!(1.0);
        }
        let path = env.write_config(&accounts);
        ok(common::inbox_keyed(
            KEY,
            &["accounts", "import", path.to_str().unwrap(), "--db", &db],
        ));
        let (admin, _) = api_key(KEY, &db, &["--scope", "read,write,admin,events"]);
        // Mercado Libre and Ozon push; their safety-net poll every second here.
        let (serve, base) = serve_store(KEY, &db, &["--poll-interval", "1"]);
        Service {
            env,
            db,
            base,
            serve: Some(serve),
            admin,
            runtime: tokio::runtime::Runtime::new().unwrap(),
            http: inbox_core::http_client().unwrap(),
        }
    }

    fn key(&self, args: &[&str]) -> String {
        api_key(KEY, &self.db, args).0
    }

    fn api(&self, key: &str) -> InboxApi {
        InboxApi::with_base_url(&self.base, key).unwrap()
    }

    /// A raw request: status, content type and body.
    fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> (u16, String, Vec<u8>) {
        self.runtime.block_on(async {
            let mut r = self
                .http
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(key);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            if let Some((kind, bytes)) = body {
                r = r.header("content-type", kind).body(bytes);
            }
            let answer = r.send().await.unwrap();
            let status = answer.status().as_u16();
            let kind = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (status, kind, answer.bytes().await.unwrap().to_vec())
        })
    }

    fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let (status, kind, body) = self.raw(reqwest::Method::GET, path, key, None, &[]);
        if status >= 400 {
            assert_eq!(kind, "application/problem+json", "{path}");
        }
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// Every conversation, walked by cursor `per_page` at a time; `between` runs after
    /// each page.
    fn walk(
        &self,
        key: &str,
        per_page: u32,
        mut between: impl FnMut(usize),
    ) -> Vec<types::Conversation> {
        let api = self.api(key);
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for page_no in 0.. {
            let mut request = api
                .list_conversations()
                .limit(NonZeroU32::new(per_page).unwrap());
            if let Some(c) = &cursor {
                request = request.cursor(c.clone());
            }
            let page = self.runtime.block_on(request.send()).unwrap().into_inner();
            assert!(page.data.len() <= per_page as usize);
            all.extend(page.data);
            between(page_no);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        all
    }

    /// How many conversations the sandbox has, over its four accounts.
    fn sandbox_total(&self) -> usize {
        VENDORS
            .iter()
            .map(|v| self.env.sandbox.conversations_of(*v, v.prefix()).len())
            .sum()
    }

    /// Waits until the mirror holds every conversation of the sandbox.
    fn wait_for_mirror(&self) {
        let want = self.sandbox_total();
        assert!(
            within(Duration::from_secs(60), || self
                .walk(&self.admin, 200, |_| {})
                .len()
                >= want),
            "the mirror did not fill"
        );
    }

    fn stop(mut self) {
        if let Some(serve) = self.serve.take() {
            let out = stop(serve);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert!(!stderr.contains(&self.admin));
        }
    }
}

/// A reference as one path segment.
fn seg(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn reference(vendor: Vendor, id: &str) -> String {
    format!("{}@{}:{id}", inbox_name(vendor), vendor.prefix())
}

fn inbox_name(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Allegro => "allegro",
        Vendor::MercadoLibre => "mercadolibre",
        Vendor::Magalu => "magalu",
        Vendor::Ozon => "ozon",
    }
}

#[test]
fn conversations_and_messages_walk_by_cursor_filter_and_stay_within_the_key() {
    let service = Service::start(
        Config {
            conversations: 8,
            messages_per_conversation: 4,
            ..Config::default()
        },
        "api-read",
    );
    service.wait_for_mirror();
    let before = service.walk(&service.admin, 200, |_| {});
    let total = before.len();
    // Newest activity first.
    let times: Vec<Option<String>> = before.iter().map(|c| c.last_activity_at.clone()).collect();
    for pair in times.windows(2) {
        if let (Some(a), Some(b)) = (&pair[0], &pair[1]) {
            let a = chrono::DateTime::parse_from_rfc3339(a).unwrap();
            let b = chrono::DateTime::parse_from_rfc3339(b).unwrap();
            assert!(a >= b, "{pair:?}");
        }
    }
    for c in &before {
        let account = c.account.as_deref().unwrap();
        assert_eq!(c.ref_, format!("{}@{account}:{}", c.marketplace, c.id));
    }

    // A walk three at a time while buyers keep writing: every conversation whose
    // activity did not change during the walk comes exactly once.
    // New conversations keep arriving meanwhile (Ozon chats started through the API).
    let mut touched: HashSet<String> = HashSet::new();
    let mut started: Vec<String> = Vec::new();
    let mut round = 0;
    let admin_api = service.api(&service.admin);
    let walked = service.walk(&service.admin, 3, |_| {
        let (vendor, id) = EXAMPLES[round % 4];
        round += 1;
        if round % 2 == 0 {
            assert!(service
                .env
                .sandbox
                .buyer_writes(vendor, id, "during the walk"));
            touched.insert(reference(vendor, id));
            std::thread::sleep(Duration::from_millis(1100));
        } else {
            let chat = service
                .runtime
                .block_on(
                    admin_api
                        .start_conversation()
                        .body(types::NewConversation {
                            account: "ozon".into(),
                            marketplace: "ozon".into(),
                            posting: Some(format!("5550{round:04}-0001-1")),
                            order: None,
                            text: None,
                            to: None,
                        })
                        .send(),
                )
                .unwrap()
                .into_inner();
            assert_eq!(chat.marketplace, "ozon");
            // The buyer writes in it, so that a step finds it.
            assert!(service
                .env
                .sandbox
                .buyer_writes(Vendor::Ozon, &chat.id, "hello"));
            touched.insert(chat.ref_.clone());
            started.push(chat.ref_);
        }
    });
    assert!(started.len() >= 3, "{started:?}");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in &walked {
        *seen.entry(c.ref_.clone()).or_default() += 1;
    }
    for (r, n) in &seen {
        assert!(*n == 1 || touched.contains(r), "{r} came {n} times");
    }
    for c in &before {
        if !touched.contains(&c.ref_) {
            assert_eq!(seen.get(&c.ref_), Some(&1), "{} in the walk", c.ref_);
        }
    }
    assert!(walked.len() >= total - touched.len());

    // Filters.
    let api = service.api(&service.admin);
    let rt = &service.runtime;
    let ozon = rt
        .block_on(
            api.list_conversations()
                .marketplace("ozon")
                .limit(NonZeroU32::new(200).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner();
    assert!(!ozon.data.is_empty());
    assert!(ozon.data.iter().all(|c| c.marketplace == "ozon"));
    let allegro = rt
        .block_on(
            api.list_conversations()
                .account("allegro")
                .limit(NonZeroU32::new(200).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner();
    assert_eq!(
        allegro.data.len(),
        service
            .env
            .sandbox
            .conversations_of(Vendor::Allegro, "allegro")
            .len()
    );
    for r in &started {
        let found = within(Duration::from_secs(20), || {
            service
                .walk(&service.admin, 200, |_| {})
                .iter()
                .any(|c| &c.ref_ == r)
        });
        assert!(found, "{r} is listed");
    }
    let all_now = service.walk(&service.admin, 200, |_| {});
    let is_unread =
        |c: &types::Conversation| c.unread == Some(true) || c.unread_count.unwrap_or(0) > 0;
    let yes = rt
        .block_on(
            api.list_conversations()
                .unread(true)
                .limit(NonZeroU32::new(200).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner()
        .data;
    let no = rt
        .block_on(
            api.list_conversations()
                .unread(false)
                .limit(NonZeroU32::new(200).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner()
        .data;
    assert!(!yes.is_empty());
    assert!(yes.iter().all(is_unread));
    assert!(no.iter().all(|c| !is_unread(c)));
    assert_eq!(yes.len() + no.len(), all_now.len());
    let needs = rt
        .block_on(
            api.list_conversations()
                .reply_needed(true)
                .limit(NonZeroU32::new(200).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner()
        .data;
    let not_needed = rt
        .block_on(
            api.list_conversations()
                .reply_needed(false)
                .limit(NonZeroU32::new(200).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner()
        .data;
    assert_eq!(needs.len() + not_needed.len(), all_now.len());
    // The example conversations just had a buyer's message.
    for r in &touched {
        assert!(needs.iter().any(|c| &c.ref_ == r), "{r} needs a reply");
    }
    let open = rt
        .block_on(
            api.list_conversations()
                .status("open")
                .limit(NonZeroU32::new(200).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner()
        .data;
    assert!(open.iter().all(|c| c.status.as_deref() == Some("open")));
    // updated_since: what changed after an instant, and nothing else.
    std::thread::sleep(Duration::from_millis(1100));
    let since = chrono::Utc::now();
    let (vendor, id) = EXAMPLES[2];
    assert!(service
        .env
        .sandbox
        .buyer_writes(vendor, id, "after the instant"));
    let changed = reference(vendor, id);
    assert!(within(Duration::from_secs(30), || {
        let recent = rt
            .block_on(api.list_conversations().updated_since(since).send())
            .unwrap()
            .into_inner()
            .data;
        recent.iter().any(|c| c.ref_ == changed)
    }));
    let recent = rt
        .block_on(api.list_conversations().updated_since(since).send())
        .unwrap()
        .into_inner()
        .data;
    assert!(recent.len() < all_now.len(), "only what changed");
    // Bad filters are 400.
    for bad in [
        "/v1/conversations?unread=maybe",
        "/v1/conversations?updated_since=yesterday",
        "/v1/conversations?marketplace=amazon",
        "/v1/conversations?limit=0",
        "/v1/conversations?limit=201",
        "/v1/conversations?cursor=forged",
    ] {
        assert_eq!(service.get(bad, &service.admin).0, 400, "{bad}");
    }

    // A conversation's messages, two at a time, while its buyer writes.
    let (vendor, id) = EXAMPLES[0];
    let r = reference(vendor, id);
    let full = rt
        .block_on(
            api.list_messages()
                .ref_(r.clone())
                .limit(NonZeroU32::new(200).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner()
        .data;
    assert!(!full.is_empty());
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut wrote = 0;
    loop {
        let mut request = api
            .list_messages()
            .ref_(r.clone())
            .limit(NonZeroU32::new(2).unwrap());
        if let Some(c) = &cursor {
            request = request.cursor(c.clone());
        }
        let page = rt.block_on(request.send()).unwrap().into_inner();
        ids.extend(page.data.iter().map(|m| m.id.clone()));
        if wrote < 2 {
            assert!(service
                .env
                .sandbox
                .buyer_writes(vendor, id, &format!("mid-walk {wrote}")));
            wrote += 1;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a message came twice: {ids:?}");
    for m in &full {
        assert!(unique.contains(&m.id), "{} was skipped", m.id);
    }
    // Newest first, and fresh: what the buyer wrote a moment ago is there.
    assert!(service.env.sandbox.buyer_writes(vendor, id, "just now"));
    let newest = rt
        .block_on(
            api.list_messages()
                .ref_(r.clone())
                .order("desc")
                .fresh(true)
                .limit(NonZeroU32::new(1).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner()
        .data;
    assert_eq!(newest[0].text, "just now");
    // A cursor of one conversation is refused on another.
    let other = reference(EXAMPLES[1].0, EXAMPLES[1].1);
    let first_page = rt
        .block_on(
            api.list_messages()
                .ref_(r.clone())
                .limit(NonZeroU32::new(1).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner();
    let foreign = first_page.next_cursor.unwrap();
    assert_eq!(
        service
            .get(
                &format!(
                    "/v1/conversations/{}/messages?cursor={foreign}",
                    seg(&other)
                ),
                &service.admin
            )
            .0,
        400
    );

    // A key limited to Ozon sees nothing of the others.
    let ozon_only = service.key(&["--scope", "read,write", "--account", "ozon"]);
    let limited = service.walk(&ozon_only, 50, |_| {});
    assert!(!limited.is_empty());
    assert!(limited.iter().all(|c| c.account.as_deref() == Some("ozon")));
    assert_eq!(
        service
            .get("/v1/conversations?account=allegro", &ozon_only)
            .1["data"],
        json!([])
    );
    let allegro_ref = seg(&r);
    for path in [
        format!("/v1/conversations/{allegro_ref}"),
        format!("/v1/conversations/{allegro_ref}/messages"),
        format!(
            "/v1/conversations/{allegro_ref}/messages/{}/attachments/0",
            full[0].id
        ),
    ] {
        assert_eq!(service.get(&path, &ozon_only).0, 404, "{path}");
    }
    let (status, _, _) = service.raw(
        reqwest::Method::POST,
        &format!("/v1/conversations/{allegro_ref}/messages"),
        &ozon_only,
        Some(("application/json", br#"{"text":"no"}"#.to_vec())),
        &[("idempotency-key", "k1")],
    );
    assert_eq!(status, 404);
    let (status, _, _) = service.raw(
        reqwest::Method::POST,
        &format!("/v1/conversations/{allegro_ref}/read"),
        &ozon_only,
        None,
        &[],
    );
    assert_eq!(status, 404);
    let unread = service.get("/v1/unread", &ozon_only).1;
    assert_eq!(unread["data"].as_array().unwrap().len(), 1);
    assert_eq!(unread["data"][0]["account"], "ozon");

    // Hostile references never reach another conversation or route.
    let ozon_id = EXAMPLES[3].1;
    for hostile in [
        "..".to_string(),
        "%2e%2e".to_string(),
        "%2E%2E%2Fv1%2Faccounts".to_string(),
        seg("a/b"),
        seg("a\\b"),
        seg(&format!("ozon@allegro:{ozon_id}")),
        seg(&format!("allegro@ozon:{ozon_id}")),
        seg(&format!("ozon@ozon:{ozon_id}/../{}", EXAMPLES[0].1)),
        seg(&format!("ozon:{ozon_id}")),
    ] {
        let (status, body) = service.get(&format!("/v1/conversations/{hostile}"), &ozon_only);
        assert!(status == 404 || status == 400, "{hostile}: {status} {body}");
    }
    assert_eq!(
        service
            .get(
                &format!(
                    "/v1/conversations/{}",
                    seg(&reference(Vendor::Ozon, ozon_id))
                ),
                &ozon_only
            )
            .0,
        200
    );
    // Scopes: a write-only key cannot read; a read-only key cannot write.
    let writer = service.key(&["--scope", "write"]);
    assert_eq!(service.get("/v1/conversations", &writer).0, 403);
    let reader = service.key(&["--scope", "read"]);
    let (status, _, _) = service.raw(
        reqwest::Method::POST,
        &format!("/v1/conversations/{allegro_ref}/read"),
        &reader,
        None,
        &[],
    );
    assert_eq!(status, 403);
    service.stop();
}

#[test]
fn a_send_writes_once_per_idempotency_key_marks_read_and_carries_files() {
    let service = Service::start(
        Config {
            conversations: 2,
            messages_per_conversation: 2,
            ..Config::default()
        },
        "api-send",
    );
    service.wait_for_mirror();
    let api = service.api(&service.admin);
    let rt = &service.runtime;
    for (vendor, id) in EXAMPLES {
        let r = reference(vendor, id);
        let text = format!("reply once on {}", inbox_name(vendor));
        let body = types::NewMessage {
            text: text.clone(),
            attachments: Vec::new(),
        };
        let key = format!("send-{}", inbox_name(vendor));
        let first = rt
            .block_on(
                api.send_message()
                    .ref_(r.clone())
                    .idempotency_key(key.clone())
                    .body(body.clone())
                    .send(),
            )
            .unwrap()
            .into_inner();
        assert_eq!(
            first.send.state,
            inbox_api_client::enums::SendState::Sent,
            "{vendor:?}"
        );
        assert_eq!(first.send.ref_, r);
        // Again, the same key and body: the first answer, no second write.
        let again = rt
            .block_on(
                api.send_message()
                    .ref_(r.clone())
                    .idempotency_key(key.clone())
                    .body(body.clone())
                    .send(),
            )
            .unwrap()
            .into_inner();
        assert_eq!(again.send.id, first.send.id);
        let texts = service.env.sandbox.seller_texts(vendor);
        assert_eq!(
            texts.iter().filter(|t| **t == text).count(),
            1,
            "{vendor:?}"
        );
        // The same key, another body: 422.
        let other = rt
            .block_on(
                api.send_message()
                    .ref_(r.clone())
                    .idempotency_key(key.clone())
                    .body(types::NewMessage {
                        text: "something else".into(),
                        attachments: Vec::new(),
                    })
                    .send(),
            )
            .unwrap_err();
        assert_eq!(other.status().map(|s| s.as_u16()), Some(422));
        // Its end is an event of the log.
        let (_, events) = service.get("/v1/events?types=send.updated&limit=1000", &service.admin);
        let ended: Vec<&Value> = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["id"] == json!(first.send.id))
            .collect();
        assert_eq!(ended.len(), 1, "{events}");
        assert_eq!(ended[0]["data"]["state"], "sent");
        // The send, read back; the message in the mirror.
        let send = rt
            .block_on(api.get_send().id(first.send.id.clone()).send())
            .unwrap()
            .into_inner();
        assert_eq!(send.state, inbox_api_client::enums::SendState::Sent);
        if let Some(message) = &first.message {
            assert_eq!(message.text, text);
            assert_eq!(message.author_role, "seller");
        }
    }

    // A conversation started on Allegro, to a buyer about an order: the vendor's thread.
    let a_example = rt
        .block_on(
            api.get_conversation()
                .ref_(reference(EXAMPLES[0].0, EXAMPLES[0].1))
                .send(),
        )
        .unwrap()
        .into_inner();
    let login = a_example
        .other_party_name
        .clone()
        .or(a_example.other_party.clone())
        .unwrap();
    let thread = rt
        .block_on(
            api.start_conversation()
                .body(types::NewConversation {
                    account: "allegro".into(),
                    marketplace: "allegro".into(),
                    to: Some(login),
                    order: Some("29738e61-7f6a-11e8-ac45-09db60ede9d6".into()),
                    text: Some("about your order".into()),
                    posting: None,
                })
                .send(),
        )
        .unwrap()
        .into_inner();
    assert_eq!(thread.marketplace, "allegro");
    assert!(thread.ref_.starts_with("allegro@allegro:"));
    let texts = service.env.sandbox.seller_texts(Vendor::Allegro);
    assert_eq!(texts.iter().filter(|t| *t == "about your order").count(), 1);
    // Magalu and Mercado Libre start none: 422 before any request.
    let (status, _, _) = service.raw(
        reqwest::Method::POST,
        "/v1/conversations",
        &service.admin,
        Some((
            "application/json",
            br#"{"account":"magalu","marketplace":"magalu"}"#.to_vec(),
        )),
        &[],
    );
    assert_eq!(status, 422);

    // Four at once with one key: one vendor write; the others see it or wait (409).
    let (vendor, id) = EXAMPLES[2];
    let r = reference(vendor, id);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    service
                        .raw(
                            reqwest::Method::POST,
                            &format!("/v1/conversations/{}/messages", seg(&r)),
                            &service.admin,
                            Some(("application/json", br#"{"text":"all at once"}"#.to_vec())),
                            &[("idempotency-key", "together")],
                        )
                        .0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201), "{statuses:?}");
    let texts = service.env.sandbox.seller_texts(vendor);
    assert_eq!(texts.iter().filter(|t| *t == "all at once").count(), 1);
    // A missing or malformed key: 400, nothing sent.
    for headers in [vec![], vec![("idempotency-key", "has space")]] {
        let (status, _, _) = service.raw(
            reqwest::Method::POST,
            &format!("/v1/conversations/{}/messages", seg(&r)),
            &service.admin,
            Some(("application/json", br#"{"text":"never"}"#.to_vec())),
            &headers,
        );
        assert_eq!(status, 400);
    }
    // A rule broken before any vendor request: 422 naming it.
    let long = "x".repeat(2001);
    let (a_vendor, a_id) = EXAMPLES[0];
    let a_ref = reference(a_vendor, a_id);
    let (status, kind, body) = service.raw(
        reqwest::Method::POST,
        &format!("/v1/conversations/{}/messages", seg(&a_ref)),
        &service.admin,
        Some((
            "application/json",
            json!({"text": long}).to_string().into_bytes(),
        )),
        &[("idempotency-key", "too-long")],
    );
    assert_eq!(status, 422, "{}", String::from_utf8_lossy(&body));
    assert_eq!(kind, "application/problem+json");

    // A file, sent as multipart to Allegro, then downloaded byte for byte.
    let png: Vec<u8> = (0u8..=255).cycle().take(3000).collect();
    let boundary = "XBOUNDARYX";
    let mut form = Vec::new();
    form.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nwith a file\r\n"
        )
        .as_bytes(),
    );
    form.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"label.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
    form.extend_from_slice(&png);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let (status, _, body) = service.raw(
        reqwest::Method::POST,
        &format!("/v1/conversations/{}/messages", seg(&a_ref)),
        &service.admin,
        Some((&format!("multipart/form-data; boundary={boundary}"), form)),
        &[("idempotency-key", "with-file")],
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let message_id = answer["send"]["message_id"].as_str().unwrap().to_string();
    let message = &answer["message"];
    assert_eq!(message["attachments"][0]["name"], "label.png", "{answer}");
    let (status, kind, bytes) = service.raw(
        reqwest::Method::GET,
        &format!(
            "/v1/conversations/{}/messages/{}/attachments/label.png",
            seg(&a_ref),
            seg(&message_id)
        ),
        &service.admin,
        None,
        &[],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(kind, "image/png");
    assert_eq!(bytes, png);

    // A file address that points elsewhere is refused, and nothing is fetched there.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_url = format!("http://{}/internal", trap.local_addr().unwrap());
    let (o_vendor, o_id) = EXAMPLES[3];
    let o_ref = reference(o_vendor, o_id);
    service.env.sandbox.inject(inbox_sandbox::Injection {
        vendor: Vendor::Ozon,
        path: "/v3/chat/history".into(),
        body_contains: Some(o_id.into()),
        array: "/messages".into(),
        raw: json!({"message_id": 3000000000900000001u64, "created_at": chrono::Utc::now().to_rfc3339(),
                    "data": ["look", trap_url], "is_image": true, "is_read": false,
                    "user": {"id": "77", "type": "Customer"}}),
    });
    let listed = rt
        .block_on(api.list_messages().ref_(o_ref.clone()).fresh(true).send())
        .unwrap()
        .into_inner()
        .data;
    assert!(
        listed.iter().any(|m| m.id == "3000000000900000001"),
        "{:?}",
        listed.iter().map(|m| &m.id).collect::<Vec<_>>()
    );
    let (status, kind, _) = service.raw(
        reqwest::Method::GET,
        &format!(
            "/v1/conversations/{}/messages/3000000000900000001/attachments/0",
            seg(&o_ref)
        ),
        &service.admin,
        None,
        &[],
    );
    assert_eq!(status, 422);
    assert_eq!(kind, "application/problem+json");
    assert!(trap.accept().is_err(), "the trap was fetched");
    service.env.sandbox.clear_injections();

    // Mark-read reaches the vendor and the mirror.
    let unread = service.walk(&service.admin, 200, |_| {});
    let target = unread
        .iter()
        .find(|c| c.unread == Some(true) || c.unread_count.unwrap_or(0) > 0)
        .expect("an unread conversation")
        .ref_
        .clone();
    let reads = || -> u64 {
        VENDORS
            .iter()
            .flat_map(|v| service.env.sandbox.path_counts(*v))
            .filter(|(path, _)| path.contains("read"))
            .map(|(_, n)| n)
            .sum()
    };
    let reads_before = reads();
    rt.block_on(api.mark_read().ref_(target.clone()).send())
        .unwrap();
    assert!(reads() > reads_before, "no mark-read reached the vendor");
    let now = rt
        .block_on(api.get_conversation().ref_(target.clone()).send())
        .unwrap()
        .into_inner();
    assert!(
        now.unread != Some(true) && now.unread_count.unwrap_or(0) == 0,
        "{target}: {:?} {:?}",
        now.unread,
        now.unread_count
    );
    service.stop();
}

#[test]
fn a_send_whose_answer_was_lost_is_found_by_reading_back_not_sent_again() {
    let service = Service::start(
        Config {
            conversations: 1,
            messages_per_conversation: 2,
            faults: Faults {
                rate_lost_write: 1.0,
                ..Faults::default()
            },
            ..Config::default()
        },
        "api-lost",
    );
    service.wait_for_mirror();
    let api = service.api(&service.admin);
    // Allegro and Mercado Libre answer with the new message's id: both are read back.
    for (vendor, id) in &EXAMPLES[..2] {
        let r = reference(*vendor, id);
        let text = format!("lost answer on {}", inbox_name(*vendor));
        let sent = service
            .runtime
            .block_on(
                api.send_message()
                    .ref_(r)
                    .idempotency_key(format!("lost-{}", inbox_name(*vendor)))
                    .body(types::NewMessage {
                        text: text.clone(),
                        attachments: Vec::new(),
                    })
                    .send(),
            )
            .unwrap()
            .into_inner();
        assert_eq!(
            sent.send.state,
            inbox_api_client::enums::SendState::Sent,
            "{vendor:?}"
        );
        let texts = service.env.sandbox.seller_texts(*vendor);
        assert_eq!(
            texts.iter().filter(|t| **t == text).count(),
            1,
            "{vendor:?}"
        );
    }
    assert!(service.env.sandbox.lost_writes() >= 2);
    service.stop();
}

/// Reads Server-Sent Events from `answer` until `n` have come (or `limit` passes): each
/// event's id, type and data.
fn sse_read(
    runtime: &tokio::runtime::Runtime,
    answer: &mut reqwest::Response,
    n: usize,
    limit: Duration,
) -> Vec<(String, String, Value)> {
    runtime.block_on(async {
        let mut events = Vec::new();
        let mut buffer = String::new();
        let deadline = tokio::time::Instant::now() + limit;
        while events.len() < n {
            let chunk = match tokio::time::timeout_at(deadline, answer.chunk()).await {
                Ok(Ok(Some(c))) => c,
                _ => break,
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !id.is_empty() {
                    events.push((id, kind, serde_json::from_str(&data).unwrap()));
                }
            }
        }
        events
    })
}

#[test]
fn the_event_log_is_a_feed_and_a_resumable_stream_with_each_change_once() {
    let service = Service::start(
        Config {
            conversations: 2,
            messages_per_conversation: 2,
            ..Config::default()
        },
        "api-events",
    );
    service.wait_for_mirror();
    let events_key = service.key(&["--scope", "events"]);
    // The whole feed, 7 at a time: strictly increasing seqs, each once.
    let walk = |key: &str, query: &str| -> (Vec<Value>, u64) {
        let mut all = Vec::new();
        let mut after = 0u64;
        loop {
            let (status, page) =
                service.get(&format!("/v1/events?after={after}&limit=7{query}"), key);
            assert_eq!(status, 200, "{page}");
            let data = page["data"].as_array().unwrap().clone();
            let next = page["next_after"].as_u64().unwrap();
            if data.is_empty() {
                assert_eq!(next, after);
                return (all, after);
            }
            after = next;
            all.extend(data);
        }
    };
    let (all, last) = walk(&events_key, "");
    assert!(!all.is_empty());
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for e in &all {
        assert_eq!(e["id"], json!(format!("evt_{}", e["seq"])));
        assert!(e["data"].is_object(), "{e}");
    }
    let created = all
        .iter()
        .filter(|e| e["type"] == "message.created")
        .count();
    assert!(created >= 4, "{created}");

    // A stream opened now, from the next event on.
    let stream = |headers: &[(&str, &str)], query: &str| -> reqwest::Response {
        service.runtime.block_on(async {
            let mut r = service
                .http
                .get(format!("{}/v1/events/stream{query}", service.base))
                .bearer_auth(&events_key);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            let answer = r.send().await.unwrap();
            assert_eq!(answer.status().as_u16(), 200);
            assert!(answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"));
            answer
        })
    };
    let mut live = stream(&[], "?types=message.created");
    let (vendor, id) = EXAMPLES[1];
    assert!(service
        .env
        .sandbox
        .buyer_writes(vendor, id, "first for the log"));
    let got = sse_read(&service.runtime, &mut live, 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "the new message on the stream");
    assert_eq!(got[0].1, "message.created");
    assert_eq!(got[0].2["data"]["text"], "first for the log");
    let first_seq: u64 = got[0].0.parse().unwrap();
    assert!(first_seq > last);
    drop(live);
    // Disconnected; two more messages; resumed with Last-Event-ID: both, none again.
    assert!(service
        .env
        .sandbox
        .buyer_writes(vendor, id, "second for the log"));
    assert!(service
        .env
        .sandbox
        .buyer_writes(vendor, id, "third for the log"));
    let mut resumed = stream(
        &[("last-event-id", &first_seq.to_string())],
        "?types=message.created",
    );
    let got = sse_read(&service.runtime, &mut resumed, 2, Duration::from_secs(30));
    // (Both may come in one commit, in the order the vendor listed them.)
    let mut texts: Vec<&str> = got
        .iter()
        .map(|(_, _, e)| e["data"]["text"].as_str().unwrap())
        .collect();
    texts.sort_unstable();
    assert_eq!(texts, ["second for the log", "third for the log"]);
    let ids: Vec<u64> = got.iter().map(|(id, _, _)| id.parse().unwrap()).collect();
    assert!(ids.iter().all(|id| *id > first_seq), "{ids:?}");
    drop(resumed);

    // In the feed: each of the three exactly once, as message.created.
    let (after, _) = walk(&events_key, "&types=message.created");
    for text in [
        "first for the log",
        "second for the log",
        "third for the log",
    ] {
        let n = after.iter().filter(|e| e["data"]["text"] == text).count();
        assert_eq!(n, 1, "{text}");
    }
    assert!(after.iter().all(|e| e["type"] == "message.created"));
    // And from the command line, from any process.
    let printed = ok(common::inbox_keyed(
        KEY,
        &["events", "--after", &last.to_string(), "--db", &service.db],
    ));
    let lines: Vec<Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for text in [
        "first for the log",
        "second for the log",
        "third for the log",
    ] {
        assert_eq!(
            lines.iter().filter(|e| e["data"]["text"] == text).count(),
            1,
            "{text}"
        );
    }

    // A key limited to one account sees only its events; scopes and bad input.
    let ozon_events = service.key(&["--scope", "events", "--account", "ozon"]);
    let (mine, _) = walk(&ozon_events, "");
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|e| e["account"] == "ozon"));
    let reader_only = service.key(&["--scope", "read"]);
    assert_eq!(service.get("/v1/events", &reader_only).0, 403);
    assert_eq!(
        service
            .get("/v1/events?types=message.deleted", &events_key)
            .0,
        400
    );
    assert_eq!(service.get("/v1/events?after=-1", &events_key).0, 400);
    assert_eq!(service.get("/v1/events?limit=1001", &events_key).0, 400);
    service.stop();
}
