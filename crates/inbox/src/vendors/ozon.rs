//! Ozon seller chats through the facade. Chats come in Ozon's order; messages newest
//! first (history `Backward`, paged by the oldest message id seen).

use base64::Engine as _;
use futures::stream::BoxStream;
use inbox_ozon::{enums, types, Ozon};
use serde_json::Value;

use crate::model::*;
use crate::paginate::{paginate, Page};
use crate::vendor_error::map;
use crate::{Error, Marketplace};

const M: Marketplace = Marketplace::Ozon;
/// Ozon's largest chat-list page.
const CHAT_PAGE: i64 = 100;
/// Ozon's largest history page.
const HISTORY_PAGE: i64 = 1000;
/// Longest message text Ozon accepts.
pub const MAX_TEXT: usize = 1000;

/// An Ozon seller account in the facade.
#[derive(Clone, Debug)]
pub struct OzonAccount {
    client: Ozon,
}

impl OzonAccount {
    /// Wraps a typed client.
    pub fn new(client: Ozon) -> Self {
        OzonAccount { client }
    }

    /// The typed client, for operations the facade does not cover.
    pub fn client(&self) -> &Ozon {
        &self.client
    }

    /// Every chat.
    pub fn conversations(&self) -> BoxStream<'static, Result<Conversation, Error>> {
        let client = self.client.clone();
        paginate(M, None::<String>, move |cursor| {
            let client = client.clone();
            async move {
                let body = types::V3ChatList {
                    filter: None,
                    limit: CHAT_PAGE,
                    cursor,
                };
                let page = match client.chat_api_chat_list_v3().body(body).send().await {
                    Ok(rv) => rv.into_inner(),
                    Err(e) => return Err(map(M, e).await),
                };
                let chats = page.chats.unwrap_or_default();
                let next = match (page.has_next.map(|b| b.get()), page.cursor) {
                    (Some(true), Some(c)) if !c.is_empty() => Some(Some(c)),
                    _ => None,
                };
                Ok(Page::convert(
                    M,
                    "chat",
                    chats,
                    |c| c.chat.as_ref()?.chat_id.as_ref().map(|i| i.as_str()),
                    next,
                    chat,
                ))
            }
        })
    }

    /// Every message of a chat, newest first.
    pub fn messages(&self, chat_id: &str) -> BoxStream<'static, Result<Message, Error>> {
        let client = self.client.clone();
        let chat_id = chat_id.to_string();
        paginate(M, None::<u64>, move |from| {
            let (client, chat_id) = (client.clone(), chat_id.clone());
            async move {
                let body = types::V3ChatHistoryRequest {
                    chat_id: chat_id.clone(),
                    direction: Some("Backward".into()),
                    filter: None,
                    from_message_id: from,
                    limit: Some(HISTORY_PAGE),
                };
                let page = match client.chat_api_chat_history_v3().body(body).send().await {
                    Ok(rv) => rv.into_inner(),
                    Err(e) => return Err(map(M, e).await),
                };
                let mut messages = page.messages.unwrap_or_default();
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
                    (Some(true), Some(id)) => Some(Some(id)),
                    _ => None,
                };
                Ok(Page::convert(
                    M,
                    "message",
                    messages,
                    |m| m.message_id.as_ref().map(|i| i.as_str()),
                    next,
                    |m, raw| message(&chat_id, m, raw),
                ))
            }
        })
    }

    /// Sends files (base64, one call each) then the text, if any.
    pub async fn send(
        &self,
        chat_id: &str,
        text: &str,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sent, Error> {
        validate(text, attachments)?;
        let mut last = Value::Null;
        for a in attachments {
            let body = types::ChatChatSendFileRequest {
                base64_content: base64::engine::general_purpose::STANDARD.encode(&a.bytes),
                chat_id: chat_id.to_string(),
                name: a.name.clone(),
            };
            match self
                .client
                .chat_api_chat_send_file()
                .body(body)
                .send()
                .await
            {
                Ok(rv) => last = serde_json::to_value(rv.into_inner()).unwrap_or(Value::Null),
                Err(e) => return Err(map(M, e).await),
            }
        }
        if !text.is_empty() {
            let body = types::ChatChatSendMessageRequest {
                chat_id: chat_id.to_string(),
                text: text.to_string(),
            };
            match self
                .client
                .chat_api_chat_send_message()
                .body(body)
                .send()
                .await
            {
                Ok(rv) => last = serde_json::to_value(rv.into_inner()).unwrap_or(Value::Null),
                Err(e) => return Err(map(M, e).await),
            }
        }
        Ok(Sent {
            conversation: ConversationRef::new(M, chat_id),
            message_id: None,
            vendor: last,
        })
    }

    /// Marks every message of a chat read.
    pub async fn mark_read(&self, chat_id: &str) -> Result<(), Error> {
        let body = types::ChatRead {
            chat_id: chat_id.to_string(),
            from_message_id: None,
        };
        match self.client.chat_api_chat_read_v2().body(body).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(map(M, e).await),
        }
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

fn chat(c: types::V3ChatInfo, raw: Value) -> Result<Conversation, String> {
    use enums::{ChatInfoChatStatusEnum as S, ChatInfoChatTypeEnum as K};
    let details = c.chat.ok_or("missing `chat`")?;
    Ok(Conversation {
        reference: ConversationRef::new(
            M,
            details.chat_id.ok_or("missing `chat.chat_id`")?.to_string(),
        ),
        other_party: None,
        kind: match details.chat_type {
            Some(K::BuyerSeller | K::BuyerSellerSelect) => ConversationKind::BuyerChat,
            Some(K::SellerSupport) => ConversationKind::Support,
            Some(
                K::SellerApiUpdates | K::SellerApiNotifications | K::SellerNotificationLogistics,
            ) => ConversationKind::Notifications,
            Some(other) => ConversationKind::Unknown(other.to_string()),
            None => ConversationKind::Unknown("UNSPECIFIED".into()),
        },
        status: details.chat_status.and_then(|s| match s {
            S::Opened => Some(ConversationStatus::Open),
            S::Closed => Some(ConversationStatus::Closed),
            S::Unspecified => None,
            S::Unknown(v) => Some(ConversationStatus::Unknown(v)),
        }),
        unread: c.unread_count.map(|n| Unread::Count(n.get().max(0) as u64)),
        created_at: details.created_at.map(|d| d.utc()),
        last_activity_at: None,
        references: References::default(),
        vendor: raw,
    })
}

fn message(chat_id: &str, m: types::V3ChatMessage, raw: Value) -> Result<Message, String> {
    use enums::V3UserType as U;
    let user = m.user.unwrap_or_default();
    let role = match user.type_ {
        Some(U::Customer) => Role::Buyer,
        Some(U::Seller) => Role::Seller,
        Some(U::Support) => Role::Support,
        Some(U::Courier) => Role::Courier,
        Some(U::Crm | U::NotificationUser) => Role::Marketplace,
        Some(U::Unknown(v)) => Role::Unknown(v),
        None => Role::Unknown("unknown".into()),
    };
    let context = m.context.unwrap_or_default();
    Ok(Message {
        id: m.message_id.ok_or("missing `message_id`")?.to_string(),
        conversation: ConversationRef::new(M, chat_id),
        author: Participant {
            id: user.id.map(|i| i.to_string()),
            name: None,
            role,
        },
        text: m.data.unwrap_or_default().join("\n"),
        subject: None,
        created_at: m.created_at.ok_or("missing `created_at`")?.utc(),
        attachments: Vec::new(),
        read: m.is_read.map(|b| b.get()),
        status: m.moderate_image_status.map(|s| s.to_string()),
        references: References {
            orders: context.order_number.into_iter().collect(),
            offers: context.sku.into_iter().collect(),
            pack: None,
            posting: None,
        },
        vendor: raw,
    })
}
