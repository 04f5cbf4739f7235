use std::fmt;
use std::time::Duration;

use crate::Marketplace;

/// The cause behind an [`Error`], reachable through [`std::error::Error::source`].
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The one error type of the facade. It never holds a token or a whole response body.
///
/// Every variant names its marketplace where there is one; [`Error::is_retryable`] and
/// [`Error::retry_after`] tell a transient failure from a permanent one, and the
/// underlying cause (the transport error, the JSON error) is its `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The marketplace answered with an error status.
    #[error("{marketplace}: {}HTTP {status}{}{}{}", Op(*operation), Detail(code.as_deref(), message.as_deref()), RequestId(request_id.as_deref()), Attempts(*attempts))]
    Api {
        /// Which marketplace.
        marketplace: Marketplace,
        /// The operation that failed (`send`, `mark read`, `list messages`, …), when
        /// the error came from one: see [`Error::operation`].
        operation: Option<&'static str>,
        /// HTTP status.
        status: u16,
        /// The vendor's error code (`error`, `code`, `errors[0].code`), when given.
        code: Option<String>,
        /// The vendor's error message, when given.
        message: Option<String>,
        /// The vendor's request id (`trace-id`, `X-Request-ID`, …), to quote to support.
        request_id: Option<String>,
        /// How many times the request was sent before this answer was kept.
        attempts: u32,
    },
    /// The marketplace refused the request for its rate limit (HTTP 429).
    #[error("{marketplace}: {}rate limited{}{}{}", Op(*operation), RetryAfter(*retry_after), Detail(None, message.as_deref()), Attempts(*attempts))]
    RateLimited {
        /// Which marketplace.
        marketplace: Marketplace,
        /// The operation that failed (`send`, `mark read`, `list messages`, …), when
        /// the error came from one: see [`Error::operation`].
        operation: Option<&'static str>,
        /// How long the vendor asked to wait, from `Retry-After`.
        retry_after: Option<Duration>,
        /// The vendor's message, when given.
        message: Option<String>,
        /// How many times the request was sent before this answer was kept.
        attempts: u32,
    },
    /// The account's authorisation is gone: its refresh token was refused
    /// (`invalid_grant`: used already, revoked, or the seller changed the password).
    /// Authorise the app again and put the new refresh token in the account's configuration.
    #[error("{marketplace}: {}the authorisation must be renewed{} — authorise the app again and update the account's refresh token", Op(*operation), Detail(code.as_deref(), message.as_deref()))]
    Reauthorize {
        /// Which marketplace.
        marketplace: Marketplace,
        /// The operation that failed (`send`, `mark read`, `list messages`, …), when
        /// the error came from one: see [`Error::operation`].
        operation: Option<&'static str>,
        /// The token endpoint's error code (e.g. `invalid_grant`).
        code: Option<String>,
        /// The token endpoint's description.
        message: Option<String>,
    },
    /// The request did not complete (connection, timeout, body read).
    #[error("{marketplace}: {}transport error: {message}", Op(*operation))]
    Transport {
        /// Which marketplace.
        marketplace: Marketplace,
        /// The operation that failed (`send`, `mark read`, `list messages`, …), when
        /// the error came from one: see [`Error::operation`].
        operation: Option<&'static str>,
        /// What failed, in a few words (host and port, never the credentials).
        message: String,
        /// Whether the request certainly never reached the marketplace (the connection
        /// was refused), so a write may be sent again.
        not_sent: bool,
        /// The underlying transport error.
        #[source]
        source: Option<Cause>,
    },
    /// A response, or one element of it, did not match what the marketplace documents.
    #[error("{marketplace}: {}could not decode {what}: {error}", Op(*operation))]
    Decode {
        /// Which marketplace.
        marketplace: Marketplace,
        /// The operation that failed (`send`, `mark read`, `list messages`, …), when
        /// the error came from one: see [`Error::operation`].
        operation: Option<&'static str>,
        /// What was being decoded (`message`, `conversation`, `response`).
        what: &'static str,
        /// Why.
        error: String,
        /// The start of the offending data (at most 256 characters).
        snippet: String,
        /// The offending element as received, when it is one element of a list.
        raw: Option<serde_json::Value>,
        /// The JSON error, when the data was not what the schema says.
        #[source]
        source: Option<Cause>,
    },
    /// The input was refused before any request was made.
    #[error("{}invalid input: {message}", Prefix(*marketplace))]
    InvalidInput {
        /// The marketplace whose rule was broken, if it is marketplace-specific.
        marketplace: Option<Marketplace>,
        /// What is wrong.
        message: String,
    },
    /// The configuration cannot make an account or an inbox.
    #[error("configuration: {message}")]
    Config {
        /// What is wrong, naming the account.
        message: String,
    },
    /// The marketplace has no such operation, or this build leaves it out.
    #[error("{marketplace}: {operation} is not supported{}", if *not_built { " by this build (enable the cargo feature of that marketplace)" } else { " by this marketplace" })]
    Unsupported {
        /// Which marketplace.
        marketplace: Marketplace,
        /// The operation asked for.
        operation: &'static str,
        /// True when the marketplace's cargo feature is off, false when the vendor
        /// itself has no such operation.
        not_built: bool,
    },
    /// The sync store failed, or another runner committed the account first
    /// ([`crate::sync::StoreErrorKind::Conflict`]); the store's error is the `source()`.
    #[error(transparent)]
    Store(#[from] crate::sync::StoreError),
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
            | Error::Reauthorize { marketplace, .. }
            | Error::Transport { marketplace, .. }
            | Error::Decode { marketplace, .. }
            | Error::Unsupported { marketplace, .. }
            | Error::Pagination { marketplace, .. } => Some(*marketplace),
            Error::InvalidInput { marketplace, .. } => *marketplace,
            Error::Config { .. } | Error::Store(_) => None,
        }
    }

    /// Whether the same request may succeed if tried again later: a transport failure,
    /// a rate limit, or a server error (500, 502, 503, 504; 408). Input, decode,
    /// configuration and other vendor errors are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::RateLimited { .. } => true,
            Error::Api { status, .. } => inbox_core::transient_status(*status),
            Error::Store(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Whether a write that failed this way may still have reached the marketplace (a
    /// timeout, a broken connection or answer, a server error): its effect is unknown.
    pub fn may_have_arrived(&self) -> bool {
        match self {
            Error::Transport { not_sent, .. } => !not_sent,
            Error::Api { status, .. } => *status == 408 || (500..600).contains(status),
            Error::Decode { .. } => true,
            _ => false,
        }
    }

    /// The operation that failed (`send`, `mark read`, `list conversations`, `list
    /// messages`, `start a conversation`, `download`, `find a message's conversation`,
    /// `read missed notifications`), for errors the marketplace's answer (or its absence)
    /// caused: after a send and a mark-read, it tells which one this was.
    pub fn operation(&self) -> Option<&'static str> {
        match self {
            Error::Api { operation, .. }
            | Error::RateLimited { operation, .. }
            | Error::Reauthorize { operation, .. }
            | Error::Transport { operation, .. }
            | Error::Decode { operation, .. } => *operation,
            _ => None,
        }
    }

    /// The error, naming `op` as the operation that failed (unless it names one already).
    pub(crate) fn during(mut self, op: &'static str) -> Self {
        match &mut self {
            Error::Api { operation, .. }
            | Error::RateLimited { operation, .. }
            | Error::Reauthorize { operation, .. }
            | Error::Transport { operation, .. }
            | Error::Decode { operation, .. } => {
                operation.get_or_insert(op);
            }
            _ => {}
        }
        self
    }

    /// How long the marketplace asked to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the marketplace answered with, for vendor errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    pub(crate) fn invalid(marketplace: Marketplace, message: impl Into<String>) -> Self {
        Error::InvalidInput {
            marketplace: Some(marketplace),
            message: message.into(),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    /// The raw JSON text of a malformed element of a listing (one `Err` item among good
    /// ones), when this is one.
    pub fn malformed_raw(&self) -> Option<&serde_json::Value> {
        match self {
            Error::Decode { raw: Some(raw), .. } => Some(raw),
            _ => None,
        }
    }

    pub(crate) fn decode_element(
        marketplace: Marketplace,
        what: &'static str,
        error: impl Into<String>,
        raw: serde_json::Value,
    ) -> Self {
        Error::Decode {
            operation: None,
            marketplace,
            what,
            error: error.into(),
            snippet: snippet(raw.to_string().as_bytes()),
            raw: Some(raw),
            source: None,
        }
    }

    /// A decode error for a missing or malformed field a page cannot do without.
    pub(crate) fn decode(
        marketplace: Marketplace,
        what: &'static str,
        error: impl Into<String>,
    ) -> Self {
        Error::Decode {
            operation: None,
            marketplace,
            what,
            error: error.into(),
            snippet: String::new(),
            raw: None,
            source: None,
        }
    }
}

/// At most 256 characters of `bytes`, lossily decoded.
pub(crate) fn snippet(bytes: &[u8]) -> String {
    let head = bytes.get(..bytes.len().min(1024)).unwrap_or(bytes);
    String::from_utf8_lossy(head).chars().take(256).collect()
}

/// At most `max` characters of `s`, with `…` when cut; for quoting user or vendor input.
pub(crate) fn clip(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
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

struct Op(Option<&'static str>);
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(op) => write!(f, "{op}: "),
            None => Ok(()),
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

struct Attempts(u32);
impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 | 1 => Ok(()),
            n => write!(f, " (after {n} attempts)"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn retryable_errors_are_told_from_permanent_ones() {
        let api = |status| Error::Api {
            operation: None,
            marketplace: Marketplace::Ozon,
            status,
            code: None,
            message: None,
            request_id: None,
            attempts: 3,
        };
        assert!(api(503).is_retryable());
        assert!(api(503).to_string().ends_with("(after 3 attempts)"));
        assert!(!api(404).is_retryable());
        let limited = Error::RateLimited {
            operation: None,
            marketplace: Marketplace::Allegro,
            retry_after: Some(Duration::from_secs(3)),
            message: None,
            attempts: 1,
        };
        assert!(limited.is_retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        assert!(!Error::invalid(Marketplace::Magalu, "x").is_retryable());
    }

    #[test]
    fn the_cause_is_the_source() {
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let e = Error::Decode {
            operation: None,
            marketplace: Marketplace::Magalu,
            what: "response",
            error: json.to_string(),
            snippet: "x".into(),
            raw: None,
            source: Some(Box::new(json)),
        };
        let source = e.source().map(|s| s.to_string());
        assert!(source.is_some_and(|s| s.contains("expected value")));
    }
}
