//! Allegro Message Center.
//!
//! Listing uses beta.v1 (so post-purchase-issue threads are included). An account that
//! answers 406 or 415 to the beta media type is remembered as public.v1-only and listed
//! with offsets from then on, without asking beta.v1 again. Threads come newest activity
//! first; messages newest first. Pushed to the vendor: page size (≤ 20); on beta.v1 also
//! `read=false` for unread-only and `status`; on public.v1 `after` for messages since a
//! date. A `since` on threads ends the listing at the first older thread.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use inbox_allegro::{beta_v1, public_v1, Allegro};
use inbox_core::{ClientAuth, PersistTokens};
use serde_json::Value;

use crate::adapter::{page_size, Adapter, Listed};
use crate::config::AccountConfig;
use crate::listing::{ConversationQuery, MessageQuery, StatusFilter};
use crate::model::*;
use crate::paginate::{Cursor, Fetched};
use crate::vendor_error::call;
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

/// Whether the account is served beta.v1: not asked yet, yes, or no (public.v1 only).
const BETA_UNKNOWN: u8 = 0;
const BETA_YES: u8 = 1;
const BETA_NO: u8 = 2;

/// An Allegro account's side of the facade.
#[derive(Debug)]
pub(crate) struct AllegroAdapter {
    client: Allegro,
    beta: AtomicU8,
}

impl AllegroAdapter {
    pub(crate) fn from_config(
        config: &AccountConfig,
        persist: Option<Arc<dyn PersistTokens>>,
    ) -> Result<Self, Error> {
        let defaults = super::Defaults {
            production: inbox_allegro::PRODUCTION_URL,
            token_url: inbox_allegro::TOKEN_URL,
            client_auth: ClientAuth::Basic,
            policy: inbox_allegro::policy,
        };
        let w = super::wiring(config, &defaults, persist)?;
        let client = Allegro::with_policy(&w.url, w.http, w.auth, w.policy);
        Ok(AllegroAdapter {
            client,
            beta: AtomicU8::new(BETA_UNKNOWN),
        })
    }

    /// Whether to list with beta.v1 from the start of a listing.
    fn use_beta(&self) -> bool {
        self.beta.load(Ordering::Relaxed) != BETA_NO
    }

    /// Records the answer to a beta.v1 request: `Ok` means served; a 406/415 means this
    /// account is public.v1 only (returns true: fall back).
    fn learn<T, E>(&self, result: &Result<T, progenitor_client::Error<E>>) -> bool {
        match result {
            Ok(_) => {
                self.beta.store(BETA_YES, Ordering::Relaxed);
                false
            }
            Err(e) if matches!(e.status().map(|s| s.as_u16()), Some(406 | 415)) => {
                self.beta.store(BETA_NO, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }
}

fn limit(asked: Option<u32>) -> NonZeroU32 {
    NonZeroU32::new(page_size(asked, PAGE)).unwrap_or(NonZeroU32::MIN)
}

impl Adapter for AllegroAdapter {
    fn marketplace(&self) -> Marketplace {
        M
    }

    /// Allegro's 150 requests/s takes 16 at once.
    fn default_concurrency(&self) -> usize {
        16
    }

    fn sync_walks(
        &self,
        before: &crate::sync::Checkpoint,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::sync::Walk> {
        crate::sync::by_activity(before, now)
    }

    fn sync_summary(&self, c: &Conversation) -> String {
        crate::sync::summary(c, &[crate::sync::vendor_field(c, "/lastMessageDateTime")])
    }

    fn newest_first(&self, _: Listed) -> bool {
        true
    }

    fn conversations_page(
        self: Arc<Self>,
        query: ConversationQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Conversation>, Error>> {
        async move {
            let limit = limit(query.page_size);
            let page_id = match cursor {
                Cursor::Offset(offset) => return v1_threads(&self.client, limit, offset).await,
                Cursor::Token(id) => Some(id),
                Cursor::First if !self.use_beta() => {
                    return v1_threads(&self.client, limit, 0).await
                }
                Cursor::First | Cursor::Missing => None,
            };
            let first = page_id.is_none();
            let mut req = self.client.beta.list_threads_get().limit(limit);
            if let Some(p) = page_id {
                req = req.page_id(p);
            }
            if query.unread_only {
                req = req.read(false);
            }
            if let Some(status) = query.status {
                req = req.status(match status {
                    StatusFilter::Open => beta_v1::enums::ListThreadsGETStatus::Open,
                    StatusFilter::Closed => beta_v1::enums::ListThreadsGETStatus::Closed,
                });
            }
            let observed = inbox_core::observe(req.send()).await;
            if self.learn(&observed.0) && first {
                return v1_threads(&self.client, limit, 0).await;
            }
            let list = call(M, inbox_core::replayed(observed)).await?;
            let threads = list.threads.ok_or_else(|| missing("threads"))?;
            Ok(Fetched::convert(
                M,
                "thread",
                threads,
                |t| t.id.as_ref().map(|i| i.as_str()),
                beta_cursor(list.next_page),
                beta_thread,
            ))
        }
        .boxed()
    }

    fn messages_page(
        self: Arc<Self>,
        thread: String,
        query: MessageQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Message>, Error>> {
        async move {
            let limit = limit(query.page_size);
            let page_id = match cursor {
                Cursor::Offset(offset) => {
                    return v1_messages(&self.client, &thread, &query, limit, offset).await
                }
                Cursor::Token(id) => Some(id),
                Cursor::First if !self.use_beta() => {
                    return v1_messages(&self.client, &thread, &query, limit, 0).await
                }
                Cursor::First | Cursor::Missing => None,
            };
            let first = page_id.is_none();
            let mut req = self
                .client
                .beta
                .list_messages_get()
                .thread_id(&thread)
                .limit(limit);
            if let Some(p) = page_id {
                req = req.page_id(p);
            }
            let observed = inbox_core::observe(req.send()).await;
            if self.learn(&observed.0) && first {
                return v1_messages(&self.client, &thread, &query, limit, 0).await;
            }
            let list = call(M, inbox_core::replayed(observed)).await?;
            let messages = list.messages.ok_or_else(|| missing("messages"))?;
            Ok(Fetched::convert(
                M,
                "message",
                messages,
                |m| m.id.as_ref().map(|i| i.as_str()),
                beta_cursor(list.next_page),
                |m, raw| beta_message(&thread, m, raw),
            ))
        }
        .boxed()
    }

    /// Replies through beta.v1 when the account is served it (post-purchase-issue
    /// threads exist only there), else public.v1. Attachments are declared and uploaded
    /// first (the same endpoints in both versions).
    fn send<'a>(
        &'a self,
        thread_id: &'a str,
        text: &'a str,
        attachments: &'a [OutgoingAttachment],
    ) -> BoxFuture<'a, Result<Sent, Error>> {
        async move {
            validate(text, attachments)?;
            let mut ids = Vec::new();
            for a in attachments {
                ids.push(self.upload(a).await?);
            }
            let id_of = |m: &public_v1::types::Message| m.id.as_ref().map(|i| i.to_string());
            if self.use_beta() {
                let body = beta_v1::types::NewMessageInThread {
                    text: text
                        .try_into()
                        .map_err(|e| Error::invalid(M, format!("{e}")))?,
                    attachments: (!ids.is_empty()).then(|| {
                        ids.iter()
                            .map(|id| beta_v1::types::MessageAttachmentId {
                                id: Some(id.clone()),
                            })
                            .collect()
                    }),
                };
                let request = self
                    .client
                    .beta
                    .new_message_in_thread_post()
                    .thread_id(thread_id)
                    .body(body);
                let observed = inbox_core::observe(request.send()).await;
                if !self.learn(&observed.0) {
                    return super::deliver(M, thread_id, inbox_core::replayed(observed), |m| {
                        m.id.as_ref().map(|id| id.to_string())
                    })
                    .await;
                }
            }
            let body = public_v1::types::NewMessageInThread {
                text: text
                    .try_into()
                    .map_err(|e| Error::invalid(M, format!("{e}")))?,
                attachments: (!ids.is_empty()).then(|| {
                    ids.into_iter()
                        .map(|id| public_v1::types::MessageAttachmentId { id: Some(id) })
                        .collect()
                }),
            };
            let request = self
                .client
                .v1
                .new_message_in_thread_post()
                .thread_id(thread_id)
                .body(body);
            super::deliver(M, thread_id, request.send(), id_of).await
        }
        .boxed()
    }

    /// Opens a thread with a buyer about their order (public.v1, whose answer names the
    /// new thread; beta.v1's does not).
    fn start<'a>(&'a self, new: &'a NewConversation) -> BoxFuture<'a, Result<Sent, Error>> {
        async move {
            let NewConversation::Allegro {
                login,
                order_id,
                text,
            } = new
            else {
                return Err(Error::invalid(
                    M,
                    "an Allegro thread starts from a buyer's login, an order id and a text",
                ));
            };
            validate(text, &[])?;
            for (what, value) in [("login", login), ("order id", order_id)] {
                if value.trim().is_empty() {
                    return Err(Error::invalid(M, format!("the buyer's {what} is empty")));
                }
            }
            let body = public_v1::types::NewMessage {
                attachments: None,
                order: public_v1::types::MessageOrder {
                    id: Some(order_id.as_str().into()),
                },
                recipient: public_v1::types::Recipient {
                    login: login.clone(),
                },
                text: text
                    .as_str()
                    .try_into()
                    .map_err(|e| Error::invalid(M, format!("{e}")))?,
            };
            let m = call(M, self.client.v1.new_message_post().body(body).send()).await?;
            let thread = m
                .thread
                .as_ref()
                .and_then(|t| t.id.as_ref())
                .map(|t| t.to_string())
                .ok_or_else(|| Error::decode(M, "new thread", "the answer names no thread"))?;
            Ok(Sent {
                conversation: ConversationRef::new(M, thread),
                message_id: m.id.as_ref().map(|i| i.to_string()),
                vendor: RawJson::of(&m),
            })
        }
        .boxed()
    }

    /// Downloads an attachment (uploaded within the last six months) by its id.
    fn download<'a>(
        &'a self,
        _thread: &'a str,
        attachment: &'a Attachment,
    ) -> BoxFuture<'a, Result<Download, Error>> {
        async move {
            let id = super::attachment_id(M, attachment)?;
            let request = self.client.v1.download_attachment_get().attachment_id(id);
            super::api_download(M, attachment, request.send()).await
        }
        .boxed()
    }

    /// Marks a thread read, through beta.v1 when the account is served it.
    fn mark_read<'a>(&'a self, thread_id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            if self.use_beta() {
                let body = beta_v1::types::ThreadReadFlagVBeta1 {
                    read: Some(true.into()),
                };
                let request = self
                    .client
                    .beta
                    .change_read_flag_on_thread_put()
                    .thread_id(thread_id)
                    .body(body);
                let observed = inbox_core::observe(request.send()).await;
                if !self.learn(&observed.0) {
                    return call(M, inbox_core::replayed(observed)).await.map(|_| ());
                }
            }
            let request = self
                .client
                .v1
                .change_read_flag_on_thread_put()
                .thread_id(thread_id)
                .body(public_v1::types::ThreadReadFlag { read: true });
            call(M, request.send()).await.map(|_| ())
        }
        .boxed()
    }
}

impl AllegroAdapter {
    /// Declares an attachment, then PUTs its bytes; returns its id.
    async fn upload(&self, a: &OutgoingAttachment) -> Result<inbox_core::FlexId, Error> {
        let size = i64::try_from(a.bytes.len())
            .map_err(|_| Error::invalid(M, format!("{}: too large", a.name)))?;
        let declare = self.client.v1.new_attachment_declaration_post().body(
            public_v1::types::NewAttachmentDeclaration {
                filename: a.name.clone(),
                size,
            },
        );
        let id = call(M, declare.send()).await?.id.ok_or_else(|| {
            Error::decode(
                M,
                "attachment declaration",
                "no attachment id in the answer",
            )
        })?;
        let put = self
            .client
            .v1
            .upload_attachment_put()
            .attachment_id(id.as_str())
            .content_type(a.mime.as_str())
            .body(a.bytes.clone());
        call(M, put.send()).await?;
        Ok(id)
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

fn missing(list: &str) -> Error {
    Error::decode(M, "response", format!("the page has no `{list}` list"))
}

/// The public.v1 cursor after a page of `n` items at `offset`: none on a short page.
fn v1_next(offset: u64, n: usize, limit: NonZeroU32) -> Option<Cursor> {
    let n = u64::try_from(n).ok()?;
    (n >= u64::from(limit.get()))
        .then(|| offset.checked_add(n).map(Cursor::Offset))
        .flatten()
}

async fn v1_threads(
    client: &Allegro,
    limit: NonZeroU32,
    offset: u64,
) -> Result<Fetched<Conversation>, Error> {
    let request = client.v1.list_threads_get().limit(limit).offset(offset);
    let list = call(M, request.send()).await?;
    let threads = list.threads.ok_or_else(|| missing("threads"))?;
    let next = v1_next(offset, threads.len(), limit);
    Ok(Fetched::convert(
        M,
        "thread",
        threads,
        |t| t.id.as_ref().map(|i| i.as_str()),
        next,
        v1_thread,
    ))
}

async fn v1_messages(
    client: &Allegro,
    thread: &str,
    query: &MessageQuery,
    limit: NonZeroU32,
    offset: u64,
) -> Result<Fetched<Message>, Error> {
    let mut request = client
        .v1
        .list_messages_get()
        .thread_id(thread)
        .limit(limit)
        .offset(offset);
    if let Some(since) = query.since {
        // `after` is exclusive; one millisecond earlier keeps a message at `since`.
        request = request.after(since - chrono::Duration::milliseconds(1));
    }
    let list = call(M, request.send()).await?;
    let messages = list.messages.ok_or_else(|| missing("messages"))?;
    let next = v1_next(offset, messages.len(), limit);
    Ok(Fetched::convert(
        M,
        "message",
        messages,
        |m| m.id.as_ref().map(|i| i.as_str()),
        next,
        |m, raw| v1_message(thread, m, raw),
    ))
}

/// The beta.v1 cursor of the next page; `nextPage: null` is the last page.
fn beta_cursor(next: Option<beta_v1::types::NextPageVBeta1>) -> Option<Cursor> {
    next.and_then(|p| p.id)
        .map(|id| Cursor::Token(id.to_string()))
}

fn require<T>(v: Option<T>, field: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("missing `{field}`"))
}

fn v1_thread(t: public_v1::types::Thread, _raw: &RawJson) -> Result<Conversation, String> {
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
        reply_deadline: None,
        vendor: RawJson::default(),
    })
}

fn beta_thread(t: beta_v1::types::ThreadVBeta1, _raw: &RawJson) -> Result<Conversation, String> {
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
        reply_deadline: None,
        vendor: RawJson::default(),
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

/// The author's id, when the vendor sends one (the schema has only the login): read
/// from the element's text, skipping everything else.
fn author_id(raw: &RawJson) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Element {
        author: Option<Author>,
    }
    #[derive(serde::Deserialize)]
    struct Author {
        id: Option<Value>,
    }
    match raw.parse::<Element>().ok()?.author?.id? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Allegro's own system messages come from the login `allegro`: the marketplace, never
/// the buyer, whatever `isInterlocutor` says.
fn is_system(login: Option<&str>) -> bool {
    login.is_some_and(|l| l.eq_ignore_ascii_case("allegro"))
}

fn v1_message(
    thread: &str,
    m: public_v1::types::Message,
    raw: &RawJson,
) -> Result<Message, String> {
    let author = m.author.unwrap_or_default();
    let role = match author.is_interlocutor.map(|b| b.get()) {
        _ if is_system(author.login.as_deref()) => Role::Marketplace,
        Some(true) => Role::Buyer,
        Some(false) => Role::Seller,
        None => Role::Unknown("unknown".into()),
    };
    let relates = m.relates_to.unwrap_or_default();
    Ok(Message {
        id: require(m.id, "id")?.into_string(),
        conversation: ConversationRef::new(
            M,
            m.thread
                .and_then(|t| t.id)
                .map_or_else(|| thread.to_string(), |i| i.to_string()),
        ),
        author: Participant {
            id: author_id(raw),
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
                status: a.status.map(|s| s.to_string()),
            })
            .collect(),
        read: None,
        status: m.status.map(|s| s.to_string()),
        moderation_reason: None,
        kind: m.type_.map(|t| t.to_string()),
        more_attachments: m.has_additional_attachments.map(|b| b.get()),
        references: super::order_and_offer(
            relates.order.and_then(|o| o.id).map(|i| i.to_string()),
            relates.offer.and_then(|o| o.id).map(|i| i.to_string()),
        ),
        vendor: RawJson::default(),
    })
}

fn beta_message(
    thread: &str,
    m: beta_v1::types::MessageVBeta1,
    raw: &RawJson,
) -> Result<Message, String> {
    use beta_v1::enums::MessageAuthorVBeta1Role as R;
    let author = m.author.unwrap_or_default();
    let role = match author.role {
        _ if is_system(author.login.as_deref()) => Role::Marketplace,
        Some(R::Buyer) => Role::Buyer,
        Some(R::Seller) => Role::Seller,
        Some(R::Consultant) => Role::Support,
        Some(R::Allegro) => Role::Marketplace,
        Some(other) => Role::Unknown(other.to_string()),
        None => Role::Unknown("unknown".into()),
    };
    let relates = m.relates_to.unwrap_or_default();
    Ok(Message {
        id: require(m.id, "id")?.into_string(),
        conversation: ConversationRef::new(M, thread),
        author: Participant {
            id: author_id(raw),
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
                status: a.status.map(|s| s.to_string()),
            })
            .collect(),
        read: None,
        status: m.status.map(|s| s.to_string()),
        moderation_reason: None,
        kind: m.type_.map(|t| t.to_string()),
        more_attachments: m.has_additional_attachments.map(|b| b.get()),
        references: super::order_and_offer(
            relates.order.and_then(|o| o.id).map(|i| i.to_string()),
            relates.offer.and_then(|o| o.id).map(|i| i.to_string()),
        ),
        vendor: RawJson::default(),
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
