//! Sends (`write`): `POST /v1/conversations/{ref}/messages` under an `Idempotency-Key`,
//! `GET /v1/sends/{id}`, and `POST /v1/conversations` (start one where the vendor
//! allows).
//!
//! A send claims its key in the store before the vendor is written to
//! ([`marketplace_inbox::sync::SqlStore::claim_send`]): the same key with the same body
//! answers the first answer again and never writes twice (a retry while the first runs
//! is a `409`); with another body it is a `422`. The send runs in a task of its own, so
//! a caller who hangs up does not cut it short. An outcome the vendor left unknown is
//! resolved by reading the conversation back (the facade's send does that, and so does
//! a retry that finds a send whose process died), never by sending again; a send that
//! certainly reached no vendor frees its key.

use std::time::Duration;

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use chrono::Utc;
use marketplace_inbox::sync::{Claim, SendRecord};
use marketplace_inbox::{
    random_hex, sha256_hex, ConversationRef, NewConversation, OutgoingAttachment,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::conversations::{read_again, running};
use super::problem::Problem;
use super::{conversation_ref, ApiState};

/// How long a send's runner holds its key before another may take it over (its
/// process gone).
const HOLD: Duration = Duration::from_secs(180);

/// A send's body, as JSON.
#[derive(Debug, Deserialize)]
struct JsonSend {
    text: String,
    #[serde(default)]
    attachments: Vec<JsonAttachment>,
}

/// An attachment of a JSON send.
#[derive(Debug, Deserialize)]
struct JsonAttachment {
    name: String,
    mime: Option<String>,
    content_base64: String,
}

/// The text and files a request asks to send: JSON or `multipart/form-data` (`text`,
/// one `file` part per attachment).
async fn outgoing(request: Request) -> Result<(String, Vec<OutgoingAttachment>), Problem> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| Problem::body("body", e.status(), e.body_text()))?;
        let mut text = None;
        let mut files = Vec::new();
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| Problem::body("body", e.status(), e.body_text()))?
        {
            match field.name() {
                Some("text") => {
                    text = Some(
                        field
                            .text()
                            .await
                            .map_err(|e| Problem::body("text", e.status(), e.body_text()))?,
                    )
                }
                Some("file") => {
                    let name = field.file_name().unwrap_or("attachment").to_string();
                    let mime = field
                        .content_type()
                        .map(str::to_string)
                        .unwrap_or_else(|| marketplace_inbox::media_type_of(&name).to_string());
                    let bytes = field
                        .bytes()
                        .await
                        .map_err(|e| Problem::body("file", e.status(), e.body_text()))?;
                    files.push(OutgoingAttachment {
                        name,
                        mime,
                        bytes: bytes.to_vec(),
                    });
                }
                _ => {}
            }
        }
        let text =
            text.ok_or_else(|| Problem::unprocessable("text", "the form has no text part"))?;
        return Ok((text, files));
    }
    let Json(body) = Json::<JsonSend>::from_request(request, &())
        .await
        .map_err(|e| Problem::body("body", e.status(), e.body_text()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut files = Vec::new();
    for a in body.attachments {
        let bytes = b64.decode(a.content_base64.trim()).map_err(|_| {
            Problem::unprocessable(
                "content_base64",
                format!("the attachment {:?} is not valid base64", a.name),
            )
        })?;
        let mime = a
            .mime
            .unwrap_or_else(|| marketplace_inbox::media_type_of(&a.name).to_string());
        files.push(OutgoingAttachment {
            name: a.name,
            mime,
            bytes,
        });
    }
    Ok((body.text, files))
}

/// The caller's `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| Problem::bad_request("a send needs an Idempotency-Key header"))?
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::bad_request("the Idempotency-Key is 1 to 255 visible ASCII characters")
        })?;
    Ok(key.to_string())
}

/// A digest of what a send asks for.
fn body_hash(reference: &ConversationRef, text: &str, files: &[OutgoingAttachment]) -> String {
    use sha2::{Digest, Sha256};
    let files: Vec<Value> = files
        .iter()
        .map(|f| json!([f.name, f.mime, format!("{:x}", Sha256::digest(&f.bytes))]))
        .collect();
    sha256_hex(&json!({"ref": reference.to_string(), "text": text, "files": files}).to_string())
}

/// A send's JSON form.
fn send_object(r: &SendRecord) -> Value {
    json!({
        "id": r.id,
        "ref": r.reference,
        "state": r.state,
        "message_id": r.message_id,
        "error": r.error,
    })
}

/// The answer a finished send gives (again to a retry).
fn answered(record: &SendRecord) -> Response {
    let body: Value = record
        .answer
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_else(|| json!({"send": send_object(record), "message": null}));
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `POST /v1/conversations/{ref}/messages` (`write`).
pub async fn send(
    State(state): State<ApiState>,
    caller: Caller,
    Path(text_ref): Path<String>,
    request: Request,
) -> Result<Response, Problem> {
    caller.require("write")?;
    let key = idempotency_key(request.headers())?;
    let (reference, account_name) = conversation_ref(&caller, &text_ref)?;
    let known = state
        .directory
        .conversation(&account_name, &reference.id)
        .await
        .map_err(|e| Problem::store(&e))?;
    if known.is_none_or(|c| c.marketplace != reference.marketplace) {
        return Err(Problem::not_found("no such conversation"));
    }
    let (text, files) = outgoing(request).await?;
    let hash = body_hash(&reference, &text, &files);
    let record = SendRecord {
        id: format!("snd_{}", random_hex(12)),
        api_key: caller.id().to_string(),
        idempotency_key: key,
        body_hash: hash.clone(),
        account: account_name,
        reference: reference.to_string(),
        state: "pending".into(),
        message_id: None,
        error: None,
        answer: None,
        created_at: Utc::now(),
        running_until: Some(Utc::now() + HOLD),
    };
    let claimed = state
        .directory
        .claim_send(&record)
        .await
        .map_err(|e| Problem::store(&e))?;
    let record = match claimed {
        Claim::New(r) => r,
        Claim::Existing(r) if r.body_hash != hash => {
            return Err(Problem::unprocessable(
                "idempotency",
                "this Idempotency-Key was used with another body",
            ))
        }
        Claim::Existing(r) if r.state != "pending" => return Ok(answered(&r)),
        Claim::Existing(r) => {
            let lapsed = r.running_until.is_none_or(|t| t < Utc::now());
            if !lapsed
                || !state
                    .directory
                    .take_over_send(&r.id, Utc::now() + HOLD)
                    .await
                    .map_err(|e| Problem::store(&e))?
            {
                return Err(Problem::conflict(
                    "a send with this Idempotency-Key is still running; try again shortly",
                ));
            }
            // Its runner died mid-send: what it did is read back, never sent again.
            let task = tokio::spawn(resolve(state.clone(), r, text));
            return task
                .await
                .map_err(|_| Problem::unavailable("the send's task failed", 5))?;
        }
    };
    let task = tokio::spawn(run(state.clone(), record, text, files));
    task.await
        .map_err(|_| Problem::unavailable("the send's task failed", 5))?
}

/// Runs a claimed send: writes to the vendor once, records the outcome and the answer.
async fn run(
    state: ApiState,
    mut record: SendRecord,
    text: String,
    files: Vec<OutgoingAttachment>,
) -> Result<Response, Problem> {
    let reference: ConversationRef = record
        .reference
        .parse()
        .map_err(|_| Problem::not_found("no such conversation"))?;
    let account = match running(&state, &reference) {
        Ok(account) => account,
        Err(problem) => {
            // Nothing was written: the key may be used again.
            let _ = state.directory.forget_send(&record.id).await;
            return Err(problem);
        }
    };
    match account.send(&reference, &text, &files).await {
        Ok(sent) => {
            record.state = "sent".into();
            record.message_id = sent.message_id.clone();
            finish(&state, &account, &reference, record).await
        }
        Err(e) if e.may_have_arrived() => {
            record.state = "unknown".into();
            record.error = Some(e.to_string());
            finish(&state, &account, &reference, record).await
        }
        Err(e) => {
            // It certainly reached no vendor: the key may be used again.
            let _ = state.directory.forget_send(&record.id).await;
            Err(Problem::vendor(&e))
        }
    }
}

/// A send whose runner died: the conversation is read back for its message (a seller
/// message with its text since the send began); found, it is sent, else unknown.
async fn resolve(
    state: ApiState,
    mut record: SendRecord,
    text: String,
) -> Result<Response, Problem> {
    let reference: ConversationRef = record
        .reference
        .parse()
        .map_err(|_| Problem::not_found("no such conversation"))?;
    let account = running(&state, &reference)
        .map_err(|_| Problem::conflict("the account is not active; the send stays pending"))?;
    match account
        .find_sent(&reference, &text, record.created_at)
        .await
    {
        Ok(Some(found)) => {
            record.state = "sent".into();
            record.message_id = Some(found.id);
        }
        Ok(None) => {
            record.state = "unknown".into();
            record.error = Some("the process running this send stopped before it ended, and the conversation does not show its message".into());
        }
        Err(e) => {
            record.state = "unknown".into();
            record.error = Some(format!("the conversation could not be read back: {e}"));
        }
    }
    finish(&state, &account, &reference, record).await
}

/// Reads the conversation into the mirror, then records and gives the send's answer
/// (with the new message's JSON form when the mirror has it).
async fn finish(
    state: &ApiState,
    account: &marketplace_inbox::Account,
    reference: &ConversationRef,
    record: SendRecord,
) -> Result<Response, Problem> {
    if record.state == "sent" {
        if let Err(e) = read_again(state, account, reference).await {
            state.engine.sink().note(&format!(
                "inbox: api: sent to {reference}, but reading it again failed ({e}); the mirror shows the message at the next step"
            ));
        }
    }
    let message = match &record.message_id {
        Some(id) => state
            .directory
            .message(&record.account, &reference.id, id)
            .await
            .ok()
            .flatten()
            .map(|m| m.json),
        None => None,
    };
    let answer = json!({"send": send_object(&record), "message": message});
    let text = answer.to_string();
    state
        .directory
        .finish_send(
            &record.id,
            &record.state,
            record.message_id.as_deref(),
            record.error.as_deref(),
            &text,
        )
        .await
        .map_err(|e| Problem::store(&e))?;
    if let Err(e) = state
        .directory
        .send_updated(
            &record.account,
            reference.marketplace,
            &send_object(&record),
        )
        .await
    {
        state.engine.sink().note(&format!(
            "inbox: api: the send.updated event of {} could not be written: {e}",
            record.id
        ));
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /v1/sends/{id}` (`read`): a send of an account the key sees.
pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    match state.directory.send_record(&id).await {
        Ok(Some(r)) if caller.sees(&r.account) => Ok(Json(send_object(&r))),
        Ok(_) => Err(Problem::not_found("no such send")),
        Err(e) => Err(Problem::store(&e)),
    }
}

/// `POST /v1/conversations` body.
#[derive(Debug, Deserialize)]
pub struct NewThread {
    account: String,
    marketplace: String,
    to: Option<String>,
    order: Option<String>,
    text: Option<String>,
    posting: Option<String>,
}

/// `POST /v1/conversations` (`write`): starts a conversation where the vendor allows
/// (Allegro: to a buyer about an order, with its first message; Ozon: a posting's chat);
/// `201` with the conversation.
pub async fn start(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<Json<NewThread>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    caller.require("write")?;
    let Json(new) = body.map_err(|e| Problem::body("body", e.status(), e.body_text()))?;
    if !caller.sees(&new.account) {
        return Err(Problem::not_found(format!(
            "no account is named {:?}",
            new.account
        )));
    }
    let required = |field: &str, v: Option<String>| {
        v.filter(|s| !s.trim().is_empty())
            .ok_or_else(|| Problem::unprocessable(field, format!("{field} is required")))
    };
    let wanted = match new.marketplace.as_str() {
        "allegro" => NewConversation::Allegro {
            login: required("to", new.to)?,
            order_id: required("order", new.order)?,
            text: required("text", new.text)?,
        },
        "ozon" => NewConversation::Ozon {
            posting_number: required("posting", new.posting)?,
        },
        other => {
            return Err(Problem::unprocessable(
                "marketplace",
                format!("conversations are started on allegro and ozon only, not {other:?}"),
            ))
        }
    };
    let account = state
        .engine
        .account(&new.account)
        .filter(|a| a.marketplace().as_str() == new.marketplace)
        .ok_or_else(|| {
            Problem::not_found(format!(
                "no active {} account is named {:?}",
                new.marketplace, new.account
            ))
        })?;
    let started = account
        .start(&wanted)
        .await
        .map_err(|e| Problem::vendor(&e))?;
    let reference = started.conversation;
    if let Err(e) = read_again(&state, &account, &reference).await {
        state.engine.sink().note(&format!(
            "inbox: api: started {reference}, but reading it failed ({e}); the mirror shows it at the next step"
        ));
    }
    let stored = || async {
        state
            .directory
            .conversation(&new.account, &reference.id)
            .await
            .ok()
            .flatten()
    };
    let json = stored().await.map(|c| c.json).unwrap_or_else(|| {
        // Not listed yet (a conversation without messages is, at the next step that
        // lists it): what the vendor's answer says.
        json!({"marketplace": reference.marketplace.as_str(), "ref": reference.to_string(),
               "id": reference.id, "account": new.account,
               "kind": marketplace_inbox::ConversationKind::BuyerChat.as_str()})
    });
    Ok((StatusCode::CREATED, Json(json)).into_response())
}
