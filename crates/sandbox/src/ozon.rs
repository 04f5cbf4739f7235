//! Ozon seller chats: `POST` with JSON bodies and `Client-Id` / `Api-Key` headers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::http::{error, json, ozon_keys};
use crate::store::{Attachment, Author, Conv, Msg, Vendor};
use crate::App;

const V: Vendor = Vendor::Ozon;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v3/chat/list", post(list))
        .route("/v3/chat/history", post(history))
        .route("/v1/chat/send/message", post(send))
        .route("/v1/chat/send/file", post(send_file))
        .route("/v1/chat/start", post(start))
        .route("/v2/chat/read", post(read))
        .route("/v1/roles", post(roles))
}

/// The key's roles and when it expires (six months after the sandbox started, unless
/// [`crate::Sandbox::set_key_expiry`] said otherwise).
async fn roles(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let c = &app.credentials();
    if let Err(refused) = ozon_keys(&headers, &c.ozon_client_id, &c.ozon_api_key) {
        return refused;
    }
    let expires = app.key_expiry(crate::accounts::current());
    json(
        StatusCode::OK,
        json!({"expires_at": ts(expires), "roles": [
            {"name": "Chat", "methods": ["/v3/chat/list", "/v3/chat/history", "/v1/chat/send/message",
                                          "/v1/chat/send/file", "/v1/chat/start", "/v2/chat/read"]}]}),
    )
}

fn bad(message: &str) -> Response {
    error(V, StatusCode::BAD_REQUEST, "3", message)
}

fn body_of(app: &App, headers: &HeaderMap, body: &Bytes) -> Result<Value, Response> {
    let c = &app.credentials();
    ozon_keys(headers, &c.ozon_client_id, &c.ozon_api_key)?;
    serde_json::from_slice(body).map_err(|_| bad("invalid JSON body"))
}

fn ts(dt: chrono::DateTime<Utc>) -> String {
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn num_id(m: &Msg) -> Value {
    m.id.parse::<u64>()
        .map_or_else(|_| json!(m.id), |n| json!(n))
}

fn chat_json(c: &Conv) -> Value {
    let total = c.len();
    let first_unread = total
        .checked_sub(c.unread)
        .filter(|_| c.unread > 0)
        .and_then(|i| c.message(V, i));
    let last = total.checked_sub(1).and_then(|i| c.message(V, i));
    json!({
        "chat": {"created_at": ts(c.created_at), "chat_id": c.id, "chat_status": if c.open { "OPENED" } else { "CLOSED" }, "chat_type": c.kind},
        "first_unread_message_id": first_unread.map_or(json!(0), |m| num_id(&m)),
        "last_message_id": last.map_or(json!(0), |m| num_id(&m)),
        "unread_count": c.unread
    })
}

fn message_json(c: &Conv, m: &Msg, read: bool) -> Value {
    let user = match m.author {
        Author::Buyer => {
            json!({"id": c.buyer.0, "type": if c.n == 0 { "Сustomer" } else { "Customer" }})
        }
        Author::Seller => json!({"id": "123456", "type": "Seller"}),
    };
    let mut data = vec![json!(m.text)];
    data.extend(
        m.attachments
            .iter()
            .map(|a| json!(format!("https://cdn.ozon.example/chat/{}", a.id))),
    );
    json!({
        "message_id": num_id(m), "created_at": ts(m.created_at), "data": data,
        "is_image": m.attachments.iter().any(|a| a.mime.starts_with("image/")), "is_read": read,
        "moderate_image_status": "SUCCESS", "context": {"order_number": c.order, "sku": "987654321"}, "user": user
    })
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_of(&app, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(limit) = body.get("limit").and_then(Value::as_u64) else {
        return bad("limit is required");
    };
    if limit == 0 || limit > 100 {
        return bad("limit must be between 1 and 100");
    }
    let limit = app.page(100, Some(limit), 30);
    let offset = match body
        .get("cursor")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        None => 0,
        Some(c) => match c.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return bad("Cursor value is incorrect"),
        },
    };
    let unread_only = body
        .pointer("/filter/unread_only")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let status = body
        .pointer("/filter/chat_status")
        .and_then(Value::as_str)
        .unwrap_or("All")
        .to_ascii_lowercase();
    let market = app.market(V).lock().expect("lock");
    let mut chats: Vec<&Conv> = market
        .convs
        .iter()
        .filter(|c| !unread_only || c.unread > 0)
        .filter(|c| match status.as_str() {
            "opened" => c.open,
            "closed" => !c.open,
            _ => true,
        })
        .collect();
    chats.sort_by_key(|c| std::cmp::Reverse(c.last_activity(V)));
    let page: Vec<Value> = chats
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|c| chat_json(c))
        .collect();
    let end = offset + page.len() as u64;
    let has_next = (end as usize) < chats.len();
    json(
        StatusCode::OK,
        json!({"chats": page, "total_unread_count": market.convs.iter().map(|c| c.unread).sum::<u64>(),
               "cursor": if has_next { end.to_string() } else { String::new() }, "has_next": has_next}),
    )
}

fn position(c: &Conv, id: u64) -> Option<u64> {
    c.index_of(V, &id.to_string())
}

async fn history(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_of(&app, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(chat_id) = body.get("chat_id").and_then(Value::as_str) else {
        return bad("chat_id is required");
    };
    let forward = body.get("direction").and_then(Value::as_str) == Some("Forward");
    let from = body
        .get("from_message_id")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
    if forward && from.is_none() {
        return bad("from_message_id is required with direction Forward");
    }
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(50);
    if limit == 0 || limit > 1000 {
        return bad("limit must be between 1 and 1000");
    }
    let limit = app.page(1000, Some(limit), 50);
    let market = app.market(V).lock().expect("lock");
    let Some(c) = market.get(chat_id) else {
        return error(V, StatusCode::NOT_FOUND, "5", "chat not found");
    };
    let total = c.len();
    let read_upto = total - c.unread.min(total);
    let start = match from {
        None => total.checked_sub(1),
        Some(id) => match position(c, id) {
            Some(p) => Some(p),
            None => return bad("from_message_id not found in the chat"),
        },
    };
    let indices: Vec<u64> = match (start, forward) {
        (None, _) => Vec::new(),
        (Some(s), false) => (0..=s).rev().take(limit as usize + 1).collect(),
        (Some(s), true) => (s..total).take(limit as usize + 1).collect(),
    };
    let has_next = indices.len() as u64 > limit;
    let messages: Vec<Value> = indices
        .iter()
        .take(limit as usize)
        .map(|&i| message_json(c, &c.message(V, i).expect("in range"), i < read_upto))
        .collect();
    json(
        StatusCode::OK,
        json!({"has_next": has_next, "messages": messages}),
    )
}

fn append(
    app: &App,
    chat_id: &str,
    text: &str,
    attachments: Vec<Attachment>,
) -> Result<(), Response> {
    let mut market = app.market(V).lock().expect("lock");
    match market.get(chat_id) {
        None => return Err(error(V, StatusCode::NOT_FOUND, "5", "chat not found")),
        Some(c) if !c.open => {
            return Err(error(
                V,
                StatusCode::FORBIDDEN,
                "7",
                "access period has expired",
            ))
        }
        Some(_) => {}
    }
    market.append(V, chat_id, Author::Seller, text, attachments);
    Ok(())
}

async fn send(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_of(&app, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (Some(chat_id), Some(text)) = (
        body.get("chat_id").and_then(Value::as_str),
        body.get("text").and_then(Value::as_str),
    ) else {
        return bad("chat_id and text are required");
    };
    let n = text.chars().count();
    if n == 0 || n > 1000 {
        return bad("text length must be between 1 and 1000 characters");
    }
    match append(&app, chat_id, text, Vec::new()) {
        Ok(()) => json(StatusCode::OK, json!({"result": "success"})),
        Err(r) => r,
    }
}

async fn send_file(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_of(&app, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (Some(chat_id), Some(content), Some(name)) = (
        body.get("chat_id").and_then(Value::as_str),
        body.get("base64_content").and_then(Value::as_str),
        body.get("name").and_then(Value::as_str),
    ) else {
        return bad("chat_id, base64_content and name are required");
    };
    if !name.contains('.') {
        return bad("name must include the file extension");
    }
    let mime = match name
        .rsplit('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    };
    let size = (content.len() as u64 * 3) / 4;
    let id = app.market(V).lock().expect("lock").store_file(
        "file-",
        "",
        name,
        mime,
        content.as_bytes().to_vec(),
    );
    match append(
        &app,
        chat_id,
        "",
        vec![Attachment {
            id,
            name: name.into(),
            mime: mime.into(),
            size,
        }],
    ) {
        Ok(()) => json(StatusCode::OK, json!({"result": "success"})),
        Err(r) => r,
    }
}

async fn start(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_of(&app, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(posting) = body.get("posting_number").and_then(Value::as_str) else {
        return bad("posting_number is required");
    };
    let mut market = app.market(V).lock().expect("lock");
    if let Some(c) = market.convs.iter().find(|c| c.order == posting) {
        return json(StatusCode::OK, json!({"result": {"chat_id": c.id}}));
    }
    let n = 1_000_000 + market.convs.len() as u64;
    let id = crate::store::conversation_id(V, n);
    market.push(Conv {
        id: id.clone(),
        n,
        buyer: ("200001".into(), "buyer".into()),
        kind: "BUYER_SELLER",
        open: true,
        created_at: Utc::now() - Duration::seconds(1),
        generated: 0,
        extra: Vec::new(),
        pending: Vec::new(),
        unread: 0,
        order: posting.into(),
    });
    json(StatusCode::OK, json!({"result": {"chat_id": id}}))
}

async fn read(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match body_of(&app, &headers, &body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(chat_id) = body.get("chat_id").and_then(Value::as_str) else {
        return bad("chat_id is required");
    };
    let from = body
        .get("from_message_id")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
    let mut market = app.market(V).lock().expect("lock");
    let Some(c) = market.get(chat_id) else {
        return error(V, StatusCode::NOT_FOUND, "5", "chat not found");
    };
    let total = c.len();
    let remaining = match from.and_then(|id| position(c, id)) {
        Some(p) => c.unread.min(total - p - 1),
        None => 0,
    };
    market.get_mut(chat_id).expect("exists").unread = remaining;
    json(StatusCode::OK, json!({"unread_count": remaining}))
}
