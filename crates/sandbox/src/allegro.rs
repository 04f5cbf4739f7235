//! Allegro Message Center: public.v1 and beta.v1, chosen by `Accept`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value};

use crate::http::{bearer, error, json_as};
use crate::store::{Attachment, Author, Conv, Msg, Vendor};
use crate::App;

const V: Vendor = Vendor::Allegro;
const PUBLIC: &str = "application/vnd.allegro.public.v1+json";
const BETA: &str = "application/vnd.allegro.beta.v1+json";
const SELLER: &str = "sandbox-seller";
const UPLOAD_TYPES: [&str; 6] = [
    "image/png",
    "image/gif",
    "image/bmp",
    "image/tiff",
    "image/jpeg",
    "application/pdf",
];

#[derive(Clone, Copy, PartialEq)]
enum Ver {
    Public,
    Beta,
}

impl Ver {
    fn media(self) -> &'static str {
        match self {
            Ver::Public => PUBLIC,
            Ver::Beta => BETA,
        }
    }
}

type Params = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/messaging/threads", get(list_threads))
        .route("/messaging/threads/{id}", get(get_thread))
        .route("/messaging/threads/{id}/read", put(read))
        .route(
            "/messaging/threads/{id}/messages",
            get(list_messages).post(reply),
        )
        .route("/messaging/messages", post(new_message))
        .route(
            "/messaging/messages/{id}",
            get(get_message).delete(delete_message),
        )
        .route("/messaging/message-attachments", post(declare))
        .route(
            "/messaging/message-attachments/{id}",
            put(upload).get(download),
        )
}

/// Auth, then the media version from `Accept` (406 for anything else).
fn check(app: &App, headers: &HeaderMap) -> Result<Ver, Response> {
    bearer(app, V, headers)?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains(BETA) {
        if app.config.allegro_beta {
            return Ok(Ver::Beta);
        }
    } else if accept.contains(PUBLIC) {
        return Ok(Ver::Public);
    }
    Err(error(
        V,
        StatusCode::NOT_ACCEPTABLE,
        "NotAcceptableException",
        "Not acceptable representation",
    ))
}

fn check_body(headers: &HeaderMap, ver: Ver) -> Result<(), Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with(ver.media()) {
        Ok(())
    } else {
        Err(error(
            V,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaTypeException",
            "Content type not supported",
        ))
    }
}

fn unprocessable(code: &str, message: &str) -> Response {
    error(V, StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn not_found(what: &str) -> Response {
    error(
        V,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        &format!("{what} not found"),
    )
}

fn num(p: &Params, key: &str) -> Result<Option<u64>, Response> {
    match p.get(key) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| unprocessable("VALIDATION_ERROR", &format!("Incorrect {key}"))),
    }
}

fn ts(dt: chrono::DateTime<chrono::Utc>) -> String {
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn thread_json(c: &Conv, ver: Ver) -> Value {
    let last = ts(c.last_activity(V));
    match ver {
        Ver::Public => json!({
            "id": c.id, "read": c.unread == 0, "lastMessageDateTime": last,
            "interlocutor": {"login": c.buyer.1, "avatarUrl": format!("https://a.allegroimg.allegro.pl/avatar/{}", c.buyer.0)}
        }),
        Ver::Beta => json!({
            "id": c.id, "read": c.unread == 0, "type": c.kind,
            "subType": if c.kind == "POST_PURCHASE_ISSUE" { json!("PRODUCT_ARRIVED_DAMAGED") } else { Value::Null },
            "status": if c.open { "OPEN" } else { "CLOSED" },
            "createdAt": ts(c.created_at), "lastMessageDateTime": last,
            "participants": [{"role": "BUYER", "login": c.buyer.1}, {"role": "SELLER", "login": SELLER}],
            "orders": [{"id": c.order, "offers": [{"id": "7680560734", "quantity": 1}]}]
        }),
    }
}

fn message_json(c: &Conv, m: &Msg, ver: Ver) -> Value {
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| {
            // The sandbox's "virus scan": a file named like the antivirus test file is UNSAFE.
            let status = if a.name.to_ascii_lowercase().contains("eicar") { "UNSAFE" } else { "SAFE" };
            let mut v = json!({"fileName": a.name, "mimeType": a.mime, "url": format!("https://upload.allegro.pl/message-center/message-attachments/{}", a.id), "status": status});
            if ver == Ver::Beta {
                v["id"] = json!(a.id);
            }
            v
        })
        .collect();
    let login = match m.author {
        Author::Buyer => c.buyer.1.clone(),
        Author::Seller => SELLER.to_string(),
    };
    let mut v = json!({
        "id": m.id, "status": "DELIVERED", "type": "MESSAGE_CENTER", "createdAt": ts(m.created_at),
        "text": m.text, "subject": null,
        "relatesTo": {"offer": {"id": "7680560734"}, "order": {"id": c.order}},
        "hasAdditionalAttachments": false, "attachments": attachments
    });
    match ver {
        Ver::Public => {
            v["thread"] = json!({"id": c.id});
            v["author"] = json!({"login": login, "isInterlocutor": m.author == Author::Buyer});
        }
        Ver::Beta => {
            v["author"] = json!({"role": if m.author == Author::Buyer { "BUYER" } else { "SELLER" }, "login": login});
            v["additionalInformation"] = Value::Null;
        }
    }
    v
}

async fn list_threads(State(app): State<Arc<App>>, headers: HeaderMap, p: Params) -> Response {
    let ver = match check(&app, &headers) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let limit = match num(&p, "limit") {
        Ok(l) => l,
        Err(r) => return r,
    };
    if limit.is_some_and(|l| !(1..=20).contains(&l)) {
        return unprocessable("VALIDATION_ERROR", "Incorrect limit or offset");
    }
    let limit = app.page(20, limit, 20);
    let market = app.market(V).lock().expect("lock");
    let mut order: Vec<&Conv> = market
        .convs
        .iter()
        .filter(|c| ver == Ver::Public || p.get("type").is_none_or(|t| t == c.kind))
        .filter(|c| {
            ver == Ver::Public
                || p.get("read")
                    .is_none_or(|r| (r == "true") == (c.unread == 0))
        })
        .collect();
    order.sort_by_key(|c| std::cmp::Reverse(c.last_activity(V)));
    let offset = match ver {
        Ver::Public => match num(&p, "offset") {
            Ok(o) => o.unwrap_or(0),
            Err(r) => return r,
        },
        Ver::Beta => match p.get("page.id") {
            None => 0,
            Some(id) => match id.strip_prefix('o').and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => return unprocessable("VALIDATION_ERROR", "Invalid page.id"),
            },
        },
    };
    let page: Vec<Value> = order
        .iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|c| thread_json(c, ver))
        .collect();
    let end = offset + page.len() as u64;
    let body = match ver {
        Ver::Public => json!({"threads": page, "offset": offset, "limit": limit}),
        Ver::Beta => {
            json!({"threads": page, "nextPage": if (end as usize) < order.len() { json!({"id": format!("o{end}")}) } else { Value::Null }})
        }
    };
    json_as(StatusCode::OK, ver.media(), body)
}

async fn get_thread(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ver = match check(&app, &headers) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let market = app.market(V).lock().expect("lock");
    match market.get(&id) {
        Some(c) => json_as(StatusCode::OK, ver.media(), thread_json(c, ver)),
        None => not_found("Thread"),
    }
}

async fn read(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ver = match check(&app, &headers).and_then(|v| check_body(&headers, v).map(|_| v)) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let flag = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("read").and_then(Value::as_bool));
    let Some(flag) = flag else {
        return unprocessable("VALIDATION_ERROR", "missing flag in the request body");
    };
    let mut market = app.market(V).lock().expect("lock");
    let Some(c) = market.get_mut(&id) else {
        return not_found("Thread");
    };
    c.unread = if flag { 0 } else { c.unread.max(1) };
    match ver {
        Ver::Public => json_as(StatusCode::OK, PUBLIC, thread_json(c, ver)),
        Ver::Beta => json_as(StatusCode::OK, BETA, json!({"read": flag})),
    }
}

async fn list_messages(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    p: Params,
) -> Response {
    let ver = match check(&app, &headers) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (limit, offset) = match (num(&p, "limit"), num(&p, "offset")) {
        (Ok(l), Ok(o)) => (l, o),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if limit.is_some_and(|l| !(1..=20).contains(&l)) || offset.is_some_and(|o| o > 15_000) {
        return unprocessable("VALIDATION_ERROR", "Incorrect limit or offset");
    }
    if p.contains_key("before") && offset.is_some() {
        return unprocessable("VALIDATION_ERROR", "before cannot be combined with offset");
    }
    let limit = app.page(20, limit, 20);
    let market = app.market(V).lock().expect("lock");
    let Some(c) = market.get(&id) else {
        return not_found("Thread");
    };
    let parse = |k: &str| {
        p.get(k)
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
    };
    let (before, after) = (parse("before"), parse("after"));
    let start = match ver {
        Ver::Public => offset.unwrap_or(0),
        Ver::Beta => p
            .get("page.id")
            .and_then(|s| s.strip_prefix('o'))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    };
    // Newest first.
    let mut out = Vec::new();
    let mut skipped = 0u64;
    let mut more = false;
    for i in (0..c.len()).rev() {
        let m = c.message(V, i).expect("in range");
        if before.is_some_and(|b| m.created_at >= b) || after.is_some_and(|a| m.created_at <= a) {
            continue;
        }
        if skipped < start {
            skipped += 1;
            continue;
        }
        if out.len() as u64 == limit {
            more = true;
            break;
        }
        out.push(message_json(c, &m, ver));
    }
    let end = start + out.len() as u64;
    let body = match ver {
        Ver::Public => json!({"messages": out, "offset": start, "limit": limit}),
        Ver::Beta => {
            json!({"messages": out, "nextPage": if more { json!({"id": format!("o{end}")}) } else { Value::Null }})
        }
    };
    json_as(StatusCode::OK, ver.media(), body)
}

fn text_of(body: &Value) -> Result<String, Response> {
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| unprocessable("VALIDATION_ERROR", "text is required"))?;
    if text.chars().count() > 2000 {
        return Err(unprocessable(
            "VALIDATION_ERROR",
            "text: size must be between 0 and 2000",
        ));
    }
    Ok(text.to_string())
}

fn attachments_of(app: &App, body: &Value) -> Result<Vec<Attachment>, Response> {
    let market = app.market(V).lock().expect("lock");
    let mut out = Vec::new();
    for a in body
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = a.get("id").and_then(Value::as_str).unwrap_or("");
        let Some((name, mime, bytes)) = market.files.get(id) else {
            return Err(unprocessable(
                "ATTACHMENT_NOT_FOUND",
                &format!("Attachment {id} not found"),
            ));
        };
        out.push(Attachment {
            id: id.into(),
            name: name.clone(),
            mime: mime.clone(),
            size: bytes.len() as u64,
        });
    }
    Ok(out)
}

async fn reply(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ver = match check(&app, &headers).and_then(|v| check_body(&headers, v).map(|_| v)) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (text, attachments) =
        match text_of(&body).and_then(|t| attachments_of(&app, &body).map(|a| (t, a))) {
            Ok(x) => x,
            Err(r) => return r,
        };
    let mut market = app.market(V).lock().expect("lock");
    match market.get(&id) {
        None => return not_found("Thread"),
        Some(c) if !c.open && c.kind == "POST_PURCHASE_ISSUE" => {
            return unprocessable(
                "THREAD_CLOSED",
                "Cannot add a message to a closed POST_PURCHASE_ISSUE thread.",
            )
        }
        Some(_) => {}
    }
    let m = market
        .append(V, &id, Author::Seller, &text, attachments)
        .expect("thread exists");
    let c = market.get(&id).expect("thread exists");
    let mut v = message_json(c, &m, ver);
    v["status"] = json!("VERIFYING");
    json_as(StatusCode::CREATED, ver.media(), v)
}

async fn new_message(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let ver = match check(&app, &headers).and_then(|v| check_body(&headers, v).map(|_| v)) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = match text_of(&body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let login = body
        .pointer("/recipient/login")
        .and_then(Value::as_str)
        .unwrap_or("");
    let order = body.pointer("/order/id").and_then(Value::as_str);
    if ver == Ver::Public && order.is_none() {
        return unprocessable("VALIDATION_ERROR", "order.id is required");
    }
    let mut market = app.market(V).lock().expect("lock");
    let Some(id) = market
        .convs
        .iter()
        .find(|c| c.buyer.1 == login)
        .map(|c| c.id.clone())
    else {
        return unprocessable(
            "RECIPIENT_NOT_FOUND",
            "The recipient does not exist or has no order with you",
        );
    };
    let m = market
        .append(V, &id, Author::Seller, &text, Vec::new())
        .expect("thread exists");
    let c = market.get(&id).expect("thread exists");
    json_as(StatusCode::CREATED, ver.media(), message_json(c, &m, ver))
}

async fn get_message(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let ver = match check(&app, &headers) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let market = app.market(V).lock().expect("lock");
    match market.find_message(V, &id) {
        Some((c, m)) => json_as(StatusCode::OK, ver.media(), message_json(c, &m, ver)),
        None => not_found("Message"),
    }
}

async fn delete_message(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = check(&app, &headers) {
        return r;
    }
    let mut market = app.market(V).lock().expect("lock");
    for c in market.convs.iter_mut() {
        if let Some(pos) = c.extra.iter().position(|m| m.id == id) {
            c.extra.remove(pos);
            return StatusCode::NO_CONTENT.into_response();
        }
    }
    not_found("Message")
}

async fn declare(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let ver = match check(&app, &headers).and_then(|v| check_body(&headers, v).map(|_| v)) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(name), Some(size)) = (
        body.get("filename").and_then(Value::as_str),
        body.get("size").and_then(Value::as_u64),
    ) else {
        return unprocessable("VALIDATION_ERROR", "filename and size are required");
    };
    if size > 5_242_880 {
        return unprocessable("VALIDATION_ERROR", "size must be at most 5242880");
    }
    let id = app.market(V).lock().expect("lock").store_file(
        "97dc0b60-2da4-4247-92ba-",
        "",
        name,
        "",
        Vec::new(),
    );
    json_as(StatusCode::CREATED, ver.media(), json!({"id": id}))
}

async fn upload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let ver = match check(&app, &headers) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !UPLOAD_TYPES.contains(&ct.as_str()) {
        return error(
            V,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaTypeException",
            "Unsupported file type",
        );
    }
    if body.len() > 5_242_880 {
        return error(
            V,
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            "The file is too large",
        );
    }
    let mut market = app.market(V).lock().expect("lock");
    let Some(file) = market.files.get_mut(&id) else {
        return not_found("Attachment");
    };
    file.1 = ct;
    file.2 = body.to_vec();
    json_as(StatusCode::OK, ver.media(), json!({"id": id}))
}

async fn download(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = bearer(&app, V, &headers) {
        return r;
    }
    let market = app.market(V).lock().expect("lock");
    match market.files.get(&id) {
        Some((name, mime, bytes)) => (
            [
                (header::CONTENT_TYPE, mime.clone()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            bytes.clone(),
        )
            .into_response(),
        None => not_found("Attachment"),
    }
}
