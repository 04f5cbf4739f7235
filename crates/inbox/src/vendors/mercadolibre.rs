//! Mercado Libre post-sale messages.
//!
//! Mercado Libre has no conversation listing: the account's conversations are the packs
//! with unread messages (`/messages/unread`, at most 500), and any pack opens by
//! reference. Reading messages always sends `mark_as_read=false`, so listing never
//! changes read state; mark-read is the explicit way to mark a pack read. Messages come
//! newest first, offset-paged by `paging.total`; the page size is pushed to the vendor.

use std::num::NonZeroU64;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use inbox_core::{ClientAuth, PersistTokens};
use inbox_mercadolibre::{enums, types, MercadoLibre};

use crate::adapter::{page_size, Adapter, Listed, PageFn};
use crate::config::AccountConfig;
use crate::listing::{ConversationQuery, MessageQuery};
use crate::model::*;
use crate::paginate::{Cursor, Fetched};
use crate::vendor_error::call;
use crate::{Error, Marketplace};

const M: Marketplace = Marketplace::MercadoLibre;
/// Page size for pack messages (Mercado Libre's documented default; it publishes no maximum).
const PAGE: u32 = 10;
/// The orders search's largest page.
const ORDERS_PAGE: u32 = 50;
/// The most packs `/messages/unread` lists.
const UNREAD_CAP: usize = 500;

/// Unread counts by pack, and whether every unread pack is in them.
struct Unreads {
    counts: std::collections::HashMap<String, u64>,
    complete: bool,
}

/// The unread counts of one conversations listing, read by its first page.
type UnreadMemo = Arc<tokio::sync::OnceCell<Unreads>>;

/// A `paging.total` larger than this is not believed (no seller has a billion orders,
/// no pack a billion messages): the listing goes on by page size instead.
const MAX_TOTAL: u64 = 1_000_000_000;

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

/// A Mercado Libre seller account's side of the facade.
#[derive(Debug)]
pub(crate) struct MercadoLibreAdapter {
    client: MercadoLibre,
    seller_id: String,
}

impl MercadoLibreAdapter {
    pub(crate) fn from_config(
        config: &AccountConfig,
        persist: Option<Arc<dyn PersistTokens>>,
    ) -> Result<Self, Error> {
        let seller_id = config.seller_id.clone().ok_or_else(|| {
            Error::config(format!(
                "account {}: Mercado Libre needs the seller's user id (`seller_id`)",
                config.name
            ))
        })?;
        let defaults = super::Defaults {
            production: inbox_mercadolibre::PRODUCTION_URL,
            token_url: inbox_mercadolibre::TOKEN_URL,
            client_auth: ClientAuth::Form,
            policy: inbox_mercadolibre::policy,
        };
        let w = super::wiring(config, &defaults, persist)?;
        let client = MercadoLibre::with_policy(&w.url, w.http, w.auth, w.policy);
        Ok(MercadoLibreAdapter { client, seller_id })
    }

    /// One page of a pack's messages. Unless `mark_as_read`, the request says
    /// `mark_as_read=false`, so reading changes nothing; to mark read, the parameter is
    /// left out, as documented (no undocumented `true` is sent).
    async fn fetch(
        &self,
        pack: &str,
        limit: u32,
        offset: u64,
        mark_as_read: bool,
    ) -> Result<types::PackMessages, Error> {
        let mut request = self
            .client
            .get_pack_messages()
            .pack_id(pack)
            .seller_id(&self.seller_id)
            .tag(enums::Tag::PostSale)
            .limit(NonZeroU64::new(u64::from(limit)).unwrap_or(NonZeroU64::MIN))
            .offset(offset);
        if !mark_as_read {
            request = request.mark_as_read(false);
        }
        call(M, request.send()).await
    }

    /// The packs with unread messages (at most 500), each with its state when asked.
    async fn unread_packs(
        self: Arc<Self>,
        with_state: bool,
    ) -> Result<Fetched<Conversation>, Error> {
        let mut page = self.unread_page().await?;
        if with_state {
            self.with_states(&mut page.items).await;
        }
        Ok(page)
    }

    /// `/messages/unread` as a page of packs: a malformed entry, or one that names no
    /// pack, is an error item with its raw JSON.
    async fn unread_page(&self) -> Result<Fetched<Conversation>, Error> {
        let results = self.unread_resources().await?;
        Ok(Fetched::convert(
            M,
            "unread pack",
            results,
            |r| r.resource.as_deref(),
            None,
            unread_pack,
        ))
    }

    /// Fills the state (blocked, and why) of the listed packs with unread messages, read
    /// from each one's first message page — the packs a seller acts on; the listings say
    /// nothing of it. A few at a time, within the account's limits. A pack whose state
    /// cannot be read becomes that error (never a pack shown without its block).
    async fn with_states(self: &Arc<Self>, items: &mut [Result<Conversation, Error>]) {
        let mut asked = std::collections::HashSet::new();
        let packs: Vec<Option<String>> = items
            .iter()
            .map(|c| {
                let c = c.as_ref().ok()?;
                let unread = c.unread.is_some_and(|u| u.is_unread());
                // Several orders of one pack: its state is read once.
                (unread && asked.insert(c.reference.id.clone())).then(|| c.reference.id.clone())
            })
            .collect();
        let statuses: Vec<Option<Result<Option<ConversationStatus>, Error>>> =
            futures::stream::iter(packs)
                .map(|pack| {
                    let adapter = self.clone();
                    async move { Some(adapter.status(pack?.as_str()).await) }
                })
                .buffered(4)
                .collect()
                .await;
        for (item, status) in items.iter_mut().zip(statuses) {
            match status {
                Some(Ok(Some(status))) => {
                    if let Ok(c) = item {
                        c.status = Some(status);
                    }
                }
                Some(Err(e)) => *item = Err(e),
                Some(Ok(None)) | None => {}
            }
        }
    }

    async fn unread_resources(
        &self,
    ) -> Result<Vec<inbox_core::Lenient<types::UnreadResource>>, Error> {
        let request = self
            .client
            .get_unread_messages()
            .role(enums::GetUnreadMessagesRole::Seller)
            .tag(enums::Tag::PostSale);
        call(M, request.send())
            .await?
            .results
            .ok_or_else(|| Error::decode(M, "response", "the unread answer has no `results` list"))
    }

    /// Unread messages per pack, read once per listing into `memo`, with the entries
    /// that could not be read when this call was the one that read them. Mercado Libre
    /// lists at most [`UNREAD_CAP`] packs: when the list is that long, a pack missing
    /// from it is unknown rather than read.
    async fn unread_counts<'m>(
        &self,
        memo: &'m UnreadMemo,
    ) -> Result<(&'m Unreads, Vec<Error>), Error> {
        let mut malformed = Vec::new();
        let unreads = memo
            .get_or_try_init(|| async {
                let page = self.unread_page().await?;
                let complete = page.items.len() < UNREAD_CAP;
                let mut counts = std::collections::HashMap::new();
                for item in page.items {
                    match item {
                        Ok(c) => {
                            let n = c.unread.map_or(0, |u| match u {
                                Unread::Count(n) => n,
                                Unread::Flag(unread) => u64::from(unread),
                            });
                            counts.insert(c.reference.id, n);
                        }
                        Err(e) => malformed.push(e),
                    }
                }
                Ok::<_, Error>(Unreads { counts, complete })
            })
            .await?;
        Ok((unreads, malformed))
    }

    /// A pack's state, read from its first message page (one request, read state kept).
    async fn status(&self, pack: &str) -> Result<Option<ConversationStatus>, Error> {
        let page = self.fetch(pack, 1, 0, false).await?;
        Ok(page.conversation_status.as_ref().and_then(status_of))
    }

    /// One page of the seller's orders as conversations, unread counts from `memo`.
    async fn orders_page(
        self: Arc<Self>,
        query: ConversationQuery,
        cursor: Cursor,
        memo: UnreadMemo,
    ) -> Result<Fetched<Conversation>, Error> {
        if query.unread_only {
            return self.unread_packs(query.with_state).await;
        }
        let offset = cursor.offset();
        let limit = page_size(query.page_size, ORDERS_PAGE);
        let request = self
            .client
            .search_orders()
            .seller(&self.seller_id)
            .offset(offset)
            .limit(NonZeroU64::new(u64::from(limit)).unwrap_or(NonZeroU64::MIN))
            .sort(enums::SearchOrdersSort::DateDesc);
        let page = call(M, request.send()).await?;
        let orders = page
            .results
            .ok_or_else(|| Error::decode(M, "response", "the orders page has no `results` list"))?;
        let (next, total) = offset_after(offset, orders.len(), limit, page.paging);
        let (unread, malformed) = self.unread_counts(&memo).await?;
        let mut fetched = Fetched::convert(
            M,
            "order",
            orders,
            |o| o.pack_id.as_ref().or(o.id.as_ref()).map(|i| i.as_str()),
            next,
            |o, raw| order_conversation(o, raw, unread),
        )
        .with_total(total);
        fetched.repeats_expected = true;
        if query.with_state {
            self.with_states(&mut fetched.items).await;
        }
        // The unread entries that could not be read are reported once, with the page
        // that read them (after its items, whose ids line up with `fetched.ids`).
        fetched.items.extend(malformed.into_iter().map(Err));
        Ok(fetched)
    }
}

impl Adapter for MercadoLibreAdapter {
    fn marketplace(&self) -> Marketplace {
        M
    }

    /// Mercado Libre's 500 a minute takes 4.
    fn default_concurrency(&self) -> usize {
        4
    }

    fn sync_walks(
        &self,
        before: &crate::sync::Checkpoint,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::sync::Walk> {
        crate::sync::by_unread(before, now, true, true)
    }

    fn sync_summary(&self, c: &Conversation) -> String {
        crate::sync::summary(c, &[])
    }

    fn newest_first(&self, listed: Listed) -> bool {
        listed == Listed::Messages
    }

    /// Every conversation: the seller's orders, newest first, each naming its pack (or
    /// itself when it has none); several orders of one pack are one conversation. Unread
    /// counts come from `/messages/unread` with each page. With `unread_only`, the unread
    /// packs alone (one request). With `with_state`, each unread pack's state (blocked,
    /// and why), one request each.
    fn conversations_page(
        self: Arc<Self>,
        query: ConversationQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Conversation>, Error>> {
        self.orders_page(query, cursor, UnreadMemo::default())
            .boxed()
    }

    /// Pages of one listing share its unread counts: `/messages/unread` is read once.
    fn conversations_listing(self: Arc<Self>, query: ConversationQuery) -> PageFn<Conversation> {
        let memo = UnreadMemo::default();
        Box::new(move |cursor| {
            self.clone()
                .orders_page(query.clone(), cursor, memo.clone())
                .boxed()
        })
    }

    fn messages_page(
        self: Arc<Self>,
        pack: String,
        query: MessageQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Message>, Error>> {
        async move {
            let offset = cursor.offset();
            let limit = page_size(query.page_size, PAGE);
            let page = self.fetch(&pack, limit, offset, false).await?;
            let messages = page
                .messages
                .ok_or_else(|| Error::decode(M, "response", "the page has no `messages` list"))?;
            let (next, total) = offset_after(offset, messages.len(), limit, page.paging);
            let seller = self.seller_id.clone();
            Ok(Fetched::convert(
                M,
                "message",
                messages,
                |m| m.id.as_ref().map(|i| i.as_str()),
                next,
                |m, raw| message(&pack, &seller, m, raw),
            )
            .with_total(total))
        }
        .boxed()
    }

    fn send<'a>(
        &'a self,
        pack_id: &'a str,
        text: &'a str,
        attachments: &'a [OutgoingAttachment],
    ) -> BoxFuture<'a, Result<Sent, Error>> {
        async move {
            validate(text, attachments)?;
            let page = self.fetch(pack_id, PAGE, 0, false).await?;
            if let Some(ConversationStatus::Blocked { reason }) =
                page.conversation_status.as_ref().and_then(status_of)
            {
                return Err(Error::invalid(
                    M,
                    format!(
                        "pack {} is blocked ({}): Mercado Libre accepts no message in it",
                        crate::error::clip(pack_id, 80),
                        reason.as_deref().unwrap_or("no reason given")
                    ),
                ));
            }
            let messages: Vec<types::Message> = page
                .messages
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.into_result().ok())
                .collect();
            let recipient = recipient(&messages, &self.seller_id).ok_or_else(|| {
                Error::invalid(M, format!("pack {} has no message to derive the recipient from; Mercado Libre sellers reply to buyers", crate::error::clip(pack_id, 80)))
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
                    let upload = self
                        .client
                        .upload_attachment(&site, &a.name, &a.mime, a.bytes.clone());
                    ids.extend(call(M, upload).await?.id.map(|i| i.to_string()));
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
            let request = self
                .client
                .send_pack_message()
                .pack_id(pack_id)
                .seller_id(&self.seller_id)
                .tag(enums::Tag::PostSale)
                .body(body);
            super::deliver(M, pack_id, request.send(), |m| {
                m.id.as_ref().map(|i| i.to_string())
            })
            .await
        }
        .boxed()
    }

    /// Downloads an attachment by its id; Mercado Libre wants the pack's site with it,
    /// read from the pack's first page.
    fn download<'a>(
        &'a self,
        pack: &'a str,
        attachment: &'a Attachment,
    ) -> BoxFuture<'a, Result<Download, Error>> {
        async move {
            let id = super::attachment_id(M, attachment)?;
            let page = self.fetch(pack, PAGE, 0, false).await?;
            let site = page
                .messages
                .unwrap_or_default()
                .iter()
                .find_map(|m| m.valid()?.site_id.as_ref().map(|s| s.to_string()))
                .ok_or_else(|| {
                    Error::invalid(
                        M,
                        "cannot tell the pack's site (MLA, MLB, …) needed to download",
                    )
                })?;
            let request = self
                .client
                .download_attachment()
                .attachment_id(id)
                .site_id(site)
                .tag(enums::Tag::PostSale);
            super::api_download(M, attachment, request.send()).await
        }
        .boxed()
    }

    /// `GET /missed_feeds?app_id=…&topic=messages&offset=…&limit=…`.
    fn missed_notifications<'a>(
        &'a self,
        application: &'a str,
        offset: u64,
    ) -> BoxFuture<'a, Result<serde_json::Value, Error>> {
        Box::pin(async move {
            let page = call(
                M,
                self.client
                    .get_missed_feeds()
                    .app_id(application)
                    .topic("messages")
                    .offset(offset)
                    .limit(crate::push::MISSED_PAGE)
                    .send(),
            )
            .await?;
            serde_json::to_value(&page).map_err(|e| Error::decode(M, "missed feeds", e.to_string()))
        })
    }

    /// Marks a pack's messages read: a read without `mark_as_read=false`.
    /// `GET /messages/{id}`: the pack its `message_resources` name (the current shape),
    /// else its `resource_id` (the legacy flat shape).
    fn conversation_of_message<'a>(
        &'a self,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        Box::pin(async move {
            let found = call(
                M,
                self.client
                    .get_message()
                    .message_id(message_id)
                    .tag(enums::Tag::PostSale)
                    .x_version(enums::GetMessageXVersion::V2)
                    .send(),
            )
            .await?;
            // The message's resource of this kind (`packs`, `orders`), if it names one.
            let resource = |kind: &str| {
                found
                    .messages
                    .iter()
                    .flatten()
                    .filter_map(|m| m.valid())
                    .filter(|m| m.id.as_ref().is_none_or(|id| id.as_str() == message_id))
                    .flat_map(|m| m.message_resources.iter().flatten())
                    .find(|r| {
                        r.name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(kind))
                    })
                    .and_then(|r| r.id.as_ref())
                    .map(|id| id.as_str().to_string())
            };
            let from_resources = resource("packs").or_else(|| resource("orders"));
            let legacy = || found.resource_id.as_ref().map(|id| id.as_str().to_string());
            Ok(from_resources
                .or_else(legacy)
                .filter(|id| pack_of(id).as_deref() == Some(id.as_str())))
        })
    }

    fn mark_read<'a>(&'a self, pack_id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        async move { self.fetch(pack_id, PAGE, 0, true).await.map(|_| ()) }.boxed()
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

/// The pack (or order, standing in the pack's place) an unread `resource` names, in every
/// documented shape: `/packs/{pack}/sellers/{seller}`, `/packs/{pack}`, the same under
/// `/messages`, older `/orders/{order}`, or a bare id; a query string is ignored.
pub(crate) fn pack_of(resource: &str) -> Option<String> {
    let path = resource.split(['?', '#']).next().unwrap_or_default();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let id = match parts.as_slice() {
        ["messages", rest @ ..] | rest @ [..] if !rest.is_empty() => match rest {
            ["packs" | "orders", id, ..] => *id,
            [id] => *id,
            _ => return None,
        },
        _ => return None,
    };
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        .then(|| id.to_string())
}

fn unread_pack(r: types::UnreadResource, _raw: &RawJson) -> Result<Conversation, String> {
    let resource = r.resource.unwrap_or_default();
    let pack = pack_of(&resource).ok_or_else(|| {
        format!("unread resource {resource:?} names no pack (expected /packs/{{pack}}/sellers/{{seller}})")
    })?;
    Ok(Conversation {
        reference: ConversationRef::new(M, pack.clone()),
        other_party: None,
        kind: ConversationKind::BuyerChat,
        status: None,
        unread: Some(Unread::Count(
            r.count.map_or(0, |c| c.get().max(0).unsigned_abs()),
        )),
        created_at: None,
        last_activity_at: None,
        references: References {
            pack: Some(pack),
            ..References::default()
        },
        reply_deadline: None,
        vendor: RawJson::default(),
    })
}

/// The conversation an order names: its pack, or itself when it has none.
fn order_conversation(
    o: types::Order,
    _raw: &RawJson,
    unread: &Unreads,
) -> Result<Conversation, String> {
    let order = o.id.as_ref().map(|i| i.to_string()).ok_or("missing `id`")?;
    let pack = o
        .pack_id
        .as_ref()
        .map_or_else(|| order.clone(), |p| p.to_string());
    let count = unread.counts.get(&pack).copied();
    Ok(Conversation {
        reference: ConversationRef::new(M, pack.clone()),
        other_party: o.buyer.map(|b| Participant {
            id: b.id.map(|i| i.to_string()),
            name: b.nickname,
            role: Role::Buyer,
        }),
        kind: ConversationKind::BuyerChat,
        status: None,
        unread: count.or(unread.complete.then_some(0)).map(Unread::Count),
        created_at: o.date_created.map(|d| d.utc()),
        last_activity_at: None,
        references: References {
            orders: vec![order],
            pack: Some(pack),
            ..References::default()
        },
        reply_deadline: None,
        vendor: RawJson::default(),
    })
}

/// A pack's state from `conversation_status`: blocked with its `substatus`, or open.
fn status_of(c: &types::ConversationStatus) -> Option<ConversationStatus> {
    use enums::ConversationStatusStatus as S;
    match c.status.as_ref()? {
        S::Active => Some(ConversationStatus::Open),
        S::Blocked => Some(ConversationStatus::Blocked {
            reason: c.substatus.as_ref().map(|s| s.to_string()),
        }),
        S::Unknown(v) => Some(ConversationStatus::Unknown(v.clone())),
    }
}

/// The offset after `n` items at `offset`: while below the listing's total when Mercado
/// Libre gives one, else after a full page of `limit`; none when the page added nothing.
/// The cursor after a page of `n` items at `offset`, and the listing's total when it
/// is believable: not negative, not above [`MAX_TOTAL`], not below the items already
/// listed. With a believable total, the listing goes on while below it (an empty page
/// then says there is more, which the paginator refuses); without one, while pages
/// come full.
fn offset_after(
    offset: u64,
    n: usize,
    limit: u32,
    paging: Option<types::Paging>,
) -> (Option<Cursor>, Option<u64>) {
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    let end = offset.saturating_add(n);
    let total = paging
        .and_then(|p| p.total)
        .and_then(|t| u64::try_from(t.get()).ok())
        .filter(|t| *t <= MAX_TOTAL && *t >= end);
    let more = match total {
        Some(total) => end < total,
        None => n >= u64::from(limit),
    };
    (more.then_some(Cursor::Offset(end)), total)
}

fn message(pack: &str, seller: &str, m: types::Message, _raw: &RawJson) -> Result<Message, String> {
    let from = m.from.unwrap_or_default();
    let from_id = from.user_id.as_ref().map(|i| i.to_string());
    let role = match from_id.as_deref() {
        Some(id) if id == seller => Role::Seller,
        Some(id) if MESSAGING_AGENTS.contains(&id) => Role::Marketplace,
        Some(_) => Role::Buyer,
        None => Role::Unknown("unknown".into()),
    };
    let dates = m.message_date.unwrap_or_default();
    let moderation = m.message_moderation;
    let created = dates
        .created
        .or(dates.received)
        .or(dates.available)
        .ok_or("missing `message_date.created`")?;
    Ok(Message {
        id: m.id.ok_or("missing `id`")?.into_string(),
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
                size: a.size.map(|s| s.get().max(0).unsigned_abs()),
                url: None,
                id: a.filename,
                status: a
                    .potential_security_threat
                    .map(|t| if t.get() { "UNSAFE" } else { "SAFE" }.to_string()),
            })
            .collect(),
        read: Some(dates.read.is_some()),
        status: moderation
            .as_ref()
            .and_then(|mm| mm.status.as_ref())
            .map(|s| s.to_string())
            .or(m.status.map(|s| s.to_string())),
        moderation_reason: moderation.and_then(|mm| mm.reason),
        kind: None,
        more_attachments: None,
        references: References {
            pack: Some(pack.to_string()),
            ..References::default()
        },
        vendor: RawJson::default(),
    })
}
