//! `/v1/conversations…` and `/v1/unread` (`read`, and `write` for mark-read): the
//! mirror's conversations and messages in their `inbox --json` forms, walked by keyset
//! cursors; a targeted read of the vendor where asked (`fresh=true`, after a mark-read);
//! attachments streamed from the vendor.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use marketplace_inbox::sync::{ConversationFilter, ConversationKey, MessageKey};
use marketplace_inbox::{Account, Attachment, ConversationRef, Marketplace};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::problem::Problem;
use super::{conversation_ref, next_cursor, ApiState, Page};

/// The largest attachment streamed (the largest any marketplace takes is 25 MB).
pub const ATTACHMENT_LIMIT: u64 = 25 * 1024 * 1024;

/// `GET /v1/conversations` query.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    account: Option<String>,
    marketplace: Option<String>,
    unread: Option<String>,
    status: Option<String>,
    updated_since: Option<String>,
    reply_needed: Option<String>,
    #[serde(flatten)]
    page: Page,
}

/// `true` or `false`, else a 400 naming `name`.
pub(super) fn flag(name: &str, value: Option<&str>) -> Result<Option<bool>, Problem> {
    match value {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(Problem::bad_request(format!(
            "{name} must be true or false"
        ))),
    }
}

impl ListQuery {
    /// The filter it asks for, within the accounts `caller` sees.
    fn filter(&self, caller: &Caller) -> Result<ConversationFilter, Problem> {
        let marketplace = match &self.marketplace {
            None => None,
            Some(m) => Some(m.parse::<Marketplace>().map_err(|_| {
                Problem::bad_request("marketplace must be allegro, mercadolibre, magalu or ozon")
            })?),
        };
        let updated_since = match &self.updated_since {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|_| Problem::bad_request("updated_since must be an RFC 3339 instant"))?
                    .with_timezone(&Utc),
            ),
        };
        if let Some(s) = &self.status {
            if s.is_empty() || s.len() > 64 {
                return Err(Problem::bad_request(
                    "status must be open, closed, blocked or a vendor's value",
                ));
            }
        }
        let accounts = caller.accounts_named(self.account.as_deref());
        Ok(ConversationFilter {
            accounts,
            marketplace,
            unread: flag("unread", self.unread.as_deref())?,
            status: self.status.clone(),
            updated_since,
            reply_needed: flag("reply_needed", self.reply_needed.as_deref())?,
        })
    }
}

/// `GET /v1/conversations` (`read`): newest activity first, filtered, by cursor.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    let filter = query.filter(&caller)?;
    let limit = query.page.limit()?;
    let after: Option<ConversationKey> = query.page.after(&state.cursors, "conversations")?;
    let mut rows = state
        .directory
        .conversations_page(&filter, after.as_ref(), limit.saturating_add(1))
        .await
        .map_err(|e| Problem::store(&e))?;
    let full = rows.len() > limit;
    rows.truncate(limit);
    let next = next_cursor(
        &state.cursors,
        "conversations",
        full,
        rows.last().map(|c| &c.key),
    );
    Ok(Json(json!({
        "data": rows.into_iter().map(|c| c.json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// The conversation `text` names, as the mirror holds it: 404 when the caller cannot see
/// it or the mirror has none.
async fn stored(
    state: &ApiState,
    caller: &Caller,
    text: &str,
) -> Result<(ConversationRef, Value), Problem> {
    let (reference, account) = conversation_ref(caller, text)?;
    let found = state
        .directory
        .conversation(&account, &reference.id)
        .await
        .map_err(|e| Problem::store(&e))?;
    match found {
        Some(c) if c.marketplace == reference.marketplace => Ok((reference, c.json)),
        _ => Err(Problem::not_found("no such conversation")),
    }
}

/// `GET /v1/conversations/{ref}` (`read`).
pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(text): Path<String>,
) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    Ok(Json(stored(&state, &caller, &text).await?.1))
}

/// The running account of a conversation: a 409 when it is not synced (disabled, or
/// waiting to be authorised again).
pub(super) fn running(state: &ApiState, reference: &ConversationRef) -> Result<Account, Problem> {
    let name = reference.account.as_deref().unwrap_or_default();
    state
        .engine
        .account(name)
        .filter(|a| a.marketplace() == reference.marketplace)
        .ok_or_else(|| {
            Problem::conflict(format!(
                "the account {name:?} is not active (disabled, or it must be authorised again)"
            ))
        })
}

/// Reads the conversation from the vendor into the mirror now (its changes handed on
/// as a step's are).
pub(crate) async fn read_again(
    state: &ApiState,
    account: &Account,
    reference: &ConversationRef,
) -> Result<(), marketplace_inbox::Error> {
    let inbox = state.engine.inbox();
    crate::pass::conversation_pass(
        &inbox,
        account,
        state.engine.store(),
        state.engine.sink(),
        reference,
    )
    .await
    .map(|_| ())
}

/// `GET /v1/conversations/{ref}/messages` query.
#[derive(Debug, Default, Deserialize)]
pub struct MessagesQuery {
    order: Option<String>,
    fresh: Option<String>,
    #[serde(flatten)]
    page: Page,
}

/// `GET /v1/conversations/{ref}/messages` (`read`): oldest first (`order=desc`: newest
/// first), by cursor; `fresh=true` reads the vendor first.
pub async fn messages(
    State(state): State<ApiState>,
    caller: Caller,
    Path(text): Path<String>,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    let newest_first = match query.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(Problem::bad_request("order must be asc or desc")),
    };
    let limit = query.page.limit()?;
    if flag("fresh", query.fresh.as_deref())? == Some(true) {
        let (reference, _) = conversation_ref(&caller, &text)?;
        let account = running(&state, &reference)?;
        read_again(&state, &account, &reference)
            .await
            .map_err(|e| Problem::vendor(&e))?;
    }
    let (reference, _) = stored(&state, &caller, &text).await?;
    let account = reference.account.clone().unwrap_or_default();
    // A cursor walks one conversation in one order.
    let list = format!(
        "messages {} {}",
        reference,
        if newest_first { "desc" } else { "asc" }
    );
    let after: Option<MessageKey> = query.page.after(&state.cursors, &list)?;
    let mut rows = state
        .directory
        .messages_page(
            &account,
            &reference.id,
            newest_first,
            after.as_ref(),
            limit.saturating_add(1),
        )
        .await
        .map_err(|e| Problem::store(&e))?;
    let full = rows.len() > limit;
    rows.truncate(limit);
    let next = next_cursor(&state.cursors, &list, full, rows.last().map(|m| &m.key));
    Ok(Json(json!({
        "data": rows.into_iter().map(|m| m.json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// `POST /v1/conversations/{ref}/read` (`write`): marks it read at the vendor, then in
/// the mirror, and reads it again (its messages' read state); `204`.
pub async fn mark_read(
    State(state): State<ApiState>,
    caller: Caller,
    Path(text): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require("write")?;
    let (reference, _) = stored(&state, &caller, &text).await?;
    let account = running(&state, &reference)?;
    account
        .mark_read(&reference)
        .await
        .map_err(|e| Problem::vendor(&e))?;
    if let Err(e) = read_again(&state, &account, &reference).await {
        state.engine.sink().note(&format!(
            "inbox: api: {reference} was marked read, but reading it again failed ({e}); its messages show it at the next step"
        ));
    }
    state
        .directory
        .mark_read_in_mirror(account.name(), &reference.id)
        .await
        .map_err(|e| Problem::store(&e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/conversations/{ref}/messages/{message_id}/attachments/{attachment}`
/// (`read`): the file, streamed from the vendor. `{attachment}` is the attachment's id,
/// else its file name, else its position (from 0) in the message's list.
pub async fn attachment(
    State(state): State<ApiState>,
    caller: Caller,
    Path((text, message_id, wanted)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    caller.require("read")?;
    let (reference, _) = stored(&state, &caller, &text).await?;
    let account_name = reference.account.clone().unwrap_or_default();
    let message = state
        .directory
        .message(&account_name, &reference.id, &message_id)
        .await
        .map_err(|e| Problem::store(&e))?
        .ok_or_else(|| Problem::not_found("no such message"))?;
    let listed: Vec<Attachment> = message
        .json
        .get("attachments")
        .and_then(Value::as_array)
        .map(|all| all.iter().map(attachment_of).collect())
        .unwrap_or_default();
    let found = listed
        .iter()
        .find(|a| a.id.as_deref() == Some(wanted.as_str()))
        .or_else(|| {
            listed
                .iter()
                .find(|a| a.name.as_deref() == Some(wanted.as_str()))
        })
        .or_else(|| wanted.parse::<usize>().ok().and_then(|i| listed.get(i)))
        .ok_or_else(|| Problem::not_found("no such attachment"))?;
    if found.size.is_some_and(|n| n > ATTACHMENT_LIMIT) {
        return Err(Problem::unprocessable(
            "size",
            format!("the attachment is larger than {ATTACHMENT_LIMIT} bytes"),
        ));
    }
    let account = running(&state, &reference)?;
    let download = account
        .download(&reference, found)
        .await
        .map_err(|e| Problem::vendor(&e))?;
    let mut taken: u64 = 0;
    let body = download.body.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        taken = taken.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        if taken > ATTACHMENT_LIMIT {
            return Err(std::io::Error::other(
                "the attachment is larger than the limit",
            ));
        }
        Ok(chunk)
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    let mime = download
        .mime
        .as_deref()
        .and_then(|m| HeaderValue::from_str(m).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, mime);
    let name = download.name.as_deref().unwrap_or("attachment");
    if let Ok(v) = HeaderValue::from_str(&content_disposition(name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(size) = found.size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    Ok(response)
}

/// `attachment; filename="…"; filename*=UTF-8''…`: the name kept as data (quotes,
/// control characters and non-ASCII never reach the header raw).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                encoded.push(char::from(b))
            }
            _ => encoded.push_str(&format!("%{b:02X}")),
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// An attachment from its JSON form (what it does not hold stays empty).
fn attachment_of(v: &Value) -> Attachment {
    serde_json::from_value(v.clone()).unwrap_or_default()
}

/// `GET /v1/unread` (`read`): each account the key sees, its unread conversations and
/// messages (none: zeros).
pub async fn unread(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, Problem> {
    caller.require("read")?;
    let accounts = state
        .directory
        .list()
        .await
        .map_err(|e| Problem::store(&e))?;
    let counts = state
        .directory
        .unread_counts(caller.accounts())
        .await
        .map_err(|e| Problem::store(&e))?;
    let data: Vec<Value> = accounts
        .iter()
        .filter(|a| caller.sees(&a.name))
        .map(|a| {
            let c = counts.iter().find(|c| c.account == a.name);
            json!({
                "account": a.name,
                "marketplace": a.marketplace.as_str(),
                "conversations": c.map_or(0, |c| c.conversations),
                "messages": match c {
                    Some(c) => c.messages,
                    None => Some(0),
                },
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}
