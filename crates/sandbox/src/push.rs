//! The vendors' push, played: with [`crate::Config::push_url`] set, a buyer message
//! added (or a conversation read by the buyer) is POSTed as Mercado Libre's notification
//! to `BASE/mercadolibre` and as Ozon's to `BASE/ozon`, in the vendors' shapes and with
//! their quirks (string or number `user_id`, `actions` sometimes absent, Ozon's Cyrillic
//! `Сustomer`, `seller_id` as a string). Ozon's `TYPE_PING` is sent at start.
//!
//! Delivery as the vendors do it: an answer other than 200 within the deadline (Mercado
//! Libre's 500 ms, Ozon's 5 s) is a failed attempt, tried again with a growing pause for
//! [`crate::Config::push_retry_for`] (an hour by the vendors' rules); then Mercado Libre
//! lists it in `GET /missed_feeds` and Ozon drops it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::http::{bearer, error, json};
use crate::{App, Vendor};

/// Deliveries so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PushStats {
    /// Notifications made.
    pub sent: u64,
    /// Delivered (a 200 within the deadline).
    pub delivered: u64,
    /// Attempts that failed (no answer in time, or not 200).
    pub failed_attempts: u64,
    /// Given up on (Mercado Libre's then appear in missed feeds).
    pub given_up: u64,
}

/// The push side of a sandbox.
pub(crate) struct Pusher {
    /// The sandbox's runtime: pushes start from any thread (a test's, say).
    runtime: tokio::runtime::Handle,
    base: String,
    client: reqwest::Client,
    retry_for: Duration,
    counter: AtomicU64,
    missed: Mutex<Vec<Value>>,
    sent: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    given_up: AtomicU64,
}

impl Pusher {
    pub(crate) fn new(base: &str, retry_for: Duration) -> Option<Pusher> {
        // The shared client installs the TLS provider reqwest needs built in.
        let client = inbox_core::http_client().ok()?;
        Some(Pusher {
            runtime: tokio::runtime::Handle::try_current().ok()?,
            base: base.trim_end_matches('/').to_string(),
            client,
            retry_for,
            counter: AtomicU64::new(0),
            missed: Mutex::new(Vec::new()),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            given_up: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> PushStats {
        PushStats {
            sent: self.sent.load(Ordering::SeqCst),
            delivered: self.delivered.load(Ordering::SeqCst),
            failed_attempts: self.failed.load(Ordering::SeqCst),
            given_up: self.given_up.load(Ordering::SeqCst),
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What happened, for [`notify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A buyer message was added.
    Created,
    /// The buyer read the conversation.
    Read,
}

/// Pushes `event` for message `message` of conversation `conversation` of account
/// `index` on `vendor` (Mercado Libre and Ozon only; nothing without a push URL).
pub(crate) fn notify(
    app: &Arc<App>,
    vendor: Vendor,
    index: usize,
    conversation: &str,
    message: &str,
    event: Event,
) {
    let Some(pusher) = &app.pusher else {
        return;
    };
    let n = pusher.counter.fetch_add(1, Ordering::SeqCst);
    let credentials = &app.accounts.get(index).credentials;
    let body = match vendor {
        Vendor::MercadoLibre => {
            // Quirks by turn: user_id as a string or a number, actions present or not.
            let user = match n % 3 {
                0 => json!(credentials
                    .mercadolibre_seller_id
                    .parse::<u64>()
                    .unwrap_or(0)),
                _ => json!(credentials.mercadolibre_seller_id),
            };
            let mut body = json!({
                "resource": message, "user_id": user, "topic": "messages",
                "application_id": app.config.credentials.mercadolibre_application_id.parse::<u64>()
                    .map_or_else(|_| json!(app.config.credentials.mercadolibre_application_id), |n| json!(n)),
                "attempts": 1, "sent": now(), "received": now(),
            });
            if n % 2 == 0 {
                body["actions"] = json!([match event {
                    Event::Created => "created",
                    Event::Read => "read",
                }]);
                body["_id"] = json!(format!("{:08x}-5f59-4c1a-8a18-{:012x}", n, n));
            }
            body
        }
        Vendor::Ozon => {
            let seller = json!(credentials.ozon_client_id);
            match event {
                Event::Created => json!({
                    "message_type": "TYPE_NEW_MESSAGE", "chat_id": conversation,
                    "chat_type": "Buyer_Seller", "message_id": message, "created_at": now(),
                    "user": {"id": "115568", "type": "\u{421}ustomer"},
                    "data": ["(the text is read from the API)"], "seller_id": seller,
                }),
                Event::Read => json!({
                    "message_type": "TYPE_MESSAGE_READ", "chat_id": conversation,
                    "chat_type": "Buyer_Seller", "message_id": message, "created_at": now(),
                    "user": {"id": "115568", "type": "\u{421}ustomer"},
                    "last_read_message_id": message, "seller_id": seller,
                }),
            }
        }
        _ => return,
    };
    deliver(app.clone(), vendor, body);
}

/// Ozon's `TYPE_PING`, sent at start.
pub(crate) fn ping(app: &Arc<App>) {
    if app.pusher.is_some() {
        deliver(
            app.clone(),
            Vendor::Ozon,
            json!({"message_type": "TYPE_PING", "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
        );
    }
}

fn deliver(app: Arc<App>, vendor: Vendor, body: Value) {
    let Some(pusher) = &app.pusher else {
        return;
    };
    pusher.sent.fetch_add(1, Ordering::SeqCst);
    let runtime = pusher.runtime.clone();
    runtime.spawn(async move {
        let Some(pusher) = &app.pusher else {
            return;
        };
        let url = format!("{}/{}", pusher.base, vendor.prefix());
        let deadline = match vendor {
            Vendor::Ozon => Duration::from_secs(5),
            _ => Duration::from_millis(500),
        };
        let first = Instant::now();
        let mut pause = Duration::from_millis(250);
        let mut body = body;
        let mut attempts = 1u64;
        loop {
            let started = Instant::now();
            let answer = tokio::time::timeout(
                deadline,
                pusher
                    .client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json")
                    .body(body.to_string())
                    .send(),
            )
            .await;
            let code = match &answer {
                Ok(Ok(r)) => r.status().as_u16(),
                _ => 0,
            };
            if code == 200 {
                pusher.delivered.fetch_add(1, Ordering::SeqCst);
                return;
            }
            pusher.failed.fetch_add(1, Ordering::SeqCst);
            if first.elapsed() + pause > pusher.retry_for {
                pusher.given_up.fetch_add(1, Ordering::SeqCst);
                if vendor == Vendor::MercadoLibre {
                    let entry = json!({
                        "_id": body.get("_id").cloned().unwrap_or(Value::Null),
                        "resource": body["resource"], "user_id": body["user_id"], "topic": body["topic"],
                        "application_id": body["application_id"], "attempts": attempts,
                        "sent": body["sent"], "received": body["received"],
                        "request": {"url": url, "headers": {"accept": "application/json", "content-type": "application/json"}, "data": body},
                        "response": {"req_time": started.elapsed().as_millis() as u64, "http_code": code, "body": {}, "headers": {}},
                    });
                    if let Ok(mut missed) = pusher.missed.lock() {
                        missed.push(entry);
                    }
                }
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(60));
            attempts += 1;
            if vendor == Vendor::MercadoLibre {
                body["attempts"] = json!(attempts);
                body["sent"] = json!(now());
            }
        }
    });
}

#[derive(serde::Deserialize)]
pub(crate) struct MissedQuery {
    app_id: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `GET /missed_feeds?app_id=…[&topic][&offset][&limit]` (Mercado Libre).
pub(crate) async fn missed_feeds(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<MissedQuery>,
) -> Response {
    if let Err(r) = bearer(&app, Vendor::MercadoLibre, &headers) {
        return r;
    }
    let Some(app_id) = q.app_id else {
        return error(
            Vendor::MercadoLibre,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "app_id is required",
        );
    };
    let missed: Vec<Value> = app
        .pusher
        .as_ref()
        .and_then(|p| p.missed.lock().ok().map(|m| m.clone()))
        .unwrap_or_default();
    let page: Vec<Value> = missed
        .into_iter()
        .filter(|e| {
            let id = &e["application_id"];
            id.as_str() == Some(app_id.as_str())
                || id.as_u64().map(|n| n.to_string()) == Some(app_id.clone())
        })
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(10).clamp(1, 50))
        .collect();
    json(StatusCode::OK, json!({"messages": page}))
}
