//! The one model every marketplace maps into. See the crate docs for the mapping table.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Error;

/// An instant in RFC 3339, UTC, with every fractional digit kept; `None` for an instant
/// RFC 3339 cannot write (a year outside 0001–9999). A message whose creation time is
/// such an instant is a malformed element, never a message without a time.
pub fn rfc3339(t: DateTime<Utc>) -> Option<String> {
    use chrono::Datelike;
    (1..=9999)
        .contains(&t.year())
        .then(|| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}
pub use inbox_core::RawJson;

/// A marketplace this crate speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Marketplace {
    /// Allegro (Poland), Message Center.
    Allegro,
    /// Mercado Libre (Latin America), post-sale messages.
    MercadoLibre,
    /// Magalu (Brazil), seller conversations.
    Magalu,
    /// Ozon (Russia), seller chats.
    Ozon,
}

impl Marketplace {
    /// Every marketplace.
    pub const ALL: [Marketplace; 4] = [
        Marketplace::Allegro,
        Marketplace::MercadoLibre,
        Marketplace::Magalu,
        Marketplace::Ozon,
    ];

    /// The lowercase name used in references and output: `allegro`, `mercadolibre`, `magalu`, `ozon`.
    pub fn as_str(self) -> &'static str {
        match self {
            Marketplace::Allegro => "allegro",
            Marketplace::MercadoLibre => "mercadolibre",
            Marketplace::Magalu => "magalu",
            Marketplace::Ozon => "ozon",
        }
    }
}

impl fmt::Display for Marketplace {
    /// Its name; width and alignment apply (`{:<13}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(feature = "sandbox")]
impl From<Marketplace> for inbox_sandbox::Vendor {
    /// The sandbox's name for the same marketplace.
    fn from(m: Marketplace) -> Self {
        match m {
            Marketplace::Allegro => inbox_sandbox::Vendor::Allegro,
            Marketplace::MercadoLibre => inbox_sandbox::Vendor::MercadoLibre,
            Marketplace::Magalu => inbox_sandbox::Vendor::Magalu,
            Marketplace::Ozon => inbox_sandbox::Vendor::Ozon,
        }
    }
}

#[cfg(feature = "sandbox")]
impl From<inbox_sandbox::Vendor> for Marketplace {
    /// The marketplace a sandbox vendor plays.
    fn from(v: inbox_sandbox::Vendor) -> Self {
        match v {
            inbox_sandbox::Vendor::Allegro => Marketplace::Allegro,
            inbox_sandbox::Vendor::MercadoLibre => Marketplace::MercadoLibre,
            inbox_sandbox::Vendor::Magalu => Marketplace::Magalu,
            inbox_sandbox::Vendor::Ozon => Marketplace::Ozon,
        }
    }
}

impl FromStr for Marketplace {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Marketplace::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::InvalidInput {
                marketplace: None,
                message: format!(
                    "unknown marketplace {s:?}; expected allegro, mercadolibre, magalu or ozon"
                ),
            })
    }
}

/// Reads a marketplace name in any case (`allegro`, `Ozon`, `MERCADOLIBRE`).
impl<'de> Deserialize<'de> for Marketplace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Names a conversation on a marketplace, and the account it belongs to.
///
/// It round-trips through a string: `marketplace:id` (`allegro:<thread id>`,
/// `mercadolibre:<pack id>`, `magalu:<conversation id>`, `ozon:<chat id>`) or, naming the
/// account, `marketplace@account:id` (`allegro@pl-main:<thread id>`). Everything after the
/// first `:` is the id, whatever it holds. Every reference the facade returns names its
/// account; a plain one is resolved by [`crate::Inbox`] when only one account of that
/// marketplace could own it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationRef {
    /// The marketplace.
    pub marketplace: Marketplace,
    /// The name of the account it belongs to, when known (see [`valid_account_name`]).
    pub account: Option<String>,
    /// The vendor's id of the thread, pack, conversation or chat.
    pub id: String,
}

impl ConversationRef {
    /// A reference that does not name its account.
    pub fn new(marketplace: Marketplace, id: impl Into<String>) -> Self {
        ConversationRef {
            marketplace,
            account: None,
            id: id.into(),
        }
    }

    /// The same conversation, naming its account.
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// The `marketplace:id` form, without the account.
    pub fn plain(&self) -> String {
        format!("{}:{}", self.marketplace, self.id)
    }
}

/// Whether `name` can name an account: 1 to 64 characters of ASCII letters, digits, `.`,
/// `_` and `-` (so that `marketplace@account:id` always splits one way).
pub fn valid_account_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl fmt::Display for ConversationRef {
    /// `marketplace:id` or `marketplace@account:id`; width and alignment apply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match &self.account {
            Some(account) => format!("{}@{}:{}", self.marketplace.as_str(), account, self.id),
            None => format!("{}:{}", self.marketplace.as_str(), self.id),
        };
        f.pad(&text)
    }
}

impl FromStr for ConversationRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let (head, id) = s.split_once(':').ok_or_else(|| Error::InvalidInput {
            marketplace: None,
            message: format!(
                "conversation reference {:?} is not of the form marketplace:id or marketplace@account:id",
                crate::error::clip(s, 80)
            ),
        })?;
        let (m, account) = match head.split_once('@') {
            Some((m, account)) => (m, Some(account)),
            None => (head, None),
        };
        let marketplace: Marketplace = m.parse()?;
        if id.is_empty() {
            return Err(Error::invalid(marketplace, "the conversation id is empty"));
        }
        let reference = ConversationRef::new(marketplace, id);
        match account {
            None => Ok(reference),
            Some(a) if valid_account_name(a) => Ok(reference.with_account(a)),
            Some(a) => Err(Error::invalid(
                marketplace,
                format!(
                    "{:?} is not an account name (letters, digits, '.', '_', '-')",
                    crate::error::clip(a, 80)
                ),
            )),
        }
    }
}

impl Serialize for ConversationRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConversationRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What a conversation is about.
///
/// Written as one word ([`ConversationKind::as_str`]), read back with
/// [`ConversationKind::from_name`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConversationKind {
    /// A buyer writing to the seller (before or after a purchase).
    BuyerChat,
    /// A complaint about a purchase (Allegro's `POST_PURCHASE_ISSUE`).
    PostPurchaseIssue,
    /// The marketplace's seller support.
    Support,
    /// Notifications from the marketplace.
    Notifications,
    /// A vendor value this version does not map, kept as sent.
    Unknown(String),
}

/// Whether a conversation accepts messages.
///
/// Written as one word ([`ConversationStatus::as_str`]); a conversation writes a blocked
/// one's reason as its `blocked_reason`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConversationStatus {
    /// Open.
    Open,
    /// Closed.
    Closed,
    /// Blocked, with the vendor's reason (Mercado Libre's `substatus`).
    Blocked {
        /// The vendor's reason, e.g. `blocked_by_mediation`.
        reason: Option<String>,
    },
    /// A vendor value this version does not map, kept as sent.
    Unknown(String),
}

/// Unread state, as precise as the vendor gives it.
///
/// Written as a boolean (a flag) or a number (a count); a conversation writes it as
/// `unread` (boolean) and `unread_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unread {
    /// Read or unread, without a count (Allegro).
    Flag(bool),
    /// The number of unread messages (Mercado Libre, Magalu, Ozon).
    Count(u64),
}

impl Unread {
    /// Whether anything is unread.
    pub fn is_unread(self) -> bool {
        match self {
            Unread::Flag(f) => f,
            Unread::Count(n) => n > 0,
        }
    }

    /// The number of unread messages, where the vendor gives one.
    pub fn count(self) -> Option<u64> {
        match self {
            Unread::Count(n) => Some(n),
            Unread::Flag(_) => None,
        }
    }
}

impl fmt::Display for Unread {
    /// `3 unread`, `unread` or `read`; width and alignment apply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Unread::Count(n) => format!("{n} unread"),
            Unread::Flag(true) => "unread".to_string(),
            Unread::Flag(false) => "read".to_string(),
        };
        f.pad(&text)
    }
}

impl ConversationKind {
    /// `buyer_chat`, `post_purchase_issue`, `support`, `notifications`, or the vendor's
    /// value.
    pub fn as_str(&self) -> &str {
        match self {
            ConversationKind::BuyerChat => "buyer_chat",
            ConversationKind::PostPurchaseIssue => "post_purchase_issue",
            ConversationKind::Support => "support",
            ConversationKind::Notifications => "notifications",
            ConversationKind::Unknown(v) => v,
        }
    }

    /// The kind [`ConversationKind::as_str`] names; any other text is kept as
    /// [`ConversationKind::Unknown`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "buyer_chat" => ConversationKind::BuyerChat,
            "post_purchase_issue" => ConversationKind::PostPurchaseIssue,
            "support" => ConversationKind::Support,
            "notifications" => ConversationKind::Notifications,
            other => ConversationKind::Unknown(other.to_string()),
        }
    }
}

impl fmt::Display for ConversationKind {
    /// [`ConversationKind::as_str`]; width and alignment apply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl ConversationStatus {
    /// `open`, `closed`, `blocked`, or the vendor's value.
    pub fn as_str(&self) -> &str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Closed => "closed",
            ConversationStatus::Blocked { .. } => "blocked",
            ConversationStatus::Unknown(v) => v,
        }
    }

    /// The status [`ConversationStatus::as_str`] names (`blocked` without a reason); any
    /// other text is kept as [`ConversationStatus::Unknown`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "open" => ConversationStatus::Open,
            "closed" => ConversationStatus::Closed,
            "blocked" => ConversationStatus::Blocked { reason: None },
            other => ConversationStatus::Unknown(other.to_string()),
        }
    }
}

impl fmt::Display for ConversationStatus {
    /// [`ConversationStatus::as_str`], with a blocked conversation's reason in
    /// parentheses; width and alignment apply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConversationStatus::Blocked {
                reason: Some(reason),
            } => f.pad(&format!("blocked ({reason})")),
            other => f.pad(other.as_str()),
        }
    }
}

/// Who wrote a message, or who the other party of a conversation is.
///
/// Written as one word ([`Role::as_str`]), read back with [`Role::from_name`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// The buyer.
    Buyer,
    /// The seller (this account).
    Seller,
    /// The marketplace itself, its system or its messaging agent.
    Marketplace,
    /// The marketplace's support staff.
    Support,
    /// A courier.
    Courier,
    /// A vendor value this version does not map, kept as sent.
    Unknown(String),
}

impl fmt::Display for Role {
    /// [`Role::as_str`]; width and alignment apply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Role {
    /// The role as one word (`buyer`, `seller`, …; the vendor's value when unknown).
    pub fn as_str(&self) -> &str {
        match self {
            Role::Buyer => "buyer",
            Role::Seller => "seller",
            Role::Marketplace => "marketplace",
            Role::Support => "support",
            Role::Courier => "courier",
            Role::Unknown(v) => v,
        }
    }

    /// The role [`Role::as_str`] names; any other text is kept as [`Role::Unknown`].
    pub fn from_name(name: &str) -> Self {
        match name {
            "buyer" => Role::Buyer,
            "seller" => Role::Seller,
            "marketplace" => Role::Marketplace,
            "support" => Role::Support,
            "courier" => Role::Courier,
            other => Role::Unknown(other.to_string()),
        }
    }
}

/// A person or system in a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Participant {
    /// The vendor's user id, when given.
    pub id: Option<String>,
    /// A login or display name, when given.
    pub name: Option<String>,
    /// Their role.
    pub role: Role,
}

/// Orders, offers and other objects a conversation or message refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct References {
    /// Order ids (Allegro order, Ozon order number, Magalu order code).
    pub orders: Vec<String>,
    /// Offer / product / SKU ids.
    pub offers: Vec<String>,
    /// Mercado Libre pack id.
    pub pack: Option<String>,
    /// Ozon posting number.
    pub posting: Option<String>,
}

/// A conversation: an Allegro thread, a Mercado Libre pack, a Magalu conversation or an Ozon chat.
///
/// Its `serde` form is the one `inbox --json` prints (see [the JSON
/// form](crate#json)): `ref`, flat fields, `vendor` as received.
#[derive(Clone, Debug, PartialEq)]
pub struct Conversation {
    /// Which conversation.
    pub reference: ConversationRef,
    /// The other party, when the vendor names it in the listing.
    pub other_party: Option<Participant>,
    /// What it is about.
    pub kind: ConversationKind,
    /// Open, closed or blocked, when the vendor says.
    pub status: Option<ConversationStatus>,
    /// Unread state, when the vendor says.
    pub unread: Option<Unread>,
    /// When it was created, when the vendor says.
    pub created_at: Option<DateTime<Utc>>,
    /// Time of the last message or interaction, when the vendor says.
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Related orders, offers, pack, posting.
    pub references: References,
    /// Until when the seller may still write, where the marketplace's rules make it
    /// knowable (Ozon's reply windows).
    pub reply_deadline: Option<DateTime<Utc>>,
    /// The vendor's object exactly as received, for fields this model does not map.
    pub vendor: RawJson,
}

/// A file attached to a message.
///
/// Written with its fields and `downloadable` ([`Attachment::downloadable`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    /// File name.
    pub name: Option<String>,
    /// Media type.
    pub mime: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// Where to download it (some vendors need the API token for it).
    pub url: Option<String>,
    /// The vendor's attachment id.
    pub id: Option<String>,
    /// The vendor's safety verdict: Allegro `NEW`/`SAFE`/`UNSAFE`/`EXPIRED`, Mercado
    /// Libre `potential_security_threat` as `UNSAFE`.
    pub status: Option<String>,
}

impl Attachment {
    /// Whether the file may be offered for download: not flagged unsafe or expired.
    pub fn downloadable(&self) -> bool {
        !matches!(self.status.as_deref(), Some(s) if s.eq_ignore_ascii_case("UNSAFE") || s.eq_ignore_ascii_case("EXPIRED"))
    }
}

/// A message in a conversation.
///
/// Its `serde` form is the one `inbox --json` prints (see [the JSON
/// form](crate#json)): `conversation` as a reference, the author flattened into
/// `author_role`, `author`, `author_id`, `author_name`, `vendor` as received.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The vendor's message id.
    pub id: String,
    /// The conversation it belongs to.
    pub conversation: ConversationRef,
    /// Who wrote it.
    pub author: Participant,
    /// The text (Ozon's Markdown fragments joined with newlines); empty when the vendor sends none.
    pub text: String,
    /// Subject, when the vendor has one.
    pub subject: Option<String>,
    /// When it was created, in UTC.
    pub created_at: DateTime<Utc>,
    /// Attached files.
    pub attachments: Vec<Attachment>,
    /// Whether it was read, when the vendor says.
    pub read: Option<bool>,
    /// Moderation or delivery status as the vendor names it (`DELIVERED`, `clean`, `APPROVED`, …).
    pub status: Option<String>,
    /// Why moderation held or blocked it, when the vendor says (Mercado Libre's
    /// `message_moderation.reason`, Magalu's `block_rules`).
    pub moderation_reason: Option<String>,
    /// The vendor's kind of message (Allegro `ASK_QUESTION`, `MAIL`, `MESSAGE_CENTER`).
    pub kind: Option<String>,
    /// Whether the vendor holds more attachments than it lists (Allegro
    /// `hasAdditionalAttachments`).
    pub more_attachments: Option<bool>,
    /// Related orders, offers, pack, posting.
    pub references: References,
    /// The vendor's object exactly as received, for fields this model does not map.
    pub vendor: RawJson,
}

/// The media type of a file named `name`, from its extension (the types the marketplaces
/// take; `application/octet-stream` for any other).
pub fn media_type_of(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        Some("tif" | "tiff") => "image/tiff",
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// A file to attach to an outgoing message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingAttachment {
    /// File name, with its extension.
    pub name: String,
    /// Media type, e.g. `image/png`.
    pub mime: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What a send returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    /// The conversation written to.
    pub conversation: ConversationRef,
    /// The new message's id, when the vendor returns one (Ozon does not).
    pub message_id: Option<String>,
    /// The vendor's answer.
    pub vendor: RawJson,
}

/// What a seller starts a conversation from, on the marketplaces that allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewConversation {
    /// Allegro: a new thread with a buyer, about one of their orders (required since
    /// 2025-02-28), opened by its first message.
    Allegro {
        /// The buyer's login.
        login: String,
        /// The order the thread is about (it must be the buyer's).
        order_id: String,
        /// The first message (at most 2000 characters).
        text: String,
    },
    /// Ozon: the chat of a posting (FBS/rFBS, within 72 hours of payment or delivery;
    /// Premium subscriptions only).
    Ozon {
        /// The posting number, e.g. `12345678-0001-1`.
        posting_number: String,
    },
}

/// A file being downloaded: its name and type when known, and its bytes as they arrive.
pub struct Download {
    /// File name, when known.
    pub name: Option<String>,
    /// Media type, when known.
    pub mime: Option<String>,
    /// The bytes, streamed (never held whole in memory).
    pub body: futures::stream::BoxStream<'static, Result<bytes::Bytes, Error>>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("name", &self.name)
            .field("mime", &self.mime)
            .finish_non_exhaustive()
    }
}

/// Unread state of one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadSummary {
    /// The marketplace.
    pub marketplace: Marketplace,
    /// Conversations with anything unread.
    pub conversations: u64,
    /// Unread messages, when the vendor counts them (Allegro only flags threads).
    pub messages: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_through_strings() {
        for s in [
            "allegro:4lN1A6WTKM8AcfP1bLiumXuJ14Es1fiCguyqRvj3qDf",
            "mercadolibre:2000000089077943",
            "magalu:630e3bbc950b052e8724491a",
            "ozon:99feb3fc-a474-469f-95d5-268b470cc607",
        ] {
            let r: ConversationRef = s.parse().unwrap();
            assert_eq!(r.to_string(), s);
        }
        let qualified: ConversationRef = "allegro@pl-main:a:b@c".parse().unwrap();
        assert_eq!(qualified.account.as_deref(), Some("pl-main"));
        assert_eq!(qualified.id, "a:b@c");
        assert_eq!(qualified.to_string(), "allegro@pl-main:a:b@c");
        assert_eq!(qualified.plain(), "allegro:a:b@c");
        assert!("allegro@bad name:x".parse::<ConversationRef>().is_err());
        assert!("allegro@:x".parse::<ConversationRef>().is_err());
        assert!("ebay:1".parse::<ConversationRef>().is_err());
        assert!("allegro:".parse::<ConversationRef>().is_err());
        assert!("allegro".parse::<ConversationRef>().is_err());
    }
}
