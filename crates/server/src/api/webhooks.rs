//! `/v1/webhooks` (`admin`, a key over every account): the endpoints events are
//! delivered to ([`crate::webhooks`]), their attempts, replays and secret rotation. A
//! secret is shown only when it is made: on creation and on rotation.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use marketplace_inbox::sync::{check_event_types, EventFilter, Replay, Webhook, WebhookChange};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::problem::Problem;
use super::{next_cursor, ApiState, Page};
use crate::webhooks::target;
use marketplace_inbox::rfc3339;

/// Webhooks deliver every account's events: only a key over all of them manages them.
fn admin(caller: &Caller) -> Result<(), Problem> {
    caller.require("admin")?;
    if caller.accounts().is_some() {
        return Err(Problem::forbidden("admin over every account (webhooks)"));
    }
    Ok(())
}

fn missing(id: &str) -> Problem {
    Problem::not_found(format!("no webhook has the id {id:?}"))
}

/// What the store found for the endpoint `id`: it, a 404, or a 503.
fn found<T>(
    id: &str,
    result: Result<Option<T>, marketplace_inbox::sync::StoreError>,
) -> Result<T, Problem> {
    match result {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(missing(id)),
        Err(e) => Err(Problem::store(&e)),
    }
}

/// `body`'s JSON object, or the problem of a body that is none.
fn object(
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Map<String, Value>, Problem> {
    let Json(body) = body.map_err(|e| Problem::body("body", e.status(), e.body_text()))?;
    match body {
        Value::Object(o) => Ok(o),
        _ => Err(Problem::unprocessable(
            "body",
            "the body must be a JSON object",
        )),
    }
}

/// A list of names in `field`: absent or `null` is `None` (all); else non-empty strings.
fn names(body: &Map<String, Value>, field: &str) -> Result<Option<Vec<String>>, Problem> {
    let bad = || Problem::unprocessable(field, format!("{field} must be a list of names, or null"));
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|s| !s.trim().is_empty() && s.len() <= 200)
                    .map(str::to_string)
                    .ok_or_else(bad)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// The event types in `body`, each one the log holds.
fn types(body: &Map<String, Value>) -> Result<Option<Vec<String>>, Problem> {
    let types = names(body, "types")?;
    if let Some(types) = &types {
        check_event_types(types).map_err(|why| Problem::unprocessable("types", why))?;
    }
    Ok(types)
}

/// A URL the service may deliver to.
fn url(state: &ApiState, body: &Map<String, Value>) -> Result<Option<String>, Problem> {
    match body.get("url") {
        None => Ok(None),
        Some(Value::String(u)) if u.len() <= 2000 => {
            target::check_url(u, state.webhooks_allow_private)
                .map(|_| Some(u.clone()))
                .map_err(|why| Problem::unprocessable("url", why))
        }
        Some(_) => Err(Problem::unprocessable(
            "url",
            "url must be a string of at most 2000 characters",
        )),
    }
}

fn description(body: &Map<String, Value>) -> Result<Option<Option<String>>, Problem> {
    match body.get("description") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(d)) if d.chars().count() <= 500 => Ok(Some(Some(d.clone()))),
        Some(_) => Err(Problem::unprocessable(
            "description",
            "description must be a string of at most 500 characters",
        )),
    }
}

/// `POST /v1/webhooks`: `{"url", "types"?, "accounts"?, "description"?}` → `201` with the
/// endpoint and its secret; it receives the events committed from now on.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    admin(&caller)?;
    let body = object(body)?;
    let Some(url) = url(&state, &body)? else {
        return Err(Problem::unprocessable("url", "url is required"));
    };
    let filter = EventFilter {
        types: types(&body)?,
        accounts: names(&body, "accounts")?,
    };
    let description = description(&body)?.flatten();
    let (hook, secret) = state
        .directory
        .create_webhook(&url, &filter, description.as_deref())
        .await
        .map_err(|e| Problem::store(&e))?;
    Ok((StatusCode::CREATED, Json(hook.to_json_with(&secret))).into_response())
}

/// `GET /v1/webhooks`: every endpoint, oldest first (no secrets).
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, Problem> {
    admin(&caller)?;
    let limit = page.limit()?;
    let after: Option<String> = page.after(&state.cursors, "webhooks")?;
    let all = state
        .directory
        .webhooks()
        .await
        .map_err(|e| Problem::store(&e))?;
    let mut seen: Vec<&Webhook> = match &after {
        Some(last) => all.iter().skip_while(|h| &h.id != last).skip(1).collect(),
        None => all.iter().collect(),
    };
    let full = seen.len() > limit;
    seen.truncate(limit);
    let next = next_cursor(&state.cursors, "webhooks", full, seen.last().map(|h| &h.id));
    Ok(Json(json!({
        "data": seen.iter().map(|h| h.to_json()).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /v1/webhooks/{id}`.
pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    admin(&caller)?;
    let hook = found(&id, state.directory.webhook(&id).await)?;
    Ok(Json(hook.to_json()))
}

/// `PATCH /v1/webhooks/{id}`: any of `url`, `types`, `accounts`, `description`, `state`
/// (`enabled` or `disabled`; enabling again resumes what it is owed).
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    admin(&caller)?;
    let body = object(body)?;
    let new_state = match body.get("state") {
        None => None,
        Some(Value::String(s)) if s == "enabled" || s == "disabled" => Some(s.clone()),
        Some(_) => {
            return Err(Problem::unprocessable(
                "state",
                "state must be enabled or disabled",
            ))
        }
    };
    let change = WebhookChange {
        url: url(&state, &body)?,
        types: body
            .contains_key("types")
            .then(|| types(&body))
            .transpose()?,
        accounts: body
            .contains_key("accounts")
            .then(|| names(&body, "accounts"))
            .transpose()?,
        description: description(&body)?,
        state: new_state,
    };
    let hook = found(&id, state.directory.update_webhook(&id, &change).await)?;
    Ok(Json(hook.to_json()))
}

/// `DELETE /v1/webhooks/{id}`: `204`; what it was owed is dropped.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    admin(&caller)?;
    match state.directory.delete_webhook(&id).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(missing(&id)),
        Err(e) => Err(Problem::store(&e)),
    }
}

/// `POST /v1/webhooks/{id}/rotate`: a new secret, shown once; the old one keeps signing
/// for 24 h.
pub async fn rotate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    admin(&caller)?;
    let (hook, secret) = found(&id, state.directory.rotate_webhook(&id).await)?;
    Ok(Json(hook.to_json_with(&secret)))
}

/// `GET /v1/webhooks/{id}/deliveries`: its attempts, newest first.
pub async fn deliveries(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, Problem> {
    admin(&caller)?;
    let limit = page.limit()?;
    let before: Option<i64> = page.after(&state.cursors, &format!("deliveries:{id}"))?;
    found(&id, state.directory.webhook(&id).await)?;
    let mut attempts = state
        .directory
        .webhook_attempts(&id, before, limit.saturating_add(1))
        .await
        .map_err(|e| Problem::store(&e))?;
    let full = attempts.len() > limit;
    attempts.truncate(limit);
    let next = next_cursor(
        &state.cursors,
        &format!("deliveries:{id}"),
        full,
        attempts.last().map(|a| &a.id),
    );
    let data: Vec<Value> = attempts
        .iter()
        .map(|a| {
            json!({
                "event_id": format!("evt_{}", a.seq),
                "attempt": a.attempt,
                "status": a.status,
                "error": a.error,
                "at": rfc3339(a.at),
                "next_attempt_at": a.next_attempt_at.and_then(rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({"data": data, "next_cursor": next})))
}

/// A replay's body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    after: Option<Value>,
    event_ids: Option<Vec<String>>,
}

/// An event id (`evt_N`) or a bare seq, as its seq.
fn event_seq(id: &str) -> Option<u64> {
    id.strip_prefix("evt_").unwrap_or(id).parse().ok()
}

/// `POST /v1/webhooks/{id}/replay`: `{"after": SEQ}` or `{"event_ids": [...]}` → `202`
/// `{"queued": N}`; each event is delivered again with its own id.
pub async fn replay(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    admin(&caller)?;
    let body = Value::Object(object(body)?);
    let asked: ReplayBody = serde_json::from_value(body)
        .map_err(|e| Problem::unprocessable("replay", format!("give after or event_ids: {e}")))?;
    let replay = match (asked.after, asked.event_ids) {
        (Some(after), None) => Replay::After(
            after
                .as_u64()
                .or_else(|| after.as_str().and_then(event_seq))
                .ok_or_else(|| Problem::unprocessable("after", "after must be an event's seq"))?,
        ),
        (None, Some(ids)) if !ids.is_empty() && ids.len() <= 1000 => Replay::Events(
            ids.iter()
                .map(|i| {
                    event_seq(i).ok_or_else(|| {
                        Problem::unprocessable("event_ids", format!("{i:?} is not an event id"))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err(Problem::unprocessable(
                "replay",
                "give either after or event_ids (1 to 1000 ids)",
            ))
        }
    };
    let hook = found(&id, state.directory.webhook(&id).await)?;
    let queued = state
        .directory
        .replay_webhook(&hook, &replay)
        .await
        .map_err(|e| Problem::store(&e))?;
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": queued}))).into_response())
}
