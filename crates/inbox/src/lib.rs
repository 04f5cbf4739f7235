#![warn(missing_docs)]
//! One inbox over Allegro, Mercado Libre, Magalu and Ozon.
//!
//! Cross-marketplace code writes one loop over one model: an [`Account`] per marketplace
//! account (or an [`Inbox`] over many) gives [`Conversation`]s and [`Message`]s as
//! `futures::Stream`s that walk every page lazily, and sends, replies and marks read
//! with each marketplace's rules checked before any request. Everything fails into one
//! [`Error`]; a malformed element of a page becomes one `Err` item carrying the raw
//! JSON, and every other element is still delivered.
//!
//! ```no_run
//! use futures::StreamExt;
//! use marketplace_inbox::{vendors::ozon::OzonAccount, Inbox};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut inbox = Inbox::new();
//! inbox.add("ozon", OzonAccount::new(inbox_ozon::Ozon::new("123456", "api-key")?));
//! let mut conversations = inbox.conversations();
//! while let Some(tagged) = conversations.next().await {
//!     match tagged.item {
//!         Ok(c) => println!("{} {} {:?}", tagged.account, c.reference, c.unread),
//!         Err(e) => eprintln!("{}: {e}", tagged.account),
//!     }
//! }
//! # Ok(()) }
//! ```
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
//! Every object also keeps the vendor's object as JSON in `vendor`.

mod account;
mod error;
mod inbox;
mod model;
mod paginate;
mod vendor_error;
pub mod vendors;

pub use account::Account;
pub use error::Error;
pub use inbox::{Inbox, Tagged};
pub use model::*;
