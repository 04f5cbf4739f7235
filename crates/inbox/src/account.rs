use std::fmt;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use futures::TryStreamExt;

use crate::adapter::{Adapter, Listed};
use crate::config::{AccountConfig, TokenStore};
use crate::listing::{ConversationQuery, Listing, MessageQuery};
use crate::model::*;
use crate::paginate::{paginate, Walk};
use crate::{vendors, Error, Marketplace};
use inbox_core::Tokens;

/// How many times [`Account::send`] may send one text message when earlier attempts
/// certainly did not arrive.
pub const SEND_ATTEMPTS: u32 = 3;

/// How far before a send's start its message may be timestamped by the marketplace's
/// clock and still be taken for it. The same text sent twice within this window by other
/// means may be taken for this send.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// One named marketplace account: lists its conversations and messages, sends and marks
/// read. Cheap to clone; clones share connections (and, later, limits and tokens).
///
/// Every [`Conversation`] and [`Message`] it returns names this account in its
/// [`ConversationRef`], so it can be acted on again without saying the account.
#[derive(Clone)]
pub struct Account {
    name: Arc<str>,
    adapter: Arc<dyn Adapter>,
    concurrency: usize,
    poll_interval: std::time::Duration,
    /// Who push notifications for this account name: the seller, and the application.
    push_seller: Option<Arc<str>>,
    push_application: Option<Arc<str>>,
    /// The id of the store's account it was built from: every commit of its sync checks
    /// that the store still holds it under this name.
    stored_id: Option<Arc<str>>,
}

/// An inbox's token store seen by one account's token.
struct Named {
    account: String,
    store: Arc<dyn TokenStore>,
}

impl inbox_core::PersistTokens for Named {
    fn save(&self, tokens: &Tokens) -> Result<(), String> {
        self.store.save(&self.account, tokens)
    }

    fn refresh_exclusively<'a>(
        &'a self,
        held: Tokens,
        grant: inbox_core::Grant<'a>,
    ) -> futures::future::BoxFuture<'a, Result<Tokens, inbox_core::Refused>> {
        self.store.refresh_exclusively(&self.account, held, grant)
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("marketplace", &self.marketplace())
            .finish_non_exhaustive()
    }
}

impl Account {
    /// Builds the account a configuration describes (credentials checked for shape, no
    /// request made). Fails with [`Error::Config`] on a bad name or missing credentials,
    /// and with [`Error::Unsupported`] when this build leaves the marketplace out.
    pub fn from_config(config: &AccountConfig) -> Result<Account, Error> {
        Self::build(config, None)
    }

    /// Like [`Account::from_config`], handing every rotated OAuth token pair to `store`
    /// before it is used (so a crash never loses the only valid refresh token).
    pub fn from_config_with_store(
        config: &AccountConfig,
        store: Arc<dyn TokenStore>,
    ) -> Result<Account, Error> {
        let persist = Named {
            account: config.name.clone(),
            store,
        };
        Self::build(config, Some(Arc::new(persist)))
    }

    fn build(
        config: &AccountConfig,
        persist: Option<Arc<dyn inbox_core::PersistTokens>>,
    ) -> Result<Account, Error> {
        if !valid_account_name(&config.name) {
            return Err(Error::config(format!(
                "account name {:?} must be 1 to 64 letters, digits, '.', '_' or '-'",
                crate::error::clip(&config.name, 80)
            )));
        }
        let adapter = vendors::adapter(config, persist)?;
        let concurrency = config
            .concurrency
            .map_or_else(|| adapter.default_concurrency(), |n| n.max(1) as usize);
        let (push_seller, push_application) = match (&config.marketplace, &config.credentials) {
            (Marketplace::MercadoLibre, _) => (
                config.seller_id.as_deref().map(Arc::from),
                config.application_id().map(Arc::from),
            ),
            (Marketplace::Ozon, crate::Credentials::ApiKey { client_id, .. }) => {
                (Some(Arc::from(client_id.as_str())), None)
            }
            _ => (None, None),
        };
        Ok(Account {
            name: Arc::from(config.name.as_str()),
            adapter,
            concurrency,
            poll_interval: config.poll_interval(),
            push_seller,
            push_application,
            stored_id: None,
        })
    }

    /// The seller push notifications for this account name (Mercado Libre's seller id,
    /// Ozon's `Client-Id`); `None` where the marketplace pushes nothing.
    pub fn push_seller(&self) -> Option<&str> {
        self.push_seller.as_deref()
    }

    /// The application Mercado Libre's notifications for this account name
    /// (`application_id` in its config, else its OAuth client id).
    pub fn push_application(&self) -> Option<&str> {
        self.push_application.as_deref()
    }

    /// How often a worker syncs this account ([`AccountConfig::poll_interval`]).
    pub fn poll_interval(&self) -> std::time::Duration {
        self.poll_interval
    }

    /// The account's name (unique within an [`crate::Inbox`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same account, marked as the store's account `id`: its sync commits only while
    /// the store holds that account under this account's name (a commit of a step that a
    /// rename or a removal overtook is refused as a conflict, never written under a
    /// name that is gone).
    pub fn stored_as(mut self, id: impl Into<Arc<str>>) -> Self {
        self.stored_id = Some(id.into());
        self
    }

    /// The store's account it was built from, if any.
    pub fn stored_id(&self) -> Option<&str> {
        self.stored_id.as_deref()
    }

    /// Which marketplace.
    pub fn marketplace(&self) -> Marketplace {
        self.adapter.marketplace()
    }

    /// A reference to one of this account's conversations by its vendor id.
    pub fn reference(&self, id: impl Into<String>) -> ConversationRef {
        ConversationRef::new(self.marketplace(), id).with_account(self.name())
    }

    /// The account's conversations, lazily, page by page, in the marketplace's order
    /// (see [`crate::vendors`]): every conversation, read ones included. The next pages
    /// are requested while the current one is consumed (see [`Account::concurrency`]).
    pub fn conversations(&self, query: ConversationQuery) -> Listing<Conversation> {
        let ahead = self.read_ahead(query.since.is_some());
        self.conversations_ahead(query, ahead)
    }

    /// [`Account::conversations`], requesting at most `read_ahead` pages ahead.
    pub(crate) fn conversations_ahead(
        &self,
        query: ConversationQuery,
        read_ahead: usize,
    ) -> Listing<Conversation> {
        let adapter = self.adapter.clone();
        let name = self.name.clone();
        let since = query
            .since
            .filter(|_| adapter.newest_first(Listed::Conversations));
        let filter = query.clone();
        let walk = Walk {
            marketplace: self.marketplace(),
            keep: Box::new(move |c: &mut Conversation| {
                c.reference.account = Some(name.to_string());
                filter.admits(c)
            }),
            past_end: Box::new(
                move |c: &Conversation| matches!((since, c.last_activity_at), (Some(s), Some(at)) if at < s),
            ),
            read_ahead,
        };
        paginate(walk, adapter.conversations_listing(query)).during("list conversations")
    }

    /// The messages of one conversation, lazily, page by page, the next pages requested
    /// while the current one is consumed. Never marks anything read.
    pub fn messages(
        &self,
        conversation: &ConversationRef,
        query: MessageQuery,
    ) -> Listing<Message> {
        if let Err(e) = self.check(conversation) {
            return Listing::failed(e);
        }
        let adapter = self.adapter.clone();
        let name = self.name.clone();
        let since = query
            .since
            .filter(|_| adapter.newest_first(Listed::Messages));
        let filter = query.clone();
        let walk = Walk {
            marketplace: self.marketplace(),
            keep: Box::new(move |m: &mut Message| {
                m.conversation.account = Some(name.to_string());
                filter.admits(m)
            }),
            past_end: Box::new(move |m: &Message| since.is_some_and(|s| m.created_at < s)),
            read_ahead: self.read_ahead(query.since.is_some()),
        };
        let id = conversation.id.clone();
        paginate(walk, move |cursor| {
            adapter
                .clone()
                .messages_page(id.clone(), query.clone(), cursor)
        })
        .during("list messages")
    }

    /// Every message of every listed conversation: several conversations at once
    /// ([`Account::concurrency`]), the rate limiter setting the pace. Each conversation's
    /// messages keep their order; conversations interleave.
    pub fn all_messages(
        &self,
        query: ConversationQuery,
    ) -> BoxStream<'static, Result<Message, Error>> {
        let account = self.clone();
        self.conversations(query)
            .map(move |c| match c {
                Ok(c) => account.messages(&c.reference, MessageQuery::new()).items(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten_unordered(self.concurrency)
            .boxed()
    }

    /// How many conversations' messages [`Account::all_messages`] and a sync step fetch
    /// at once (configuration `concurrency`, else the marketplace's default); a
    /// listing requests up to one less than this many pages ahead of the one consumed
    /// (one, when it has `since`: a newest-first listing may end at any page). Requests
    /// still leave at the pace of the account's rate limiter.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Pages a listing requests ahead: [`Account::concurrency`] less one, at most one
    /// with `since`.
    fn read_ahead(&self, since: bool) -> usize {
        let ahead = self.concurrency.saturating_sub(1);
        if since {
            ahead.min(1)
        } else {
            ahead
        }
    }

    /// Sends a message, with attachments uploaded the marketplace's way. The
    /// marketplace's rules (length, character set, required fields, file types) are
    /// checked before any request is made.
    ///
    /// A send is never repeated blindly. When it fails in a way that may have reached
    /// the marketplace (a timeout, a broken connection, a server error), the conversation
    /// is read back for a seller message with the same text created since the attempt
    /// began: if it is there, the send succeeded; if it certainly is not, a text-only
    /// message is sent again (at most [`SEND_ATTEMPTS`] times in all). A send with
    /// attachments is not repeated (its uploads cannot be looked up), and an error that
    /// leaves it unknown says so ([`Error::may_have_arrived`]).
    pub async fn send(
        &self,
        conversation: &ConversationRef,
        text: &str,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sent, Error> {
        self.send_once(conversation, text, attachments)
            .await
            .map_err(|e| e.during("send"))
    }

    /// [`Account::send`], its errors not yet naming the operation.
    async fn send_once(
        &self,
        conversation: &ConversationRef,
        text: &str,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sent, Error> {
        self.check(conversation)?;
        let started = chrono::Utc::now();
        let mut attempt = 1;
        loop {
            let failed = match self.adapter.send(&conversation.id, text, attachments).await {
                Ok(mut sent) => {
                    sent.conversation.account = Some(self.name.to_string());
                    return Ok(sent);
                }
                Err(e) if e.may_have_arrived() => e,
                Err(e) => return Err(e),
            };
            tracing::warn!(account = %self.name, attempt, error = %failed, "send may have arrived; looking for it");
            match self.find_sent(conversation, text, started).await {
                Ok(Some(found)) => {
                    return Ok(Sent {
                        conversation: found.conversation,
                        message_id: Some(found.id),
                        vendor: found.vendor,
                    })
                }
                Ok(None) if attachments.is_empty() && attempt < SEND_ATTEMPTS => attempt += 1,
                _ => return Err(failed),
            }
        }
    }

    /// The seller's message with `text` created since `since` (less [`CLOCK_SKEW`]), if
    /// the conversation shows one: how a send whose outcome is unknown is resolved.
    pub async fn find_sent(
        &self,
        conversation: &ConversationRef,
        text: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Message>, Error> {
        let since = since - CLOCK_SKEW;
        let wanted = text.trim();
        let mut listing = self.messages(conversation, MessageQuery::new().since(since));
        while let Some(m) = listing.try_next().await? {
            if m.author.role == Role::Seller && m.text.trim() == wanted {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Starts a conversation (Allegro: a thread with a buyer about their order, opened
    /// by its first message; Ozon: the chat of a posting). Marketplaces where sellers
    /// cannot start one answer [`Error::Unsupported`]. Never repeated blindly.
    pub async fn start(&self, new: &NewConversation) -> Result<Sent, Error> {
        let mut started = self
            .adapter
            .start(new)
            .await
            .map_err(|e| e.during("start a conversation"))?;
        started.conversation.account = Some(self.name.to_string());
        Ok(started)
    }

    /// Downloads an attachment of one of the conversation's messages, streamed. One the
    /// marketplace flagged unsafe or expired is refused ([`Attachment::downloadable`]).
    pub async fn download(
        &self,
        conversation: &ConversationRef,
        attachment: &Attachment,
    ) -> Result<Download, Error> {
        self.check(conversation)?;
        if !attachment.downloadable() {
            return Err(Error::invalid(
                self.marketplace(),
                format!(
                    "the marketplace flagged this attachment {}: it is not offered for download",
                    attachment.status.as_deref().unwrap_or("unsafe")
                ),
            ));
        }
        self.adapter
            .download(&conversation.id, attachment)
            .await
            .map_err(|e| e.during("download"))
    }

    /// When the account's credentials stop working, where the vendor says: Ozon's API
    /// keys (six months after they are made); `None` for credentials that renew
    /// themselves. One read; credentials the vendor refuses are the error.
    pub async fn credentials_expiry(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
        self.adapter
            .credentials_expiry()
            .await
            .map_err(|e| e.during("read the key's expiry"))
    }

    /// Marks a conversation read.
    pub async fn mark_read(&self, conversation: &ConversationRef) -> Result<(), Error> {
        self.check(conversation)?;
        self.adapter
            .mark_read(&conversation.id)
            .await
            .map_err(|e| e.during("mark read"))
    }

    /// How many conversations (and, where the marketplace counts them, messages) are
    /// unread. Walks the unread conversations; the first error ends it.
    pub async fn unread(&self) -> Result<UnreadSummary, Error> {
        let marketplace = self.marketplace();
        let init = UnreadSummary {
            marketplace,
            conversations: 0,
            messages: (marketplace != Marketplace::Allegro).then_some(0),
        };
        self.conversations(ConversationQuery::new().unread_only(true))
            .try_fold(init, |mut acc, c| async move {
                match c.unread {
                    Some(Unread::Count(n)) if n > 0 => {
                        acc.conversations = acc.conversations.saturating_add(1);
                        acc.messages = Some(acc.messages.unwrap_or(0).saturating_add(n));
                    }
                    Some(Unread::Flag(true)) => {
                        acc.conversations = acc.conversations.saturating_add(1)
                    }
                    _ => {}
                }
                Ok(acc)
            })
            .await
    }

    /// The conversation a message belongs to, where the marketplace can say (Mercado
    /// Libre: `GET /messages/{id}` names the pack); [`Error::Unsupported`] elsewhere.
    /// `None` when the marketplace knows the message but names no conversation.
    pub async fn conversation_of_message(
        &self,
        message_id: &str,
    ) -> Result<Option<ConversationRef>, Error> {
        Ok(self
            .adapter
            .conversation_of_message(message_id)
            .await
            .map_err(|e| e.during("find a message's conversation"))?
            .map(|id| self.reference(id)))
    }

    /// The notifications the vendor could not deliver to `application` (Mercado Libre's
    /// `GET /missed_feeds`, two days kept), every page; [`Error::Unsupported`] elsewhere.
    /// They are the application's, for every seller: [`crate::Inbox::addressee`] says
    /// whose each is.
    pub async fn missed_notifications(
        &self,
        application: &str,
    ) -> Result<Vec<crate::push::Missed>, Error> {
        let mut all = Vec::new();
        let mut offset = 0u64;
        // Two days of notifications of one application: bounded, but never loop forever.
        for _ in 0..200 {
            let page = self
                .adapter
                .missed_notifications(application, offset)
                .await?;
            let entries = page
                .get("messages")
                .and_then(serde_json::Value::as_array)
                .map_or(0, Vec::len);
            all.extend(crate::push::read_missed_feeds(&page));
            if (entries as u64) < crate::push::MISSED_PAGE {
                break;
            }
            offset = offset.saturating_add(entries as u64);
        }
        Ok(all)
    }

    /// The listings a sync step walks, by the marketplace's rules.
    pub(crate) fn sync_walks(
        &self,
        before: &crate::sync::Checkpoint,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::sync::Walk> {
        self.adapter.sync_walks(before, now)
    }

    /// What in a listed conversation says it changed.
    pub(crate) fn sync_summary(&self, conversation: &Conversation) -> String {
        self.adapter.sync_summary(conversation)
    }

    /// The conversations, reading pages ahead only when `ahead` (a walk that may stop
    /// mid-page would waste them).
    pub(crate) fn conversation_pages(
        &self,
        query: ConversationQuery,
        ahead: bool,
    ) -> Listing<Conversation> {
        match ahead {
            true => self.conversations(query),
            false => self.conversations_ahead(query, 0),
        }
    }

    /// Refuses a reference of another marketplace or another account.
    pub(crate) fn check(&self, conversation: &ConversationRef) -> Result<(), Error> {
        let marketplace = self.marketplace();
        let other_account = conversation
            .account
            .as_deref()
            .is_some_and(|a| a != self.name());
        if conversation.marketplace != marketplace || other_account {
            return Err(Error::invalid(
                marketplace,
                format!(
                    "{} is not a conversation of the {marketplace} account {}",
                    crate::error::clip(&conversation.to_string(), 120),
                    self.name
                ),
            ));
        }
        Ok(())
    }
}
