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

    /// 409: the state forbids it.
    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, detail)
    }

    /// A body axum could not take: 413 when it is too large, else 422 naming `rule`.
    pub fn body(rule: &str, status: StatusCode, detail: impl Into<String>) -> Problem {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than 25 MiB",
            ),
            _ => Problem::unprocessable(rule, detail),
        }
    }

    /// 422: the body breaks `rule`.
    pub fn unprocessable(rule: &str, detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail);
        p.0.rule = Some(rule.to_string());
        p
    }

    /// 429: the key's limit; come back after `seconds`.
    pub fn too_many(seconds: u64) -> Problem {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "this key made too many requests; see Retry-After",
        );
        p.0.retry_after = Some(seconds);
        p
    }

    /// What a vendor's (or the facade's) error means to a caller: a broken rule is 422,
    /// a refusal of the conversation's state 409, a missing conversation 404, a rate
    /// limit or outage 503 with when to come back.
    pub fn vendor(e: &marketplace_inbox::Error) -> Problem {
        use marketplace_inbox::Error;
        let detail = e.to_string();
        let mut p = match e {
            Error::InvalidInput { .. } => Problem::unprocessable("marketplace", detail),
            Error::Unsupported { .. } => Problem::unprocessable("unsupported", detail),
            Error::RateLimited { retry_after, .. } => {
                Problem::unavailable(detail, retry_after.map_or(30, |d| d.as_secs().max(1)))
            }
            Error::Reauthorize { .. } => Problem::conflict(detail),
            Error::Api { status: 404, .. } => Problem::not_found(detail),
            Error::Api { status, .. } if (400..500).contains(status) => Problem::conflict(detail),
            Error::Store(s) => return Problem::store(s),
            _ => Problem::unavailable(detail, 30),
        };
        p.0.marketplace = e.marketplace().map(|m| m.as_str().to_string());
        p.0.vendor_status = e.status();
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
