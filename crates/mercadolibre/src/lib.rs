//! Typed client for Mercado Libre's post-sale messages, generated from
//! `specs/mercadolibre.yaml`, plus the multipart attachment upload progenitor cannot
//! generate ([`MercadoLibre::upload_attachment`]).
//!
//! Spec: `spec/mercadolibre.yaml` in this package (OpenAPI 3.0, `info.version` `2026-11`), the same
//! file as the workspace's `specs/mercadolibre.yaml`; `cargo xtask generate --check` keeps both and
//! the generated code in step. A regenerated client is a new minor version before 1.0.
//!
//! Every `/messages` call needs `tag=post_sale` ([`enums::Tag::PostSale`]). Reading a
//! pack marks its messages read unless `mark_as_read(false)` is set: pass it on every
//! read that must not change state.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
//! # let credentials = sandbox.credentials();
//! # let (base_url, token) = (sandbox.url(inbox_sandbox::Vendor::MercadoLibre), credentials.mercadolibre_token.clone());
//! # let seller_id = credentials.mercadolibre_seller_id.clone();
//! use inbox_mercadolibre::enums::Tag;
//! // In production: `MercadoLibre::new(token)`; here, the local sandbox.
//! let meli = inbox_mercadolibre::MercadoLibre::with_base_url(&base_url, token)?;
//! let page = meli
//!     .get_pack_messages()
//!     .pack_id("2000000089077943")
//!     .seller_id(seller_id)
//!     .tag(Tag::PostSale)
//!     .mark_as_read(false)
//!     .send()
//!     .await?;
//! println!("{:?}", page.paging);
//! # assert!(page.messages.iter().flatten().next().is_some());
//! # Ok(()) }
//! ```

extern crate self as inbox_mercadolibre;

/// The generated operations and types.
#[allow(clippy::all, missing_docs, unused_imports, dead_code, rustdoc::all)]
pub mod generated;

pub use generated::*;
pub use inbox_core::{HttpClientError, Secret};

use progenitor_client::{ClientHooks, OperationInfo};

/// Mercado Libre's API.
pub const PRODUCTION_URL: &str = "https://api.mercadolibre.com";

inbox_core::impl_client_hooks!(generated::Client);

inbox_core::bearer_account!(
    /// One Mercado Libre seller account.
    MercadoLibre,
    generated::Client,
    PRODUCTION_URL,
    policy
);

/// Mercado Libre's OAuth token endpoint.
pub const TOKEN_URL: &str = "https://api.mercadolibre.com/oauth/token";

/// Mercado Libre's published limits as a request policy for `account`: GETs share 500
/// requests a minute, POST/PUT another 500; a 429 (`local_rate_limited`, no
/// `Retry-After`) waits 5 s ("try again in a few seconds").
pub fn policy(account: &str) -> inbox_core::Policy {
    use inbox_core::{Applies, Classify, Labels, Policy, RateLimit, RetryPolicy};
    use std::time::Duration;
    let minute = Duration::from_secs(60);
    Policy::new(
        Labels {
            marketplace: "mercadolibre",
            account: account.to_string(),
        },
        RetryPolicy {
            rate_limited_wait: Duration::from_secs(5),
            ..RetryPolicy::default()
        },
        Classify {
            downloads: &["downloadAttachment"],
            ..Classify::default()
        },
        vec![
            RateLimit::new("reads", 500, minute, Applies::Reads),
            RateLimit::new("writes", 500, minute, Applies::Writes),
        ],
    )
}

impl MercadoLibre {
    /// Uploads a file to attach to a message: `POST /messages/attachments` as
    /// `multipart/form-data` with the field `file` (JPG, PNG, PDF or TXT, at most 25 MB).
    /// The returned id goes into the message's `attachments`.
    pub async fn upload_attachment(
        &self,
        site_id: &str,
        file_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<ResponseValue<types::AttachmentId>, Error<types::ErrorBody>> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_owned())
            .mime_str(mime_type)
            .map_err(|_| Error::InvalidRequest(format!("invalid media type {mime_type:?}")))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let client = &self.client;
        let mut request = client
            .client()
            .post(format!("{}/messages/attachments", client.baseurl()))
            .query(&[("tag", "post_sale"), ("site_id", site_id)])
            .header(reqwest::header::ACCEPT, "application/json")
            .multipart(form)
            .build()?;
        let info = OperationInfo {
            operation_id: "uploadAttachment",
        };
        client.pre(&mut request, &info).await?;
        let result = client.exec(request, &info).await;
        client.post(&result, &info).await?;
        let response = result?;
        match response.status().as_u16() {
            200..=299 => ResponseValue::from_response(response).await,
            400..=599 => Err(Error::ErrorResponse(
                ResponseValue::from_response(response).await?,
            )),
            _ => Err(Error::UnexpectedResponse(response)),
        }
    }
}
