#![warn(missing_docs)]
//! Shared runtime of the marketplace-inbox vendor clients.
//!
//! The generated clients (`inbox-allegro`, `inbox-mercadolibre`, `inbox-magalu`,
//! `inbox-ozon`) use these types in place of the plain ones progenitor would emit, so
//! that what vendors really send decodes without loss:
//!
//! - [`FlexId`]: an identifier that arrives as a JSON string or a JSON number;
//! - [`FlexBool`], [`FlexInt`]: booleans and integers that sometimes arrive as strings;
//! - [`FlexDateTime`]: a timestamp as RFC 3339 with any offset, a Mongo-style
//!   `{"$date": …}` object, or epoch seconds/milliseconds;
//! - [`Lenient`]: one element of a listed page, kept as raw JSON with the decode error
//!   when it does not match its schema, so one bad element never costs a whole page;
//! - [`open_enum!`]: enums that keep unknown vendor values in an `Unknown(String)` variant.
//!
//! A page of Ozon chats where one id is a number, one a string, and one element is not a
//! chat at all: two chats, and the third kept with its raw JSON and its error.
//!
//! ```
//! use inbox_core::{FlexId, Lenient};
//!
//! #[derive(serde::Deserialize)]
//! struct Chat {
//!     chat_id: FlexId,
//! }
//!
//! let page: Vec<Lenient<Chat>> =
//!     serde_json::from_str(r#"[{"chat_id": 42}, {"chat_id": "99feb3fc"}, {"chat_id": [1]}]"#)?;
//! let ids: Vec<String> = page
//!     .iter()
//!     .filter_map(|c| c.valid())
//!     .map(|c| c.chat_id.to_string())
//!     .collect();
//! assert_eq!(ids, ["42", "99feb3fc"]);
//! let bad = page.iter().find_map(|c| c.as_result().err());
//! assert_eq!(bad.map(|b| b.raw.to_string()).as_deref(), Some(r#"{"chat_id":[1]}"#));
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! It also holds the request path every client shares: [`Secret`], the [`Auth`] a client
//! sends, [`prepare_request`] (credentials and media types), and [`execute`] (rate limits,
//! retries, token refresh and tracing, under an account's [`Policy`]).

mod account;
mod counts;
mod execute;
mod flex_id;
mod flex_scalar;
mod flex_time;
mod http;
mod lenient;
mod open_enum;
mod outcome;
mod path;
mod policy;
mod raw_json;
pub mod retry;
mod token;

#[doc(hidden)]
pub use open_enum::open_enum_text;
mod request;
mod secret;

pub use counts::{request_counts, RequestCounts};
pub use execute::{execute, request_id, retry_after, transient_status};
pub use flex_id::FlexId;
pub use flex_scalar::{FlexBool, FlexInt};
pub use flex_time::FlexDateTime;
pub use http::{
    http_client, http_client_pinned, http_client_with, http_client_without_redirects,
    shared_http_client, HttpClientError, Timeouts,
};
pub use lenient::{or_none, InvalidElement, Lenient};
pub use outcome::{observe, replayed, Outcome};
pub use path::path_segment;
pub use policy::{
    fleet_share, set_fleet_share, Applies, Classify, Kind, Labels, Policy, RateLimit, RetryPolicy,
    Scope, LIMIT_SHARE,
};
pub use raw_json::RawJson;
pub use request::{prepare_request, Auth, Context, MediaTypes};
pub use secret::Secret;
pub use token::{
    token_answer, ClientAuth, Grant, OAuthToken, PersistTokens, Refused, TokenClient, Tokens,
};

#[doc(hidden)]
pub mod __private {
    pub use serde;
}
