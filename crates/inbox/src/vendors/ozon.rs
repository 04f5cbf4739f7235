//! Ozon seller chats. Chats come in Ozon's order, paged by `cursor`; the page size
//! (≤ 100), `unread_only` and `chat_status` are pushed to the vendor. Messages come newest
//! first (history `Backward`, paged by the oldest message id seen, ≤ 1000 a page).

use std::sync::Arc;

use base64::Engine as _;
use futures::future::BoxFuture;
use futures::FutureExt;
use inbox_core::Lenient;
use inbox_ozon::{enums, types, ClientInfo as _, Ozon};

use crate::adapter::{page_size, Adapter, Listed};
use crate::config::{AccountConfig, Credentials};
use crate::listing::{ConversationQuery, MessageQuery, StatusFilter};
use crate::model::*;
use crate::paginate::{Cursor, Fetched};
use crate::vendor_error::call;
use crate::{Error, Marketplace};

const M: Marketplace = Marketplace::Ozon;
/// Ozon's largest chat-list page.
const CHAT_PAGE: u32 = 100;
/// Ozon's largest history page.
const HISTORY_PAGE: u32 = 1000;
/// Longest message text Ozon accepts.
pub const MAX_TEXT: usize = 1000;

/// An Ozon seller account's side of the facade.
#[derive(Debug)]
pub(crate) struct OzonAdapter {
    client: Ozon,
}

impl OzonAdapter {
    pub(crate) fn from_config(config: &AccountConfig) -> Result<Self, Error> {
        let Credentials::ApiKey { .. } = &config.credentials else {
            return Err(Error::config(format!(
                "account {}: Ozon authenticates with `client_id` and `api_key`",
                config.name
            )));
        };
        let defaults = super::Defaults {
            production: inbox_ozon::PRODUCTION_URL,
            token_url: "",
            client_auth: inbox_core::ClientAuth::Form,
            policy: inbox_ozon::policy,
        };
        let w = super::wiring(config, &defaults, None)?;
        let client = Ozon::with_policy(&w.url, w.http, w.auth, w.policy);
        Ok(OzonAdapter { client })
    }
}

impl Adapter for OzonAdapter {
    fn marketplace(&self) -> Marketplace {
        M
    }

    /// Ozon's 50/s takes 8.
    fn default_concurrency(&self) -> usize {
        8
    }

    fn sync_walks(
        &self,
        before: &crate::sync::Checkpoint,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::sync::Walk> {
        crate::sync::by_unread(before, now, false, false)
    }

    fn sync_summary(&self, c: &Conversation) -> String {
        crate::sync::summary(c, &[crate::sync::vendor_field(c, "/last_message_id")])
    }

    fn newest_first(&self, listed: Listed) -> bool {
        listed == Listed::Messages
    }

    fn conversations_page(
        self: Arc<Self>,
        query: ConversationQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Conversation>, Error>> {
        async move {
            let filter = (query.unread_only || query.status.is_some()).then(|| {
                types::V3ChatListRequestFilter {
                    chat_status: query.status.map(|s| {
                        match s {
                            StatusFilter::Open => "Opened",
                            StatusFilter::Closed => "Closed",
                        }
                        .to_string()
                    }),
                    unread_only: query.unread_only.then_some(true),
                }
            });
            let body = types::V3ChatList {
                filter,
                limit: i64::from(page_size(query.page_size, CHAT_PAGE)),
                cursor: match cursor {
                    Cursor::Token(c) => Some(c),
                    _ => None,
                },
            };
            let page = call(M, self.client.chat_api_chat_list_v3().body(body).send()).await?;
            let chats: Vec<_> = page
                .chats
                .ok_or_else(|| Error::decode(M, "response", "the page has no `chats` list"))?
                .into_iter()
                .map(unflatten)
                .collect();
            let next = match (page.has_next.map(|b| b.get()), page.cursor) {
                (Some(true), Some(c)) if !c.is_empty() => Some(Cursor::Token(c)),
                (Some(true), _) => Some(Cursor::Missing),
                _ => None,
            };
            Ok(Fetched::convert(
                M,
                "chat",
                chats,
                |c| c.chat.as_ref()?.chat_id.as_ref().map(|i| i.as_str()),
                next,
                chat,
            ))
        }
        .boxed()
    }

    fn messages_page(
        self: Arc<Self>,
        chat_id: String,
        query: MessageQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Message>, Error>> {
        async move {
            let from =
                match &cursor {
                    Cursor::Token(id) => Some(id.parse::<u64>().map_err(|_| {
                        Error::decode(M, "message id", "a message id is not a number")
                    })?),
                    _ => None,
                };
            let body = types::V3ChatHistoryRequest {
                chat_id: chat_id.clone(),
                direction: Some("Backward".into()),
                filter: None,
                from_message_id: from,
                limit: Some(i64::from(page_size(query.page_size, HISTORY_PAGE))),
            };
            let page = call(M, self.client.chat_api_chat_history_v3().body(body).send()).await?;
            let mut messages = page
                .messages
                .ok_or_else(|| Error::decode(M, "response", "the page has no `messages` list"))?;
            // `from_message_id` is inclusive: drop the message the page started at.
            if let Some(from) = from {
                messages.retain(|m| {
                    m.valid().and_then(|m| m.message_id.as_ref()?.as_u64()) != Some(from)
                });
            }
            let oldest = messages
                .iter()
                .rev()
                .find_map(|m| m.valid().and_then(|m| m.message_id.as_ref()?.as_u64()));
            let next = match (page.has_next.map(|b| b.get()), oldest) {
                (Some(true), Some(id)) => Some(Cursor::Token(id.to_string())),
                (Some(true), None) => Some(Cursor::Missing),
                _ => None,
            };
            Ok(Fetched::convert(
                M,
                "message",
                messages,
                |m| m.message_id.as_ref().map(|i| i.as_str()),
                next,
                |m, raw| message(&chat_id, m, raw),
            ))
        }
        .boxed()
    }

    /// Sends files (base64, one call each) then the text, if any.
    fn send<'a>(
        &'a self,
        chat_id: &'a str,
        text: &'a str,
        attachments: &'a [OutgoingAttachment],
    ) -> BoxFuture<'a, Result<Sent, Error>> {
        async move {
            validate(text, attachments)?;
            let mut last = RawJson::default();
            for a in attachments {
                let body = types::ChatChatSendFileRequest {
                    base64_content: base64::engine::general_purpose::STANDARD.encode(&a.bytes),
                    chat_id: chat_id.to_string(),
                    name: a.name.clone(),
                };
                let answer =
                    call(M, self.client.chat_api_chat_send_file().body(body).send()).await?;
                last = RawJson::of(&answer);
            }
            if !text.is_empty() {
                let body = types::ChatChatSendMessageRequest {
                    chat_id: chat_id.to_string(),
                    text: text.to_string(),
                };
                let answer = call(
                    M,
                    self.client.chat_api_chat_send_message().body(body).send(),
                )
                .await?;
                last = RawJson::of(&answer);
            }
            Ok(Sent {
                conversation: ConversationRef::new(M, chat_id),
                message_id: None,
                vendor: last,
            })
        }
        .boxed()
    }

    /// Opens the chat of a posting (`/v1/chat/start`).
    fn start<'a>(&'a self, new: &'a NewConversation) -> BoxFuture<'a, Result<Sent, Error>> {
        async move {
            let NewConversation::Ozon { posting_number } = new else {
                return Err(Error::invalid(
                    M,
                    "an Ozon chat starts from a posting number",
                ));
            };
            if posting_number.trim().is_empty() {
                return Err(Error::invalid(M, "the posting number is empty"));
            }
            let body = types::ChatChatStartRequest {
                posting_number: posting_number.clone(),
            };
            let answer = call(M, self.client.chat_api_chat_start().body(body).send()).await?;
            let chat = answer
                .result
                .as_ref()
                .and_then(|r| r.chat_id.as_ref())
                .map(|c| c.to_string())
                .ok_or_else(|| Error::decode(M, "new chat", "the answer names no chat"))?;
            Ok(Sent {
                conversation: ConversationRef::new(M, chat),
                message_id: None,
                vendor: RawJson::of(&answer),
            })
        }
        .boxed()
    }

    /// The API key's expiry (`/v1/roles`, `expires_at`); a key Ozon refuses is the
    /// error.
    fn credentials_expiry(
        &self,
    ) -> BoxFuture<'_, Result<Option<chrono::DateTime<chrono::Utc>>, Error>> {
        async move {
            let answer = call(M, self.client.access_api_roles_by_token().send()).await?;
            Ok(answer.expires_at.as_ref().map(|at| at.utc()))
        }
        .boxed()
    }

    /// Downloads an image from the address Ozon gives (without credentials).
    fn download<'a>(
        &'a self,
        _chat: &'a str,
        attachment: &'a Attachment,
    ) -> BoxFuture<'a, Result<Download, Error>> {
        super::fetch_url(self.client.baseurl(), M, attachment).boxed()
    }

    /// Marks every message of a chat read: reads the newest message's id, then marks
    /// from it (`from_message_id`, as documented; the default is undocumented).
    fn mark_read<'a>(&'a self, chat_id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let newest = types::V3ChatHistoryRequest {
                chat_id: chat_id.to_string(),
                direction: Some("Backward".into()),
                filter: None,
                from_message_id: None,
                limit: Some(1),
            };
            let page = call(
                M,
                self.client.chat_api_chat_history_v3().body(newest).send(),
            )
            .await?;
            let newest = page
                .messages
                .unwrap_or_default()
                .iter()
                .filter_map(|m| m.valid()?.message_id.as_ref()?.as_u64())
                .max();
            let Some(from_message_id) = newest else {
                return Ok(());
            };
            let body = types::ChatRead {
                chat_id: chat_id.to_string(),
                from_message_id: Some(from_message_id),
            };
            call(M, self.client.chat_api_chat_read_v2().body(body).send())
                .await
                .map(|_| ())
        }
        .boxed()
    }
}

/// Ozon's rules for an outgoing message, checked before any request: text of 1 to 1000
/// characters (it may be empty only when files are sent), files named with an extension.
pub(crate) fn validate(text: &str, attachments: &[OutgoingAttachment]) -> Result<(), Error> {
    let chars = text.chars().count();
    if chars == 0 && attachments.is_empty() {
        return Err(Error::invalid(M, "the message text is empty"));
    }
    if chars > MAX_TEXT {
        return Err(Error::invalid(
            M,
            format!("the message has {chars} characters; Ozon accepts 1 to {MAX_TEXT}"),
        ));
    }
    if let Some(a) = attachments.iter().find(|a| !a.name.contains('.')) {
        return Err(Error::invalid(
            M,
            format!("{}: Ozon needs the file name with its extension", a.name),
        ));
    }
    Ok(())
}

/// A vendor value as Ozon's documented spelling would compare: Latin letters for their
/// Cyrillic look-alikes (the vendor's own example writes `Сustomer` with a Cyrillic С),
/// lowercase, without `_`.
fn folded(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'А' | 'а' => 'a',
            'В' | 'в' => 'b',
            'С' | 'с' => 'c',
            'Е' | 'е' => 'e',
            'Н' | 'н' => 'h',
            'К' | 'к' => 'k',
            'М' | 'м' => 'm',
            'О' | 'о' => 'o',
            'Р' | 'р' => 'p',
            'Т' | 'т' => 't',
            'Х' | 'х' => 'x',
            'У' | 'у' => 'y',
            other => other,
        })
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// An open enum's value, read again case-insensitively when it came in unknown.
fn known<E: std::str::FromStr + std::fmt::Display>(value: E, all: &[&str]) -> E {
    let text = value.to_string();
    if all.contains(&text.as_str()) {
        return value;
    }
    let wanted = folded(&text);
    all.iter()
        .find(|k| folded(k) == wanted && **k != text)
        .and_then(|k| k.parse().ok())
        .unwrap_or(value)
}

/// A chat list element in the flat form (the chat's fields beside `unread_count`
/// instead of under `chat`, as older API versions and some proxies send it), read into
/// the nested one.
fn unflatten(element: Lenient<types::V3ChatInfo>) -> Lenient<types::V3ChatInfo> {
    match element {
        Lenient::Valid(mut c, Some(raw)) if c.chat.is_none() => {
            c.chat = raw
                .parse::<types::V3ChatDetailsInfo>()
                .ok()
                .filter(|d| d.chat_id.is_some());
            Lenient::Valid(c, Some(raw))
        }
        other => other,
    }
}

fn chat(c: types::V3ChatInfo, _raw: &RawJson) -> Result<Conversation, String> {
    use enums::{ChatInfoChatStatusEnum as S, ChatInfoChatTypeEnum as K};
    const TYPES: [&str; 7] = [
        "UNSPECIFIED",
        "SELLER_SUPPORT",
        "BUYER_SELLER",
        "BUYER_SELLER_SELECT",
        "SELLER_API_UPDATES",
        "SELLER_API_NOTIFICATIONS",
        "SELLER_NOTIFICATION_LOGISTICS",
    ];
    let details = c.chat.ok_or("missing `chat`")?;
    Ok(Conversation {
        reference: ConversationRef::new(
            M,
            details.chat_id.ok_or("missing `chat.chat_id`")?.to_string(),
        ),
        other_party: None,
        kind: match details.chat_type.map(|t| known(t, &TYPES)) {
            Some(K::BuyerSeller | K::BuyerSellerSelect) => ConversationKind::BuyerChat,
            Some(K::SellerSupport) => ConversationKind::Support,
            Some(
                K::SellerApiUpdates | K::SellerApiNotifications | K::SellerNotificationLogistics,
            ) => ConversationKind::Notifications,
            Some(other) => ConversationKind::Unknown(other.to_string()),
            None => ConversationKind::Unknown("UNSPECIFIED".into()),
        },
        status: details
            .chat_status
            .map(|s| known(s, &["UNSPECIFIED", "OPENED", "CLOSED"]))
            .and_then(|s| match s {
                S::Opened => Some(ConversationStatus::Open),
                S::Closed => Some(ConversationStatus::Closed),
                S::Unspecified => None,
                S::Unknown(v) => Some(ConversationStatus::Unknown(v)),
            }),
        unread: c.unread_count.map(|n| Unread::Count(n.get().max(0) as u64)),
        created_at: details.created_at.map(|d| d.utc()),
        last_activity_at: None,
        references: References::default(),
        reply_deadline: None,
        vendor: RawJson::default(),
    })
}

/// The address in a `data` fragment that is a picture: a plain `http(s)` URL, or a
/// Markdown image or link around one.
fn image_url(fragment: &str) -> Option<&str> {
    let f = fragment.trim();
    let url = match f.find("](") {
        Some(i) if f.ends_with(')') => f.get(i + 2..f.len() - 1)?,
        _ => f,
    };
    (url.starts_with("https://") || url.starts_with("http://"))
        .then_some(url)
        .filter(|u| !u.contains(char::is_whitespace))
}

/// The parts of a message's `data`, one a line (a single part as it is).
fn lines(mut parts: Vec<String>) -> String {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    parts.join("\n")
}

fn message(chat_id: &str, m: types::V3ChatMessage, _raw: &RawJson) -> Result<Message, String> {
    use enums::V3UserType as U;
    const USERS: [&str; 6] = [
        "Customer",
        "Seller",
        "Crm",
        "Courier",
        "Support",
        "NotificationUser",
    ];
    let user = m.user.unwrap_or_default();
    let role = match user.type_.map(|t| known(t, &USERS)) {
        Some(U::Customer) => Role::Buyer,
        Some(U::Seller) => Role::Seller,
        Some(U::Support) => Role::Support,
        Some(U::Courier) => Role::Courier,
        Some(U::Crm | U::NotificationUser) => Role::Marketplace,
        Some(U::Unknown(v)) => Role::Unknown(v),
        None => Role::Unknown("unknown".into()),
    };
    let context = m.context.unwrap_or_default();
    let data = m.data.unwrap_or_default();
    // An image message carries its picture's address in `data` (plain or as Markdown):
    // an attachment, not text.
    let (attachments, text) = if m.is_image.is_some_and(|b| b.get()) {
        let (urls, rest): (Vec<_>, Vec<_>) = data.into_iter().partition(|d| image_url(d).is_some());
        let attachments = urls
            .iter()
            .filter_map(|d| image_url(d))
            .map(|url| Attachment {
                name: url
                    .split(['?', '#'])
                    .next()
                    .and_then(|p| p.rsplit('/').next())
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                url: Some(url.to_string()),
                ..Attachment::default()
            })
            .collect();
        (attachments, lines(rest))
    } else {
        (Vec::new(), lines(data))
    };
    Ok(Message {
        id: m.message_id.ok_or("missing `message_id`")?.into_string(),
        conversation: ConversationRef::new(M, chat_id),
        author: Participant {
            id: user.id.map(inbox_core::FlexId::into_string),
            name: None,
            role,
        },
        text,
        subject: None,
        created_at: m.created_at.ok_or("missing `created_at`")?.utc(),
        attachments,
        read: m.is_read.map(|b| b.get()),
        status: m.moderate_image_status.map(|s| s.to_string()),
        moderation_reason: None,
        kind: None,
        more_attachments: None,
        references: References {
            orders: context.order_number.into_iter().collect(),
            offers: context.sku.into_iter().collect(),
            pack: None,
            posting: None,
        },
        vendor: RawJson::default(),
    })
}
