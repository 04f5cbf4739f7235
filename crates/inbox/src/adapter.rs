//! The contract each marketplace implements once. Everything around it (the listing
//! loop, filters, account names on references, error mapping) is written once, in
//! [`crate::Account`] and [`crate::paginate`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::listing::{ConversationQuery, MessageQuery};
use crate::paginate::{Cursor, Fetched};
use crate::sync::{Checkpoint, Walk};
use crate::{
    Attachment, Conversation, Download, Error, Marketplace, Message, NewConversation,
    OutgoingAttachment, Sent,
};

/// Fetches the page at a cursor of one listing.
pub(crate) type PageFn<T> =
    Box<dyn FnMut(Cursor) -> BoxFuture<'static, Result<Fetched<T>, Error>> + Send>;

/// Which listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listed {
    Conversations,
    Messages,
}

/// One marketplace's side of the facade. Ids are the vendor's own; the account name and
/// the query's client-side filters are applied by the caller.
pub(crate) trait Adapter: Send + Sync + std::fmt::Debug + 'static {
    /// Which marketplace.
    fn marketplace(&self) -> Marketplace;

    /// Whether this listing comes newest first, so that `since` may end it early.
    fn newest_first(&self, listed: Listed) -> bool;

    /// One page of conversations, with as much of `query` as the vendor can apply.
    fn conversations_page(
        self: Arc<Self>,
        query: ConversationQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Conversation>, Error>>;

    /// The page function of one conversations listing: by default each page on its
    /// own; a marketplace whose pages share a read (Mercado Libre's unread counts, read
    /// once per listing) keeps it here.
    fn conversations_listing(self: Arc<Self>, query: ConversationQuery) -> PageFn<Conversation> {
        Box::new(move |cursor| self.clone().conversations_page(query.clone(), cursor))
    }

    /// One page of a conversation's messages. Never changes read state.
    fn messages_page(
        self: Arc<Self>,
        conversation: String,
        query: MessageQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Message>, Error>>;

    /// Sends a message, attachments uploaded the vendor's way, after checking the
    /// vendor's rules.
    fn send<'a>(
        &'a self,
        conversation: &'a str,
        text: &'a str,
        attachments: &'a [OutgoingAttachment],
    ) -> BoxFuture<'a, Result<Sent, Error>>;

    /// Marks a conversation read.
    fn mark_read<'a>(&'a self, conversation: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Starts a conversation; marketplaces where sellers cannot start one say so.
    fn start<'a>(&'a self, new: &'a NewConversation) -> BoxFuture<'a, Result<Sent, Error>> {
        let _ = new;
        let marketplace = self.marketplace();
        Box::pin(async move {
            Err(Error::Unsupported {
                marketplace,
                operation: "starting a conversation",
                not_built: false,
            })
        })
    }

    /// How many conversations are read at once by default, sized so that the
    /// marketplace's rate limit, not the round trip, sets the pace at round trips up to
    /// about 100 ms.
    fn default_concurrency(&self) -> usize;

    /// The listings a sync step walks after the checkpoint `before` (see
    /// [`crate::sync`]'s plans).
    fn sync_walks(&self, before: &Checkpoint, now: DateTime<Utc>) -> Vec<Walk>;

    /// What in a listed conversation says it changed since the last step.
    fn sync_summary(&self, conversation: &Conversation) -> String;

    /// The id of the conversation a message belongs to, where the vendor can say.
    fn conversation_of_message<'a>(
        &'a self,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        let _ = message_id;
        let marketplace = self.marketplace();
        Box::pin(async move {
            Err(Error::Unsupported {
                marketplace,
                operation: "finding a message's conversation",
                not_built: false,
            })
        })
    }

    /// The application's notifications the vendor could not deliver (Mercado Libre's
    /// missed feeds), one page from `offset`, as received.
    fn missed_notifications<'a>(
        &'a self,
        application: &'a str,
        offset: u64,
    ) -> BoxFuture<'a, Result<serde_json::Value, Error>> {
        let _ = (application, offset);
        let marketplace = self.marketplace();
        Box::pin(async move {
            Err(Error::Unsupported {
                marketplace,
                operation: "reading missed notifications",
                not_built: false,
            })
        })
    }

    /// When the account's credentials stop working, where the vendor says (Ozon's API
    /// keys live six months); `None` where they renew themselves (OAuth) or the vendor
    /// does not say.
    fn credentials_expiry(&self) -> BoxFuture<'_, Result<Option<DateTime<Utc>>, Error>> {
        Box::pin(async { Ok(None) })
    }

    /// Downloads an attachment of a message in `conversation`, streamed.
    fn download<'a>(
        &'a self,
        conversation: &'a str,
        attachment: &'a Attachment,
    ) -> BoxFuture<'a, Result<Download, Error>>;
}

/// The page size to ask for: the query's, within 1..=`max`, else `max`.
pub(crate) fn page_size(asked: Option<u32>, max: u32) -> u32 {
    asked.unwrap_or(max).clamp(1, max.max(1))
}
