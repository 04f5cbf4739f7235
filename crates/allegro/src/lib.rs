//! Typed client for Allegro's Message Center, generated from `specs/allegro.yaml`.
//!
//! Spec: `spec/allegro.yaml` in this package (OpenAPI 3.0, `info.version` `latest`), the same
//! file as the workspace's `specs/allegro.yaml`; `cargo xtask generate --check` keeps both and
//! the generated code in step. A regenerated client is a new minor version before 1.0.
//!
//! Allegro serves messaging in two versions, told apart by media type. Both are here:
//! [`public_v1`] (`application/vnd.allegro.public.v1+json`: offset paging, `interlocutor`)
//! and [`beta_v1`] (`application/vnd.allegro.beta.v1+json`: `nextPage.id` paging, thread
//! `type`/`subType`/`status`/`participants`, author roles). Since 2026-10-28
//! post-purchase-issue threads are only visible through beta.v1.
//!
//! Every request passes through [`inbox_core::prepare_request`]: the vendor media type
//! replaces `application/json` in `Accept` and `Content-Type` (Allegro answers 406
//! otherwise), the bearer token is added as a sensitive header, and progenitor's
//! `api-version` header is removed.
//!
//! Build clients with [`Allegro`]; the generated `Client::new` uses a TLS client without
//! a crypto provider installed and is only safe after [`inbox_core::http_client`] ran.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
//! # let credentials = sandbox.credentials();
//! # let (base_url, token) = (sandbox.url(inbox_sandbox::Vendor::Allegro), credentials.allegro_token.clone());
//! // In production: `Allegro::new(token)`; here, the local sandbox.
//! let allegro = inbox_allegro::Allegro::with_base_url(&base_url, token)?;
//! let page = allegro.beta.list_threads_get().limit(20).send().await?;
//! for thread in page.threads.iter().flatten() {
//!     println!("{:?}", thread.valid().and_then(|t| t.id.as_ref()));
//! }
//! # assert!(page.threads.iter().flatten().any(|t| t.valid().is_some()));
//! # Ok(()) }
//! ```

extern crate self as inbox_allegro;

/// Operations and types of the public.v1 media type.
#[allow(clippy::all, missing_docs, unused_imports, dead_code, rustdoc::all)]
pub mod public_v1;

/// Operations and types of the beta.v1 media type.
#[allow(clippy::all, missing_docs, unused_imports, dead_code, rustdoc::all)]
pub mod beta_v1;

pub use inbox_core::{HttpClientError, Secret};

/// Allegro's production API.
pub const PRODUCTION_URL: &str = "https://api.allegro.pl";
/// Allegro's sandbox API.
pub const SANDBOX_URL: &str = "https://api.allegro.pl.allegrosandbox.pl";

inbox_core::impl_client_hooks!(public_v1::Client);
inbox_core::impl_client_hooks!(beta_v1::Client);

/// Allegro's OAuth token endpoint (production).
pub const TOKEN_URL: &str = "https://allegro.pl/auth/oauth/token";
/// Allegro's OAuth token endpoint (sandbox).
pub const SANDBOX_TOKEN_URL: &str = "https://allegro.pl.allegrosandbox.pl/auth/oauth/token";

/// Allegro's limits as a request policy for `account`: 9,000 requests a minute per
/// client id (exceeding it blocks the client id for a minute, so a 429 without
/// `Retry-After` waits 60 s), and 1 new message a second per user on the two operations
/// that write messages.
pub fn policy(account: &str) -> inbox_core::Policy {
    use inbox_core::{Applies, Classify, Labels, Policy, RateLimit, RetryPolicy};
    use std::time::Duration;
    Policy::new(
        Labels {
            marketplace: "allegro",
            account: account.to_string(),
        },
        RetryPolicy {
            rate_limited_wait: Duration::from_secs(60),
            ..RetryPolicy::default()
        },
        Classify {
            downloads: public_v1::BINARY_RESPONSE_OPERATIONS,
            ..Classify::default()
        },
        vec![
            // Per application (client id), not per seller.
            RateLimit::new("all", 9_000, Duration::from_secs(60), Applies::All).per_application(),
            RateLimit::new(
                "messages",
                1,
                Duration::from_secs(1),
                Applies::Operations(&["newMessagePOST", "newMessageInThreadPOST"]),
            ),
        ],
    )
}

/// One Allegro account: a client per API version, sharing one connection pool and token.
#[derive(Clone, Debug)]
pub struct Allegro {
    /// The public.v1 operations.
    pub v1: public_v1::Client,
    /// The beta.v1 operations.
    pub beta: beta_v1::Client,
}

impl Allegro {
    /// A client for the production API.
    pub fn new(token: impl Into<Secret>) -> Result<Self, HttpClientError> {
        Self::with_base_url(PRODUCTION_URL, token)
    }

    /// A client for Allegro's sandbox.
    pub fn sandbox(token: impl Into<Secret>) -> Result<Self, HttpClientError> {
        Self::with_base_url(SANDBOX_URL, token)
    }

    /// A client for any base URL (a proxy, a local sandbox, a test server).
    pub fn with_base_url(
        base_url: &str,
        token: impl Into<Secret>,
    ) -> Result<Self, HttpClientError> {
        Ok(Self::from_parts(
            base_url,
            inbox_core::http_client()?,
            token,
        ))
    }

    /// A client over an existing `reqwest::Client` (which must have a TLS provider).
    pub fn from_parts(base_url: &str, http: reqwest::Client, token: impl Into<Secret>) -> Self {
        let auth = inbox_core::Auth::Bearer(token.into());
        Self::with_policy(base_url, http, auth, policy(""))
    }

    /// A client with any credentials and request policy (shared by both versions).
    pub fn with_policy(
        base_url: &str,
        http: reqwest::Client,
        auth: inbox_core::Auth,
        policy: inbox_core::Policy,
    ) -> Self {
        let context = |json, binary_operations| inbox_core::Context {
            auth: auth.clone(),
            media: Some(inbox_core::MediaTypes {
                json,
                binary_operations,
            }),
            policy: policy.clone(),
        };
        let base_url = base_url.trim_end_matches('/');
        Allegro {
            v1: public_v1::Client::new_with_client(
                base_url,
                http.clone(),
                context(public_v1::MEDIA_TYPE, public_v1::BINARY_RESPONSE_OPERATIONS),
            ),
            beta: beta_v1::Client::new_with_client(
                base_url,
                http,
                context(beta_v1::MEDIA_TYPE, beta_v1::BINARY_RESPONSE_OPERATIONS),
            ),
        }
    }
}
