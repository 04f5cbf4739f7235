//! Turns the generated clients' errors into [`Error`], reading what the vendor said.

use std::time::Duration;

use progenitor_client::Error as ClientError;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::snippet;
use crate::{Error, Marketplace};

/// Code and message of a typed vendor error body.
pub(crate) trait ErrorBody {
    fn code(&self) -> Option<String>;
    fn message(&self) -> Option<String>;
}

impl ErrorBody for () {
    fn code(&self) -> Option<String> {
        None
    }
    fn message(&self) -> Option<String> {
        None
    }
}

impl ErrorBody for inbox_ozon::types::RpcStatus {
    fn code(&self) -> Option<String> {
        self.code.map(|c| c.to_string())
    }
    fn message(&self) -> Option<String> {
        self.message.clone()
    }
}

impl ErrorBody for inbox_mercadolibre::types::ErrorBody {
    fn code(&self) -> Option<String> {
        self.error.clone().or_else(|| self.code.clone())
    }
    fn message(&self) -> Option<String> {
        self.message.clone()
    }
}

/// Maps a generated client's error.
pub(crate) async fn map<E: ErrorBody>(marketplace: Marketplace, err: ClientError<E>) -> Error {
    match err {
        ClientError::ErrorResponse(rv) => {
            let status = rv.status().as_u16();
            let headers = rv.headers().clone();
            from_status(marketplace, status, &headers, rv.code(), rv.message())
        }
        ClientError::UnexpectedResponse(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            let (code, message) = parse_error_json(&body);
            from_status(marketplace, status, &headers, code, message)
        }
        ClientError::InvalidResponsePayload(bytes, e) => Error::Decode {
            marketplace,
            what: "response",
            error: e.to_string(),
            snippet: snippet(&bytes),
            raw: None,
        },
        ClientError::CommunicationError(e) | ClientError::ResponseBodyError(e) => {
            Error::Transport {
                marketplace,
                message: transport_message(&e),
            }
        }
        ClientError::InvalidRequest(message) => Error::InvalidInput {
            marketplace: Some(marketplace),
            message,
        },
        ClientError::Custom(message) => Error::Transport {
            marketplace,
            message,
        },
        ClientError::InvalidUpgrade(_) => Error::Transport {
            marketplace,
            message: "unexpected protocol upgrade".into(),
        },
    }
}

fn transport_message(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    match e.url() {
        Some(url) => format!(
            "{what} ({}{})",
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None => what.to_string(),
    }
}

fn from_status(
    marketplace: Marketplace,
    status: u16,
    headers: &HeaderMap,
    code: Option<String>,
    message: Option<String>,
) -> Error {
    if status == 429 {
        return Error::RateLimited {
            marketplace,
            retry_after: retry_after(headers),
            message,
        };
    }
    Error::Api {
        marketplace,
        status,
        code,
        message,
        request_id: ["trace-id", "x-request-id", "x-trace-id", "x-request-id"]
            .iter()
            .find_map(|h| {
                headers
                    .get(*h)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            }),
    }
}

/// `Retry-After` in seconds (HTTP dates are not used by these vendors).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Code and message from the error envelopes these vendors use: Allegro's
/// `{"errors":[{code, message, userMessage}]}`, Mercado Libre's `{message, error, status}`,
/// Ozon's `{code, message}`, and `{error_description, error}` from OAuth endpoints.
fn parse_error_json(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    if let Some(first) = v.get("errors").and_then(|e| e.get(0)) {
        return (
            text(first.get("code")),
            text(first.get("userMessage")).or_else(|| text(first.get("message"))),
        );
    }
    (
        text(v.get("error")).or_else(|| text(v.get("code"))),
        text(v.get("message")).or_else(|| text(v.get("error_description"))),
    )
}
