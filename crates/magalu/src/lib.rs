//! Typed client for Magalu's seller conversations, generated from `specs/magalu.yaml`.
//!
//! Paging uses `_limit` / `_offset` and answers with `meta.page` / `meta.links`.
//! Timestamps decode from ISO-8601 strings or Mongo-style `{"$date": …}` objects into
//! [`inbox_core::FlexDateTime`]; attachments are URL strings or objects.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let magalu = inbox_magalu::Magalu::new("jwt")?;
//! let page = magalu.list_conversations().limit(100).send().await?;
//! println!("{:?}", page.meta.as_ref().and_then(|m| m.links.as_ref()));
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
    PRODUCTION_URL
);

impl Magalu {
    /// A client for Magalu's sandbox.
    pub fn sandbox(token: impl Into<Secret>) -> Result<Self, HttpClientError> {
        Self::with_base_url(SANDBOX_URL, token)
    }
}
