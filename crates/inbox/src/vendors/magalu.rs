//! Magalu conversations through the facade. Conversations and messages come in the
//! order Magalu returns them; paging follows `meta.links.next`.

use std::num::NonZeroU64;

use futures::stream::BoxStream;
use inbox_magalu::{enums, types, Magalu};
use serde_json::Value;

use crate::model::*;
use crate::paginate::{paginate, Page};
use crate::vendor_error::map;
use crate::{Error, Marketplace};

const M: Marketplace = Marketplace::Magalu;
/// Magalu's `max_limit`.
const PAGE: u64 = 100;

/// The seller-side attendant Magalu requires on every reply (`owner`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MagaluOwner {
    /// Display name, e.g. `Joseph Climber`.
    pub name: String,
    /// Your id for the attendant, e.g. `j.climber`.
    pub external_id: String,
}

/// A Magalu seller account in the facade.
#[derive(Clone, Debug)]
pub struct MagaluAccount {
    client: Magalu,
    owner: Option<MagaluOwner>,
}

impl MagaluAccount {
    /// Wraps a typed client; `owner` signs replies (sending fails without one).
    pub fn new(client: Magalu, owner: Option<MagaluOwner>) -> Self {
        MagaluAccount { client, owner }
    }

    /// The typed client, for operations the facade does not cover.
    pub fn client(&self) -> &Magalu {
        &self.client
    }

    /// Every conversation.
    pub fn conversations(&self) -> BoxStream<'static, Result<Conversation, Error>> {
        let client = self.client.clone();
        paginate(M, 0u64, move |offset| {
            let client = client.clone();
            async move {
                let rv = client
                    .list_conversations()
                    .limit(limit())
                    .offset(offset)
                    .send()
                    .await;
                let page = match rv {
                    Ok(rv) => rv.into_inner(),
                    Err(e) => return Err(map(M, e).await),
                };
                let results = page.results.unwrap_or_default();
                let next = next_offset(page.meta.as_ref(), offset, results.len() as u64);
                Ok(Page::convert(
                    M,
                    "conversation",
                    results,
                    |c| c.id.as_ref().map(|i| i.as_str()),
                    next,
                    conversation,
                ))
            }
        })
    }

    /// Every message of a conversation.
    pub fn messages(&self, conversation_id: &str) -> BoxStream<'static, Result<Message, Error>> {
        let client = self.client.clone();
        let conv = conversation_id.to_string();
        paginate(M, 0u64, move |offset| {
            let (client, conv) = (client.clone(), conv.clone());
            async move {
                let rv = client
                    .list_messages()
                    .conversation_id(&conv)
                    .limit(limit())
                    .offset(offset)
                    .send()
                    .await;
                let page = match rv {
                    Ok(rv) => rv.into_inner(),
                    Err(e) => return Err(map(M, e).await),
                };
                let results = page.results.unwrap_or_default();
                let next = next_offset(page.meta.as_ref(), offset, results.len() as u64);
                Ok(Page::convert(
                    M,
                    "message",
                    results,
                    |m| m.id.as_ref().map(|i| i.as_str()),
                    next,
                    |m, raw| message(&conv, m, raw),
                ))
            }
        })
    }

    /// Replies in a conversation, signed by the account's owner. Magalu has no upload API.
    pub async fn send(
        &self,
        conversation_id: &str,
        text: &str,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sent, Error> {
        if !attachments.is_empty() {
            return Err(Error::Unsupported {
                marketplace: M,
                operation: "sending attachments",
            });
        }
        super::check_text(M, text, usize::MAX)?;
        let owner = self.owner.as_ref().ok_or_else(|| {
            Error::invalid(M, "Magalu requires an owner (attendant name and external id) on every reply; configure one for this account")
        })?;
        let body = types::NewMessage {
            content: text.to_string(),
            external_id: None,
            owner: types::NewMessageOwner {
                name: owner.name.clone(),
                external_id: owner.external_id.clone(),
            },
        };
        match self
            .client
            .send_message()
            .conversation_id(conversation_id)
            .body(body)
            .send()
            .await
        {
            Ok(rv) => {
                let m = rv.into_inner();
                Ok(super::sent(
                    M,
                    conversation_id,
                    m.id.as_ref().map(|i| i.to_string()),
                    &m,
                ))
            }
            Err(e) => Err(map(M, e).await),
        }
    }

    /// Marks a conversation read (`PATCH …/read_by`).
    pub async fn mark_read(&self, conversation_id: &str) -> Result<(), Error> {
        match self
            .client
            .mark_conversation_read()
            .conversation_id(conversation_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(map(M, e).await),
        }
    }
}

fn limit() -> NonZeroU64 {
    NonZeroU64::new(PAGE).expect("non-zero")
}

/// The next `_offset`: from `meta.links.next` when present, else none (the last page).
fn next_offset(meta: Option<&types::Meta>, offset: u64, n: u64) -> Option<u64> {
    let next = meta?.links.as_ref()?.next.as_deref()?;
    let parsed = next
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("_offset="))
        .and_then(|v| v.parse::<u64>().ok());
    Some(parsed.unwrap_or(offset + n))
}

fn user_role(t: Option<&enums::UserType>) -> Role {
    match t {
        Some(enums::UserType::Customer) => Role::Buyer,
        Some(enums::UserType::Seller) => Role::Seller,
        Some(enums::UserType::Unknown(v)) => Role::Unknown(v.clone()),
        None => Role::Unknown("unknown".into()),
    }
}

fn participant(u: types::User) -> Participant {
    Participant {
        id: u
            .external_id
            .map(|i| i.to_string())
            .or(u.ref_key)
            .or(u.id.map(|i| i.to_string())),
        name: u.full_name,
        role: user_role(u.type_.as_ref()),
    }
}

fn conversation(c: types::Conversation, raw: Value) -> Result<Conversation, String> {
    let tags = c.tags.unwrap_or_default();
    let tag = |names: &[&str]| -> Vec<String> {
        tags.iter()
            .filter(|t| t.name.as_deref().is_some_and(|n| names.contains(&n)))
            .filter_map(|t| t.value.clone())
            .collect()
    };
    Ok(Conversation {
        reference: ConversationRef::new(M, c.id.ok_or("missing `id`")?.to_string()),
        other_party: c.from_user.map(participant),
        kind: ConversationKind::BuyerChat,
        status: c.status.map(|s| match s {
            enums::ConversationStatus::Opened => ConversationStatus::Open,
            enums::ConversationStatus::Closed => ConversationStatus::Closed,
            enums::ConversationStatus::Unknown(v) => ConversationStatus::Unknown(v),
        }),
        unread: c
            .unread_to_count
            .map(|n| Unread::Count(n.get().max(0) as u64)),
        created_at: c.created_at.map(|d| d.utc()),
        last_activity_at: c.last_interaction_at.map(|d| d.utc()),
        references: References {
            orders: tag(&["order_code", "orderCode"]),
            offers: tag(&["productId"]),
            pack: None,
            posting: None,
        },
        vendor: raw,
    })
}

fn message(conv: &str, m: types::Message, raw: Value) -> Result<Message, String> {
    let to_id = m
        .to_user
        .as_ref()
        .and_then(|u| u.id.as_ref())
        .map(|i| i.to_string());
    let read = match (&m.read_by, to_id) {
        (Some(by), Some(to)) => Some(by.contains(&to)),
        _ => None,
    };
    Ok(Message {
        id: m.id.ok_or("missing `id`")?.to_string(),
        conversation: ConversationRef::new(M, conv),
        author: m.from_user.map(participant).unwrap_or(Participant {
            id: None,
            name: None,
            role: Role::Unknown("unknown".into()),
        }),
        text: m.content.unwrap_or_default(),
        subject: None,
        created_at: m.when_at.ok_or("missing `when_at`")?.utc(),
        attachments: m
            .attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| match a {
                types::Attachment::String(url) => Attachment {
                    name: url
                        .rsplit('/')
                        .next()
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                    url: Some(url),
                    ..Attachment::default()
                },
                types::Attachment::AttachmentObject(o) => Attachment {
                    name: o.name,
                    mime: o.mime_type,
                    size: o.size.map(|s| s.get().max(0) as u64),
                    url: o.url,
                    id: None,
                },
            })
            .collect(),
        read,
        status: m.moderation.and_then(|mo| mo.status).map(|s| s.to_string()),
        references: References::default(),
        vendor: raw,
    })
}
