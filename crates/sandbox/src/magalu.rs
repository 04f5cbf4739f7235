//! Magalu seller conversations (`/v0/conversations`), paged with `_limit`/`_offset`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, patch};
use axum::Router;
use serde_json::{json, Value};

use crate::http::{bearer, error, json};
use crate::store::{Author, Conv, Msg, Vendor};
use crate::App;

const V: Vendor = Vendor::Magalu;
type Params = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v0/conversations", get(list))
        .route("/v0/conversations/{id}", get(one))
        .route("/v0/conversations/{id}/messages", get(messages).post(send))
        .route("/v0/conversations/{id}/messages/{mid}", get(message))
        .route("/v0/conversations/{id}/read_by", patch(read))
}

fn ts(dt: chrono::DateTime<chrono::Utc>) -> String {
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn buyer(c: &Conv) -> Value {
    json!({"id": format!("6628d7a3c01daebde56f{:04x}", c.n % 0xffff), "full_name": c.buyer.1, "full_name_normalized": c.buyer.1.to_lowercase().replace(' ', ""),
           "external_id": c.buyer.0, "ref_key": c.buyer.0, "type": "CUSTOMER"})
}

fn seller() -> Value {
    json!({"id": "6628d7a3c01daebde56f5599", "full_name": "Z Store", "full_name_normalized": "zstore", "external_id": "zstore", "ref_key": "zstore", "type": "SELLER"})
}

fn conversation_json(c: &Conv) -> Value {
    let last = c.len().checked_sub(1).and_then(|i| c.message(V, i));
    json!({
        "id": c.id, "display_name": c.buyer.1, "owner": {"name": "Z Store", "ref_key": "zstore"},
        "from_user": buyer(c), "to_user": seller(),
        "unread_from_count": 0, "unread_to_count": c.unread,
        "last_interaction_at": ts(c.last_activity(V)),
        "status": if c.open { "OPENED" } else { "CLOSED" },
        "last_message": last.map(|m| json!({"id": m.id, "from_user": if m.author == Author::Buyer { buyer(c) } else { seller() }, "content": m.text, "when_at": {"$date": ts(m.created_at)}})),
        "is_new_to": c.unread > 0,
        "tags": [{"name": "productId", "value": "237497000"}, {"name": "order_code", "value": c.order}],
        "created_at": ts(c.created_at), "updated_at": ts(c.last_activity(V))
    })
}

fn message_json(c: &Conv, m: &Msg, read: bool) -> Value {
    let (from, to) = if m.author == Author::Buyer {
        (buyer(c), seller())
    } else {
        (seller(), buyer(c))
    };
    let reader = to["id"].clone();
    json!({
        "id": m.id, "from_user": from, "to_user": to, "content": m.text,
        "attachments": m.attachments.iter().map(|a| format!("https://docs.magalu.example/{}", a.name)).collect::<Vec<_>>(),
        "read_by": if read { json!([reader]) } else { json!([]) },
        "moderation": {"status": "APPROVED", "when_at": {"$date": ts(m.created_at)}, "block_rules": []},
        "when_at": ts(m.created_at), "custom_fields": [], "metadata": {}, "integration": false
    })
}

fn paging(app: &App, p: &Params) -> Result<(u64, u64), Response> {
    let get = |k: &str| {
        p.get(k).map(|v| {
            v.parse::<u64>().map_err(|_| {
                error(
                    V,
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("invalid {k}"),
                )
            })
        })
    };
    let limit = get("_limit").transpose()?;
    let offset = get("_offset").transpose()?.unwrap_or(0);
    if limit.is_some_and(|l| l == 0 || l > 100) {
        return Err(error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "_limit must be between 1 and 100",
        ));
    }
    Ok((app.page(100, limit, 10), offset))
}

fn envelope(results: Vec<Value>, limit: u64, offset: u64, total: u64) -> Value {
    let count = results.len() as u64;
    let link = |o: u64| format!("?_offset={o}&_limit={limit}");
    json!({
        "meta": {
            "page": {"limit": limit, "offset": offset, "max_limit": 100, "count": count, "total": total},
            "links": {
                "previous": if offset > 0 { json!(link(offset.saturating_sub(limit))) } else { Value::Null },
                "next": if offset + count < total { json!(link(offset + count)) } else { Value::Null },
                "self": link(offset)
            }
        },
        "results": results
    })
}

fn check(app: &App, headers: &HeaderMap) -> Result<(), Response> {
    bearer(app, V, headers)
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap, p: Params) -> Response {
    let (limit, offset) = match check(&app, &headers).and_then(|_| paging(&app, &p)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let market = app.market(V).lock().expect("lock");
    let status = p.get("status").cloned();
    // `last_interaction_at_start` / `_end`: the documented date range (ISO 8601).
    let at = |k: &str| {
        p.get(k)
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
    };
    let (start, end) = (
        at("last_interaction_at_start"),
        at("last_interaction_at_end"),
    );
    let mut convs: Vec<&Conv> = market
        .convs
        .iter()
        .filter(|c| {
            status
                .as_deref()
                .is_none_or(|s| s == if c.open { "OPENED" } else { "CLOSED" })
        })
        .filter(|c| start.is_none_or(|s| c.last_activity(V) >= s))
        .filter(|c| end.is_none_or(|e| c.last_activity(V) <= e))
        .collect();
    convs.sort_by_key(|c| std::cmp::Reverse(c.last_activity(V)));
    let total = convs.len() as u64;
    let results = convs
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|c| conversation_json(c))
        .collect();
    json(StatusCode::OK, envelope(results, limit, offset, total))
}

async fn one(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = check(&app, &headers) {
        return r;
    }
    let market = app.market(V).lock().expect("lock");
    match market.get(&id) {
        Some(c) => json(StatusCode::OK, conversation_json(c)),
        None => error(
            V,
            StatusCode::NOT_FOUND,
            "not_found",
            "Conversation not found",
        ),
    }
}

async fn messages(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    p: Params,
) -> Response {
    let (limit, offset) = match check(&app, &headers).and_then(|_| paging(&app, &p)) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let market = app.market(V).lock().expect("lock");
    let Some(c) = market.get(&id) else {
        return error(
            V,
            StatusCode::NOT_FOUND,
            "not_found",
            "Conversation not found",
        );
    };
    let total = c.len();
    let read_upto = total - c.unread.min(total);
    let results = (offset..total.min(offset + limit))
        .map(|i| message_json(c, &c.message(V, i).expect("in range"), i < read_upto))
        .collect();
    json(StatusCode::OK, envelope(results, limit, offset, total))
}

async fn message(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
) -> Response {
    if let Err(r) = check(&app, &headers) {
        return r;
    }
    let market = app.market(V).lock().expect("lock");
    match market.find_message(V, &mid).filter(|(c, _)| c.id == id) {
        Some((c, m)) => json(StatusCode::OK, message_json(c, &m, true)),
        None => error(V, StatusCode::NOT_FOUND, "not_found", "Message not found"),
    }
}

async fn send(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = check(&app, &headers) {
        return r;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content = body.get("content").and_then(Value::as_str).unwrap_or("");
    let owner_name = body.pointer("/owner/name").and_then(Value::as_str);
    let owner_id = body.pointer("/owner/external_id").and_then(Value::as_str);
    if content.trim().is_empty() || owner_name.is_none() || owner_id.is_none() {
        return error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "content and owner (name, external_id) are required",
        );
    }
    let mut market = app.market(V).lock().expect("lock");
    let Some(m) = market.append(V, &id, Author::Seller, content, Vec::new()) else {
        return error(
            V,
            StatusCode::NOT_FOUND,
            "not_found",
            "Conversation not found",
        );
    };
    let external_id = body
        .get("external_id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("ext-{}", m.id), str::to_owned);
    json(
        StatusCode::CREATED,
        json!({"id": m.id, "content": m.text, "external_id": external_id,
               "from_user": {"full_name": "Z Store", "full_name_normalized": "zstore", "external_id": "zstore", "type": "SELLER",
                             "owner": {"name": owner_name, "external_id": owner_id}}}),
    )
}

async fn read(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = check(&app, &headers) {
        return r;
    }
    let mut market = app.market(V).lock().expect("lock");
    let Some(c) = market.get_mut(&id) else {
        return error(
            V,
            StatusCode::NOT_FOUND,
            "not_found",
            "Conversation not found",
        );
    };
    c.unread = 0;
    json(StatusCode::OK, conversation_json(c))
}
