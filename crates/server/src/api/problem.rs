//! The API's one error form: `application/problem+json` (RFC 9457), always with `type`,
//! `title`, `status` and `detail`; never a stack trace or a secret.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer (boxed: results carry it cheaply).
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<Body>);

/// What a problem says.
#[derive(Clone, Debug, Serialize)]
struct Body {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    marketplace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
}

impl Problem {
    /// A problem of `status`, saying `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem(Box::new(Body {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            marketplace: None,
            vendor_status: None,
            retry_after: None,
            rule: None,
        }))
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no key, or one unknown or revoked.
    pub fn unauthorized() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "an API key is required: Authorization: Bearer ik_…",
        )
    }

    /// 403: the key lacks `scope`.
    pub fn forbidden(scope: &str) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            format!("this key lacks the scope `{scope}`"),
        )
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    /// 503, come back after `seconds`.
    pub fn unavailable(detail: impl Into<String>, seconds: u64) -> Problem {
        let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail);
        p.0.retry_after = Some(seconds);
        p
    }

    /// The store failed: 503 (it may pass).
    pub fn store(_e: &marketplace_inbox::sync::StoreError) -> Problem {
        Problem::unavailable("the store is not answering; try again shortly", 5)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.0.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry {
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
