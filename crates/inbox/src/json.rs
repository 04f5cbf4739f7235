//! The one JSON form of conversations, messages and sync changes: what `serde` writes
//! and reads for them, and what `inbox --json` prints, field for field (the list is the
//! README's "JSON contract"; see the crate docs).
//!
//! Names are the model's: enums as one lowercase word (the vendor's value when
//! unknown), instants as [`crate::rfc3339`] writes them (`null` when RFC 3339 cannot),
//! the participant flattened into `author*` / `other_party*`, the unread state into
//! `unread` and `unread_count`, and the vendor's object in `vendor` as received. Reading
//! takes what writing gives (and what `inbox --json` prints: a `ref` without its account
//! takes the `account` field's), ignores fields it does not know, and treats a missing
//! optional field as absent.

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sync::{Change, Event, Listed, Malformed};
use crate::{
    rfc3339, Attachment, Conversation, ConversationKind, ConversationRef, ConversationStatus,
    Inbox, Marketplace, Message, Participant, RawJson, References, Role, Unread,
};

/// Written on one line in the JSON form, with references as `inbox` prints them.
///
/// Implemented by [`Conversation`], [`Message`] and [`Change`]; `serde` writes the same
/// form with every reference in full.
pub trait JsonLine: Serialize {
    /// This value as one line of JSON, exactly as `inbox --json` prints it: each
    /// reference (`ref`, `conversation`) in the form [`Inbox::display_ref`] gives.
    fn json_line(&self, inbox: &Inbox) -> serde_json::Result<String>;
}

/// How references are written: in full, or as an inbox shows them.
#[derive(Clone, Copy)]
enum Refs<'a> {
    Full,
    Shown(&'a Inbox),
}

impl Refs<'_> {
    fn text(self, reference: &ConversationRef) -> String {
        match self {
            Refs::Full => reference.to_string(),
            Refs::Shown(inbox) => inbox.display_ref(reference),
        }
    }
}

/// A conversation as written; `event` only inside a [`Change`].
#[derive(Serialize)]
struct ConversationOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<Event>,
    marketplace: Marketplace,
    #[serde(rename = "ref")]
    reference: String,
    id: &'a str,
    account: Option<&'a str>,
    kind: &'a str,
    status: Option<&'a str>,
    blocked_reason: Option<&'a str>,
    unread: Option<bool>,
    unread_count: Option<u64>,
    other_party: Option<&'a str>,
    other_party_id: Option<&'a str>,
    other_party_name: Option<&'a str>,
    other_party_role: Option<&'a str>,
    created_at: Option<String>,
    last_activity_at: Option<String>,
    reply_deadline: Option<String>,
    references: &'a References,
    /// Left out only where the vendor's object is kept beside the form (the store).
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor: Option<Vendor<'a>>,
}

impl<'a> ConversationOut<'a> {
    fn of(c: &'a Conversation, event: Option<Event>, refs: Refs<'_>) -> Self {
        let party = c.other_party.as_ref();
        ConversationOut {
            event,
            marketplace: c.reference.marketplace,
            reference: refs.text(&c.reference),
            id: &c.reference.id,
            account: c.reference.account.as_deref(),
            kind: c.kind.as_str(),
            status: c.status.as_ref().map(ConversationStatus::as_str),
            blocked_reason: match &c.status {
                Some(ConversationStatus::Blocked { reason }) => reason.as_deref(),
                _ => None,
            },
            unread: c.unread.map(Unread::is_unread),
            unread_count: c.unread.and_then(Unread::count),
            other_party: party.and_then(shown),
            other_party_id: party.and_then(|p| p.id.as_deref()),
            other_party_name: party.and_then(|p| p.name.as_deref()),
            other_party_role: party.map(|p| p.role.as_str()),
            created_at: c.created_at.and_then(rfc3339),
            last_activity_at: c.last_activity_at.and_then(rfc3339),
            reply_deadline: c.reply_deadline.and_then(rfc3339),
            references: &c.references,
            vendor: Some(Vendor(&c.vendor)),
        }
    }
}

/// The vendor's object as received. Text that JSON data cannot hold (a number beyond
/// `f64`, a lone UTF-16 surrogate escape, nesting past 128 levels) is written as a JSON
/// string of that text, as a malformed element's `raw` is: every line reads back with any
/// JSON parser, and nothing of the text is lost.
struct Vendor<'a>(&'a RawJson);

impl Serialize for Vendor<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_data() {
            self.0.serialize(s)
        } else {
            s.serialize_str(self.0.as_str())
        }
    }
}

/// A participant as one text: the name, else the id.
fn shown(p: &Participant) -> Option<&str> {
    p.name.as_deref().or(p.id.as_deref())
}

/// A conversation as read.
#[derive(Deserialize)]
struct ConversationIn {
    #[serde(rename = "ref")]
    reference: ConversationRef,
    #[serde(default)]
    account: Option<String>,
    kind: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    blocked_reason: Option<String>,
    #[serde(default)]
    unread: Option<bool>,
    #[serde(default)]
    unread_count: Option<u64>,
    #[serde(default)]
    other_party: Option<String>,
    #[serde(default)]
    other_party_id: Option<String>,
    #[serde(default)]
    other_party_name: Option<String>,
    #[serde(default)]
    other_party_role: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    last_activity_at: Option<DateTime<Utc>>,
    #[serde(default)]
    reply_deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    references: References,
    #[serde(default)]
    vendor: RawJson,
}

impl From<ConversationIn> for Conversation {
    fn from(c: ConversationIn) -> Self {
        let status = match c.status.as_deref().map(ConversationStatus::from_name) {
            Some(ConversationStatus::Blocked { .. }) => Some(ConversationStatus::Blocked {
                reason: c.blocked_reason,
            }),
            other => other,
        };
        let unread = match (c.unread_count, c.unread) {
            (Some(n), _) => Some(Unread::Count(n)),
            (None, Some(flag)) => Some(Unread::Flag(flag)),
            (None, None) => None,
        };
        Conversation {
            reference: owned_by(c.reference, c.account),
            other_party: participant(
                c.other_party_role,
                c.other_party_id,
                c.other_party_name,
                c.other_party,
            ),
            kind: ConversationKind::from_name(&c.kind),
            status,
            unread,
            created_at: c.created_at,
            last_activity_at: c.last_activity_at,
            references: c.references,
            reply_deadline: c.reply_deadline,
            vendor: c.vendor,
        }
    }
}

/// A reference naming `account` when it names none itself.
fn owned_by(reference: ConversationRef, account: Option<String>) -> ConversationRef {
    match (&reference.account, account) {
        (None, Some(account)) if crate::valid_account_name(&account) => {
            reference.with_account(account)
        }
        _ => reference,
    }
}

/// A participant from its flattened fields: present when a role, an id or a name is; a
/// lone display text counts as the name.
fn participant(
    role: Option<String>,
    id: Option<String>,
    name: Option<String>,
    shown: Option<String>,
) -> Option<Participant> {
    let name = name.or(if id.is_none() { shown } else { None });
    if role.is_none() && id.is_none() && name.is_none() {
        return None;
    }
    Some(Participant {
        id,
        name,
        role: Role::from_name(role.as_deref().unwrap_or_default()),
    })
}

impl Serialize for Conversation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ConversationOut::of(self, None, Refs::Full).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Conversation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ConversationIn::deserialize(d).map(Conversation::from)
    }
}

/// An attachment as written: its fields and whether it may be downloaded.
#[derive(Serialize)]
struct AttachmentOut<'a> {
    name: Option<&'a str>,
    mime: Option<&'a str>,
    size: Option<u64>,
    url: Option<&'a str>,
    id: Option<&'a str>,
    status: Option<&'a str>,
    downloadable: bool,
}

impl Serialize for Attachment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        AttachmentOut {
            name: self.name.as_deref(),
            mime: self.mime.as_deref(),
            size: self.size,
            url: self.url.as_deref(),
            id: self.id.as_deref(),
            status: self.status.as_deref(),
            downloadable: self.downloadable(),
        }
        .serialize(s)
    }
}

/// A message as written; `event` only inside a [`Change`].
#[derive(Serialize)]
struct MessageOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<Event>,
    marketplace: Marketplace,
    conversation: String,
    id: &'a str,
    account: Option<&'a str>,
    author_role: &'a str,
    author: Option<&'a str>,
    author_id: Option<&'a str>,
    author_name: Option<&'a str>,
    text: &'a str,
    subject: Option<&'a str>,
    created_at: Option<String>,
    read: Option<bool>,
    status: Option<&'a str>,
    moderation_reason: Option<&'a str>,
    kind: Option<&'a str>,
    attachments: &'a [Attachment],
    more_attachments: Option<bool>,
    references: &'a References,
    /// Left out only where the vendor's object is kept beside the form (the store).
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor: Option<Vendor<'a>>,
}

impl<'a> MessageOut<'a> {
    fn of(m: &'a Message, event: Option<Event>, refs: Refs<'_>) -> Self {
        MessageOut {
            event,
            marketplace: m.conversation.marketplace,
            conversation: refs.text(&m.conversation),
            id: &m.id,
            account: m.conversation.account.as_deref(),
            author_role: m.author.role.as_str(),
            author: shown(&m.author),
            author_id: m.author.id.as_deref(),
            author_name: m.author.name.as_deref(),
            text: &m.text,
            subject: m.subject.as_deref(),
            created_at: rfc3339(m.created_at),
            read: m.read,
            status: m.status.as_deref(),
            moderation_reason: m.moderation_reason.as_deref(),
            kind: m.kind.as_deref(),
            attachments: &m.attachments,
            more_attachments: m.more_attachments,
            references: &m.references,
            vendor: Some(Vendor(&m.vendor)),
        }
    }
}

/// A message as read.
#[derive(Deserialize)]
struct MessageIn {
    conversation: ConversationRef,
    id: String,
    #[serde(default)]
    account: Option<String>,
    author_role: String,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    author_id: Option<String>,
    #[serde(default)]
    author_name: Option<String>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    subject: Option<String>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    read: Option<bool>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    moderation_reason: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    more_attachments: Option<bool>,
    #[serde(default)]
    references: References,
    #[serde(default)]
    vendor: RawJson,
}

impl From<MessageIn> for Message {
    fn from(m: MessageIn) -> Self {
        let author = participant(Some(m.author_role), m.author_id, m.author_name, m.author);
        Message {
            id: m.id,
            conversation: owned_by(m.conversation, m.account),
            author: author.unwrap_or(Participant {
                id: None,
                name: None,
                role: Role::Unknown(String::new()),
            }),
            text: m.text,
            subject: m.subject,
            created_at: m.created_at,
            attachments: m.attachments,
            read: m.read,
            status: m.status,
            moderation_reason: m.moderation_reason,
            kind: m.kind,
            more_attachments: m.more_attachments,
            references: m.references,
            vendor: m.vendor,
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        MessageOut::of(self, None, Refs::Full).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MessageIn::deserialize(d).map(Message::from)
    }
}

/// A conversation's JSON form without `vendor` (references in full): what the store
/// keeps beside its `vendor` column.
pub(crate) fn conversation_without_vendor(c: &Conversation) -> serde_json::Result<String> {
    let mut out = ConversationOut::of(c, None, Refs::Full);
    out.vendor = None;
    serde_json::to_string(&out)
}

/// A message's JSON form without `vendor` (references in full): what the store keeps
/// beside its `vendor` column.
pub(crate) fn message_without_vendor(m: &Message) -> serde_json::Result<String> {
    let mut out = MessageOut::of(m, None, Refs::Full);
    out.vendor = None;
    serde_json::to_string(&out)
}

/// A malformed element as written and read (`event` is always `malformed`).
#[derive(Serialize, Deserialize)]
struct MalformedJson<C, T> {
    event: Event,
    marketplace: Marketplace,
    account: T,
    conversation: Option<C>,
    listing: Listed,
    error: T,
    raw: T,
}

/// A change written with references as `refs` says.
fn change<S: Serializer>(change: &Change, refs: Refs<'_>, s: S) -> Result<S::Ok, S::Error> {
    match change {
        Change::Conversation(event, c) => ConversationOut::of(c, Some(*event), refs).serialize(s),
        Change::Message(event, m) => MessageOut::of(m, Some(*event), refs).serialize(s),
        Change::Malformed(bad) => MalformedJson {
            event: Event::Malformed,
            marketplace: bad.marketplace,
            account: bad.account.as_str(),
            conversation: bad.conversation.as_ref().map(|c| refs.text(c)),
            listing: bad.listed,
            error: bad.error.as_str(),
            raw: bad.raw.as_str(),
        }
        .serialize(s),
    }
}

/// A change: the conversation or message with its `event`, or the malformed element.
impl Serialize for Change {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        change(self, Refs::Full, s)
    }
}

/// A change serialized with references as an inbox shows them.
struct ShownChange<'a>(&'a Change, &'a Inbox);

impl JsonLine for Conversation {
    fn json_line(&self, inbox: &Inbox) -> serde_json::Result<String> {
        serde_json::to_string(&ConversationOut::of(self, None, Refs::Shown(inbox)))
    }
}

impl JsonLine for Message {
    fn json_line(&self, inbox: &Inbox) -> serde_json::Result<String> {
        serde_json::to_string(&MessageOut::of(self, None, Refs::Shown(inbox)))
    }
}

impl Serialize for ShownChange<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        change(self.0, Refs::Shown(self.1), s)
    }
}

impl JsonLine for Change {
    fn json_line(&self, inbox: &Inbox) -> serde_json::Result<String> {
        serde_json::to_string(&ShownChange(self, inbox))
    }
}

impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let event = value
            .get("event")
            .cloned()
            .ok_or_else(|| D::Error::missing_field("event"))?;
        let event = Event::deserialize(event).map_err(D::Error::custom)?;
        let change = match event {
            Event::NewConversation | Event::UpdatedConversation => {
                Conversation::deserialize(value).map(|c| Change::Conversation(event, c))
            }
            Event::NewMessage | Event::UpdatedMessage => {
                Message::deserialize(value).map(|m| Change::Message(event, m))
            }
            Event::Malformed => {
                MalformedJson::<ConversationRef, String>::deserialize(value).map(|bad| {
                    Change::Malformed(Malformed {
                        marketplace: bad.marketplace,
                        conversation: bad
                            .conversation
                            .map(|c| owned_by(c, Some(bad.account.clone()))),
                        account: bad.account,
                        listed: bad.listing,
                        error: bad.error,
                        raw: bad.raw,
                    })
                })
            }
        };
        change.map_err(D::Error::custom)
    }
}

/// Written as one word (`as_str`), read back by `from_name` (a text it does not name is
/// the vendor's value, kept as sent). A blocked conversation's reason is a field of the
/// conversation (`blocked_reason`), not of its status.
macro_rules! one_word {
    ($($ty:ty),+) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(|s| <$ty>::from_name(&s))
            }
        }
    )+};
}

one_word!(Role, ConversationKind, ConversationStatus);

/// A flag as a boolean, a count as a number.
impl Serialize for Unread {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Unread::Flag(flag) => s.serialize_bool(*flag),
            Unread::Count(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Unread {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Flag(bool),
            Count(u64),
        }
        Ok(match Either::deserialize(d)? {
            Either::Flag(flag) => Unread::Flag(flag),
            Either::Count(n) => Unread::Count(n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap()
    }

    fn conversation() -> Conversation {
        Conversation {
            reference: ConversationRef::new(Marketplace::MercadoLibre, "2000000089077943")
                .with_account("ar-main"),
            other_party: Some(Participant {
                id: Some("1234".into()),
                name: Some("COMPRADOR_TEST".into()),
                role: Role::Buyer,
            }),
            kind: ConversationKind::BuyerChat,
            status: Some(ConversationStatus::Blocked {
                reason: Some("blocked_by_mediation".into()),
            }),
            unread: Some(Unread::Count(2)),
            created_at: Some(at("2026-11-20T10:00:00.123456789+02:00")),
            last_activity_at: Some(at("2026-11-21T08:00:00Z")),
            references: References {
                orders: vec!["2000003508419013".into()],
                offers: vec![],
                pack: Some("2000000089077943".into()),
                posting: None,
            },
            reply_deadline: None,
            vendor: RawJson::from(
                json!({"status": "blocked", "substatus": "blocked_by_mediation"}),
            ),
        }
    }

    fn message() -> Message {
        Message {
            id: "0b3f1c2e".into(),
            conversation: ConversationRef::new(Marketplace::Allegro, "dpYCg9a:b")
                .with_account("pl-main"),
            author: Participant {
                id: None,
                name: Some("client1".into()),
                role: Role::Unknown("CONSULTANT_BOT".into()),
            },
            text: "Dzień dobry,\nzamówienie?".into(),
            subject: None,
            created_at: at("2019-03-13T09:34:26.450-04:00"),
            attachments: vec![Attachment {
                name: Some("faktura.pdf".into()),
                mime: Some("application/pdf".into()),
                size: Some(1024),
                url: Some("https://api.allegro.pl/messaging/message-attachments/1".into()),
                id: Some("1".into()),
                status: Some("UNSAFE".into()),
            }],
            read: Some(false),
            status: Some("DELIVERED".into()),
            moderation_reason: None,
            kind: Some("MESSAGE_CENTER".into()),
            more_attachments: Some(false),
            references: References::default(),
            vendor: RawJson::from(json!({"id": "0b3f1c2e", "big": 1})),
        }
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn a_conversation_is_written_flat_and_read_back_unchanged() {
        let c = conversation();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            keys(&v),
            [
                "account",
                "blocked_reason",
                "created_at",
                "id",
                "kind",
                "last_activity_at",
                "marketplace",
                "other_party",
                "other_party_id",
                "other_party_name",
                "other_party_role",
                "ref",
                "references",
                "reply_deadline",
                "status",
                "unread",
                "unread_count",
                "vendor"
            ]
        );
        assert_eq!(v["ref"], "mercadolibre@ar-main:2000000089077943");
        assert_eq!(v["account"], "ar-main");
        assert_eq!(v["status"], "blocked");
        assert_eq!(v["blocked_reason"], "blocked_by_mediation");
        assert_eq!(
            (v["unread"].clone(), v["unread_count"].clone()),
            (json!(true), json!(2))
        );
        assert_eq!(v["other_party"], "COMPRADOR_TEST");
        assert_eq!(v["created_at"], "2026-11-20T08:00:00.123456789Z");
        assert_eq!(v["reply_deadline"], Value::Null);
        assert_eq!(v["vendor"]["substatus"], "blocked_by_mediation");
        let back: Conversation = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_vendor_values_and_every_unread_form_survive_the_round_trip() {
        for (kind, status, unread) in [
            (
                ConversationKind::Unknown("SELLER_API_X".into()),
                Some(ConversationStatus::Unknown("ARCHIVED".into())),
                Some(Unread::Flag(true)),
            ),
            (
                ConversationKind::PostPurchaseIssue,
                Some(ConversationStatus::Closed),
                Some(Unread::Flag(false)),
            ),
            (
                ConversationKind::Notifications,
                None,
                Some(Unread::Count(0)),
            ),
            (
                ConversationKind::Support,
                Some(ConversationStatus::Blocked { reason: None }),
                None,
            ),
        ] {
            let c = Conversation {
                kind,
                status,
                unread,
                other_party: None,
                ..conversation()
            };
            let v = serde_json::to_value(&c).unwrap();
            assert_eq!(v["other_party_role"], Value::Null);
            let back: Conversation = serde_json::from_value(v).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn an_instant_rfc_3339_cannot_write_is_null() {
        let far = DateTime::<Utc>::from_timestamp(400_000_000_000, 0).unwrap();
        let c = Conversation {
            last_activity_at: Some(far),
            ..conversation()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["last_activity_at"], Value::Null);
        let back: Conversation = serde_json::from_value(v).unwrap();
        assert_eq!(back.last_activity_at, None);
    }

    #[test]
    fn a_message_is_written_flat_and_read_back_unchanged() {
        let m = message();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            keys(&v),
            [
                "account",
                "attachments",
                "author",
                "author_id",
                "author_name",
                "author_role",
                "conversation",
                "created_at",
                "id",
                "kind",
                "marketplace",
                "moderation_reason",
                "more_attachments",
                "read",
                "references",
                "status",
                "subject",
                "text",
                "vendor"
            ]
        );
        assert_eq!(v["conversation"], "allegro@pl-main:dpYCg9a:b");
        assert_eq!(v["author_role"], "CONSULTANT_BOT");
        assert_eq!(v["author"], "client1");
        assert_eq!(v["created_at"], "2019-03-13T13:34:26.450Z");
        assert_eq!(v["attachments"][0]["downloadable"], false);
        assert_eq!(v["attachments"][0]["status"], "UNSAFE");
        let back: Message = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn a_plain_reference_takes_the_account_field() {
        let line = json!({"marketplace": "magalu", "conversation": "magalu:630e3bbc", "account": "br-1",
            "id": "m1", "author_role": "buyer", "author": "Joseph", "text": "Olá",
            "created_at": "2026-11-20T08:00:00Z", "attachments": [{"url": "https://x/1.png", "downloadable": true}],
            "something_new": 1});
        let m: Message = serde_json::from_value(line).unwrap();
        assert_eq!(m.conversation.to_string(), "magalu@br-1:630e3bbc");
        assert_eq!(m.author.name.as_deref(), Some("Joseph"));
        assert_eq!(m.attachments[0].url.as_deref(), Some("https://x/1.png"));
        assert_eq!(m.vendor, Value::Null);
        // An account name that cannot be one is not taken.
        let line = json!({"ref": "ozon:1", "account": "a b", "kind": "buyer_chat"});
        let c: Conversation = serde_json::from_value(line).unwrap();
        assert_eq!(c.reference.account, None);
        // What cannot be read is an error, not a guess.
        for bad in [
            json!({"ref": "ebay:1", "kind": "buyer_chat"}),
            json!({"ref": "ozon:1"}),
            json!({"conversation": "ozon:1", "id": "1", "author_role": "buyer"}),
        ] {
            assert!(
                serde_json::from_value::<Conversation>(bad.clone()).is_err()
                    && serde_json::from_value::<Message>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_change_is_written_with_its_event_and_read_back_unchanged() {
        let changes = [
            Change::Conversation(Event::NewConversation, conversation()),
            Change::Conversation(Event::UpdatedConversation, conversation()),
            Change::Message(Event::NewMessage, message()),
            Change::Message(Event::UpdatedMessage, message()),
            Change::Malformed(Malformed {
                marketplace: Marketplace::Ozon,
                account: "ru-main".into(),
                conversation: Some(
                    ConversationRef::new(Marketplace::Ozon, "99feb3fc").with_account("ru-main"),
                ),
                listed: Listed::Messages,
                error: "created_at: not a date".into(),
                raw: r#"{"message_id": 1, "created_at": "yesterday"}"#.into(),
            }),
            Change::Malformed(Malformed {
                marketplace: Marketplace::Allegro,
                account: "pl-main".into(),
                conversation: None,
                listed: Listed::Conversations,
                error: "id: missing".into(),
                raw: "{}".into(),
            }),
        ];
        for change in changes {
            let v = serde_json::to_value(&change).unwrap();
            assert_eq!(v["event"], change.event().as_str());
            let back: Change = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(back, change, "{v}");
        }
        let bad = serde_json::to_value(Change::Malformed(Malformed {
            marketplace: Marketplace::Ozon,
            account: "ru-main".into(),
            conversation: None,
            listed: Listed::Conversations,
            error: "e".into(),
            raw: "[1]".into(),
        }))
        .unwrap();
        assert_eq!(
            bad,
            json!({"event": "malformed", "marketplace": "ozon", "account": "ru-main",
                "conversation": null, "listing": "conversations", "error": "e", "raw": "[1]"})
        );
        assert!(serde_json::from_value::<Change>(json!({"ref": "ozon:1", "kind": "x"})).is_err());
    }

    #[test]
    fn vendor_text_json_data_cannot_hold_is_written_as_a_string_of_it() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for text in [
            r#"{"total": 1e400}"#,
            r#"{"name": "\ud800"}"#,
            deep.as_str(),
        ] {
            let raw: Box<serde_json::value::RawValue> =
                serde_json::value::RawValue::from_string(text.to_string()).unwrap();
            let c = Conversation {
                vendor: RawJson::from_raw(raw),
                ..conversation()
            };
            let line = serde_json::to_string(&c).unwrap();
            let v: Value = serde_json::from_str(&line).expect("the line reads as JSON data");
            assert_eq!(v["vendor"], text, "{line}");
        }
        // JSON data is written exactly as received, spacing and key order kept.
        let kept = r#"{"z": 1,  "a": 12345678901234567890123}"#;
        let c = Conversation {
            vendor: RawJson::from_raw(
                serde_json::value::RawValue::from_string(kept.into()).unwrap(),
            ),
            ..conversation()
        };
        assert!(serde_json::to_string(&c).unwrap().contains(kept));
    }

    #[test]
    fn the_enums_alone_are_one_word_or_a_number() {
        assert_eq!(serde_json::to_value(Role::Courier).unwrap(), "courier");
        assert_eq!(
            serde_json::to_value(Role::Unknown("Crm".into())).unwrap(),
            "Crm"
        );
        assert_eq!(
            serde_json::from_value::<Role>(json!("Crm")).unwrap(),
            Role::Unknown("Crm".into())
        );
        assert_eq!(serde_json::to_value(Unread::Count(3)).unwrap(), 3);
        assert_eq!(serde_json::to_value(Unread::Flag(true)).unwrap(), true);
        assert_eq!(
            serde_json::from_value::<Unread>(json!(3)).unwrap(),
            Unread::Count(3)
        );
        assert_eq!(
            serde_json::from_value::<Unread>(json!(false)).unwrap(),
            Unread::Flag(false)
        );
        assert_eq!(
            serde_json::to_value(ConversationStatus::Blocked {
                reason: Some("x".into())
            })
            .unwrap(),
            "blocked"
        );
        assert_eq!(
            serde_json::to_value(ConversationKind::BuyerChat).unwrap(),
            "buyer_chat"
        );
    }
}
