//! The push intake's routes: the notification routes, answered with each vendor's exact
//! answer once the notification is journaled, and `/healthz`, `/readyz`, `/metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use marketplace_inbox::push::{self, Hint, Notice};
use marketplace_inbox::sync::journal::{JournalState, NewEntry};
use marketplace_inbox::Marketplace;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::PushState as Shared;
use crate::work::Target;

/// The largest notification body taken (larger ones get 413): the vendors' are well
/// under 1 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// The push intake as a router a host mounts (or merges into its own): with a secret,
/// `POST /notifications/{secret}/{mercadolibre|ozon}`; without,
/// `POST /notifications/{mercadolibre|ozon}`; and `GET /healthz`, `/readyz`, `/metrics`.
pub fn push_router(shared: Arc<Shared>) -> Router {
    let notifications = match shared.secret.is_some() {
        true => Router::new().route("/notifications/{secret}/{vendor}", post(with_secret)),
        false => Router::new().route("/notifications/{vendor}", post(without_secret)),
    };
    notifications
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), log))
        .with_state(shared)
}

/// Logs each request at debug level, the secret in its path masked.
async fn log(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = masked(request.uri().path(), shared.secret.as_deref());
    let response = next.run(request).await;
    tracing::debug!(%method, path, status = response.status().as_u16(), "served");
    response
}

/// `path` with the secret's segment shown as `***`.
pub fn masked(path: &str, secret: Option<&str>) -> String {
    match (path.strip_prefix("/notifications/"), secret) {
        (Some(rest), Some(_)) => match rest.split_once('/') {
            Some((_, vendor)) => format!("/notifications/***/{vendor}"),
            None => "/notifications/***".to_string(),
        },
        _ => path.to_string(),
    }
}

fn marketplace(vendor: &str) -> Option<Marketplace> {
    match vendor {
        "mercadolibre" => Some(Marketplace::MercadoLibre),
        "ozon" => Some(Marketplace::Ozon),
        _ => None,
    }
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

async fn with_secret(
    State(shared): State<Arc<Shared>>,
    Path((secret, vendor)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let expected = shared.secret.as_deref().unwrap_or_default().as_bytes();
    let matches: bool = secret.as_bytes().ct_eq(expected).into();
    match (matches, marketplace(&vendor)) {
        (true, Some(m)) => receive(&shared, m, &headers, body).await,
        _ => not_found(),
    }
}

async fn without_secret(
    State(shared): State<Arc<Shared>>,
    Path(vendor): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match marketplace(&vendor) {
        Some(m) => receive(&shared, m, &headers, body).await,
        None => not_found(),
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A vendor's answer (the facade's [`push::Answer`]) as a response.
fn answer(a: push::Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match a.body {
        Some(body) => json(status, body),
        None => status.into_response(),
    }
}

fn refused(marketplace: Marketplace, status: StatusCode, code: &str, message: &str) -> Response {
    answer(push::refusal(marketplace, status.as_u16(), code, message))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// One notification: checked, journaled, answered; the work is left to the account's
/// worklist.
async fn receive(shared: &Shared, m: Marketplace, headers: &HeaderMap, body: Body) -> Response {
    let arrived = Instant::now();
    let started = chrono::Utc::now();
    let label = m.as_str();
    shared.metrics.received(label);
    let reject = |status: StatusCode, code: &str, reason: &str, message: &str| {
        shared.metrics.rejected(label, reason);
        refused(m, status, code, message)
    };
    if !is_json(headers) {
        return reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "ERROR_UNKNOWN",
            "content_type",
            "Content-Type must be application/json",
        );
    }
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ERROR_UNKNOWN",
                "too_large",
                "the body is over 64 KiB",
            )
        }
    };
    let notice = match push::read(m, &bytes) {
        Ok(n) => n,
        Err(e) => {
            return reject(
                StatusCode::BAD_REQUEST,
                "ERROR_PARAMETER_VALUE_MISSED",
                "malformed_json",
                &e.to_string(),
            )
        }
    };
    let ack = |shared: &Shared| {
        shared
            .metrics
            .acknowledged(label, arrived.elapsed().as_secs_f64());
        answer(push::acknowledgement(m))
    };
    match &notice.hint {
        Hint::Ping => {
            shared.metrics.ignored(label, "ping");
            shared
                .metrics
                .acknowledged(label, arrived.elapsed().as_secs_f64());
            return answer(push::ping_answer(started));
        }
        Hint::Ignored(_) => {
            shared.metrics.ignored(label, "not_acted_on");
            return ack(shared);
        }
        _ => {}
    }
    match journal(shared, &notice, &bytes, started, arrived).await {
        Ok(()) => ack(shared),
        Err(e) => {
            shared.engine.sink().note(&format!(
                "inbox: serve: journaling a {label} notification failed: {e}"
            ));
            reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "ERROR_UNKNOWN",
                "journal",
                "the notification could not be kept; send it again",
            )
        }
    }
}

/// Journals a notification for its account and hands it to the account's worklist; one
/// for no configured account is counted, logged once, and dropped.
pub async fn journal(
    shared: &Shared,
    notice: &Notice,
    raw: &[u8],
    received_at: chrono::DateTime<chrono::Utc>,
    arrived: Instant,
) -> Result<(), marketplace_inbox::sync::StoreError> {
    let label = notice.marketplace.as_str();
    let inbox = shared.engine.inbox();
    let account = match inbox.addressee(notice) {
        Ok(a) => a,
        Err(why) => {
            shared.metrics.ignored(label, why.as_str());
            shared.log_unaddressed(notice, why);
            return Ok(());
        }
    };
    // Journal writes are bounded per account, as the reads they cause are: past the
    // bound a notification is answered and not kept (the account's safety-net poll
    // still finds what it announced).
    if !shared.journal_budgets.spend(account.name()) {
        shared.metrics.ignored(label, "journal_budget");
        return Ok(());
    }
    let target = Target::of(&notice.hint);
    let entry = NewEntry {
        marketplace: notice.marketplace,
        account: Some(account.name().to_string()),
        received_at,
        raw: excerpt(raw),
        dedup_key: notice.dedup_key.clone(),
        target: target.as_ref().map(Target::key),
        state: JournalState::Pending,
    };
    let added = shared
        .scheduler
        .enqueue(
            shared.engine.store(),
            entry,
            account.name(),
            target,
            arrived,
        )
        .await?;
    if !added {
        shared.metrics.ignored(label, "duplicate");
    }
    Ok(())
}

/// The most of a notification's body the journal keeps: the vendors' are well under
/// 1 KiB; what a replay needs (account and target) has columns of its own.
pub const RAW_KEPT: usize = 4 * 1024;

/// At most [`RAW_KEPT`] bytes of `raw` as text (cut at a character boundary, other bytes
/// replaced).
fn excerpt(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    if text.len() <= RAW_KEPT {
        return text.into_owned();
    }
    let mut end = RAW_KEPT;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or_default().to_string()
}

async fn healthz() -> Response {
    json(StatusCode::OK, json!({"status": "alive"}))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let replayed = shared.ready.load(Ordering::SeqCst);
    let store = match shared.engine.inbox().accounts().next() {
        Some(a) => shared.engine.store().checkpoint(a.name()).await.is_ok(),
        None => true,
    };
    match replayed && store {
        true => json(StatusCode::OK, json!({"ready": true})),
        false => json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "journal_replayed": replayed, "store": store}),
        ),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let mut r = (StatusCode::OK, shared.metrics.render()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_keeps_a_bounded_excerpt_of_a_body_cut_between_characters() {
        let small = br#"{"message_type": "TYPE_PING"}"#;
        assert_eq!(excerpt(small), String::from_utf8_lossy(small));
        // 3-byte characters: 4096 is not a boundary.
        let big = "{\"x\": \"".to_string() + &"ё€".repeat(20_000) + "\"}";
        let kept = excerpt(big.as_bytes());
        assert!(
            kept.len() <= RAW_KEPT && kept.len() > RAW_KEPT - 4,
            "{}",
            kept.len()
        );
        assert!(big.starts_with(&kept));
        // Bytes that are not UTF-8 are replaced, never a panic.
        let kept = excerpt(&[0xff; 10_000]);
        assert!(kept.len() <= RAW_KEPT);
    }

    #[test]
    fn a_secret_in_a_logged_path_is_masked() {
        assert_eq!(
            masked("/notifications/s3cr3t-value/ozon", Some("s3cr3t-value")),
            "/notifications/***/ozon"
        );
        assert_eq!(masked("/healthz", Some("x")), "/healthz");
    }
}
