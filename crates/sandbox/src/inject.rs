//! Elements the vendor's answers carry besides the real ones, to play a marketplace
//! that sends malformed data: each [`Injection`] puts a raw JSON element first in one
//! array of the answers to one path (and, optionally, only those whose request body
//! names something, such as Ozon's `chat_id`).

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use serde_json::Value;

use crate::Vendor;

/// One raw element put into the answers of one route.
#[derive(Clone, Debug, PartialEq)]
pub struct Injection {
    /// Which marketplace.
    pub vendor: Vendor,
    /// The vendor path answered, without the query (`/messaging/threads`).
    pub path: String,
    /// Only requests whose body contains this text (`None`: every request to `path`).
    pub body_contains: Option<String>,
    /// The JSON pointer of the array (`/threads`).
    pub array: String,
    /// The element, as the answer will carry it.
    pub raw: Value,
}

impl Injection {
    /// Whether it concerns answers to `path` of `vendor`.
    pub(crate) fn answers(&self, vendor: Vendor, path: &str) -> bool {
        self.vendor == vendor && self.path == path
    }

    /// Whether a request body to its path is one it applies to.
    pub(crate) fn body_matches(&self, body: &[u8]) -> bool {
        self.body_contains.as_ref().is_none_or(|needle| {
            body.windows(needle.len().max(1))
                .any(|w| w == needle.as_bytes())
        })
    }
}

/// `response` with each injection's element first in its array (answers that are not
/// JSON objects, or lack the array, are passed on as they are).
pub(crate) async fn apply(response: Response, injections: &[Injection]) -> Response {
    if injections.is_empty() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    for injection in injections {
        if let Some(Value::Array(items)) = value.pointer_mut(&injection.array) {
            items.insert(0, injection.raw.clone());
        }
    }
    let text = value.to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}
