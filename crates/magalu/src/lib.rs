//! Typed client for Magalu's seller conversations, generated from `specs/magalu.yaml`.
//!
//! Spec: `spec/magalu.yaml` in this package (OpenAPI 3.0, `info.version` `v0`), the same
//! file as the workspace's `specs/magalu.yaml`; `cargo xtask generate --check` keeps both and
//! the generated code in step. A regenerated client is a new minor version before 1.0.
//!
//! Paging uses `_limit` / `_offset` and answers with `meta.page` / `meta.links`.
//! Timestamps decode from ISO-8601 strings or Mongo-style `{"$date": …}` objects into
//! [`inbox_core::FlexDateTime`]; attachments are URL strings or objects.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
//! # let credentials = sandbox.credentials();
//! # let (base_url, token) = (sandbox.url(inbox_sandbox::Vendor::Magalu), credentials.magalu_token.clone());
//! // In production: `Magalu::new(token)`; here, the local sandbox.
//! let magalu = inbox_magalu::Magalu::with_base_url(&base_url, token)?;
//! let page = magalu.list_conversations().limit(100).send().await?;
//! println!("{:?}", page.meta.as_ref().and_then(|m| m.links.as_ref()));
//! # assert!(page.results.iter().flatten().next().is_some());
//! # Ok(()) }
//! ```

extern crate self as inbox_magalu;

/// The generated operations and types.
#[allow(clippy::all, missing_docs, unused_imports, dead_code, rustdoc::all)]
pub mod generated;

pub use generated::*;
pub use inbox_core::{HttpClientError, Secret};

/// Magalu's production services host.
pub const PRODUCTION_URL: &str = "https://services.magalu.com";
/// Magalu's sandbox host.
pub const SANDBOX_URL: &str = "https://api-sandbox.magalu.com";

inbox_core::impl_client_hooks!(generated::Client);

inbox_core::bearer_account!(
    /// One Magalu seller account.
    Magalu,
    generated::Client,
    PRODUCTION_URL,
    policy
);

/// ID Magalu's OAuth token endpoint.
pub const TOKEN_URL: &str = "https://id.magalu.com/oauth/token";

/// Magalu's limits as a request policy for `account`. Magalu's rate-limit page gives no
/// figure for this API; the policy uses the 200 reads a minute per seller reported by
/// integrators, and 100 writes a minute as a conservative default. A 429 without
/// `Retry-After` waits 5 s.
pub fn policy(account: &str) -> inbox_core::Policy {
    use inbox_core::{Applies, Classify, Labels, Policy, RateLimit, RetryPolicy};
    use std::time::Duration;
    let minute = Duration::from_secs(60);
    Policy::new(
        Labels {
            marketplace: "magalu",
            account: account.to_string(),
        },
        RetryPolicy {
            rate_limited_wait: Duration::from_secs(5),
            ..RetryPolicy::default()
        },
        Classify::default(),
        vec![
            RateLimit::new("reads", 200, minute, Applies::Reads),
            RateLimit::new("writes", 100, minute, Applies::Writes),
        ],
    )
}

impl Magalu {
    /// A client for Magalu's sandbox.
    pub fn sandbox(token: impl Into<Secret>) -> Result<Self, HttpClientError> {
        Self::with_base_url(SANDBOX_URL, token)
    }
}
