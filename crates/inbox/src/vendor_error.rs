//! Turns the generated clients' results into the facade's: [`call`] is the one place
//! where a vendor error becomes an [`Error`], reading what the vendor said.

use std::future::Future;

use inbox_core::{observe, Outcome};
use progenitor_client::{Error as ClientError, ResponseValue};
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
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

/// Allegro's `{"errors": [{code, message, userMessage, …}]}`, or `{error,
/// error_description}` from authorisation: the first error's code, and its `userMessage`
/// with the technical `message` beside it when they differ.
#[cfg(feature = "allegro")]
macro_rules! allegro_errors {
    ($($t:ty),*) => {$(
        impl ErrorBody for $t {
            fn code(&self) -> Option<String> {
                self.errors.first().and_then(|e| e.code.clone()).or_else(|| self.error.clone())
            }
            fn message(&self) -> Option<String> {
                let first = self.errors.first();
                let user = first.and_then(|e| e.user_message.clone());
                let technical = first.and_then(|e| e.message.clone());
                match (user, technical) {
                    (Some(u), Some(t)) if u != t => Some(format!("{u} ({t})")),
                    (Some(m), _) | (None, Some(m)) => Some(m),
                    (None, None) => self.error_description.clone(),
                }
            }
        }
    )*};
}
#[cfg(feature = "allegro")]
allegro_errors!(
    inbox_allegro::public_v1::types::ErrorsHolder,
    inbox_allegro::beta_v1::types::ErrorsHolder
);

#[cfg(feature = "ozon")]
impl ErrorBody for inbox_ozon::types::RpcStatus {
    fn code(&self) -> Option<String> {
        self.code.map(|c| c.to_string())
    }
    fn message(&self) -> Option<String> {
        self.message.clone()
    }
}

#[cfg(feature = "mercadolibre")]
impl ErrorBody for inbox_mercadolibre::types::ErrorBody {
    fn code(&self) -> Option<String> {
        self.error.clone().or_else(|| self.code.clone())
    }
    fn message(&self) -> Option<String> {
        self.message.clone()
    }
}

/// Awaits a generated client's request and returns its body, or the vendor's error as
/// an [`Error`] of `marketplace`.
///
/// Any 2xx is a success, also one the spec does not declare (a vendor that answers 201
/// where 200 is documented, or 204 with no body): the body is decoded as the declared
/// type when it can be, else taken as an empty object. A write the vendor accepted must
/// never be reported as failed, or the user sends it again.
pub(crate) async fn call<T: DeserializeOwned, E: ErrorBody>(
    marketplace: Marketplace,
    request: impl Future<Output = Result<ResponseValue<T>, ClientError<E>>>,
) -> Result<T, Error> {
    let (result, outcome) = observe(request).await;
    let error = match result {
        Ok(rv) => return Ok(rv.into_inner()),
        Err(ClientError::InvalidResponsePayload(body, e)) => match last_wins(&body) {
            Some(t) => return Ok(t),
            None => ClientError::InvalidResponsePayload(body, e),
        },
        Err(ClientError::UnexpectedResponse(r)) if r.status().is_success() => {
            let body = r.bytes().await.unwrap_or_default();
            return serde_json::from_slice(&body)
                .or_else(|e| last_wins(&body).ok_or(e))
                .or_else(|_| serde_json::from_value(Value::Object(Default::default())))
                .or_else(|_| serde_json::from_value(Value::Null))
                .map_err(|e| Error::Decode {
                    operation: None,
                    marketplace,
                    what: "response",
                    error: e.to_string(),
                    snippet: snippet(&body),
                    raw: None,
                    source: Some(Box::new(e)),
                });
        }
        Err(e) => e,
    };
    Err(map(marketplace, error, outcome).await)
}

/// An answer whose JSON repeats a key (`{"threads": […], "threads": […]}`), decoded as
/// the common parsers read it: the last value of each key wins. JSON only says names
/// *should* be unique; serde refuses the repeat, so the body is read as data first.
fn last_wins<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    let data: Value = serde_json::from_slice(body).ok()?;
    serde_json::from_str(&data.to_string()).ok()
}

/// Maps a generated client's error, given how its request went.
pub(crate) async fn map<E: ErrorBody>(
    marketplace: Marketplace,
    err: ClientError<E>,
    outcome: Outcome,
) -> Error {
    match err {
        ClientError::ErrorResponse(rv) => {
            let status = rv.status().as_u16();
            let headers = rv.headers().clone();
            from_status(
                marketplace,
                status,
                &headers,
                outcome,
                rv.code(),
                rv.message(),
            )
        }
        ClientError::UnexpectedResponse(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            let (code, message) = parse_error_json(&body);
            from_status(marketplace, status, &headers, outcome, code, message)
        }
        ClientError::InvalidResponsePayload(bytes, e) => Error::Decode {
            operation: None,
            marketplace,
            what: "response",
            error: e.to_string(),
            snippet: snippet(&bytes),
            raw: None,
            source: Some(Box::new(e)),
        },
        ClientError::CommunicationError(e) | ClientError::ResponseBodyError(e) => {
            transport(marketplace, e)
        }
        ClientError::InvalidRequest(message) => Error::InvalidInput {
            marketplace: Some(marketplace),
            message,
        },
        ClientError::Custom(message) => Error::Transport {
            operation: None,
            marketplace,
            message,
            not_sent: false,
            source: None,
        },
        ClientError::InvalidUpgrade(e) => Error::Transport {
            operation: None,
            marketplace,
            message: "unexpected protocol upgrade".into(),
            not_sent: false,
            source: Some(Box::new(e)),
        },
    }
}

/// A transport error, naming host and port only.
pub(crate) fn transport(marketplace: Marketplace, e: reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let message = match e.url() {
        Some(url) => format!(
            "{what} ({}{})",
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None => what.to_string(),
    };
    Error::Transport {
        operation: None,
        marketplace,
        message,
        not_sent: e.is_connect(),
        source: Some(Box::new(e.without_url())),
    }
}

fn from_status(
    marketplace: Marketplace,
    status: u16,
    headers: &HeaderMap,
    outcome: Outcome,
    code: Option<String>,
    message: Option<String>,
) -> Error {
    let attempts = outcome.attempts.max(1);
    // The token endpoint refused the refresh token: no request can succeed until the
    // seller authorises the app again. A server error there may pass.
    if outcome.token_refused && (400..500).contains(&status) {
        return Error::Reauthorize {
            operation: None,
            marketplace,
            code,
            message,
        };
    }
    if status == 429 {
        return Error::RateLimited {
            operation: None,
            marketplace,
            retry_after: inbox_core::retry_after(headers),
            message,
            attempts,
        };
    }
    Error::Api {
        operation: None,
        marketplace,
        status,
        code,
        message,
        request_id: inbox_core::request_id(headers).map(str::to_owned),
        attempts,
    }
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
