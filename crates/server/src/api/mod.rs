//! The HTTP API (`specs/inbox-api.yaml`, the contract; `inbox-api-client` is generated
//! from it): mounted by `inbox serve` beside the push routes when it runs the store's
//! accounts. Every route takes a bearer API key ([`auth`]) and counts against its limit
//! ([`limits`]); errors are RFC 9457 problems ([`problem`]); lists walk by opaque,
//! authenticated keyset cursors ([`cursor`]). The routes: [`accounts`] (and connect
//! links), [`conversations`] (messages, mark-read, attachments, unread counts), [`sends`]
//! (idempotent), the event log ([`events`]), webhook endpoints ([`webhooks`]), and the
//! contract itself ([`docs`]).

pub mod accounts;
pub mod auth;
pub mod conversations;
pub mod cursor;
pub mod docs;
pub mod events;
pub mod limits;
pub mod problem;
pub mod sends;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use marketplace_inbox::{ConversationRef, TokenKey};
use serde::Deserialize;

use self::cursor::Cursors;
use self::limits::Limits;
use self::problem::Problem;
use crate::{Directory, Engine};

/// The largest request body taken (a send's attachments, base64 or multipart).
pub const BODY_LIMIT: usize = 25 * 1024 * 1024;

/// How long any request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Every route of the API, as the spec names it: `(method, path)`.
pub const ROUTES: [(&str, &str); 27] = [
    ("GET", "/v1/accounts"),
    ("POST", "/v1/accounts"),
    ("GET", "/v1/accounts/{name}"),
    ("PATCH", "/v1/accounts/{name}"),
    ("DELETE", "/v1/accounts/{name}"),
    ("POST", "/v1/connect-links"),
    ("GET", "/v1/conversations"),
    ("POST", "/v1/conversations"),
    ("GET", "/v1/conversations/{ref}"),
    ("GET", "/v1/conversations/{ref}/messages"),
    ("POST", "/v1/conversations/{ref}/messages"),
    ("POST", "/v1/conversations/{ref}/read"),
    (
        "GET",
        "/v1/conversations/{ref}/messages/{message_id}/attachments/{attachment}",
    ),
    ("GET", "/v1/sends/{id}"),
    ("GET", "/v1/unread"),
    ("GET", "/openapi.yaml"),
    ("GET", "/docs"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("GET", "/v1/webhooks"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks/{id}"),
    ("PATCH", "/v1/webhooks/{id}"),
    ("DELETE", "/v1/webhooks/{id}"),
    ("POST", "/v1/webhooks/{id}/rotate"),
    ("GET", "/v1/webhooks/{id}/deliveries"),
    ("POST", "/v1/webhooks/{id}/replay"),
];

/// What the API's routes share.
#[derive(Clone)]
pub struct ApiState {
    directory: Directory,
    engine: Arc<Engine>,
    key: TokenKey,
    cursors: Arc<Cursors>,
    limits: Arc<Limits>,
    public_url: Option<String>,
    /// Whether webhook URLs may be plain `http` or reach private addresses.
    webhooks_allow_private: bool,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

impl ApiState {
    /// The API over `directory`'s accounts as `engine` runs them; credentials of new
    /// accounts are sealed with the operator's `key` (cursors are authenticated with a
    /// key derived from it); connect links are made under `public_url` when given.
    pub fn new(
        directory: Directory,
        engine: Arc<Engine>,
        key: &TokenKey,
        public_url: Option<&str>,
    ) -> ApiState {
        ApiState {
            directory,
            engine,
            key: key.clone(),
            cursors: Arc::new(Cursors::new(key.derived("inbox-api cursors"))),
            limits: Arc::new(Limits::default()),
            public_url: public_url.map(str::to_string),
            webhooks_allow_private: false,
        }
    }

    /// Lets webhook URLs be plain `http` and reach private addresses (`inbox serve
    /// --webhooks-allow-private`; tests).
    pub fn webhooks_allow_private(mut self, allow: bool) -> ApiState {
        self.webhooks_allow_private = allow;
        self
    }
}

/// The API's routes.
pub fn api_router(state: ApiState) -> Router {
    use self::accounts as a;
    use self::conversations as c;
    Router::new()
        .route("/openapi.yaml", get(docs::openapi))
        .route("/docs", get(docs::page))
        .route("/v1/accounts", get(a::list).post(a::create))
        .route(
            "/v1/accounts/{name}",
            get(a::get_one).patch(a::update).delete(a::delete),
        )
        .route("/v1/connect-links", post(a::connect_link))
        .route("/v1/conversations", get(c::list).post(sends::start))
        .route("/v1/conversations/{ref}", get(c::get_one))
        .route(
            "/v1/conversations/{ref}/messages",
            get(c::messages).post(sends::send),
        )
        .route("/v1/conversations/{ref}/read", post(c::mark_read))
        .route(
            "/v1/conversations/{ref}/messages/{message_id}/attachments/{attachment}",
            get(c::attachment),
        )
        .route("/v1/sends/{id}", get(sends::get_one))
        .route("/v1/unread", get(c::unread))
        .route("/v1/events", get(events::list))
        .route("/v1/events/stream", get(events::stream))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get_one)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/{id}/replay", post(webhooks::replay))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(within_time))
        .layer(axum::middleware::from_fn(problems_only))
        .with_state(state)
}

/// Every error answer is a problem: one axum gives itself (a body too large, a method
/// a route does not take, a path that does not decode) is rewritten as one.
async fn problems_only(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if problem || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than 25 MiB",
        StatusCode::METHOD_NOT_ALLOWED => "this route does not take that method",
        _ => "the request could not be read",
    };
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut rewritten = Problem::new(status, detail).into_response();
    if let Some(allow) = allow {
        rewritten
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    rewritten
}

/// Answers 503 when a request takes longer than [`REQUEST_TIMEOUT`] (a send's outcome
/// is kept: it runs on, and a retry with its key finds it).
async fn within_time(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::unavailable("the request took too long; try again", 5).into_response(),
    }
}

/// A list's `limit` and `cursor`.
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    limit: Option<String>,
    cursor: Option<String>,
}

impl Page {
    /// The limit, 1 to 200 (default 50).
    fn limit(&self) -> Result<usize, Problem> {
        limit_of(self.limit.as_deref(), 50, 200)
    }

    /// Where the walk of list `list` stands (`None`: at its start); a 400 for a cursor
    /// this service did not give for that list.
    fn after<T: serde::de::DeserializeOwned>(
        &self,
        cursors: &Cursors,
        list: &str,
    ) -> Result<Option<T>, Problem> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        let position = cursors.open(list, cursor)?;
        serde_json::from_str(&position).map(Some).map_err(|_| {
            Problem::bad_request("the cursor is not one this service gave for this list")
        })
    }
}

/// A page size given as `text`: 1 to `max`, `default` when not given; a 400 else.
fn limit_of(text: Option<&str>, default: usize, max: usize) -> Result<usize, Problem> {
    match text {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(Problem::bad_request(format!(
                "limit must be a whole number from 1 to {max}"
            ))),
        },
    }
}

/// The cursor after `last`, when a page was full.
fn next_cursor<T: serde::Serialize>(
    cursors: &Cursors,
    list: &str,
    full: bool,
    last: Option<&T>,
) -> Option<String> {
    let last = last.filter(|_| full)?;
    let position = serde_json::to_string(last).ok()?;
    Some(cursors.seal(list, &position))
}

/// A conversation named in a path: its reference in full, on an account the caller
/// sees — anything else is a 404, as if it did not exist.
fn conversation_ref(
    caller: &auth::Caller,
    text: &str,
) -> Result<(ConversationRef, String), Problem> {
    let missing = || Problem::not_found("no such conversation");
    let reference: ConversationRef = text.parse().map_err(|_| missing())?;
    let account = reference
        .account
        .clone()
        .ok_or_else(|| Problem::bad_request("a conversation is named marketplace@account:id"))?;
    if !caller.sees(&account) {
        return Err(missing());
    }
    Ok((reference, account))
}

/// Answers any request no route takes: a 404 problem.
pub async fn no_route() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "no such route").into_response()
}
