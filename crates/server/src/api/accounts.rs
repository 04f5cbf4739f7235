//! `/v1/accounts` and `/v1/connect-links`: the store's accounts, read (`read`) and
//! managed (`admin`) — never their credentials.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use marketplace_inbox::sync::{AccountState, StoreErrorKind, StoredAccount};
use marketplace_inbox::{valid_account_name, AccountConfig, Marketplace};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::problem::Problem;
use super::{next_cursor, ApiState, Page};

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

/// A store error of adding or renaming an account: the name (or seller) taken is a 409,
/// the store failing a 503.
fn taken(e: marketplace_inbox::sync::StoreError) -> Problem {
    match e.kind() {
        StoreErrorKind::Conflict | StoreErrorKind::Other => Problem::conflict(e.to_string()),
        _ => Problem::store(&e),
    }
}

/// The account `name`, if the caller sees it; else the same 404 as for none.
async fn visible(state: &ApiState, caller: &Caller, name: &str) -> Result<StoredAccount, Problem> {
    let missing = || Problem::not_found(format!("no account is named {name:?}"));
    if !caller.sees(name) {
        return Err(missing());
    }
    match state.directory.named(name).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(missing()),
        Err(e) => Err(Problem::store(&e)),
    }
}

/// `GET /v1/accounts` (`read`): the accounts the key sees, by name.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    let limit = page.limit()?;
    let after: Option<String> = page.after(&state.cursors, "accounts")?;
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
    let full = seen.len() > limit;
    seen.truncate(limit);
    let next = next_cursor(
        &state.cursors,
        "accounts",
        full,
        seen.last().map(|a| &a.name),
    );
    Ok(Json(json!({
        "data": seen.iter().map(|a| account(a)).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `GET /v1/accounts/{name}` (`read`).
pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    Ok(Json(account(&visible(&state, &caller, &name).await?)))
}

/// `POST /v1/accounts` (`admin`): a config file's account entry, stored with its
/// credentials sealed; `201`, `409` when the name is taken, `422` naming a bad field.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    caller.require("admin")?;
    let Json(body) = body.map_err(|e| Problem::body("body", e.status(), e.body_text()))?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !caller.sees(&name) {
        return Err(Problem::forbidden("admin over this account name"));
    }
    let config: AccountConfig = serde_json::from_value(body).map_err(|e| {
        Problem::unprocessable("account", format!("the account entry is invalid: {e}"))
    })?;
    match state.directory.named(&config.name).await {
        Ok(Some(_)) => {
            return Err(Problem::conflict(format!(
                "an account is already named {:?}",
                config.name
            )))
        }
        Ok(None) => {}
        Err(e) => return Err(Problem::store(&e)),
    }
    let added = state
        .directory
        .add(&state.key, &config)
        .await
        .map_err(taken)?;
    Ok((StatusCode::CREATED, Json(account(&added))).into_response())
}

/// `PATCH /v1/accounts/{name}` (`admin`): `name` renames it (its mirror with it),
/// `state` (`active`/`disabled`) turns its sync on or off, any other field of a config
/// entry (`poll_interval_secs`, …) changes that setting.
pub async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<Map<String, Value>>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, Problem> {
    caller.require("admin")?;
    let Json(mut change) = body.map_err(|e| Problem::body("body", e.status(), e.body_text()))?;
    let mut current = visible(&state, &caller, &name).await?;
    let wanted_state = match change.remove("state") {
        None => None,
        Some(Value::String(s)) if s == "active" => Some(AccountState::Active),
        Some(Value::String(s)) if s == "disabled" => Some(AccountState::Disabled),
        Some(other) => {
            return Err(Problem::unprocessable(
                "state",
                format!("state must be \"active\" or \"disabled\", not {other}"),
            ))
        }
    };
    let new_name = match change.remove("name") {
        None => None,
        Some(Value::String(n)) if n == current.name => None,
        Some(Value::String(n)) if valid_account_name(&n) => Some(n),
        Some(other) => {
            return Err(Problem::unprocessable(
                "name",
                format!("a name is 1 to 64 letters, digits, '.', '_' or '-', not {other}"),
            ))
        }
    };
    for field in [
        "marketplace",
        "token",
        "client_id",
        "client_secret",
        "refresh_token",
        "access_token",
        "api_key",
    ] {
        if change.contains_key(field) {
            return Err(Problem::unprocessable(
                field,
                format!("{field} cannot be changed here (connect the account again for new credentials)"),
            ));
        }
    }
    if !change.is_empty() {
        let config = state
            .directory
            .config(&state.key, &current)
            .await
            .map_err(|e| Problem::store(&e))?;
        let Ok(Value::Object(mut entry)) = serde_json::to_value(&config) else {
            return Err(Problem::unavailable(
                "the account's settings could not be read",
                5,
            ));
        };
        entry.extend(change);
        let merged: AccountConfig = serde_json::from_value(Value::Object(entry)).map_err(|e| {
            Problem::unprocessable("account", format!("the settings are invalid: {e}"))
        })?;
        current = state
            .directory
            .import(&state.key, &merged)
            .await
            .map_err(|e| Problem::store(&e))?
            .0;
    }
    if let Some(s) = wanted_state {
        state
            .directory
            .set_state(&current.id, s)
            .await
            .map_err(|e| Problem::store(&e))?;
    }
    if let Some(n) = new_name {
        if !caller.sees(&n) {
            return Err(Problem::forbidden("admin over the new name"));
        }
        current = state
            .directory
            .rename(&current.name, &n)
            .await
            .map_err(taken)?;
    }
    let now = visible(&state, &caller, &current.name).await?;
    Ok(Json(account(&now)))
}

/// `?purge=true`.
#[derive(Debug, Default, Deserialize)]
pub struct Purge {
    purge: Option<String>,
}

/// `DELETE /v1/accounts/{name}` (`admin`): `204`; `?purge=true` drops its mirror too.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(purge): Query<Purge>,
) -> Result<StatusCode, Problem> {
    caller.require("admin")?;
    let purge = super::conversations::flag("purge", purge.purge.as_deref())?.unwrap_or(false);
    visible(&state, &caller, &name).await?;
    match state.directory.remove(&name, purge).await {
        Ok(Some(_)) => {
            state.engine.gone(&name).await;
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(None) => Err(Problem::not_found(format!("no account is named {name:?}"))),
        Err(e) => Err(Problem::store(&e)),
    }
}

/// `POST /v1/connect-links` body.
#[derive(Debug, Deserialize)]
pub struct NewLink {
    marketplace: String,
    name: String,
    return_to: Option<String>,
    #[serde(default)]
    reconnect: bool,
}

/// `POST /v1/connect-links` (`admin`): a link a seller opens to connect an account
/// (`201` `{"url", "expires_at"}`).
pub async fn connect_link(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<Json<NewLink>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    caller.require("admin")?;
    let Json(new) = body.map_err(|e| Problem::body("body", e.status(), e.body_text()))?;
    let marketplace: Marketplace =
        new.marketplace
            .parse()
            .map_err(|e: marketplace_inbox::Error| {
                Problem::unprocessable("marketplace", e.to_string())
            })?;
    if !valid_account_name(&new.name) {
        return Err(Problem::unprocessable(
            "name",
            "a name is 1 to 64 letters, digits, '.', '_' or '-'",
        ));
    }
    if !caller.sees(&new.name) {
        return Err(Problem::forbidden("admin over this account name"));
    }
    let Some(public_url) = &state.public_url else {
        return Err(Problem::conflict(
            "this service has no public URL (inbox serve --public-url), so sellers cannot open connect links",
        ));
    };
    match (state.directory.named(&new.name).await, new.reconnect) {
        (Ok(Some(_)), false) => {
            return Err(Problem::conflict(format!(
                "an account is already named {:?} (reconnect: true connects it again)",
                new.name
            )))
        }
        (Ok(None), true) => {
            return Err(Problem::not_found(format!(
                "no account is named {:?} to connect again",
                new.name
            )))
        }
        (Err(e), _) => return Err(Problem::store(&e)),
        _ => {}
    }
    let (url, expires_at) = crate::connect::create_link(
        &state.directory,
        marketplace,
        &new.name,
        new.return_to.as_deref(),
        new.reconnect,
        public_url,
        crate::connect::LINK_TTL,
    )
    .await
    .map_err(|e| Problem::unprocessable("connect link", format!("{e:#}")))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"url": url, "expires_at": expires_at})),
    )
        .into_response())
}
