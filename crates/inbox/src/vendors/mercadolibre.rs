//! Mercado Libre post-sale messages through the facade.
//!
//! Mercado Libre has no conversation listing: [`MercadoLibreAccount::conversations`]
//! yields the packs with unread messages, and any pack opens by reference. Reading
//! messages always sends `mark_as_read=false`, so listing never changes read state;
//! [`MercadoLibreAccount::mark_read`] is the explicit way to mark a pack read.
//! Messages come in the order Mercado Libre returns them (newest first).

use std::num::NonZeroU64;

use futures::stream::BoxStream;
use inbox_mercadolibre::{enums, types, MercadoLibre};
use serde_json::Value;

use crate::model::*;
use crate::paginate::{paginate, Page};
use crate::vendor_error::map;
use crate::{Error, Marketplace};

const M: Marketplace = Marketplace::MercadoLibre;
/// Page size for pack messages (Mercado Libre's documented default; it publishes no maximum).
const PAGE: u64 = 10;
/// Longest message text a seller may send.
pub const MAX_TEXT: usize = 350;
/// Largest attachment (25 MB).
pub const MAX_ATTACHMENT: usize = 25 * 1024 * 1024;
/// Attachment media types Mercado Libre accepts.
pub const ATTACHMENT_TYPES: [&str; 5] = [
    "image/jpeg",
    "image/jpg",
    "image/png",
    "application/pdf",
    "text/plain",
];
/// The sites' messaging agents that replace the buyer on migrated threads.
pub const MESSAGING_AGENTS: [&str; 6] = [
    "3020819166",
    "3037204123",
    "3037204279",
    "3037674934",
    "3037675074",
    "3037204685",
];

/// A Mercado Libre seller account in the facade.
#[derive(Clone, Debug)]
pub struct MercadoLibreAccount {
    client: MercadoLibre,
    seller_id: String,
}

impl MercadoLibreAccount {
    /// Wraps a typed client for the seller `seller_id`.
    pub fn new(client: MercadoLibre, seller_id: impl Into<String>) -> Self {
        MercadoLibreAccount {
            client,
            seller_id: seller_id.into(),
        }
    }

    /// The typed client, for operations the facade does not cover.
    pub fn client(&self) -> &MercadoLibre {
        &self.client
    }

    /// The seller's user id.
    pub fn seller_id(&self) -> &str {
        &self.seller_id
    }

    /// The packs with unread messages (Mercado Libre lists at most 500 per call).
    pub fn conversations(&self) -> BoxStream<'static, Result<Conversation, Error>> {
        let client = self.client.clone();
        paginate(M, (), move |()| {
            let client = client.clone();
            async move {
                let rv = client
                    .get_unread_messages()
                    .role(enums::GetUnreadMessagesRole::Seller)
                    .tag(enums::Tag::PostSale)
                    .send()
                    .await;
                let unread = match rv {
                    Ok(rv) => rv.into_inner(),
                    Err(e) => return Err(map(M, e).await),
                };
                let results = unread.results.unwrap_or_default();
                Ok(Page::convert(
                    M,
                    "unread pack",
                    results,
                    |r| r.resource.as_deref(),
                    None,
                    unread_pack,
                ))
            }
        })
    }

    /// Every message of a pack, without marking anything read.
    pub fn messages(&self, pack_id: &str) -> BoxStream<'static, Result<Message, Error>> {
        let client = self.client.clone();
        let (pack, seller) = (pack_id.to_string(), self.seller_id.clone());
        paginate(M, 0u64, move |offset| {
            let (client, pack, seller) = (client.clone(), pack.clone(), seller.clone());
            async move {
                let page = fetch(&client, &pack, &seller, offset, false).await?;
                let messages = page.messages.unwrap_or_default();
                let n = messages.len() as u64;
                let total = page
                    .paging
                    .and_then(|p| p.total)
                    .map(|t| t.get().max(0) as u64);
                let more = match total {
                    Some(total) => offset + n < total,
                    None => n >= PAGE,
                };
                Ok(Page::convert(
                    M,
                    "message",
                    messages,
                    |m| m.id.as_ref().map(|i| i.as_str()),
                    more.then_some(offset + n),
                    |m, raw| message(&pack, &seller, m, raw),
                ))
            }
        })
    }

    /// Sends a message in a pack: to the buyer, or to the site's messaging agent on
    /// migrated threads (derived from the thread). Attachments are uploaded first.
    pub async fn send(
        &self,
        pack_id: &str,
        text: &str,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sent, Error> {
        validate(text, attachments)?;
        let page = fetch(&self.client, pack_id, &self.seller_id, 0, false).await?;
        let messages: Vec<types::Message> = page
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.into_result().ok())
            .collect();
        let recipient = recipient(&messages, &self.seller_id).ok_or_else(|| {
            Error::invalid(M, format!("pack {pack_id} has no message to derive the recipient from; Mercado Libre sellers reply to buyers"))
        })?;
        let mut ids = Vec::new();
        if !attachments.is_empty() {
            let site = messages
                .iter()
                .find_map(|m| m.site_id.as_ref().map(|s| s.to_string()))
                .ok_or_else(|| {
                    Error::invalid(
                        M,
                        "cannot tell the pack's site (MLA, MLB, …) needed to upload attachments",
                    )
                })?;
            for a in attachments {
                match self
                    .client
                    .upload_attachment(&site, &a.name, &a.mime, a.bytes.clone())
                    .await
                {
                    Ok(rv) => ids.extend(rv.into_inner().id.map(|i| i.to_string())),
                    Err(e) => return Err(map(M, e).await),
                }
            }
        }
        let body = types::NewMessage {
            from: types::NewMessageUser {
                user_id: self.seller_id.clone(),
            },
            to: types::NewMessageUser { user_id: recipient },
            text: text
                .try_into()
                .map_err(|e| Error::invalid(M, format!("{e}")))?,
            attachments: ids,
        };
        let rv = self
            .client
            .send_pack_message()
            .pack_id(pack_id)
            .seller_id(&self.seller_id)
            .tag(enums::Tag::PostSale)
            .body(body)
            .send()
            .await;
        match rv {
            Ok(rv) => {
                let m = rv.into_inner();
                Ok(super::sent(
                    M,
                    pack_id,
                    m.id.as_ref().map(|i| i.to_string()),
                    &m,
                ))
            }
            Err(e) => Err(map(M, e).await),
        }
    }

    /// Marks a pack's messages read (a read without `mark_as_read=false`).
    pub async fn mark_read(&self, pack_id: &str) -> Result<(), Error> {
        fetch(&self.client, pack_id, &self.seller_id, 0, true)
            .await
            .map(|_| ())
    }
}

async fn fetch(
    client: &MercadoLibre,
    pack: &str,
    seller: &str,
    offset: u64,
    mark_as_read: bool,
) -> Result<types::PackMessages, Error> {
    let rv = client
        .get_pack_messages()
        .pack_id(pack)
        .seller_id(seller)
        .tag(enums::Tag::PostSale)
        .limit(NonZeroU64::new(PAGE).expect("non-zero"))
        .offset(offset)
        .mark_as_read(mark_as_read)
        .send()
        .await;
    match rv {
        Ok(rv) => Ok(rv.into_inner()),
        Err(e) => Err(map(M, e).await),
    }
}

/// Mercado Libre's rules for an outgoing message, checked before any request.
pub(crate) fn validate(text: &str, attachments: &[OutgoingAttachment]) -> Result<(), Error> {
    super::check_text(M, text, MAX_TEXT)?;
    if let Some(c) = text.chars().find(|c| (*c as u32) > 0xFF) {
        return Err(Error::invalid(
            M,
            format!(
                "{c:?} is not in ISO-8859-1 (Latin-1), the only characters Mercado Libre accepts"
            ),
        ));
    }
    if attachments.len() > 25 {
        return Err(Error::invalid(
            M,
            "Mercado Libre accepts at most 25 attachments per message",
        ));
    }
    for a in attachments {
        if !ATTACHMENT_TYPES.contains(&a.mime.as_str()) {
            return Err(Error::invalid(
                M,
                format!(
                    "{}: Mercado Libre accepts JPG, PNG, PDF and TXT attachments, not {}",
                    a.name, a.mime
                ),
            ));
        }
        if a.bytes.len() > MAX_ATTACHMENT {
            return Err(Error::invalid(M, format!("{}: larger than 25 MB", a.name)));
        }
        if a.name.contains(['/', '\\']) || a.name.chars().count() > 200 {
            return Err(Error::invalid(
                M,
                format!(
                    "{}: file names may not contain / or \\ nor exceed 200 characters",
                    a.name
                ),
            ));
        }
    }
    Ok(())
}

/// Who to write to: the messaging agent if the thread has one, else the other user.
fn recipient(messages: &[types::Message], seller: &str) -> Option<String> {
    let users = messages
        .iter()
        .flat_map(|m| [m.from.as_ref(), m.to.as_ref()])
        .flatten()
        .filter_map(|u| u.user_id.as_ref().map(|i| i.to_string()));
    let users: Vec<String> = users.collect();
    users
        .iter()
        .find(|u| MESSAGING_AGENTS.contains(&u.as_str()))
        .or_else(|| users.iter().find(|u| u.as_str() != seller))
        .cloned()
}

fn unread_pack(r: types::UnreadResource, raw: Value) -> Result<Conversation, String> {
    let resource = r.resource.unwrap_or_default();
    let parts: Vec<&str> = resource.trim_matches('/').split('/').collect();
    let pack = match parts.as_slice() {
        ["packs", pack, "sellers", _, ..] | ["messages", "packs", pack, "sellers", _, ..] => {
            pack.to_string()
        }
        _ => {
            return Err(format!(
                "unread resource {resource:?} is not /packs/{{pack}}/sellers/{{seller}}"
            ))
        }
    };
    Ok(Conversation {
        reference: ConversationRef::new(M, pack.clone()),
        other_party: None,
        kind: ConversationKind::BuyerChat,
        status: None,
        unread: Some(Unread::Count(r.count.map_or(0, |c| c.get().max(0) as u64))),
        created_at: None,
        last_activity_at: None,
        references: References {
            pack: Some(pack),
            ..References::default()
        },
        vendor: raw,
    })
}

fn message(pack: &str, seller: &str, m: types::Message, raw: Value) -> Result<Message, String> {
    let from = m.from.unwrap_or_default();
    let from_id = from.user_id.as_ref().map(|i| i.to_string());
    let role = match from_id.as_deref() {
        Some(id) if id == seller => Role::Seller,
        Some(id) if MESSAGING_AGENTS.contains(&id) => Role::Marketplace,
        Some(_) => Role::Buyer,
        None => Role::Unknown("unknown".into()),
    };
    let dates = m.message_date.unwrap_or_default();
    let created = dates
        .created
        .or(dates.received)
        .or(dates.available)
        .ok_or("missing `message_date.created`")?;
    Ok(Message {
        id: m.id.ok_or("missing `id`")?.to_string(),
        conversation: ConversationRef::new(M, pack),
        author: Participant {
            id: from_id,
            name: from.name,
            role,
        },
        text: m.text.unwrap_or_default(),
        subject: m.subject,
        created_at: created.utc(),
        attachments: m
            .message_attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| Attachment {
                name: a.original_filename.or(a.filename.clone()),
                mime: a.type_,
                size: a.size.map(|s| s.get().max(0) as u64),
                url: None,
                id: a.filename,
            })
            .collect(),
        read: Some(dates.read.is_some()),
        status: m
            .message_moderation
            .and_then(|mm| mm.status)
            .map(|s| s.to_string())
            .or(m.status.map(|s| s.to_string())),
        references: References {
            pack: Some(pack.to_string()),
            ..References::default()
        },
        vendor: raw,
    })
}
