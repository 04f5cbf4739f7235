//! Typed client for Ozon's seller chats, generated from `specs/ozon.yaml`.
//!
//! Spec: `spec/ozon.yaml` in this package (OpenAPI 3.0, `info.version` `2.1`), the same
//! file as the workspace's `specs/ozon.yaml`; `cargo xtask generate --check` keeps both and
//! the generated code in step. A regenerated client is a new minor version before 1.0.
//!
//! All chat operations are `POST` with a JSON body. The credentials (`Client-Id`,
//! `Api-Key`) are set once, as sensitive headers, by [`inbox_core::prepare_request`]
//! instead of being arguments of every call. Ids that Ozon sends as strings or numbers
//! decode into [`inbox_core::FlexId`]; the user `type` (documented with a Cyrillic `С` in
//! one example) is an open enum.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
//! # let credentials = sandbox.credentials();
//! # let base_url = sandbox.url(inbox_sandbox::Vendor::Ozon);
//! # let (client_id, api_key) = (credentials.ozon_client_id.clone(), credentials.ozon_api_key.clone());
//! use inbox_ozon::types::V3ChatList;
//! // In production: `Ozon::new(client_id, api_key)`; here, the local sandbox.
//! let ozon = inbox_ozon::Ozon::with_base_url(&base_url, client_id, api_key)?;
//! let page = ozon
//!     .client
//!     .chat_api_chat_list_v3()
//!     .body(V3ChatList::builder().limit(100))
//!     .send()
//!     .await?;
//! println!("{:?}", page.has_next);
//! # assert!(page.chats.iter().flatten().next().is_some());
//! # Ok(()) }
//! ```

extern crate self as inbox_ozon;

/// The generated operations and types.
#[allow(clippy::all, missing_docs, unused_imports, dead_code, rustdoc::all)]
pub mod generated;

pub use generated::*;
pub use inbox_core::{HttpClientError, Secret};

/// Ozon's Seller API.
pub const PRODUCTION_URL: &str = "https://api-seller.ozon.ru";

inbox_core::impl_client_hooks!(generated::Client);

/// One Ozon seller account.
#[derive(Clone, Debug)]
pub struct Ozon {
    /// The generated client.
    pub client: generated::Client,
}

impl Ozon {
    /// A client for the production API.
    pub fn new(
        client_id: impl Into<String>,
        api_key: impl Into<Secret>,
    ) -> Result<Self, HttpClientError> {
        Self::with_base_url(PRODUCTION_URL, client_id, api_key)
    }

    /// A client for any base URL (a proxy, a local sandbox, a test server).
    pub fn with_base_url(
        base_url: &str,
        client_id: impl Into<String>,
        api_key: impl Into<Secret>,
    ) -> Result<Self, HttpClientError> {
        Ok(Self::from_parts(
            base_url,
            inbox_core::http_client()?,
            client_id,
            api_key,
        ))
    }

    /// A client over an existing `reqwest::Client` (which must have a TLS provider).
    pub fn from_parts(
        base_url: &str,
        http: reqwest::Client,
        client_id: impl Into<String>,
        api_key: impl Into<Secret>,
    ) -> Self {
        let auth = inbox_core::Auth::ClientIdApiKey {
            client_id: client_id.into(),
            api_key: api_key.into(),
        };
        Self::with_policy(base_url, http, auth, policy(""))
    }

    /// A client with any credentials and request policy.
    pub fn with_policy(
        base_url: &str,
        http: reqwest::Client,
        auth: inbox_core::Auth,
        policy: inbox_core::Policy,
    ) -> Self {
        let context = inbox_core::Context {
            auth,
            media: None,
            policy,
        };
        Ozon {
            client: generated::Client::new_with_client(
                base_url.trim_end_matches('/'),
                http,
                context,
            ),
        }
    }
}

/// Ozon's limits as a request policy for `account`: 50 requests a second per
/// `Client-Id` across all methods; a 429 (code 8, no `Retry-After`) waits 1 s. The list
/// and history POSTs only read; `/v2/chat/read` may be repeated.
pub fn policy(account: &str) -> inbox_core::Policy {
    use inbox_core::{Applies, Classify, Labels, Policy, RateLimit, RetryPolicy};
    use std::time::Duration;
    Policy::new(
        Labels {
            marketplace: "ozon",
            account: account.to_string(),
        },
        RetryPolicy {
            rate_limited_wait: Duration::from_secs(1),
            ..RetryPolicy::default()
        },
        Classify {
            read_posts: &[
                "ChatAPI_ChatListV3",
                "ChatAPI_ChatHistoryV3",
                "ChatAPI_ChatListV2",
            ],
            idempotent_posts: &["ChatAPI_ChatReadV2"],
            downloads: &[],
        },
        vec![RateLimit::new(
            "all",
            50,
            Duration::from_secs(1),
            Applies::All,
        )],
    )
}

impl std::ops::Deref for Ozon {
    type Target = generated::Client;
    fn deref(&self) -> &generated::Client {
        &self.client
    }
}
