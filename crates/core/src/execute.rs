//! The one request path of every client: rate limits, credentials, retries with
//! backoff, token refresh, and a tracing span per request. Called from progenitor's
//! `exec` hook (see [`crate::impl_client_hooks`]).
//!
//! What is repeated, per [`Kind`]:
//! - reads and idempotent requests: on connection errors, timeouts, broken bodies, 429,
//!   and 408/500/502/503/504;
//! - writes: only when the request certainly did not reach the vendor — the connection
//!   was refused, or the vendor answered 429 (it did nothing);
//! - a 401 on an OAuth account: once, after one refresh of the token.
//!
//! `Retry-After` is honoured in both forms (seconds, HTTP date); a 429 without it waits
//! the policy's `rate_limited_wait`, and pauses every request of the account meanwhile.
//! Retries spend the vendor's retry quota ([`crate::retry`]); when it is empty a
//! request ends with its last answer. How many attempts a request took, and whether the
//! token endpoint refused the refresh token, is recorded for [`crate::observe`] — never
//! written into the vendor's answer.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Request, Response};
use tracing::Instrument;

use crate::outcome::{record, Outcome};
use crate::policy::Kind;
use crate::request::{Auth, Context};
use crate::retry::{decide, retry_quota, Attempted, Decision};
use crate::token::Refused;
use crate::Secret;

/// Sends `request` for `operation_id` under `context`'s policy and credentials.
pub async fn execute(
    http: &reqwest::Client,
    context: &Context,
    request: Request,
    operation_id: &str,
) -> reqwest::Result<Response> {
    let policy = &context.policy;
    let labels = policy.labels();
    let span = tracing::info_span!(
        "request",
        marketplace = labels.marketplace,
        account = %labels.account,
        operation = operation_id,
        method = %request.method(),
    );
    run(http, context, request, operation_id)
        .instrument(span)
        .await
}

async fn run(
    http: &reqwest::Client,
    context: &Context,
    request: Request,
    operation_id: &str,
) -> reqwest::Result<Response> {
    let policy = &context.policy;
    let retry = policy.retry();
    let kind = policy.kind(request.method(), operation_id);
    let quota = retry_quota(&request.url().origin().ascii_serialization());
    let mut request = request;
    let (mut attempt, mut waited, mut refreshed) = (0u32, Duration::ZERO, false);
    let mut spent = 0u32;
    loop {
        attempt = attempt.saturating_add(1);
        let spare = request.try_clone();
        let token = match &context.auth {
            Auth::OAuth(source) => match source.access(http).await {
                Ok(token) => {
                    set_bearer(&mut request, &token);
                    Some(token)
                }
                Err(refused) => return refusal(refused, attempt),
            },
            _ => None,
        };
        policy.until_ready(kind, operation_id).await;
        let started = Instant::now();
        let outcome = send(http, request, kind).await;
        crate::counts::count(
            policy.labels().marketplace,
            matches!(&outcome, Ok(r) if r.status() == 429),
        );
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok(r) => tracing::debug!(
                attempt,
                status = r.status().as_u16(),
                elapsed_ms,
                request_id = request_id(r.headers()),
                "answered"
            ),
            Err(e) => tracing::debug!(attempt, elapsed_ms, error = %TransportKind(e), "failed"),
        }
        let attempted = match &outcome {
            Ok(r) => Attempted::Answered {
                status: r.status().as_u16(),
                retry_after: retry_after(r.headers()),
            },
            Err(e) if e.is_connect() => Attempted::NotConnected,
            Err(e) => Attempted::Lost {
                timeout: e.is_timeout(),
            },
        };
        let oauth = token.is_some();
        let decision = decide(
            attempted,
            kind,
            oauth,
            refreshed,
            attempt,
            retry,
            policy.unit(),
        );
        match decision {
            Decision::Done => {
                if matches!(&outcome, Ok(r) if r.status().is_success()) {
                    // An answer: what its retries spent goes back, or one for a first try.
                    quota.refund(spent.max(1));
                }
                return finish(outcome, attempt);
            }
            Decision::Refresh => {
                let (Auth::OAuth(source), Some(rejected)) = (&context.auth, token) else {
                    return finish(outcome, attempt);
                };
                refreshed = true;
                tracing::info!(attempt, "access token rejected; refreshing once");
                if let Err(refused) = source.after_rejection(http, &rejected).await {
                    return refusal(refused, attempt);
                }
                match spare {
                    Some(again) => request = again,
                    None => return finish(outcome, attempt),
                }
            }
            Decision::Retry {
                wait,
                cost,
                throttled,
            } => {
                if throttled {
                    // Every request of the account waits, not only this one.
                    policy.pause(wait);
                }
                let within = waited.saturating_add(wait) <= retry.max_total_delay;
                match spare {
                    Some(again) if attempt < retry.max_attempts && within => {
                        if !quota.spend(cost) {
                            tracing::warn!(attempt, "retry quota spent; giving up");
                            return finish(outcome, attempt);
                        }
                        spent = spent.saturating_add(cost);
                        tracing::warn!(
                            attempt,
                            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            "retrying"
                        );
                        tokio::time::sleep(wait).await;
                        waited = waited.saturating_add(wait);
                        request = again;
                    }
                    _ => {
                        tracing::warn!(attempt, "giving up");
                        return finish(outcome, attempt);
                    }
                }
            }
        }
    }
}

/// Sends one attempt. Except for downloads, the whole body is read here, so a body that
/// breaks off is a failed attempt (and may be repeated) rather than a decode error later.
async fn send(http: &reqwest::Client, request: Request, kind: Kind) -> reqwest::Result<Response> {
    let response = http.execute(request).await?;
    if kind == Kind::Download {
        return Ok(response);
    }
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok(Response::from(rebuilt))
}

fn set_bearer(request: &mut Request, token: &Secret) {
    if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
    }
}

/// Whether an HTTP status says the same request may succeed later (408, 500, 502, 503,
/// 504): the one definition the retry loop and the facade's errors share.
pub fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 500 | 502 | 503 | 504)
}

/// The request's last answer, its attempts recorded for [`crate::observe`].
fn finish(outcome: reqwest::Result<Response>, attempts: u32) -> reqwest::Result<Response> {
    record(Outcome {
        attempts,
        token_refused: false,
    });
    outcome
}

fn refusal(refused: Refused, attempts: u32) -> reqwest::Result<Response> {
    record(Outcome {
        attempts,
        token_refused: matches!(refused, Refused::Answer(_)),
    });
    match refused {
        Refused::Answer(r) => Ok(r),
        Refused::Transport(e) => Err(e),
    }
}

/// `Retry-After` of an answer, as seconds (at most a day) or as an HTTP date (a date in
/// the past is no wait): the one reading the retry loop and the facade's errors share.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(24 * 3600)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The vendor's request id of an answer (`trace-id`, `X-Request-ID`, `X-Trace-ID`), to
/// quote to the vendor's support.
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    ["trace-id", "x-request-id", "x-trace-id"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok())
}

/// A transport error in a few words, without its URL.
struct TransportKind<'a>(&'a reqwest::Error);
impl std::fmt::Display for TransportKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.0;
        f.write_str(if e.is_connect() {
            "connect"
        } else if e.is_timeout() {
            "timeout"
        } else if e.is_body() || e.is_decode() {
            "body"
        } else {
            "request"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let retry_after_value = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&headers)
        };
        assert_eq!(retry_after_value(" 7 "), Some(Duration::from_secs(7)));
        let soon = chrono::Utc::now() + chrono::Duration::seconds(30);
        let date = soon.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let wait = retry_after_value(&date).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            retry_after_value("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_value("soon"), None);
    }
}
