//! The one paginator behind every listing.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt};
use inbox_core::Lenient;
use serde::Serialize;
use tracing::Instrument;

use crate::listing::{Listing, Page};
use crate::{Error, Marketplace};

/// Where a listing is. Each marketplace reads the variant its API pages with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Cursor {
    /// The first page.
    First,
    /// An item offset (Allegro public.v1, Mercado Libre, Magalu).
    Offset(u64),
    /// An opaque cursor or a message id (Allegro beta.v1, Ozon).
    Token(String),
    /// The vendor says there is more but gave nothing to read it by (no cursor, no id
    /// to continue from): the walk ends with [`Error::Pagination`] after this page.
    Missing,
}

impl Cursor {
    /// The item offset an offset-paged listing asks for: 0 for the first page (and for a
    /// token, which offset listings never hand out).
    pub(crate) fn offset(&self) -> u64 {
        match self {
            Cursor::Offset(n) => *n,
            Cursor::First | Cursor::Token(_) | Cursor::Missing => 0,
        }
    }
}

/// One fetched page as a marketplace adapter returns it: every element converted or an
/// error of its own, the next cursor if the vendor says there is more, and what the page
/// holds (to notice a server that sends a page again under a new cursor).
pub(crate) struct Fetched<T> {
    pub items: Vec<Result<T, Error>>,
    /// A hash of each item's vendor id, where it has one (same order as `items`).
    pub ids: Vec<Option<u64>>,
    /// Whether items may legitimately repeat across pages (several orders of one pack):
    /// repeats are still dropped, but a page of only repeats is not taken for a loop.
    pub repeats_expected: bool,
    pub next: Option<Cursor>,
    /// How many items the whole listing holds, when the vendor says (offset listings):
    /// lets the pages after the next be requested before it arrives.
    pub total: Option<u64>,
    pub fingerprint: u64,
}

impl<T: Vendored> Fetched<T> {
    /// A page from a vendor list: every element converted (a malformed or unconvertible
    /// one becomes [`Error::Decode`] with its raw JSON; a converted one carries it as
    /// `vendor`), fingerprinted by the ids `id` reads from the decoded elements.
    pub(crate) fn convert<V: Serialize>(
        marketplace: Marketplace,
        what: &'static str,
        elements: Vec<Lenient<V>>,
        id: impl Fn(&V) -> Option<&str>,
        next: Option<Cursor>,
        convert: impl Fn(V, &inbox_core::RawJson) -> Result<T, String>,
    ) -> Self {
        let ids: Vec<Option<u64>> = elements
            .iter()
            .map(|e| e.valid().and_then(&id).map(hash))
            .collect();
        // What the page holds, by its items' ids (an item without one counts by place).
        let mut hasher = DefaultHasher::new();
        ids.hash(&mut hasher);
        let items = elements
            .into_iter()
            .map(|e| element(marketplace, what, e, &convert))
            .collect();
        Fetched {
            items,
            ids,
            repeats_expected: false,
            next,
            total: None,
            fingerprint: hasher.finish(),
        }
    }
}

impl<T> Fetched<T> {
    /// The same page, knowing how many items the whole listing holds.
    pub(crate) fn with_total(self, total: Option<u64>) -> Self {
        Fetched { total, ..self }
    }
}

/// A model object that carries the vendor's element as received.
pub(crate) trait Vendored {
    fn set_vendor(&mut self, raw: inbox_core::RawJson);
    /// Why a converted item still cannot be delivered, if it cannot.
    fn unfit(&self) -> Option<String> {
        None
    }
}

impl Vendored for crate::Conversation {
    fn set_vendor(&mut self, raw: inbox_core::RawJson) {
        self.vendor = raw;
    }
}

impl Vendored for crate::Message {
    fn set_vendor(&mut self, raw: inbox_core::RawJson) {
        self.vendor = raw;
    }
    /// A message's creation time is part of the contract: one RFC 3339 cannot write is
    /// as malformed as one that does not parse.
    fn unfit(&self) -> Option<String> {
        crate::rfc3339(self.created_at).is_none().then(|| {
            format!(
                "the creation time {} is outside the years RFC 3339 can write (0001-9999)",
                self.created_at
            )
        })
    }
}

/// Converts one element; its raw JSON goes into the result (or the error) without a copy.
fn element<V: Serialize, T: Vendored>(
    marketplace: Marketplace,
    what: &'static str,
    item: Lenient<V>,
    convert: impl FnOnce(V, &inbox_core::RawJson) -> Result<T, String>,
) -> Result<T, Error> {
    match item {
        Lenient::Valid(v, raw) => {
            let raw = raw.unwrap_or_else(|| inbox_core::RawJson::of(&v));
            match convert(v, &raw) {
                Ok(mut t) => match t.unfit() {
                    Some(why) => Err(Error::decode_element(
                        marketplace,
                        what,
                        why,
                        raw.to_value(),
                    )),
                    None => {
                        t.set_vendor(raw);
                        Ok(t)
                    }
                },
                Err(e) => Err(Error::decode_element(marketplace, what, e, raw.to_value())),
            }
        }
        Lenient::Invalid(bad) => Err(Error::decode_element(marketplace, what, bad.error, bad.raw)),
    }
}

/// What the paginator does with each item besides passing it on.
pub(crate) struct Walk<T> {
    pub marketplace: Marketplace,
    /// Completes an item (e.g. names its account) and says whether the query keeps it.
    pub keep: Box<dyn Fn(&mut T) -> bool + Send>,
    /// True for an item that shows every later page is outside the query (a listing in
    /// newest-first order that reached items older than `since`).
    pub past_end: Box<dyn Fn(&T) -> bool + Send>,
    /// Pages requested ahead of the one being consumed: the next page once its cursor is
    /// known, and with an offset cursor and a known total, the pages after it too.
    pub read_ahead: usize,
}

/// A page being fetched before it is needed, and the cursor it was asked for.
struct Ahead<T> {
    cursor: Cursor,
    page: BoxFuture<'static, Result<Fetched<T>, Error>>,
}

/// Starts fetching a page: on the tokio runtime when there is one, so that it proceeds
/// while the caller consumes the current page; else when first awaited. Dropping the
/// returned future cancels the fetch.
fn start<T, Fut>(fetch: Fut) -> BoxFuture<'static, Result<Fetched<T>, Error>>
where
    T: Send + 'static,
    Fut: Future<Output = Result<Fetched<T>, Error>> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => Task(runtime.spawn(fetch.in_current_span())).boxed(),
        Err(_) => fetch.boxed(),
    }
}

/// A spawned fetch that is cancelled when its result is no longer wanted.
struct Task<O>(tokio::task::JoinHandle<O>);

impl<O> Future for Task<O> {
    type Output = O;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        self.0.poll_unpin(cx).map(|done| match done {
            Ok(output) => output,
            // Only a panic reaches here (cancellation happens on drop): pass it on as if
            // the fetch had run inline.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        })
    }
}

impl<O> Drop for Task<O> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The cursors to have in flight after a page at `current` whose next cursor is `next`:
/// `next` itself, then (offset cursors, known total) the following offsets at the same
/// stride while below the total; `depth` in all.
fn plan(current: &Cursor, next: &Cursor, total: Option<u64>, depth: usize) -> Vec<Cursor> {
    let mut plan = Vec::with_capacity(depth.min(16));
    if depth == 0 {
        return plan;
    }
    plan.push(next.clone());
    let at = match current {
        Cursor::First => Some(0),
        Cursor::Offset(n) => Some(*n),
        Cursor::Token(_) | Cursor::Missing => None,
    };
    if let (Some(total), Some(at), Cursor::Offset(mut offset)) = (total, at, next) {
        let Some(stride) = offset.checked_sub(at).filter(|s| *s > 0) else {
            return plan;
        };
        while plan.len() < depth {
            match offset.checked_add(stride) {
                Some(o) if o < total => offset = o,
                _ => break,
            }
            plan.push(Cursor::Offset(offset));
        }
    }
    plan
}

/// Walks pages lazily from the first, until a page has no next cursor.
///
/// Nothing is requested before the stream is first polled. A cursor, or a page's content,
/// seen before in this listing ends it with [`Error::Pagination`] instead of looping, and
/// so does an empty page that says there is more. An item whose id was already delivered
/// is never delivered again (8 bytes a delivered item are kept for that), and a page of
/// only such items ends the listing with [`Error::Pagination`]. A failed page yields its
/// error and ends the listing.
///
/// With `read_ahead`, once the second page is asked for, pages are requested before they
/// are needed (see [`Walk`]; a listing read no further than its first page costs one
/// request). A page requested ahead is used only when its cursor is the one the walk
/// takes next, so the pages delivered and every check above are those of the page-by-page
/// walk.
pub(crate) fn paginate<T, F, Fut>(walk: Walk<T>, fetch: F) -> Listing<T>
where
    T: Send + 'static,
    F: FnMut(Cursor) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Fetched<T>, Error>> + Send + 'static,
{
    let state = State {
        next: Some(Cursor::First),
        cursors: HashSet::new(),
        pages: HashSet::new(),
        delivered: HashSet::new(),
        ahead: VecDeque::new(),
        last: None,
        walk,
        fetch,
    };
    let pages = stream::unfold(state, |mut st| async move {
        let cursor = st.next.take()?;
        let page = st.page(cursor).await;
        // A listing that has ended wants none of the pages it requested ahead.
        if st.next.is_none() {
            st.ahead.clear();
        }
        Some((page, st))
    });
    Listing::new(pages.boxed())
}

/// Where a walk is and what it has seen.
struct State<T, F> {
    next: Option<Cursor>,
    cursors: HashSet<u64>,
    pages: HashSet<u64>,
    delivered: HashSet<u64>,
    ahead: VecDeque<Ahead<T>>,
    /// The cursor and total of the page before.
    last: Option<(Cursor, Option<u64>)>,
    walk: Walk<T>,
    fetch: F,
}

impl<T, F, Fut> State<T, F>
where
    T: Send + 'static,
    F: FnMut(Cursor) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Fetched<T>, Error>> + Send + 'static,
{
    /// The page at `cursor`, checked; sets the cursor to take next (none: the end).
    async fn page(&mut self, cursor: Cursor) -> Result<Page<T>, Error> {
        if cursor == Cursor::Missing {
            return self
                .stop("the marketplace said there is more but sent no cursor to read it by");
        }
        if !self.cursors.insert(hash(&cursor)) {
            return self.stop("the marketplace sent a page cursor a second time");
        }
        let page = match self.ahead.pop_front() {
            Some(ahead) if ahead.cursor == cursor => ahead.page,
            _ => {
                self.ahead.clear();
                let page = (self.fetch)(cursor.clone()).boxed();
                // Past the first page, the pages after this one are wanted too.
                if let Some((previous, total)) = &self.last {
                    let depth = self.walk.read_ahead.saturating_add(1);
                    let mut wanted = plan(previous, &cursor, *total, depth);
                    wanted.retain(|c| *c != cursor);
                    self.request_ahead(wanted);
                }
                page
            }
        };
        let fetched = page.await?;
        if fetched.items.is_empty() {
            if fetched.next.is_some() {
                return self.stop("the marketplace sent an empty page but said there is more");
            }
            return Ok(Page { items: Vec::new() });
        }
        if !self.pages.insert(fetched.fingerprint) {
            return self.stop("the marketplace sent a page it had already sent");
        }
        // An item already delivered (offset pages shift when messages arrive, a server
        // may ignore the cursor) is dropped; a page of nothing else is a loop.
        let (mut past_end, mut fresh, mut repeated) = (false, 0usize, 0usize);
        let mut items = Vec::with_capacity(fetched.items.len());
        let ids = fetched.ids.into_iter().chain(std::iter::repeat(None));
        for (item, id) in fetched.items.into_iter().zip(ids) {
            if let Some(id) = id {
                if !self.delivered.insert(id) {
                    repeated += 1;
                    continue;
                }
                fresh += 1;
            }
            match item {
                Ok(mut t) => {
                    past_end |= (self.walk.past_end)(&t);
                    if (self.walk.keep)(&mut t) {
                        items.push(Ok(t));
                    }
                }
                Err(e) => items.push(Err(e)),
            }
        }
        if repeated > 0 && fresh == 0 && !fetched.repeats_expected {
            return self.stop("the marketplace sent a page of items it had already sent");
        }
        if !past_end {
            self.next = fetched.next;
        }
        // Pages requested ahead stay only while they follow the cursor taken next.
        if self.ahead.front().map(|a| &a.cursor) != self.next.as_ref() {
            self.ahead.clear();
        }
        // A listing read no further than its first page costs one request.
        if let Some(next) = self.next.as_ref().filter(|_| cursor != Cursor::First) {
            let wanted = plan(&cursor, next, fetched.total, self.walk.read_ahead);
            self.request_ahead(wanted);
        }
        self.last = Some((cursor, fetched.total));
        Ok(Page { items })
    }

    /// Requests the cursors of `wanted` the pages ahead do not hold yet (they hold a
    /// prefix of it).
    fn request_ahead(&mut self, wanted: Vec<Cursor>) {
        let readable = wanted.into_iter().take_while(|c| *c != Cursor::Missing);
        for cursor in readable.skip(self.ahead.len()) {
            let page = start((self.fetch)(cursor.clone()));
            self.ahead.push_back(Ahead { cursor, page });
        }
    }

    fn stop(&self, message: &str) -> Result<Page<T>, Error> {
        Err(Error::Pagination {
            marketplace: self.walk.marketplace,
            message: message.to_string(),
        })
    }
}

fn hash(value: &(impl Hash + ?Sized)) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn walk() -> Walk<u64> {
        Walk {
            marketplace: Marketplace::Ozon,
            keep: Box::new(|_| true),
            past_end: Box::new(|_| false),
            read_ahead: 0,
        }
    }

    fn page(items: &[u64], next: Option<u64>) -> Fetched<u64> {
        Fetched {
            items: items.iter().copied().map(Ok).collect(),
            ids: items.iter().map(|i| Some(hash(i))).collect(),
            repeats_expected: false,
            next: next.map(Cursor::Offset),
            total: None,
            fingerprint: hash(&items),
        }
    }

    #[test]
    fn nothing_is_fetched_before_the_first_poll_and_pages_end_on_no_cursor() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let s = paginate(walk(), move |cursor| {
            c.fetch_add(1, Ordering::SeqCst);
            let n = cursor.offset();
            async move { Ok(page(&[n], (n < 2).then_some(n + 1))) }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let items: Vec<u64> = block_on(s.map(|r| r.unwrap()).collect::<Vec<_>>());
        assert_eq!(items, [0, 1, 2]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_repeated_cursor_ends_with_an_error() {
        let s = paginate(walk(), |cursor| {
            let n = cursor.offset();
            async move { Ok(page(&[n + 100], Some(7))) }
        });
        let items = block_on(s.collect::<Vec<_>>());
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(matches!(items.last(), Some(Err(Error::Pagination { .. }))));
    }

    #[test]
    fn a_cycle_of_pages_under_fresh_cursors_ends_with_an_error() {
        // A, B, A, B … under cursors that never repeat.
        let s = paginate(walk(), |cursor| {
            let n = cursor.offset();
            let content = if n.is_multiple_of(2) { [1, 2] } else { [3, 4] };
            async move { Ok(page(&content, Some(n + 1))) }
        });
        let items = block_on(s.collect::<Vec<_>>());
        let ok: Vec<u64> = items
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(ok, [1, 2, 3, 4], "nothing delivered twice");
        assert!(matches!(items.last(), Some(Err(Error::Pagination { .. }))));
    }

    #[test]
    fn items_already_delivered_are_dropped_and_a_page_of_only_those_ends_the_listing() {
        // An offset page that shifted by one, then a server that ignores the cursor.
        let s = paginate(walk(), |cursor| {
            let n = cursor.offset();
            let items: Vec<u64> = match n {
                0 => vec![1, 2, 3],
                1 => vec![3, 4, 5],
                _ => vec![4, 5],
            };
            async move { Ok(page(&items, Some(n + 1))) }
        });
        let items = block_on(s.collect::<Vec<_>>());
        let ok: Vec<u64> = items
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(ok, [1, 2, 3, 4, 5]);
        assert!(matches!(items.last(), Some(Err(Error::Pagination { .. }))));
    }

    #[test]
    fn an_empty_page_that_claims_more_is_an_error_and_without_a_cursor_ends() {
        let s = paginate(walk(), |_| async move { Ok(page(&[], Some(1))) });
        let items = block_on(s.collect::<Vec<_>>());
        assert!(matches!(items.as_slice(), [Err(Error::Pagination { .. })]));
        let s = paginate(walk(), |_| async move { Ok(page(&[], None)) });
        assert!(block_on(s.collect::<Vec<_>>()).is_empty());
    }

    #[test]
    fn an_item_past_the_end_stops_after_its_page_and_filters_apply() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let w = Walk {
            marketplace: Marketplace::Allegro,
            keep: Box::new(|n: &mut u64| *n >= 5),
            past_end: Box::new(|n: &u64| *n < 5),
            read_ahead: 0,
        };
        // Newest first: 9 8 7 | 6 5 4 | 3 2 1
        let s = paginate(w, move |cursor| {
            c.fetch_add(1, Ordering::SeqCst);
            let n = cursor.offset();
            let items: Vec<u64> = (0..3).map(|i| 9 - n - i).collect();
            async move { Ok(page(&items, Some(n + 3))) }
        });
        let items: Vec<u64> = block_on(s.map(|r| r.unwrap()).collect::<Vec<_>>());
        assert_eq!(items, [9, 8, 7, 6, 5]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// Items `n..` of a listing of `total`, `size` a page, except a page of one at 3.
    fn offset_page(n: u64, total: u64, size: u64) -> Fetched<u64> {
        let size = if n == 3 { 1 } else { size };
        let items: Vec<u64> = (n..total.min(n + size)).collect();
        let end = n + items.len() as u64;
        let mut p = page(&items, (end < total).then_some(end));
        p.total = Some(total);
        p
    }

    fn ahead_walk(read_ahead: usize) -> Walk<u64> {
        Walk {
            read_ahead,
            ..walk()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_are_read_ahead_past_the_first_and_the_walk_stays_the_same() {
        #[derive(Default)]
        struct Seen {
            asked: std::sync::Mutex<Vec<u64>>,
            now: AtomicUsize,
            most: AtomicUsize,
        }
        let listing = |seen: Arc<Seen>| {
            paginate(ahead_walk(3), move |cursor| {
                let n = cursor.offset();
                let seen = seen.clone();
                seen.asked.lock().unwrap().push(n);
                async move {
                    let now = seen.now.fetch_add(1, Ordering::SeqCst) + 1;
                    seen.most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    seen.now.fetch_sub(1, Ordering::SeqCst);
                    Ok(offset_page(n, 30, 3))
                }
            })
        };
        // Read no further than the first page: one request.
        let seen = Arc::new(Seen::default());
        let first = listing(seen.clone()).next().await;
        assert!(matches!(first, Some(Ok(0))));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(*seen.asked.lock().unwrap(), [0]);
        // Read to the end: every item once, in order; the pages the walk takes are
        // 0 | 3 (a page of one) | 4 | 7 | …; the pages planned at 6, 9, 12 before the short
        // page showed up are not used.
        let seen = Arc::new(Seen::default());
        let all: Vec<u64> = listing(seen.clone()).map(|r| r.unwrap()).collect().await;
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        let asked = seen.asked.lock().unwrap().clone();
        assert_eq!(asked.get(..2), Some(&[0, 3][..]), "{asked:?}");
        for taken in [4, 7, 10, 13, 16, 19, 22, 25, 28] {
            assert_eq!(
                asked.iter().filter(|&&p| p == taken).count(),
                1,
                "{asked:?}"
            );
        }
        assert!(asked.contains(&6), "planned ahead: {asked:?}");
        assert!(
            seen.most.load(Ordering::SeqCst) > 1,
            "pages in flight at once"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_total_that_lies_costs_at_most_the_pages_read_ahead() {
        // The vendor claims a million items but has 12, in pages of 3.
        let asked = Arc::new(AtomicUsize::new(0));
        let a = asked.clone();
        let s = paginate(ahead_walk(4), move |cursor| {
            a.fetch_add(1, Ordering::SeqCst);
            let n = cursor.offset();
            async move {
                let items: Vec<u64> = (n..12.min(n + 3)).collect();
                let end = n + items.len() as u64;
                let mut p = page(&items, (end < 12).then_some(end));
                p.total = Some(1_000_000);
                Ok(p)
            }
        });
        let items: Vec<u64> = s.map(|r| r.unwrap()).collect().await;
        assert_eq!(items, (0..12).collect::<Vec<_>>());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let asked = asked.load(Ordering::SeqCst);
        assert!((4..=4 + 4).contains(&asked), "{asked} requests for 4 pages");
    }

    #[test]
    fn without_a_runtime_read_ahead_still_walks_every_page_once() {
        let s = paginate(ahead_walk(4), |cursor| {
            let n = cursor.offset();
            async move { Ok(offset_page(n, 11, 2)) }
        });
        let items: Vec<u64> = block_on(s.map(|r| r.unwrap()).collect::<Vec<_>>());
        assert_eq!(items, (0..11).collect::<Vec<_>>());
    }

    #[test]
    fn the_plan_follows_the_stride_below_the_total() {
        let plan = |c, n, t, d| plan(&c, &n, t, d);
        let o = Cursor::Offset;
        assert_eq!(
            plan(Cursor::First, o(10), Some(45), 4),
            [o(10), o(20), o(30), o(40)]
        );
        assert_eq!(plan(o(10), o(20), Some(45), 9), [o(20), o(30), o(40)]);
        assert_eq!(plan(o(10), o(20), None, 9), [o(20)]);
        let t = Cursor::Token("x".into());
        assert_eq!(plan(Cursor::First, t.clone(), Some(45), 9), [t]);
        assert!(plan(Cursor::First, o(10), Some(45), 0).is_empty());
        assert_eq!(
            plan(o(u64::MAX - 1), o(u64::MAX), Some(u64::MAX), 3),
            [o(u64::MAX)]
        );
    }
}
