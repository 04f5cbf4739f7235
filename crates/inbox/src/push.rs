//! Push notifications from Mercado Libre (topic `messages`) and Ozon (chat push types),
//! read leniently: ids as numbers or strings, optional `_id`/`id`/`actions`, enums in any
//! case and Ozon's Cyrillic `Сustomer`. A notification is a hint, never the data: it
//! names an account and a conversation (or a message) to read again from the vendor's
//! API, and a key under which duplicates and redeliveries are recognised.
//!
//! ```
//! use marketplace_inbox::push::{self, Hint};
//! let body = br#"{"resource": "3f6da1e35ac84f70a24af7360d24c7bc", "user_id": "415458330",
//!   "topic": "messages", "application_id": 3486171129139063, "attempts": 1}"#;
//! let notice = push::read_mercadolibre(body).unwrap();
//! assert_eq!(notice.seller.as_deref(), Some("415458330"));
//! assert_eq!(notice.application.as_deref(), Some("3486171129139063"));
//! assert!(matches!(notice.hint, Hint::Message { .. }));
//! ```

use serde_json::Value;

use crate::{Account, Marketplace};

/// Missed notifications read per page of Mercado Libre's `GET /missed_feeds`.
pub(crate) const MISSED_PAGE: u64 = 50;

/// What a notification asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hint {
    /// Something changed in a conversation: read it again. Mercado Libre names a message
    /// (its conversation to be asked for) or a pack; Ozon names the chat.
    Message {
        /// The conversation, when the notification names it.
        conversation: Option<String>,
        /// The message, when the notification names it.
        message: Option<String>,
    },
    /// Ozon `TYPE_CHAT_CLOSED`: the conversation's status changed.
    Closed {
        /// The chat.
        conversation: String,
    },
    /// Ozon `TYPE_PING`: the vendor checks the URL; answered, nothing to do.
    Ping,
    /// A topic or type not acted on (acknowledged, so that the vendor does not retry),
    /// or one that names nothing to read; the reason says which.
    Ignored(String),
}

/// One notification as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Who sent it.
    pub marketplace: Marketplace,
    /// The seller it is for: Mercado Libre's `user_id`, Ozon's `seller_id`.
    pub seller: Option<String>,
    /// Mercado Libre's `application_id`.
    pub application: Option<String>,
    /// What it asks for.
    pub hint: Hint,
    /// Equal for a notification and its redeliveries (and for the same event found in
    /// Mercado Libre's missed feeds): marketplace, seller and the vendor's event fields.
    pub dedup_key: String,
}

/// Why a body is not a notification at all (answered 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("the body is not a JSON object")]
    NotObject,
}

/// Why a notification is not acted on for any account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unaddressed {
    /// It names no seller, or one no configured account is.
    UnknownSeller,
    /// The seller is configured, but the notification's application is not the account's.
    WrongApplication,
}

impl Unaddressed {
    /// A short name, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Unaddressed::UnknownSeller => "unknown_seller",
            Unaddressed::WrongApplication => "wrong_application",
        }
    }
}

/// An id the vendor sent as a string or a number; `None` for anything else or empty.
fn id(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| format!("{f:.0}")),
        _ => None,
    }
}

/// A vendor enum value folded for comparison: trimmed, upper case, Cyrillic look-alikes
/// of Latin letters (Ozon's `Сustomer`) read as the Latin ones.
pub fn fold(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| match c {
            'С' | 'с' => 'C',
            'А' | 'а' => 'A',
            'Е' | 'е' => 'E',
            'О' | 'о' => 'O',
            'Р' | 'р' => 'P',
            'Т' | 'т' => 'T',
            'Х' | 'х' => 'X',
            'М' | 'м' => 'M',
            'Н' | 'н' => 'H',
            'К' | 'к' => 'K',
            'В' | 'в' => 'B',
            c => c,
        })
        .flat_map(char::to_uppercase)
        .collect()
}

fn object(body: &[u8]) -> Result<serde_json::Map<String, Value>, PushError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(PushError::NotObject),
        Err(e) => Err(PushError::NotJson(e.to_string())),
    }
}

/// Reads a notification of `marketplace` ([`read_ozon`] for Ozon, [`read_mercadolibre`]
/// for the others; only those two push).
pub fn read(marketplace: Marketplace, body: &[u8]) -> Result<Notice, PushError> {
    match marketplace {
        Marketplace::Ozon => read_ozon(body),
        _ => read_mercadolibre(body),
    }
}

/// Reads a Mercado Libre notification (`{resource, user_id, topic, actions?,
/// application_id, attempts, sent, received, _id?}`). Topic `messages` with a resource
/// is a [`Hint::Message`]; any other topic is [`Hint::Ignored`].
pub fn read_mercadolibre(body: &[u8]) -> Result<Notice, PushError> {
    let map = object(body)?;
    Ok(mercadolibre_notice(&map))
}

/// A Mercado Libre notification from its fields (a pushed body, or the `request.data`
/// of a missed feed).
pub(crate) fn mercadolibre_notice(map: &serde_json::Map<String, Value>) -> Notice {
    let seller = id(map.get("user_id"));
    let application = id(map.get("application_id"));
    let topic = map
        .get("topic")
        .and_then(Value::as_str)
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let resource = map
        .get("resource")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let mut actions: Vec<String> = match map.get("actions") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_ascii_lowercase())
            .collect(),
        Some(Value::String(s)) => vec![s.trim().to_ascii_lowercase()],
        _ => Vec::new(),
    };
    actions.sort();
    actions.dedup();
    // Without `actions`, a `created` and a later `read` of one message name the same
    // resource: the event's own id, else when Mercado Libre received it (the same on
    // every redelivery, unlike `sent` and `attempts`), tells them apart.
    let event = match actions.is_empty() {
        true => ["_id", "id", "received"]
            .iter()
            .find_map(|k| id(map.get(*k)))
            .unwrap_or_default(),
        false => actions.join(","),
    };
    let dedup_key = format!(
        "mercadolibre|{}|{topic}|{resource}|{}",
        seller.as_deref().unwrap_or("-"),
        clip(&event)
    );
    let hint = if topic != "messages" {
        Hint::Ignored(format!("topic {:?}", clip(&topic)))
    } else {
        mercadolibre_resource(resource)
    };
    Notice {
        marketplace: Marketplace::MercadoLibre,
        seller,
        application,
        hint,
        dedup_key,
    }
}

/// What a `messages` resource points at: a bare message id, `/messages/{id}`, or a pack
/// (`/messages/packs/{pack}/sellers/{seller}`, `/packs/{pack}/sellers/{seller}`).
fn mercadolibre_resource(resource: &str) -> Hint {
    let path = resource.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let pack = match parts.as_slice() {
        ["messages", "packs", pack, ..] | ["packs", pack, ..] => Some(*pack),
        _ => None,
    };
    if let Some(pack) = pack.filter(|p| plain(p)) {
        return Hint::Message {
            conversation: Some(pack.to_string()),
            message: None,
        };
    }
    let message = match parts.as_slice() {
        [id] | ["messages", id] => Some(*id),
        _ => None,
    };
    match message.filter(|m| plain(m)) {
        Some(m) => Hint::Message {
            conversation: None,
            message: Some(m.to_string()),
        },
        None if resource.is_empty() => Hint::Ignored("no resource".into()),
        None => Hint::Ignored(format!("resource {:?}", clip(resource))),
    }
}

fn clip(s: &str) -> String {
    crate::error::clip(s, 80)
}

/// Reads an Ozon push (`{message_type, chat_id, chat_type, message_id, created_at, user,
/// data, seller_id, …}`): `TYPE_NEW_MESSAGE`, `TYPE_UPDATE_MESSAGE` and
/// `TYPE_MESSAGE_READ` are [`Hint::Message`], `TYPE_CHAT_CLOSED` [`Hint::Closed`],
/// `TYPE_PING` [`Hint::Ping`]; other types are [`Hint::Ignored`].
pub fn read_ozon(body: &[u8]) -> Result<Notice, PushError> {
    let map = object(body)?;
    let kind = map
        .get("message_type")
        .and_then(Value::as_str)
        .map(fold)
        .unwrap_or_default();
    let seller = id(map.get("seller_id"));
    let chat = id(map.get("chat_id"));
    let message = match kind.as_str() {
        "TYPE_MESSAGE_READ" => {
            id(map.get("last_read_message_id")).or_else(|| id(map.get("message_id")))
        }
        _ => id(map.get("message_id")),
    };
    let updated = map
        .get("updated_at")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let dedup_key = match kind.as_str() {
        "TYPE_PING" => format!(
            "ozon|ping|{}",
            map.get("time").and_then(Value::as_str).unwrap_or_default()
        ),
        _ => format!(
            "ozon|{}|{kind}|{}|{}|{updated}",
            seller.as_deref().unwrap_or("-"),
            chat.as_deref().unwrap_or("-"),
            message.as_deref().unwrap_or("-"),
        ),
    };
    let plain =
        |s: &String| s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let hint = match (kind.as_str(), chat.filter(plain)) {
        ("TYPE_PING", _) => Hint::Ping,
        ("TYPE_NEW_MESSAGE" | "TYPE_UPDATE_MESSAGE" | "TYPE_MESSAGE_READ", Some(chat)) => {
            Hint::Message {
                conversation: Some(chat),
                message: message.filter(plain),
            }
        }
        ("TYPE_CHAT_CLOSED", Some(chat)) => Hint::Closed { conversation: chat },
        (
            "TYPE_NEW_MESSAGE" | "TYPE_UPDATE_MESSAGE" | "TYPE_MESSAGE_READ" | "TYPE_CHAT_CLOSED",
            None,
        ) => Hint::Ignored("no usable chat_id".into()),
        ("", _) => Hint::Ignored("no message_type".into()),
        (other, _) => Hint::Ignored(format!("type {:?}", clip(other))),
    };
    Ok(Notice {
        marketplace: Marketplace::Ozon,
        seller,
        application: None,
        hint,
        dedup_key,
    })
}

/// What a vendor expects back from a notification endpoint: an HTTP status and a JSON
/// body (`None`: an empty body). Serve it as is; nothing here needs a server.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body, when there is one.
    pub body: Option<Value>,
}

/// The vendor's success answer to a notification it will not send again: Mercado
/// Libre's empty 200 (its body is not read), Ozon's `{"result": true}`.
pub fn acknowledgement(marketplace: Marketplace) -> Answer {
    let body = match marketplace {
        Marketplace::Ozon => Some(serde_json::json!({"result": true})),
        _ => None,
    };
    Answer { status: 200, body }
}

/// An error answer (the vendor delivers the notification again when it retries on
/// `status`): Ozon's `{"error": {"code", "message", "details"}}`, elsewhere
/// `{"error": code, "message": message}`.
pub fn refusal(marketplace: Marketplace, status: u16, code: &str, message: &str) -> Answer {
    let body = match marketplace {
        Marketplace::Ozon => {
            serde_json::json!({"error": {"code": code, "message": message, "details": null}})
        }
        _ => serde_json::json!({"error": code, "message": message}),
    };
    Answer {
        status,
        body: Some(body),
    }
}

/// Ozon's answer to `TYPE_PING`: the application's version and name, and when processing
/// started (UTC, whole seconds).
pub fn ping_answer(started: chrono::DateTime<chrono::Utc>) -> Answer {
    Answer {
        status: 200,
        body: Some(serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "name": "marketplace-inbox",
            "time": started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })),
    }
}

/// A notification found in Mercado Libre's missed feeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missed {
    /// It, read.
    pub notice: Notice,
    /// The body that was posted (`request.data`, else the entry itself), as JSON text.
    pub body: String,
}

/// The notifications in a Mercado Libre `GET /missed_feeds` answer, each read from the
/// body that was posted (`request.data`, else the entry's own fields).
pub fn read_missed_feeds(answer: &Value) -> Vec<Missed> {
    answer
        .get("messages")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let data = e.pointer("/request/data");
                    let fields = match data {
                        Some(Value::Object(m)) => Some(m.clone()),
                        Some(Value::String(s)) => serde_json::from_str(s).ok(),
                        _ => None,
                    };
                    fields.or_else(|| e.as_object().cloned())
                })
                .map(|m| Missed {
                    notice: mercadolibre_notice(&m),
                    body: Value::Object(m).to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Account {
    /// Whether a notification is for this account: the same marketplace and seller
    /// (Mercado Libre `user_id` = its `seller_id`; Ozon `seller_id` = its `Client-Id`)
    /// and, on Mercado Libre, the same application when the account knows its own.
    pub fn is_addressee(&self, notice: &Notice) -> Result<(), Unaddressed> {
        if notice.marketplace != self.marketplace()
            || notice.seller.is_none()
            || notice.seller.as_deref() != self.push_seller()
        {
            return Err(Unaddressed::UnknownSeller);
        }
        match (self.push_application(), notice.application.as_deref()) {
            (Some(own), Some(theirs)) if own == theirs => Ok(()),
            (Some(_), _) => Err(Unaddressed::WrongApplication),
            (None, _) => Ok(()),
        }
    }
}

impl crate::Inbox {
    /// The account a notification is for (see [`Account::is_addressee`]).
    pub fn addressee(&self, notice: &Notice) -> Result<&Account, Unaddressed> {
        let mut why = Unaddressed::UnknownSeller;
        for account in self.accounts() {
            match account.is_addressee(notice) {
                Ok(()) => return Ok(account),
                Err(Unaddressed::WrongApplication) => why = Unaddressed::WrongApplication,
                Err(Unaddressed::UnknownSeller) => {}
            }
        }
        Err(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mercadolibre_bodies_of_every_documented_shape_read_alike() {
        // The 2019 body as posted (string user_id, no _id, no actions) and the 2025
        // example (number user_id, id, actions).
        let posted = br#"{"resource":"a35cf79864a845ca9a3bf6aee59bb4d7","user_id":"465432224","topic":"messages","application_id":3486171129139063,"attempts":1,"sent":"2019-10-17T17:15:30.279Z","received":"2019-10-17T17:15:30.259Z"}"#;
        let example = br#"{"id": "5e2827f2-99b7-474e-b68b-6a86e934cc7e", "resource": "a35cf79864a845ca9a3bf6aee59bb4d7", "user_id": 465432224, "topic": "Messages", "actions": ["created"], "application_id": "3486171129139063", "attempts": 3}"#;
        let a = read_mercadolibre(posted).unwrap();
        let b = read_mercadolibre(example).unwrap();
        assert_eq!(a.seller.as_deref(), Some("465432224"));
        assert_eq!(b.seller, a.seller);
        assert_eq!(b.application, a.application);
        let message = Hint::Message {
            conversation: None,
            message: Some("a35cf79864a845ca9a3bf6aee59bb4d7".into()),
        };
        assert_eq!((a.hint.clone(), b.hint.clone()), (message.clone(), message));
        // Retries of one event share the key (a new `sent` and `attempts`, the same
        // `received`); another action does not, nor does a later event of the same
        // message without `actions` (its `read`).
        let retry = br#"{"resource":"a35cf79864a845ca9a3bf6aee59bb4d7","user_id":"465432224","topic":"messages","application_id":3486171129139063,"attempts":4,"sent":"2019-10-17T17:20:30.279Z","received":"2019-10-17T17:15:30.259Z"}"#;
        assert_eq!(read_mercadolibre(retry).unwrap().dedup_key, a.dedup_key);
        assert_ne!(b.dedup_key, a.dedup_key);
        let read = br#"{"resource":"a35cf79864a845ca9a3bf6aee59bb4d7","user_id":"465432224","topic":"messages","application_id":3486171129139063,"attempts":1,"sent":"2019-10-17T17:40:00.000Z","received":"2019-10-17T17:39:59.990Z"}"#;
        assert_ne!(read_mercadolibre(read).unwrap().dedup_key, a.dedup_key);
        for (resource, conversation) in [
            (
                "/messages/packs/2000000089077943/sellers/465432224",
                "2000000089077943",
            ),
            (
                "/packs/2000000089077943/sellers/465432224",
                "2000000089077943",
            ),
        ] {
            let body = serde_json::json!({"resource": resource, "user_id": 1, "topic": "messages"});
            let n = read_mercadolibre(body.to_string().as_bytes()).unwrap();
            assert_eq!(
                n.hint,
                Hint::Message {
                    conversation: Some(conversation.into()),
                    message: None
                }
            );
        }
        let orders = br#"{"resource":"/orders/2000000089077943","user_id":1,"topic":"orders_v2"}"#;
        assert!(matches!(
            read_mercadolibre(orders).unwrap().hint,
            Hint::Ignored(_)
        ));
        let hostile = br#"{"resource":"../../users/me?x=1","user_id":1,"topic":"messages"}"#;
        assert!(matches!(
            read_mercadolibre(hostile).unwrap().hint,
            Hint::Ignored(_)
        ));
        assert!(matches!(
            read_mercadolibre(b"{\"topic\""),
            Err(PushError::NotJson(_))
        ));
        assert_eq!(read_mercadolibre(b"[1]"), Err(PushError::NotObject));
    }

    #[test]
    fn ozon_pushes_read_with_their_quirks() {
        let new = "{\"message_type\": \"TYPE_NEW_MESSAGE\", \"chat_id\": \"b646d975-0c9c-4872-9f41-8b1e57181063\", \"chat_type\": \"Buyer_Seller\", \"message_id\": \"3000000000817031942\", \"created_at\": \"2022-07-18T20:58:04.528Z\", \"user\": {\"id\": \"115568\", \"type\": \"\u{421}ustomer\"}, \"data\": [\"Текст сообщения\"], \"seller_id\": \"7\"}";
        let n = read_ozon(new.as_bytes()).unwrap();
        assert_eq!(n.seller.as_deref(), Some("7"));
        assert_eq!(
            n.hint,
            Hint::Message {
                conversation: Some("b646d975-0c9c-4872-9f41-8b1e57181063".into()),
                message: Some("3000000000817031942".into())
            }
        );
        assert_eq!(fold("\u{421}ustomer"), "CUSTOMER");
        let lower = new
            .replace("TYPE_NEW_MESSAGE", "type_new_message")
            .replace("\"7\"", "7");
        assert_eq!(read_ozon(lower.as_bytes()).unwrap(), n);
        let read = br#"{"message_type": "TYPE_MESSAGE_READ", "chat_id": "b646d975-0c9c-4872-9f41-8b1e57181063", "chat_type": "Buyer_Seller", "message_id": "3000000000817031942", "created_at": "2022-07-18T20:58:04.528Z", "user": {"id": "115568", "type": "Customer"}, "last_read_message_id": "3000000000817031943", "seller_id": 7}"#;
        let r = read_ozon(read).unwrap();
        assert_ne!(r.dedup_key, n.dedup_key);
        let closed = br#"{"message_type": "TYPE_CHAT_CLOSED", "chat_id": "b646d975-0c9c-4872-9f41-8b1e57181063", "chat_type": "Buyer_Seller", "user": {"id": "115568", "type": "Customer"}, "seller_id": "7"}"#;
        assert_eq!(
            read_ozon(closed).unwrap().hint,
            Hint::Closed {
                conversation: "b646d975-0c9c-4872-9f41-8b1e57181063".into()
            }
        );
        let ping = br#"{"message_type": "TYPE_PING", "time": "2019-08-24T14:15:22Z"}"#;
        assert_eq!(read_ozon(ping).unwrap().hint, Hint::Ping);
        let stock = br#"{"message_type": "TYPE_STOCKS_CHANGED", "seller_id": 7}"#;
        assert!(matches!(read_ozon(stock).unwrap().hint, Hint::Ignored(_)));
        let hostile = br#"{"message_type": "TYPE_NEW_MESSAGE", "chat_id": "../v1/chat/send/message", "seller_id": 7}"#;
        assert!(matches!(read_ozon(hostile).unwrap().hint, Hint::Ignored(_)));
    }

    #[test]
    fn missed_feeds_read_the_body_that_was_posted() {
        let answer = serde_json::json!({"messages": [{
            "_id": "9ac6e1a9-5f59-4c1a-8a18-79f4c7c0ad1b", "resource": "a35cf79864a845ca9a3bf6aee59bb4d7",
            "user_id": 465432224, "topic": "messages", "application_id": 3486171129139063_u64, "attempts": 5,
            "request": {"url": "https://example.com/notifications", "headers": {"accept": "application/json"},
                        "data": {"resource": "a35cf79864a845ca9a3bf6aee59bb4d7", "user_id": "465432224", "topic": "messages",
                                 "application_id": 3486171129139063_u64, "attempts": 1}},
            "response": {"req_time": 498, "http_code": 200}}]});
        let pushed = br#"{"resource":"a35cf79864a845ca9a3bf6aee59bb4d7","user_id":"465432224","topic":"messages","application_id":3486171129139063,"attempts":1}"#;
        let missed = read_missed_feeds(&answer);
        let notices: Vec<Notice> = missed.iter().map(|m| m.notice.clone()).collect();
        assert_eq!(notices, vec![read_mercadolibre(pushed).unwrap()]);
        assert_eq!(
            read_mercadolibre(missed[0].body.as_bytes()).unwrap(),
            notices[0]
        );
    }
}
