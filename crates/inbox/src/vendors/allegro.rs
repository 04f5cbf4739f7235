//! Allegro Message Center through the facade.
//!
//! Listing uses beta.v1 (so post-purchase-issue threads are included) and falls back to
//! public.v1 when the account answers 406 or 415 to the beta media type. Threads come
//! newest activity first; messages newest first.

use std::num::NonZeroU32;

use futures::stream::BoxStream;
use inbox_allegro::{beta_v1, public_v1, Allegro};
use serde_json::Value;

use crate::model::*;
use crate::paginate::{paginate, Page};
use crate::vendor_error::map;
use crate::{Error, Marketplace};

const M: Marketplace = Marketplace::Allegro;
/// Allegro's largest page for threads and messages.
const PAGE: u32 = 20;
/// Longest message text Allegro accepts.
pub const MAX_TEXT: usize = 2000;
/// Largest attachment Allegro accepts (5 MiB).
pub const MAX_ATTACHMENT: usize = 5_242_880;
/// Attachment media types Allegro accepts.
pub const ATTACHMENT_TYPES: [&str; 6] = [
    "image/png",
    "image/gif",
    "image/bmp",
    "image/tiff",
    "image/jpeg",
    "application/pdf",
];

/// Where a listing is: beta.v1 `page.id`, or public.v1 offset after a fallback.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Cursor {
    Beta(Option<String>),
    V1(u64),
}

/// An Allegro account in the facade.
#[derive(Clone, Debug)]
pub struct AllegroAccount {
    client: Allegro,
}

fn page_size() -> NonZeroU32 {
    NonZeroU32::new(PAGE).expect("non-zero")
}

/// Whether an error says the account is not served beta.v1.
fn beta_refused<E>(e: &progenitor_client::Error<E>) -> bool {
    matches!(e.status().map(|s| s.as_u16()), Some(406 | 415))
}

impl AllegroAccount {
    /// Wraps a typed client.
    pub fn new(client: Allegro) -> Self {
        AllegroAccount { client }
    }

    /// The typed client, for operations the facade does not cover.
    pub fn client(&self) -> &Allegro {
        &self.client
    }

    /// Every thread, newest activity first.
    pub fn conversations(&self) -> BoxStream<'static, Result<Conversation, Error>> {
        let client = self.client.clone();
        paginate(M, Cursor::Beta(None), move |cursor| {
            let client = client.clone();
            async move {
                match cursor {
                    Cursor::Beta(page_id) => {
                        let first = page_id.is_none();
                        let mut req = client.beta.list_threads_get().limit(page_size());
                        if let Some(p) = page_id {
                            req = req.page_id(p);
                        }
                        match req.send().await {
                            Ok(rv) => Ok(beta_threads(rv.into_inner())),
                            Err(e) if first && beta_refused(&e) => v1_threads(&client, 0).await,
                            Err(e) => Err(map(M, e).await),
                        }
                    }
                    Cursor::V1(offset) => v1_threads(&client, offset).await,
                }
            }
        })
    }

    /// Every message of a thread, newest first.
    pub fn messages(&self, thread_id: &str) -> BoxStream<'static, Result<Message, Error>> {
        let client = self.client.clone();
        let thread = thread_id.to_string();
        paginate(M, Cursor::Beta(None), move |cursor| {
            let client = client.clone();
            let thread = thread.clone();
            async move {
                match cursor {
                    Cursor::Beta(page_id) => {
                        let first = page_id.is_none();
                        let mut req = client
                            .beta
                            .list_messages_get()
                            .thread_id(&thread)
                            .limit(page_size());
                        if let Some(p) = page_id {
                            req = req.page_id(p);
                        }
                        match req.send().await {
                            Ok(rv) => Ok(beta_messages(&thread, rv.into_inner())),
                            Err(e) if first && beta_refused(&e) => {
                                v1_messages(&client, &thread, 0).await
                            }
                            Err(e) => Err(map(M, e).await),
                        }
                    }
                    Cursor::V1(offset) => v1_messages(&client, &thread, offset).await,
                }
            }
        })
    }

    /// Replies in a thread, uploading attachments first (declare, then PUT the bytes).
    pub async fn send(
        &self,
        thread_id: &str,
        text: &str,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sent, Error> {
        validate(text, attachments)?;
        let mut ids = Vec::new();
        for a in attachments {
            let declared = self
                .client
                .v1
                .new_attachment_declaration_post()
                .body(public_v1::types::NewAttachmentDeclaration {
                    filename: a.name.clone(),
                    size: a.bytes.len() as i64,
                })
                .send()
                .await;
            let declared = match declared {
                Ok(rv) => rv.into_inner(),
                Err(e) => return Err(map(M, e).await),
            };
            let id = declared.id.ok_or_else(|| Error::Decode {
                marketplace: M,
                what: "attachment declaration",
                error: "no attachment id in the answer".into(),
                snippet: String::new(),
                raw: None,
            })?;
            let uploaded = self
                .client
                .v1
                .upload_attachment_put()
                .attachment_id(id.as_str())
                .content_type(a.mime.as_str())
                .body(a.bytes.clone())
                .send()
                .await;
            if let Err(e) = uploaded {
                return Err(map(M, e).await);
            }
            ids.push(public_v1::types::MessageAttachmentId { id: Some(id) });
        }
        let body = public_v1::types::NewMessageInThread {
            text: text
                .try_into()
                .map_err(|e| Error::invalid(M, format!("{e}")))?,
            attachments: (!ids.is_empty()).then_some(ids),
        };
        match self
            .client
            .v1
            .new_message_in_thread_post()
            .thread_id(thread_id)
            .body(body)
            .send()
            .await
        {
            Ok(rv) => {
                let m = rv.into_inner();
                Ok(super::sent(
                    M,
                    thread_id,
                    m.id.as_ref().map(|id| id.to_string()),
                    &m,
                ))
            }
            Err(e) => Err(map(M, e).await),
        }
    }

    /// Marks a thread read.
    pub async fn mark_read(&self, thread_id: &str) -> Result<(), Error> {
        let body = public_v1::types::ThreadReadFlag { read: true };
        match self
            .client
            .v1
            .change_read_flag_on_thread_put()
            .thread_id(thread_id)
            .body(body)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(map(M, e).await),
        }
    }
}

/// Allegro's rules for an outgoing message, checked before any request.
pub(crate) fn validate(text: &str, attachments: &[OutgoingAttachment]) -> Result<(), Error> {
    super::check_text(M, text, MAX_TEXT)?;
    for a in attachments {
        if !ATTACHMENT_TYPES.contains(&a.mime.as_str()) {
            return Err(Error::invalid(
                M,
                format!(
                    "{}: Allegro accepts only {} attachments, not {}",
                    a.name,
                    ATTACHMENT_TYPES.join(", "),
                    a.mime
                ),
            ));
        }
        if a.bytes.len() > MAX_ATTACHMENT {
            return Err(Error::invalid(
                M,
                format!(
                    "{}: {} bytes; Allegro accepts at most {MAX_ATTACHMENT}",
                    a.name,
                    a.bytes.len()
                ),
            ));
        }
    }
    Ok(())
}

async fn v1_threads(client: &Allegro, offset: u64) -> Result<Page<Conversation, Cursor>, Error> {
    match client
        .v1
        .list_threads_get()
        .limit(page_size())
        .offset(offset)
        .send()
        .await
    {
        Ok(rv) => {
            let list = rv.into_inner();
            let threads = list.threads.unwrap_or_default();
            let n = threads.len() as u64;
            Ok(Page::convert(
                M,
                "thread",
                threads,
                |t| t.id.as_ref().map(|i| i.as_str()),
                (n >= PAGE as u64).then_some(Cursor::V1(offset + n)),
                v1_thread,
            ))
        }
        Err(e) => Err(map(M, e).await),
    }
}

async fn v1_messages(
    client: &Allegro,
    thread: &str,
    offset: u64,
) -> Result<Page<Message, Cursor>, Error> {
    match client
        .v1
        .list_messages_get()
        .thread_id(thread)
        .limit(page_size())
        .offset(offset)
        .send()
        .await
    {
        Ok(rv) => {
            let list = rv.into_inner();
            let messages = list.messages.unwrap_or_default();
            let n = messages.len() as u64;
            Ok(Page::convert(
                M,
                "message",
                messages,
                |m| m.id.as_ref().map(|i| i.as_str()),
                (n >= PAGE as u64).then_some(Cursor::V1(offset + n)),
                |m, raw| v1_message(thread, m, raw),
            ))
        }
        Err(e) => Err(map(M, e).await),
    }
}

/// The beta.v1 cursor of the next page; `nextPage: null` is the last page.
fn beta_cursor(next: Option<beta_v1::types::NextPageVBeta1>) -> Option<Cursor> {
    next.and_then(|p| p.id)
        .map(|id| Cursor::Beta(Some(id.to_string())))
}

fn beta_threads(list: beta_v1::types::ThreadsListVBeta1) -> Page<Conversation, Cursor> {
    let threads = list.threads.unwrap_or_default();
    let next = beta_cursor(list.next_page);
    Page::convert(
        M,
        "thread",
        threads,
        |t| t.id.as_ref().map(|i| i.as_str()),
        next,
        beta_thread,
    )
}

fn beta_messages(thread: &str, list: beta_v1::types::MessagesListVBeta1) -> Page<Message, Cursor> {
    let messages = list.messages.unwrap_or_default();
    let next = beta_cursor(list.next_page);
    Page::convert(
        M,
        "message",
        messages,
        |m| m.id.as_ref().map(|i| i.as_str()),
        next,
        |m, raw| beta_message(thread, m, raw),
    )
}

fn require<T>(v: Option<T>, field: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("missing `{field}`"))
}

fn v1_thread(t: public_v1::types::Thread, raw: Value) -> Result<Conversation, String> {
    Ok(Conversation {
        reference: ConversationRef::new(M, require(t.id, "id")?.to_string()),
        other_party: t.interlocutor.map(|i| Participant {
            id: None,
            name: i.login,
            role: Role::Buyer,
        }),
        kind: ConversationKind::BuyerChat,
        status: None,
        unread: t.read.map(|r| Unread::Flag(!r.get())),
        created_at: None,
        last_activity_at: t.last_message_date_time.map(|d| d.utc()),
        references: References::default(),
        vendor: raw,
    })
}

fn beta_thread(t: beta_v1::types::ThreadVBeta1, raw: Value) -> Result<Conversation, String> {
    use beta_v1::enums::{
        ThreadParticipantVBeta1Role as PRole, ThreadVBeta1Status as S, ThreadVBeta1Type as K,
    };
    let participants = t.participants.unwrap_or_default();
    let other = participants
        .iter()
        .find(|p| p.role == Some(PRole::Buyer))
        .or_else(|| participants.iter().find(|p| p.role != Some(PRole::Seller)))
        .map(|p| Participant {
            id: None,
            name: p.login.clone(),
            role: p.role.as_ref().map_or(Role::Buyer, participant_role),
        });
    let orders = t.orders.unwrap_or_default();
    Ok(Conversation {
        reference: ConversationRef::new(M, require(t.id, "id")?.to_string()),
        other_party: other,
        kind: match t.type_ {
            Some(K::PostPurchaseIssue) => ConversationKind::PostPurchaseIssue,
            Some(K::Common) | None => ConversationKind::BuyerChat,
            Some(K::Unknown(v)) => ConversationKind::Unknown(v),
        },
        status: t.status.map(|s| match s {
            S::Open => ConversationStatus::Open,
            S::Closed => ConversationStatus::Closed,
            S::Unknown(v) => ConversationStatus::Unknown(v),
        }),
        unread: t.read.map(|r| Unread::Flag(!r.get())),
        created_at: t.created_at.map(|d| d.utc()),
        last_activity_at: t.last_message_date_time.map(|d| d.utc()),
        references: References {
            orders: orders
                .iter()
                .filter_map(|o| o.id.as_ref().map(|i| i.to_string()))
                .collect(),
            offers: orders
                .iter()
                .flat_map(|o| o.offers.iter().flatten())
                .filter_map(|o| o.id.as_ref().map(|i| i.to_string()))
                .collect(),
            pack: None,
            posting: None,
        },
        vendor: raw,
    })
}

fn participant_role(r: &beta_v1::enums::ThreadParticipantVBeta1Role) -> Role {
    use beta_v1::enums::ThreadParticipantVBeta1Role as R;
    match r {
        R::Buyer => Role::Buyer,
        R::Seller => Role::Seller,
        other => Role::Unknown(other.to_string()),
    }
}

fn v1_message(thread: &str, m: public_v1::types::Message, raw: Value) -> Result<Message, String> {
    let author = m.author.unwrap_or_default();
    let role = match author.is_interlocutor.map(|b| b.get()) {
        Some(true) => Role::Buyer,
        Some(false) => Role::Seller,
        None => Role::Unknown("unknown".into()),
    };
    let relates = m.relates_to.unwrap_or_default();
    Ok(Message {
        id: require(m.id, "id")?.to_string(),
        conversation: ConversationRef::new(
            M,
            m.thread
                .and_then(|t| t.id)
                .map_or_else(|| thread.to_string(), |i| i.to_string()),
        ),
        author: Participant {
            id: None,
            name: author.login,
            role,
        },
        text: m.text.unwrap_or_default(),
        subject: m.subject,
        created_at: require(m.created_at, "createdAt")?.utc(),
        attachments: m
            .attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| Attachment {
                name: a.file_name,
                mime: a.mime_type,
                size: None,
                id: a.url.as_deref().and_then(attachment_id),
                url: a.url,
            })
            .collect(),
        read: None,
        status: m.status.map(|s| s.to_string()),
        references: super::order_and_offer(
            relates.order.and_then(|o| o.id).map(|i| i.to_string()),
            relates.offer.and_then(|o| o.id).map(|i| i.to_string()),
        ),
        vendor: raw,
    })
}

fn beta_message(
    thread: &str,
    m: beta_v1::types::MessageVBeta1,
    raw: Value,
) -> Result<Message, String> {
    use beta_v1::enums::MessageAuthorVBeta1Role as R;
    let author = m.author.unwrap_or_default();
    let role = match author.role {
        Some(R::Buyer) => Role::Buyer,
        Some(R::Seller) => Role::Seller,
        Some(R::Consultant) => Role::Support,
        Some(R::Allegro) => Role::Marketplace,
        Some(other) => Role::Unknown(other.to_string()),
        None => Role::Unknown("unknown".into()),
    };
    let relates = m.relates_to.unwrap_or_default();
    Ok(Message {
        id: require(m.id, "id")?.to_string(),
        conversation: ConversationRef::new(M, thread),
        author: Participant {
            id: None,
            name: author.login,
            role,
        },
        text: m.text.unwrap_or_default(),
        subject: m.subject,
        created_at: require(m.created_at, "createdAt")?.utc(),
        attachments: m
            .attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| Attachment {
                name: a.file_name,
                mime: a.mime_type,
                size: None,
                url: a.url,
                id: a.id.map(|i| i.to_string()),
            })
            .collect(),
        read: None,
        status: m.status.map(|s| s.to_string()),
        references: super::order_and_offer(
            relates.order.and_then(|o| o.id).map(|i| i.to_string()),
            relates.offer.and_then(|o| o.id).map(|i| i.to_string()),
        ),
        vendor: raw,
    })
}

/// The attachment id at the end of an Allegro attachment URL.
fn attachment_id(url: &str) -> Option<String> {
    url.trim()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
