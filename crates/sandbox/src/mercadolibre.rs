//! Mercado Libre post-sale messages (`tag=post_sale`), including read-on-GET.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::http::{bearer, error, json};
use crate::store::{Attachment, Author, Conv, Msg, Vendor};
use crate::App;

const V: Vendor = Vendor::MercadoLibre;
type Params = Query<HashMap<String, String>>;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/missed_feeds", get(crate::push::missed_feeds))
        .route("/messages/unread", get(unread_all))
        .route(
            "/messages/unread/packs/{pack}/sellers/{seller}",
            get(unread_one),
        )
        .route(
            "/messages/packs/{pack}/sellers/{seller}",
            get(pack_messages).post(send),
        )
        .route("/messages/attachments", post(upload))
        .route("/messages/attachments/{id}", get(download))
        .route("/messages/{id}", get(message_by_id))
        .route("/orders/search", get(orders_search))
}

/// The orders behind a conversation: the example pack holds two orders; the first
/// generated conversation is an order without a pack (its id names the conversation);
/// every other conversation is one order in its pack.
fn orders_of(c: &Conv) -> Vec<Value> {
    let buyer = json!({"id": c.buyer.0.parse::<u64>().unwrap_or(0), "nickname": c.buyer.1});
    let order = |id: String, pack: Option<&str>| {
        json!({"id": id.parse::<u64>().unwrap_or(0), "pack_id": pack.map(|p| p.parse::<u64>().unwrap_or(0)),
               "status": "paid", "date_created": ts(c.created_at),
               "date_last_updated": ts(c.last_activity(V)), "buyer": buyer})
    };
    match c.n {
        0 => vec![
            order("2000003508419013".into(), Some(&c.id)),
            order("2000003508419014".into(), Some(&c.id)),
        ],
        1 => vec![order(c.id.clone(), None)],
        n => vec![order(
            (4_000_000_000_000_000u64 + n).to_string(),
            Some(&c.id),
        )],
    }
}

/// `GET /orders/search?seller=…&offset&limit&sort=date_desc|date_asc`: every order of the
/// seller, newest first by default (`limit` at most 50).
async fn orders_search(State(app): State<Arc<App>>, headers: HeaderMap, p: Params) -> Response {
    if let Err(r) = bearer(&app, V, &headers)
        .and_then(|_| seller_ok(&app, p.get("seller").map_or("", String::as_str)))
    {
        return r;
    }
    let num = |k: &str| p.get(k).map(|v| v.parse::<u64>());
    let (offset, limit) = match (num("offset"), num("limit")) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => {
            return error(
                V,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "offset and limit must be numbers",
            )
        }
        (o, l) => (
            o.and_then(Result::ok).unwrap_or(0),
            l.and_then(Result::ok).unwrap_or(50),
        ),
    };
    if !(1..=50).contains(&limit) {
        return error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "limit must be between 1 and 50",
        );
    }
    let limit = app.page(50, Some(limit), 50);
    let market = app.market(V).lock().expect("lock");
    let mut orders: Vec<Value> = market.convs.iter().flat_map(orders_of).collect();
    orders.sort_by(|a, b| a["date_created"].as_str().cmp(&b["date_created"].as_str()));
    if p.get("sort").map(String::as_str) != Some("date_asc") {
        orders.reverse();
    }
    let total = orders.len();
    let results: Vec<Value> = orders
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(50))
        .collect();
    json(
        StatusCode::OK,
        json!({"query": p.get("seller"), "results": results, "paging": {"total": total, "offset": offset, "limit": limit}}),
    )
}

fn check(app: &App, headers: &HeaderMap, p: &Params) -> Result<(), Response> {
    bearer(app, V, headers)?;
    if p.get("tag").map(String::as_str) != Some("post_sale") {
        return Err(error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "tag=post_sale is required",
        ));
    }
    Ok(())
}

fn seller_ok(app: &App, seller: &str) -> Result<(), Response> {
    if seller == app.credentials().mercadolibre_seller_id {
        Ok(())
    } else {
        Err(error(
            V,
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("User access token invalid for resource /packs/x/sellers/{seller}"),
        ))
    }
}

fn ts(dt: chrono::DateTime<chrono::Utc>) -> String {
    dt.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn message_json(app: &App, c: &Conv, m: &Msg, read: bool) -> Value {
    let seller = &app.credentials().mercadolibre_seller_id;
    let (from, to) = match m.author {
        Author::Buyer => (c.buyer.0.clone(), seller.clone()),
        Author::Seller => (seller.clone(), c.buyer.0.clone()),
    };
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| json!({"filename": a.id, "original_filename": a.name, "type": a.mime, "size": a.size, "potential_security_threat": false, "creation_date": ts(m.created_at)}))
        .collect();
    json!({
        "id": m.id, "site_id": "MLB", "client_id": 123,
        "from": {"user_id": from}, "to": {"user_id": to},
        "subject": null, "text": m.text, "status": "available", "conversation_first_message": false,
        "message_date": {"received": ts(m.created_at), "available": ts(m.created_at), "notified": ts(m.created_at), "created": ts(m.created_at),
                         "read": if read { json!(ts(m.created_at)) } else { Value::Null }},
        "message_moderation": {"status": "clean", "reason": null, "source": "online", "moderation_date": ts(m.created_at)},
        "message_attachments": if attachments.is_empty() { Value::Null } else { json!(attachments) },
        "message_resources": [{"id": c.id, "name": "packs"}, {"id": seller, "name": "sellers"}]
    })
}

fn status_json(app: &App, c: &Conv) -> Value {
    let path = format!(
        "/packs/{}/sellers/{}",
        c.id,
        app.credentials().mercadolibre_seller_id
    );
    if c.open {
        json!({"path": path, "status": "active", "substatus": null, "status_date": ts(c.created_at), "status_update_allowed": false, "claim_id": null, "shipping_id": null})
    } else {
        json!({"path": path, "status": "blocked", "substatus": "blocked_by_time", "status_date": ts(c.last_activity(V)), "status_update_allowed": false, "claim_id": null, "shipping_id": null})
    }
}

fn resource(app: &App, c: &Conv) -> Value {
    json!({"resource": format!("/packs/{}/sellers/{}", c.id, app.credentials().mercadolibre_seller_id), "count": c.unread})
}

async fn unread_all(State(app): State<Arc<App>>, headers: HeaderMap, p: Params) -> Response {
    if let Err(r) = check(&app, &headers, &p) {
        return r;
    }
    let market = app.market(V).lock().expect("lock");
    let results: Vec<Value> = market
        .convs
        .iter()
        .filter(|c| c.unread > 0)
        .take(500)
        .map(|c| resource(&app, c))
        .collect();
    json(
        StatusCode::OK,
        json!({"user_id": app.credentials().mercadolibre_seller_id.parse::<u64>().unwrap_or(0), "results": results}),
    )
}

async fn unread_one(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((pack, seller)): Path<(String, String)>,
    p: Params,
) -> Response {
    if let Err(r) = check(&app, &headers, &p).and_then(|_| seller_ok(&app, &seller)) {
        return r;
    }
    let market = app.market(V).lock().expect("lock");
    let results: Vec<Value> = market
        .get(&pack)
        .filter(|c| c.unread > 0)
        .map(|c| resource(&app, c))
        .into_iter()
        .collect();
    json(
        StatusCode::OK,
        json!({"user_id": seller.parse::<u64>().unwrap_or(0), "results": results}),
    )
}

async fn pack_messages(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((pack, seller)): Path<(String, String)>,
    p: Params,
) -> Response {
    if let Err(r) = check(&app, &headers, &p).and_then(|_| seller_ok(&app, &seller)) {
        return r;
    }
    let parse = |k: &str| p.get(k).map(|v| v.parse::<u64>());
    let limit = match parse("limit") {
        Some(Ok(0)) => {
            return error(
                V,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The limit param must be greater than 0",
            )
        }
        Some(Err(_)) => {
            return error(
                V,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Invalid limit param",
            )
        }
        Some(Ok(l)) => Some(l),
        None => None,
    };
    let offset = match parse("offset") {
        Some(Err(_)) => {
            return error(
                V,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Invalid offset param",
            )
        }
        Some(Ok(o)) => o,
        None => 0,
    };
    let limit = app.page(100, limit, 10);
    let mark = p.get("mark_as_read").map(String::as_str) != Some("false");
    let mut market = app.market(V).lock().expect("lock");
    let Some(c) = market.get(&pack) else {
        return error(V, StatusCode::NOT_FOUND, "not_found", "Resource not found.");
    };
    let total = c.len();
    let read_upto = total - c.unread.min(total);
    // Newest first.
    let messages: Vec<Value> = (0..total)
        .rev()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|i| {
            message_json(
                &app,
                c,
                &c.message(V, i).expect("in range"),
                mark || i < read_upto,
            )
        })
        .collect();
    let body = json!({
        "paging": {"limit": limit, "offset": offset, "total": total},
        "conversation_status": status_json(&app, c),
        "messages": messages,
        "seller_max_message_length": 350, "buyer_max_message_length": 3500
    });
    if mark {
        market.get_mut(&pack).expect("exists").unread = 0;
    }
    json(StatusCode::OK, body)
}

async fn send(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((pack, seller)): Path<(String, String)>,
    p: Params,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = check(&app, &headers, &p).and_then(|_| seller_ok(&app, &seller)) {
        return r;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "A JSON body is required",
        );
    };
    let text = body.get("text").and_then(Value::as_str).unwrap_or("");
    if text.chars().count() > 350 {
        return error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The message content is too long, max characters allowed are 350",
        );
    }
    if text.is_empty() || text.chars().any(|c| c as u32 > 0xFF) {
        return error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The message contains unsupported characters",
        );
    }
    let id_of = |ptr: &str| {
        body.pointer(ptr).map(|v| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string())
        })
    };
    if id_of("/from/user_id").as_deref() != Some(seller.as_str()) {
        return error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The field 'from' is required",
        );
    }
    let Some(to) = id_of("/to/user_id") else {
        return error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The field 'to.user_id' is required",
        );
    };
    let mut market = app.market(V).lock().expect("lock");
    let Some(c) = market.get(&pack) else {
        return error(V, StatusCode::NOT_FOUND, "not_found", "Resource not found.");
    };
    if !c.open {
        return error(
            V,
            StatusCode::FORBIDDEN,
            "blocked_conversation_send_message_forbidden",
            "You can not send the message because the conversation is blocked.",
        );
    }
    if to != c.buyer.0 {
        return error(
            V,
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("Receiver does not belong to order {pack}"),
        );
    }
    let mut attachments = Vec::new();
    for id in body
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let Some((name, mime, bytes)) = market.files.get(id) else {
            return error(
                V,
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable_entity",
                "Attachment key is invalid or not found",
            );
        };
        attachments.push(Attachment {
            id: id.into(),
            name: name.clone(),
            mime: mime.clone(),
            size: bytes.len() as u64,
        });
    }
    let m = market
        .append(V, &pack, Author::Seller, text, attachments)
        .expect("exists");
    let c = market.get(&pack).expect("exists");
    json(StatusCode::OK, message_json(&app, c, &m, false))
}

async fn message_by_id(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    p: Params,
) -> Response {
    if let Err(r) = check(&app, &headers, &p) {
        return r;
    }
    let market = app.market(V).lock().expect("lock");
    match market.find_message(V, &id) {
        Some((c, m)) => json(
            StatusCode::OK,
            json!({"paging": null, "conversation_status": null, "messages": [message_json(&app, c, &m, true)]}),
        ),
        None => error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The specified message id does not exists",
        ),
    }
}

async fn upload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    p: Params,
    mut form: Multipart,
) -> Response {
    if let Err(r) = check(&app, &headers, &p) {
        return r;
    }
    if !p.contains_key("site_id") {
        return error(
            V,
            StatusCode::BAD_REQUEST,
            "bad_request",
            "site_id is required",
        );
    }
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("file").to_string();
        let mime = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_string();
        let Ok(bytes) = field.bytes().await else {
            return error(
                V,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "File attached is empty",
            );
        };
        if bytes.is_empty() {
            return error(
                V,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "File attached is empty",
            );
        }
        if name.contains(['/', '\\']) {
            return error(
                V,
                StatusCode::BAD_REQUEST,
                "bad_request",
                "File name cannot include characters like /, \\",
            );
        }
        let ext = name.rsplit('.').next().unwrap_or("");
        let seller = &app.credentials().mercadolibre_seller_id;
        let id = app.market(V).lock().expect("lock").store_file(
            &format!("{seller}_"),
            &format!(".{ext}"),
            &name,
            &mime,
            bytes.to_vec(),
        );
        return json(StatusCode::OK, json!({"id": id}));
    }
    error(
        V,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "File attached is empty",
    )
}

async fn download(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    p: Params,
) -> Response {
    if let Err(r) = check(&app, &headers, &p) {
        return r;
    }
    let market = app.market(V).lock().expect("lock");
    match market.files.get(&id) {
        Some((_, mime, bytes)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => error(
            V,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "File can not be accessed, try it later",
        ),
    }
}
