//! The HTTP API (`specs/inbox-api.yaml`, the contract; `inbox-api-client` is generated
//! from it): mounted by `inbox serve` beside the push routes when it runs the store's
//! accounts. Every route takes a bearer API key ([`auth`]); errors are RFC 9457 problems
//! ([`problem`]); lists walk by opaque, authenticated cursors ([`cursor`]).
//!
//! Served so far: `GET /openapi.yaml`, `GET /v1/accounts`, `GET /v1/accounts/{name}`.

pub mod auth;
pub mod cursor;
pub mod problem;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use marketplace_inbox::sync::StoredAccount;
use serde::Deserialize;
use serde_json::{json, Value};

use self::auth::Caller;
use self::cursor::Cursors;
use self::problem::Problem;
use crate::Directory;

/// What the API's routes share.
#[derive(Clone)]
pub struct ApiState {
    directory: Directory,
    cursors: Arc<Cursors>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

impl ApiState {
    /// The API over `directory`'s accounts; cursors are authenticated with a key derived
    /// from the operator's `key`.
    pub fn new(directory: Directory, key: &marketplace_inbox::TokenKey) -> ApiState {
        ApiState {
            directory,
            cursors: Arc::new(Cursors::new(key.derived("inbox-api cursors"))),
        }
    }
}

/// The API's routes.
pub fn api_router(state: ApiState) -> Router {
    Router::new()
        .route("/openapi.yaml", get(openapi))
        .route("/v1/accounts", get(list_accounts))
        .route("/v1/accounts/{name}", get(get_account))
        .with_state(state)
}

/// `GET /openapi.yaml`: the contract.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        inbox_api_client::SPEC,
    )
        .into_response()
}

/// An account's JSON form: never its credentials.
fn account(a: &StoredAccount) -> Value {
    json!({
        "name": a.name,
        "marketplace": a.marketplace.as_str(),
        "state": a.state.as_str(),
        "seller_id": a.seller_id,
        "created_at": a.created_at,
        "last_synced_at": a.last_sync,
        "last_error": null,
        "credentials_expire_at": a.credentials_expire_at,
    })
}

/// A list's `limit` and `cursor`.
#[derive(Debug, Default, Deserialize)]
struct Page {
    limit: Option<String>,
    cursor: Option<String>,
}

impl Page {
    /// The limit, 1 to 200 (default 50).
    fn limit(&self) -> Result<usize, Problem> {
        match &self.limit {
            None => Ok(50),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=200).contains(&n) => Ok(n),
                _ => Err(Problem::bad_request(
                    "limit must be a whole number from 1 to 200",
                )),
            },
        }
    }
}

/// `GET /v1/accounts` (`read`): the accounts the key sees, by name.
async fn list_accounts(
    State(state): State<ApiState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    let limit = page.limit()?;
    let after = match &page.cursor {
        Some(c) => Some(state.cursors.open("accounts", c)?),
        None => None,
    };
    let all = state
        .directory
        .list()
        .await
        .map_err(|e| Problem::store(&e))?;
    let mut seen: Vec<&StoredAccount> = all
        .iter()
        .filter(|a| caller.sees(&a.name))
        .filter(|a| after.as_deref().is_none_or(|last| a.name.as_str() > last))
        .collect();
    let more = seen.len() > limit;
    seen.truncate(limit);
    let next = match (more, seen.last()) {
        (true, Some(last)) => Some(state.cursors.seal("accounts", &last.name)),
        _ => None,
    };
    Ok(Json(json!({
        "data": seen.iter().map(|a| account(a)).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /v1/accounts/{name}` (`read`).
async fn get_account(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    let missing = || Problem::not_found(format!("no account is named {name:?}"));
    if !caller.sees(&name) {
        return Err(missing());
    }
    match state.directory.named(&name).await {
        Ok(Some(a)) => Ok(Json(account(&a))),
        Ok(None) => Err(missing()),
        Err(e) => Err(Problem::store(&e)),
    }
}

/// Answers any request no route takes: a 404 problem.
pub async fn no_route() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "no such route").into_response()
}
