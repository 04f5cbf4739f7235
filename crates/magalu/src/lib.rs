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

/// One Magalu seller account.
#[derive(Clone, Debug)]
pub struct Magalu {
    /// The generated client.
    pub client: generated::Client,
}

impl Magalu {
    /// A client for the production API.
    pub fn new(token: impl Into<Secret>) -> Result<Self, HttpClientError> {
        Self::with_base_url(PRODUCTION_URL, token)
    }

    /// A client for Magalu's sandbox.
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
        let context = inbox_core::Context {
            auth: inbox_core::Auth::Bearer(token.into()),
            media: None,
        };
        Magalu {
            client: generated::Client::new_with_client(
                base_url.trim_end_matches('/'),
                http,
                context,
            ),
        }
    }
}

impl std::ops::Deref for Magalu {
    type Target = generated::Client;
    fn deref(&self) -> &generated::Client {
        &self.client
    }
}
