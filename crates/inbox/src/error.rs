use std::fmt;
use std::time::Duration;

use crate::Marketplace;

/// The one error type of the facade. It never holds a token or a whole response body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The marketplace answered with an error status.
    #[error("{marketplace}: HTTP {status}{}{}", Detail(code.as_deref(), message.as_deref()), RequestId(request_id.as_deref()))]
    Api {
        /// Which marketplace.
        marketplace: Marketplace,
        /// HTTP status.
        status: u16,
        /// The vendor's error code (`error`, `code`, `errors[0].code`), when given.
        code: Option<String>,
        /// The vendor's error message, when given.
        message: Option<String>,
        /// The vendor's request id (`trace-id`, `X-Request-ID`, …), to quote to support.
        request_id: Option<String>,
    },
    /// The marketplace refused the request for its rate limit (HTTP 429).
    #[error("{marketplace}: rate limited{}{}", RetryAfter(*retry_after), Detail(None, message.as_deref()))]
    RateLimited {
        /// Which marketplace.
        marketplace: Marketplace,
        /// How long the vendor asked to wait, from `Retry-After`.
        retry_after: Option<Duration>,
        /// The vendor's message, when given.
        message: Option<String>,
    },
    /// The request did not complete (connection, timeout, body read).
    #[error("{marketplace}: transport error: {message}")]
    Transport {
        /// Which marketplace.
        marketplace: Marketplace,
        /// What failed.
        message: String,
    },
    /// A response, or one element of it, did not match what the marketplace documents.
    #[error("{marketplace}: could not decode {what}: {error}")]
    Decode {
        /// Which marketplace.
        marketplace: Marketplace,
        /// What was being decoded (`message`, `conversation`, `response`).
        what: &'static str,
        /// Why.
        error: String,
        /// The start of the offending data (at most 256 characters).
        snippet: String,
        /// The offending element as received, when it is one element of a list.
        raw: Option<serde_json::Value>,
    },
    /// The input was refused before any request was made.
    #[error("{}invalid input: {message}", Prefix(*marketplace))]
    InvalidInput {
        /// The marketplace whose rule was broken, if it is marketplace-specific.
        marketplace: Option<Marketplace>,
        /// What is wrong.
        message: String,
    },
    /// The marketplace has no such operation.
    #[error("{marketplace}: {operation} is not supported by this marketplace")]
    Unsupported {
        /// Which marketplace.
        marketplace: Marketplace,
        /// The operation asked for.
        operation: &'static str,
    },
    /// A listing stopped because the marketplace sent a page that would loop forever.
    #[error("{marketplace}: pagination stopped: {message}")]
    Pagination {
        /// Which marketplace.
        marketplace: Marketplace,
        /// What the marketplace did.
        message: String,
    },
}

impl Error {
    /// The marketplace the error came from, if any.
    pub fn marketplace(&self) -> Option<Marketplace> {
        match self {
            Error::Api { marketplace, .. }
            | Error::RateLimited { marketplace, .. }
            | Error::Transport { marketplace, .. }
            | Error::Decode { marketplace, .. }
            | Error::Unsupported { marketplace, .. }
            | Error::Pagination { marketplace, .. } => Some(*marketplace),
            Error::InvalidInput { marketplace, .. } => *marketplace,
        }
    }

    pub(crate) fn invalid(marketplace: Marketplace, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            marketplace: Some(marketplace),
            message: message.into(),
        }
    }

    pub(crate) fn decode_element(
        marketplace: Marketplace,
        what: &'static str,
        error: impl Into<String>,
        raw: serde_json::Value,
    ) -> Self {
        Error::Decode {
            marketplace,
            what,
            error: error.into(),
            snippet: snippet(raw.to_string().as_bytes()),
            raw: Some(raw),
        }
    }
}

/// At most 256 characters of `bytes`, lossily decoded.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]);
    text.chars().take(256).collect()
}

struct Detail<'a>(Option<&'a str>, Option<&'a str>);
impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(c), Some(m)) => write!(f, ": {c}: {m}"),
            (Some(x), None) | (None, Some(x)) => write!(f, ": {x}"),
            (None, None) => Ok(()),
        }
    }
}

struct RequestId<'a>(Option<&'a str>);
impl fmt::Display for RequestId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (request id {id})"),
            None => Ok(()),
        }
    }
}

struct RetryAfter(Option<Duration>);
impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, ", retry after {} s", d.as_secs()),
            None => Ok(()),
        }
    }
}

struct Prefix(Option<Marketplace>);
impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(f, "{m}: "),
            None => Ok(()),
        }
    }
}
