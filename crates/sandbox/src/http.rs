//! Request plumbing shared by the four APIs: injected faults, auth checks, vendor error bodies.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::{App, Received, Vendor, RECEIVED_KEPT};

/// A JSON response with a given media type.
pub(crate) fn json_as(status: StatusCode, media: &str, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(media).unwrap_or(HeaderValue::from_static("application/json")),
    );
    r
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: Value) -> Response {
    json_as(status, "application/json", body)
}

/// The vendor's error body for `status`.
pub(crate) fn error(vendor: Vendor, status: StatusCode, code: &str, message: &str) -> Response {
    let body = match vendor {
        Vendor::Allegro => {
            json!({"errors": [{"code": code, "message": message, "details": null, "path": null, "userMessage": message}]})
        }
        Vendor::MercadoLibre => {
            json!({"message": message, "error": code, "status": status.as_u16(), "cause": []})
        }
        Vendor::Magalu => json!({"error": code, "message": message}),
        Vendor::Ozon => {
            json!({"code": code.parse::<i64>().unwrap_or(3), "message": message, "details": []})
        }
    };
    json(status, body)
}

/// Checks `Authorization: Bearer <token>`: the configured token of the account being
/// answered, or an access token the token endpoint issued to it and that has not expired.
pub(crate) fn bearer(app: &App, vendor: Vendor, headers: &HeaderMap) -> Result<(), Response> {
    let c = app.credentials();
    let current = crate::accounts::current();
    let expected = match vendor {
        Vendor::Allegro => &c.allegro_token,
        Vendor::MercadoLibre => &c.mercadolibre_token,
        Vendor::Magalu => &c.magalu_token,
        Vendor::Ozon => &c.ozon_api_key,
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let issued = |t| crate::oauth::issued(app, vendor, t).filter(|(i, _)| *i == current);
    match given.map(|t| (t == expected, issued(t).map(|(_, valid)| valid))) {
        Some((true, _) | (_, Some(true))) => Ok(()),
        Some((_, Some(false))) => Err(error(
            vendor,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Access token expired",
        )),
        _ => Err(match vendor {
            Vendor::Allegro => json(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_token", "error_description": "Invalid access token"}),
            ),
            Vendor::MercadoLibre => error(
                vendor,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "invalid access token",
            ),
            _ => error(
                vendor,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or invalid bearer token",
            ),
        }),
    }
}

/// Checks Ozon's `Client-Id` and `Api-Key`.
pub(crate) fn ozon_keys(
    headers: &HeaderMap,
    client_id: &str,
    api_key: &str,
) -> Result<(), Response> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    match (get("client-id"), get("api-key")) {
        (Some(c), Some(k)) if c == client_id && k == api_key => Ok(()),
        (Some(_), Some(_)) => Err(error(
            Vendor::Ozon,
            StatusCode::FORBIDDEN,
            "7",
            "Invalid Api-Key, please contact support",
        )),
        _ => Err(error(
            Vendor::Ozon,
            StatusCode::UNAUTHORIZED,
            "16",
            "Client-Id and Api-Key headers are required",
        )),
    }
}

/// Counts a request as being answered until dropped (every return path).
struct InFlight<'a>(&'a App);

impl<'a> InFlight<'a> {
    fn enter(app: &'a App) -> Self {
        let now = app.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        app.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(app)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps what a request was and which credential it carried.
/// The credential a request presents: the bearer token, or Ozon's `Client-Id`.
fn credential(vendor: Vendor, headers: &HeaderMap) -> Option<&str> {
    match vendor {
        Vendor::Ozon => headers.get("client-id"),
        _ => headers.get(header::AUTHORIZATION),
    }
    .and_then(|v| v.to_str().ok())
    .map(|v| v.strip_prefix("Bearer ").unwrap_or(v))
}

fn record(app: &App, vendor: Vendor, request: &Request) {
    let credential = credential(vendor, request.headers()).map(str::to_string);
    let received = Received {
        vendor,
        method: request.method().to_string(),
        path: request
            .uri()
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        credential,
    };
    if let Ok(mut paths) = app.paths.lock() {
        *paths
            .entry((vendor, request.uri().path().to_string()))
            .or_insert(0) += 1;
    }
    if let Ok(mut log) = app.received.lock() {
        if log.len() >= RECEIVED_KEPT {
            log.pop_front();
        }
        log.push_back(received);
    }
}

/// A deterministic value in [0, 1) for request `n` and stream `salt`.
fn unit(n: u64, salt: u64) -> f64 {
    let mut z = n.wrapping_add(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The vendor's 429 answer.
fn too_many(vendor: Vendor) -> Response {
    let (code, message) = match vendor {
        Vendor::Allegro => ("TooManyRequests", "Too many requests"),
        Vendor::MercadoLibre => (
            "local_rate_limited",
            "Too many requests, try again in a few seconds",
        ),
        Vendor::Magalu => ("too_many_requests", "Rate limit exceeded"),
        Vendor::Ozon => ("8", "You have reached request rate limit per second"),
    };
    error(vendor, StatusCode::TOO_MANY_REQUESTS, code, message)
}

/// A `200` whose body breaks off: the client sees a reset connection.
fn broken() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected by the sandbox",
        ))
    });
    let mut r = Response::new(axum::body::Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `response` with its body sent half, then held for `stall`, then the rest.
async fn stalled(response: Response, stall: std::time::Duration) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return broken();
    };
    let half = bytes.len() / 2;
    let (head, tail) = (bytes.slice(..half), bytes.slice(half..));
    use futures::StreamExt as _;
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(head)]).chain(
        futures::stream::once(async move {
            tokio::time::sleep(stall).await;
            Ok(tail)
        }),
    );
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

/// The injections that apply to `request` (its body read only when one names its path),
/// and the request to pass on.
async fn injections(
    app: &App,
    vendor: Vendor,
    request: Request,
) -> (Request, Vec<crate::Injection>) {
    let path = request.uri().path().to_string();
    let candidates: Vec<crate::Injection> = app
        .injections
        .lock()
        .map(|all| {
            all.iter()
                .filter(|i| i.answers(vendor, &path))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if candidates.is_empty() {
        return (request, candidates);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let chosen = candidates
        .into_iter()
        .filter(|i| i.body_matches(&bytes))
        .collect();
    (
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        chosen,
    )
}

/// The account a request's credential names (the first when it names none: its checks
/// then refuse it).
fn account_of(app: &App, vendor: Vendor, headers: &HeaderMap) -> usize {
    let Some(credential) = credential(vendor, headers) else {
        return 0;
    };
    app.accounts
        .holding(vendor, credential)
        .or_else(|| crate::oauth::issued(app, vendor, credential).map(|(i, _)| i))
        .unwrap_or(0)
}

/// Answers a request as one of the account its credential names, through [`answer`].
pub(crate) async fn faults(
    State((app, vendor)): State<(Arc<App>, Vendor)>,
    request: Request,
    next: Next,
) -> Response {
    let account = account_of(&app, vendor, request.headers());
    crate::accounts::scope(account, answer(app, vendor, request, next)).await
}

/// Enforces the configured rate limits (the account's, then the application's), adds
/// latency and injects faults at the configured rates (each choice a deterministic
/// function of the request's number).
async fn answer(app: Arc<App>, vendor: Vendor, request: Request, next: Next) -> Response {
    let n = app.requests.fetch_add(1, Ordering::Relaxed);
    let _busy = InFlight::enter(&app);
    record(&app, vendor, &request);
    // Held messages whose time has come appear before the request is answered.
    if let Ok(mut market) = app.market(vendor).lock() {
        market.promote(chrono::Utc::now());
    }
    let reads_only = matches!(request.method().as_str(), "GET" | "HEAD")
        || (vendor == Vendor::Ozon
            && ["/v3/chat/list", "/v3/chat/history"].contains(&request.uri().path()));
    let write = !reads_only;
    let account = app.accounts.get(crate::accounts::current());
    if !account.windows.admit(vendor, write) || !app.windows.admit(vendor, write) {
        app.rate_limited.fetch_add(1, Ordering::Relaxed);
        return too_many(vendor);
    }
    if app.outage.load(Ordering::SeqCst) {
        return error(
            vendor,
            StatusCode::SERVICE_UNAVAILABLE,
            "14",
            "service unavailable (an outage played by the sandbox)",
        );
    }
    let f = &app.config.faults;
    let latency = app.latency_us.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_micros(latency)).await;
    }
    if unit(n, 1) < f.rate_429 {
        let mut r = too_many(vendor);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(f.retry_after_secs));
        return r;
    }
    if unit(n, 2) < f.rate_500 {
        return error(
            vendor,
            StatusCode::INTERNAL_SERVER_ERROR,
            "13",
            "internal error (injected by the sandbox)",
        );
    }
    if unit(n, 4) < f.rate_reset {
        return broken();
    }
    if unit(n, 3) < f.rate_slow {
        tokio::time::sleep(f.slow_delay).await;
    }
    let (request, injections) = injections(&app, vendor, request).await;
    let response = crate::inject::apply(next.run(request).await, &injections).await;
    if write && unit(n, 5) < f.rate_lost_write {
        app.lost_writes.fetch_add(1, Ordering::Relaxed);
        return broken();
    }
    if unit(n, 6) < f.rate_stall {
        return stalled(response, f.stall).await;
    }
    response
}
