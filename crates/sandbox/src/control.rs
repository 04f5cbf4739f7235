//! The sandbox's own control endpoint, under `/_sandbox` (off every vendor's paths; no
//! auth, no faults): what a test or a benchmark in another process uses to act as the
//! buyer and to count requests.
//!
//! - `POST /_sandbox/messages` `{"marketplace", "conversation", "text", "account"?,
//!   "visible_after_secs"?}` → 201 `{"id", "visible_at"}`: a buyer message in the account
//!   named `account` (its name in [`crate::Sandbox::accounts_config`]; the first when
//!   absent), visible at once or only after a delay (as after moderation; it keeps its
//!   earlier creation time); 404 for no such account or conversation.
//! - `GET /_sandbox/requests` → `{"total", "rate_limited", "invalid_grants", "routes":
//!   {"GET /allegro/messaging/threads": n, …}}`: requests served (the routes of the newest
//!   [`crate::RECEIVED_KEPT`]), those refused for a rate limit, and refresh grants refused
//!   with `invalid_grant`.
//! - `GET /_sandbox/stats` → `{"accounts": [{"marketplace", "account", "conversations",
//!   "messages"}]}`: what each account holds, `account` being its name in
//!   [`crate::Sandbox::accounts_config`]; `messages` counts those a client can list now
//!   (not those still held by moderation).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::http::json;
use crate::store::Vendor;
use crate::{account_name, AccountStats, App};

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/messages", post(buyer_message))
        .route("/requests", get(requests))
        .route("/stats", get(stats))
        .route("/reads", post(buyer_reads))
        .route("/pushes", get(pushes))
}

async fn buyer_message(State(app): State<Arc<App>>, Json(body): Json<Value>) -> Response {
    let text = |k: &str| body.get(k).and_then(Value::as_str);
    let vendor = match text("marketplace") {
        Some(m) => Vendor::ALL.into_iter().find(|v| v.prefix() == m),
        None => None,
    };
    let (Some(vendor), Some(conversation), Some(message)) =
        (vendor, text("conversation"), text("text"))
    else {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": "give marketplace (allegro, mercadolibre, magalu, ozon), conversation and text"}),
        );
    };
    let delay = body
        .get("visible_after_secs")
        .and_then(Value::as_f64)
        .filter(|d| d.is_finite() && *d >= 0.0)
        .and_then(|d| chrono::Duration::from_std(std::time::Duration::from_secs_f64(d)).ok())
        .unwrap_or_default();
    let account = match text("account") {
        None => Some(0),
        Some(name) => app.accounts.named(vendor, name),
    };
    let Some(account) = account else {
        return json(StatusCode::NOT_FOUND, json!({"error": "no such account"}));
    };
    let visible_at = chrono::Utc::now() + delay;
    let written = if delay.is_zero() {
        app.buyer_writes(vendor, account, conversation, message)
    } else {
        app.accounts
            .get(account)
            .market(vendor)
            .lock()
            .ok()
            .and_then(|mut m| m.append_later(vendor, conversation, message, visible_at))
    };
    match written {
        Some(m) => json(
            StatusCode::CREATED,
            json!({"id": m.id, "visible_at": visible_at.to_rfc3339()}),
        ),
        None => json(
            StatusCode::NOT_FOUND,
            json!({"error": "no such conversation"}),
        ),
    }
}

async fn requests(State(app): State<Arc<App>>) -> Response {
    let mut routes: BTreeMap<String, u64> = BTreeMap::new();
    for r in app.received.lock().map(|r| r.clone()).unwrap_or_default() {
        let path = r.path.split('?').next().unwrap_or_default().to_string();
        *routes
            .entry(format!("{} /{}{path}", r.method, r.vendor.prefix()))
            .or_default() += 1;
    }
    json(
        StatusCode::OK,
        json!({"total": app.requests.load(Ordering::Relaxed),
               "rate_limited": app.rate_limited.load(Ordering::Relaxed),
               "invalid_grants": app.invalid_grants(),
               "routes": routes}),
    )
}

/// `POST /_sandbox/reads` `{"marketplace", "conversation", "account"?}`: the buyer reads
/// the conversation (Mercado Libre's `read` and Ozon's `TYPE_MESSAGE_READ` are pushed for
/// its newest message).
async fn buyer_reads(State(app): State<Arc<App>>, Json(body): Json<Value>) -> Response {
    let text = |k: &str| body.get(k).and_then(Value::as_str);
    let vendor =
        text("marketplace").and_then(|m| Vendor::ALL.into_iter().find(|v| v.prefix() == m));
    let account = match (vendor, text("account")) {
        (Some(_), None) => Some(0),
        (Some(v), Some(name)) => app.accounts.named(v, name),
        _ => None,
    };
    let (Some(vendor), Some(account), Some(conversation)) = (vendor, account, text("conversation"))
    else {
        return json(
            StatusCode::BAD_REQUEST,
            json!({"error": "give marketplace, conversation and account (optional)"}),
        );
    };
    let newest = app
        .accounts
        .get(account)
        .market(vendor)
        .lock()
        .ok()
        .and_then(|m| {
            let c = m.get(conversation)?;
            c.len()
                .checked_sub(1)
                .and_then(|i| c.message(vendor, i))
                .map(|m| m.id)
        });
    match newest {
        Some(id) => {
            crate::push::notify(
                &app,
                vendor,
                account,
                conversation,
                &id,
                crate::push::Event::Read,
            );
            json(StatusCode::OK, json!({"message": id}))
        }
        None => json(
            StatusCode::NOT_FOUND,
            json!({"error": "no such conversation"}),
        ),
    }
}

/// `GET /_sandbox/pushes`: what the push side delivered so far.
async fn pushes(State(app): State<Arc<App>>) -> Response {
    json(StatusCode::OK, json!(app.push_stats()))
}

/// What every account holds now, account by account.
pub(crate) fn stats_of(app: &App) -> Vec<AccountStats> {
    let mut all = Vec::new();
    for (number, account) in app.accounts.numbered() {
        for vendor in Vendor::ALL {
            let Ok(market) = account.market(vendor).lock() else {
                continue;
            };
            all.push(AccountStats {
                marketplace: vendor.prefix(),
                account: account_name(vendor, number),
                conversations: market.convs.len() as u64,
                messages: market.convs.iter().map(|c| c.len()).sum(),
            });
        }
    }
    all
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    json(StatusCode::OK, json!({"accounts": stats_of(&app)}))
}
