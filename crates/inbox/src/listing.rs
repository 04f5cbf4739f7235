//! What a listing asks for ([`ConversationQuery`], [`MessageQuery`]) and what it gives:
//! a [`Listing`] that is a stream of items and can also be walked page by page.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, Stream, StreamExt};

use crate::{Conversation, ConversationStatus, Error, Message};

/// Which conversations to list. Each option is sent to the marketplace where its API
/// supports it and applied to what comes back everywhere, so the result means the same
/// on every marketplace; every option is kept on every page.
///
/// A filter drops only what it knows does not match: a conversation whose listing does
/// not say its status or its last activity is kept by `status` and `since`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConversationQuery {
    /// Items per request; `None` asks for the marketplace's largest page.
    pub page_size: Option<u32>,
    /// Only conversations with something unread.
    pub unread_only: bool,
    /// Only open, or only closed, conversations.
    pub status: Option<StatusFilter>,
    /// Only conversations active at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Fill each unread conversation's state where the listing does not carry it, at one
    /// request each (Mercado Libre: blocked, and why).
    pub with_state: bool,
}

/// The conversation states a listing can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusFilter {
    /// Conversations that accept messages.
    Open,
    /// Closed conversations.
    Closed,
}

impl ConversationQuery {
    /// Every conversation, in the marketplace's largest pages.
    pub fn new() -> Self {
        Self::default()
    }

    /// Items per request (clamped to what the marketplace accepts).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Only conversations with something unread.
    pub fn unread_only(mut self, yes: bool) -> Self {
        self.unread_only = yes;
        self
    }

    /// Only open, or only closed, conversations.
    pub fn status(mut self, status: StatusFilter) -> Self {
        self.status = Some(status);
        self
    }

    /// Only conversations active at or after `t`.
    pub fn since(mut self, t: DateTime<Utc>) -> Self {
        self.since = Some(t);
        self
    }

    /// Fill each unread conversation's state where the listing lacks it (Mercado Libre:
    /// one request per unread pack).
    pub fn with_state(mut self, yes: bool) -> Self {
        self.with_state = yes;
        self
    }

    /// Whether `c` passes the filters (unknown values pass).
    pub(crate) fn admits(&self, c: &Conversation) -> bool {
        let unread = !self.unread_only || c.unread.is_some_and(|u| u.is_unread());
        let status = match (self.status, &c.status) {
            (Some(StatusFilter::Open), Some(s)) => *s == ConversationStatus::Open,
            (Some(StatusFilter::Closed), Some(s)) => *s == ConversationStatus::Closed,
            _ => true,
        };
        let since = match (self.since, c.last_activity_at) {
            (Some(since), Some(at)) => at >= since,
            _ => true,
        };
        unread && status && since
    }
}

/// Which messages of a conversation to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageQuery {
    /// Items per request; `None` asks for the marketplace's largest page.
    pub page_size: Option<u32>,
    /// Only messages created at or after this instant.
    pub since: Option<DateTime<Utc>>,
}

impl MessageQuery {
    /// Every message, in the marketplace's largest pages.
    pub fn new() -> Self {
        Self::default()
    }

    /// Items per request (clamped to what the marketplace accepts).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// Only messages created at or after `t`.
    pub fn since(mut self, t: DateTime<Utc>) -> Self {
        self.since = Some(t);
        self
    }

    pub(crate) fn admits(&self, m: &Message) -> bool {
        self.since.is_none_or(|since| m.created_at >= since)
    }
}

/// One page of a listing: what one request returned, after the query's filters.
///
/// Each element is decoded on its own: a malformed one is an `Err` holding its raw JSON,
/// and the others are still there.
#[derive(Debug)]
#[non_exhaustive]
pub struct Page<T> {
    /// The page's items, in the marketplace's order.
    pub items: Vec<Result<T, Error>>,
}

/// A lazy listing: a `Stream` of items (`Result<T, Error>`), or of whole pages through
/// [`Listing::pages`]. Nothing is requested before the first poll.
///
/// A failed request yields one `Err` and ends the listing; a page that would make it loop
/// (a cursor or page seen before) ends it with [`Error::Pagination`].
pub struct Listing<T> {
    pages: BoxStream<'static, Result<Page<T>, Error>>,
    buffered: VecDeque<Result<T, Error>>,
}

impl<T: Send + 'static> Listing<T> {
    pub(crate) fn new(pages: BoxStream<'static, Result<Page<T>, Error>>) -> Self {
        Listing {
            pages,
            buffered: VecDeque::new(),
        }
    }

    /// A listing that yields one error and ends.
    /// The listing, its errors naming `op` as the operation that failed.
    pub(crate) fn during(self, op: &'static str) -> Self {
        Listing {
            pages: self.pages.map(move |p| p.map_err(|e| e.during(op))).boxed(),
            buffered: self.buffered,
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        Listing::new(futures::stream::once(async move { Err(error) }).boxed())
    }

    /// The listing page by page.
    pub fn pages(self) -> BoxStream<'static, Result<Page<T>, Error>> {
        let buffered = (!self.buffered.is_empty()).then(|| {
            Ok(Page {
                items: self.buffered.into_iter().collect(),
            })
        });
        futures::stream::iter(buffered).chain(self.pages).boxed()
    }

    /// The listing item by item, boxed (the `Listing` itself is such a stream too).
    pub fn items(self) -> BoxStream<'static, Result<T, Error>> {
        self.boxed()
    }
}

// Nothing in a `Listing` is pinned in place: items are moved out of the buffer.
impl<T> Unpin for Listing<T> {}

impl<T> Stream for Listing<T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.buffered.pop_front() {
                return Poll::Ready(Some(item));
            }
            match this.pages.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(page))) => this.buffered.extend(page.items),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T> std::fmt::Debug for Listing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing")
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}
