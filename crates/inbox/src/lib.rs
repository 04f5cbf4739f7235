#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
// `Error` keeps what a caller needs to act (the vendor's words, the malformed element as
// received, the operation): it is larger than clippy's threshold by design, and errors are
// the rare path.
#![allow(clippy::result_large_err)]
// A build with some marketplaces left out leaves parts of the shared machinery unused;
// the full build (CI's clippy) still checks for dead code.
#![cfg_attr(
    not(all(
        feature = "allegro",
        feature = "mercadolibre",
        feature = "magalu",
        feature = "ozon"
    )),
    allow(dead_code, unused_imports, unused_variables)
)]
//! One inbox over Allegro, Mercado Libre, Magalu and Ozon.
//!
//! Cross-marketplace code writes one loop over one model. Accounts come from
//! configuration ([`InboxConfig`]: code, a JSON file, or the environment); an [`Inbox`]
//! holds them under unique names and gives [`Conversation`]s and [`Message`]s as lazy
//! `futures::Stream`s ([`Listing`]) that walk every page, with the query's options
//! ([`ConversationQuery`], [`MessageQuery`]) pushed to each vendor where it can apply
//! them. Every reference it returns names its account, so replies and mark-read reach
//! the right seller even with several accounts of one marketplace. Sends check each
//! marketplace's rules before any request. Everything fails into one [`Error`]
//! ([`Error::is_retryable`], causes as `source()`); a malformed element of a page becomes
//! one `Err` item carrying the raw JSON, and every other element is still delivered.
//!
//! From a config file to a merged inbox:
//!
//! ```no_run
//! use futures::StreamExt;
//! use marketplace_inbox::{ConversationQuery, Inbox, InboxConfig};
//! # async fn run() -> Result<(), marketplace_inbox::Error> {
//! let config = InboxConfig::from_file("accounts.json")?;
//! let inbox = Inbox::from_config(&config)?;
//! let mut conversations = inbox.conversations(ConversationQuery::new().unread_only(true));
//! while let Some(tagged) = conversations.next().await {
//!     match tagged.item {
//!         Ok(c) => println!("{} {} {:?}", tagged.account, c.reference, c.unread),
//!         Err(e) => eprintln!("{}: {e}", tagged.account),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A conversation taken from a listing is answered through the same inbox:
//! `inbox.send(&conversation.reference, "Dziękujemy!", &[]).await?`.
//!
//! The same against the local sandbox of the four APIs (`inbox-sandbox`, no credentials):
//! answer every unread conversation, then mark it read.
//!
//! ```
//! # #[cfg(all(feature = "allegro", feature = "mercadolibre", feature = "magalu", feature = "ozon"))]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! use futures::StreamExt;
//! use marketplace_inbox::{ConversationQuery, Inbox, InboxConfig};
//!
//! let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
//! let inbox = Inbox::from_config(&InboxConfig::from_value(sandbox.accounts_config())?)?;
//! let unread: Vec<_> = inbox
//!     .conversations(ConversationQuery::new().unread_only(true))
//!     .collect()
//!     .await;
//! let mut answered = 0;
//! for tagged in unread {
//!     let conversation = tagged.item?;
//!     if inbox.send(&conversation.reference, "Obrigado!", &[]).await.is_ok() {
//!         inbox.mark_read(&conversation.reference).await?;
//!         answered += 1;
//!     }
//! }
//! assert!(answered > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! # #[cfg(not(all(feature = "allegro", feature = "mercadolibre", feature = "magalu", feature = "ozon")))]
//! # fn main() {}
//! ```
//!
//! # JSON
//!
//! [`Conversation`], [`Message`] and [`sync::Change`] have one JSON form: the one
//! `inbox --json` prints, field for field, listed once in the README's [JSON
//! contract](https://github.com/marketplace-inbox/marketplace-inbox#json-contract---json-one-object-per-line-more-fields-may-be-added).
//! Enums are one word (a vendor value this crate does not map, as sent), instants RFC 3339
//! in UTC ([`rfc3339`]), the author and the other party flat (`author_role`, `author`,
//! `author_id`, `author_name`), the unread state as `unread` and `unread_count`, the
//! vendor's object as received in `vendor`; a change adds its `event`. `ref` names the
//! account (`inbox` shortens it to `marketplace:id` where only one account of that
//! marketplace is configured, and still writes `account`). Reading takes either, so a line
//! `inbox` printed reads back into the same value:
//!
//! ```
//! use marketplace_inbox::{Message, Role};
//! let line = r#"{"marketplace":"ozon","conversation":"ozon:99feb3fc","account":"ru-main",
//!   "id":"3000000000130056071","author_role":"buyer","author":"Иван","text":"Здравствуйте!",
//!   "created_at":"2026-11-20T08:00:00.123456Z","attachments":[],"vendor":{"is_read":false}}"#;
//! let message: Message = serde_json::from_str(line)?;
//! assert_eq!(message.conversation.to_string(), "ozon@ru-main:99feb3fc");
//! assert_eq!(message.author.role, Role::Buyer);
//! let again = serde_json::to_value(&message)?;
//! assert_eq!(again["conversation"], "ozon@ru-main:99feb3fc");
//! assert_eq!(again["created_at"], "2026-11-20T08:00:00.123456Z");
//! assert_eq!(again["vendor"]["is_read"], false);
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # Cargo features
//!
//! `allegro`, `mercadolibre`, `magalu`, `ozon` (all on by default): each compiles one
//! marketplace's client. An account of a marketplace left out fails to build with
//! [`Error::Unsupported`]. `sqlite` (on by default): `sync::SqliteStore`. `postgres`:
//! `sync::PostgresStore` and `PostgresTokens`, for fleets. `sandbox`: `From` between
//! [`Marketplace`] and the local sandbox's `inbox_sandbox::Vendor`.
//!
//! # Mapping
//!
//! | model | Allegro (beta.v1 / public.v1) | Mercado Libre | Magalu | Ozon |
//! |---|---|---|---|---|
//! | `Conversation.reference.id` | thread `id` | pack id (from unread `resource`) | conversation `id` | `chat.chat_id` |
//! | `other_party` | participant `BUYER` / `interlocutor.login` | — | `from_user` | — |
//! | `kind` | `type`: `COMMON` → buyer chat, `POST_PURCHASE_ISSUE` | buyer chat | buyer chat | `chat_type`: `BUYER_SELLER*` → buyer chat, `SELLER_SUPPORT` → support, `SELLER_API_*`/`SELLER_NOTIFICATION_*` → notifications |
//! | `status` | `status` `OPEN`/`CLOSED` (beta) | `conversation_status` (per message page) | `status` `OPENED`/`CLOSED` | `chat_status` |
//! | `unread` | flag `!read` | count from `/messages/unread` | count `unread_to_count` | count `unread_count` |
//! | `last_activity_at` | `lastMessageDateTime` | — | `last_interaction_at` | — (`created_at` only) |
//! | `references` | `orders[].id`, `orders[].offers[].id` | `pack` | tags `productId`, `order_code` | — |
//! | `Message.id` | `id` | `id` | `id` | `message_id` |
//! | `author.role` | beta `author.role` (`CONSULTANT` → support, `ALLEGRO` → marketplace); v1 `isInterlocutor` | `from.user_id`: seller id → seller, site agent → marketplace, else buyer | `from_user.type` | `user.type` (`Crm`, `NotificationUser` → marketplace) |
//! | `text` | `text` | `text` | `content` | `data` joined by newlines |
//! | `created_at` | `createdAt` | `message_date.created` (or `received`, `available`) | `when_at` | `created_at` |
//! | `attachments` | `fileName`, `mimeType`, `url`, `id` | `original_filename`, `type`, `size`, `filename` (id) | URL strings or objects | — (`is_image` in `vendor`) |
//! | `read` | — | `message_date.read` set | `read_by` holds the recipient | `is_read` |
//! | `status` | `status` (moderation) | `message_moderation.status`, else `status` | `moderation.status` | `moderate_image_status` |
//!
//! Every object also keeps the vendor's object in `vendor`, as the JSON text received
//! ([`RawJson`]: parsed only when asked).

mod account;
mod adapter;
pub mod config;
mod error;
#[cfg(feature = "postgres")]
mod fleet_tokens;
mod inbox;
mod json;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod key;
mod listing;
mod model;
pub mod onboarding;
mod paginate;
pub mod push;
pub mod sync;
mod vendor_error;
pub mod vendors;

pub use account::{Account, CLOCK_SKEW, SEND_ATTEMPTS};
pub use config::{
    AccountConfig, Credentials, InboxConfig, LimitSetting, MagaluOwner, OAuthCredentials,
    RetrySettings, TimeoutSettings, TokenStore,
};
pub use error::{Cause, Error};
#[cfg(feature = "postgres")]
pub use fleet_tokens::PostgresTokens;
pub use inbox::{Inbox, Tagged};
pub use inbox_core::{
    fleet_share, request_counts, set_fleet_share, ClientAuth, Grant, Refused, RequestCounts,
    RetryPolicy, Secret, TokenClient, Tokens,
};
pub use json::JsonLine;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use key::{random_bytes, random_hex, sha256_hex, TokenKey, TOKEN_KEY_ENV};
pub use listing::{ConversationQuery, Listing, MessageQuery, Page, StatusFilter};
pub use model::*;
