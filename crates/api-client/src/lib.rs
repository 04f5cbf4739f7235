//! Typed client for the marketplace-inbox HTTP API (what `inbox serve` answers),
//! generated from `specs/inbox-api.yaml`, the API's contract.
//!
//! Spec: `spec/inbox-api.yaml` in this package (OpenAPI 3.0.3), the same file as the
//! workspace's `specs/inbox-api.yaml`; `cargo xtask generate --check` keeps both and the
//! generated code in step. Every request carries the API key as a bearer token; errors
//! decode as [`types::Problem`] (RFC 9457).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let inbox = inbox_api_client::InboxApi::with_base_url("http://127.0.0.1:8080", "ik_…")?;
//! let page = inbox.list_conversations().unread(true).limit(50).send().await?;
//! for conversation in &page.data {
//!     println!("{} {:?}", conversation.ref_, conversation.unread);
//! }
//! # Ok(()) }
//! ```

extern crate self as inbox_api_client;

/// The generated operations and types.
#[allow(clippy::all, missing_docs, unused_imports, dead_code, rustdoc::all)]
pub mod generated;

pub use generated::*;
pub use inbox_core::{HttpClientError, Secret};

/// The API's contract, `specs/inbox-api.yaml` (what `GET /openapi.yaml` serves).
pub const SPEC: &str = include_str!("../spec/inbox-api.yaml");

/// Where `inbox serve` listens unless told otherwise.
pub const LOCAL_URL: &str = "http://127.0.0.1:8080";

inbox_core::impl_client_hooks!(generated::Client);

inbox_core::bearer_account!(
    /// A client of one marketplace-inbox service, with one API key.
    InboxApi,
    generated::Client,
    LOCAL_URL,
    policy
);

/// The API's default limit per key (600 requests a minute) as a request policy: requests
/// are paced under it, and a 429 waits as `Retry-After` says.
pub fn policy(key: &str) -> inbox_core::Policy {
    use inbox_core::{Applies, Classify, Labels, Policy, RateLimit, RetryPolicy};
    Policy::new(
        Labels {
            marketplace: "inbox-api",
            account: key.to_string(),
        },
        RetryPolicy::default(),
        Classify::default(),
        vec![RateLimit::new(
            "all",
            600,
            std::time::Duration::from_secs(60),
            Applies::All,
        )],
    )
}
