//! The one paginator behind every listing stream.

use std::collections::HashSet;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;

use futures::stream::{self, BoxStream, StreamExt};
use inbox_core::Lenient;
use serde::Serialize;

use crate::{Error, Marketplace};

/// One fetched page: its items (each decoded or an error of its own) and the cursor of
/// the next page, if the vendor gives one.
pub(crate) struct Page<T, C> {
    pub items: Vec<Result<T, Error>>,
    pub next: Option<C>,
    /// Identifies the page's content (e.g. its item ids), to notice a server that sends
    /// the same page again under a new cursor.
    pub fingerprint: Option<String>,
}

/// Walks pages lazily, starting at `first`, until a page has no next cursor or no items.
///
/// Nothing is requested before the stream is first polled. A cursor that comes back, or
/// a page identical to the one before it, ends the stream with [`Error::Pagination`]
/// instead of looping. A failed page yields its error and ends the stream.
pub(crate) fn paginate<T, C, F, Fut>(
    marketplace: Marketplace,
    first: C,
    fetch: F,
) -> BoxStream<'static, Result<T, Error>>
where
    T: Send + 'static,
    C: Clone + Eq + Hash + Debug + Send + 'static,
    F: FnMut(C) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<T, C>, Error>> + Send + 'static,
{
    struct State<C, F> {
        next: Option<C>,
        seen: HashSet<C>,
        last_fingerprint: Option<String>,
        fetch: F,
    }
    let state = State {
        next: Some(first),
        seen: HashSet::new(),
        last_fingerprint: None,
        fetch,
    };
    stream::unfold(state, move |mut st| async move {
        let cursor = st.next.take()?;
        if !st.seen.insert(cursor.clone()) {
            let message = format!("the marketplace sent the page cursor {cursor:?} a second time");
            return Some((
                vec![Err(Error::Pagination {
                    marketplace,
                    message,
                })],
                st,
            ));
        }
        match (st.fetch)(cursor).await {
            Err(e) => Some((vec![Err(e)], st)),
            Ok(page) => {
                if page.fingerprint.is_some() && page.fingerprint == st.last_fingerprint {
                    let message = "the marketplace sent the same page twice".to_string();
                    return Some((
                        vec![Err(Error::Pagination {
                            marketplace,
                            message,
                        })],
                        st,
                    ));
                }
                st.last_fingerprint = page.fingerprint;
                if !page.items.is_empty() {
                    st.next = page.next;
                }
                Some((page.items, st))
            }
        }
    })
    .flat_map(stream::iter)
    .boxed()
}

impl<T, C> Page<T, C> {
    /// A page from a vendor list: every element converted (a malformed or unconvertible
    /// one becomes [`Error::Decode`] with its raw JSON), fingerprinted by the ids `id`
    /// reads from the decoded elements.
    pub(crate) fn convert<V: Serialize>(
        marketplace: Marketplace,
        what: &'static str,
        elements: Vec<Lenient<V>>,
        id: impl Fn(&V) -> Option<&str>,
        next: Option<C>,
        convert: impl Fn(V, serde_json::Value) -> Result<T, String>,
    ) -> Self {
        let ids: Vec<&str> = elements
            .iter()
            .map(|e| e.valid().and_then(&id).unwrap_or("?"))
            .collect();
        let fingerprint = (!ids.is_empty()).then(|| ids.join(","));
        let items = elements
            .into_iter()
            .map(|e| element(marketplace, what, e, &convert))
            .collect();
        Page {
            items,
            next,
            fingerprint,
        }
    }
}

fn element<V: Serialize, T>(
    marketplace: Marketplace,
    what: &'static str,
    item: Lenient<V>,
    convert: impl FnOnce(V, serde_json::Value) -> Result<T, String>,
) -> Result<T, Error> {
    match item {
        Lenient::Valid(v) => {
            let raw = serde_json::to_value(&v).unwrap_or(serde_json::Value::Null);
            convert(v, raw.clone()).map_err(|e| Error::decode_element(marketplace, what, e, raw))
        }
        Lenient::Invalid(bad) => Err(Error::decode_element(marketplace, what, bad.error, bad.raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn nothing_is_fetched_before_the_first_poll_and_pages_end_on_no_cursor() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let s = paginate(Marketplace::Ozon, 0u32, move |n| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(Page {
                    items: vec![Ok(n)],
                    next: (n < 2).then_some(n + 1),
                    fingerprint: Some(n.to_string()),
                })
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        let items: Vec<_> = block_on(s.collect::<Vec<_>>())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(items, [0, 1, 2]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_repeated_cursor_ends_with_an_error() {
        let s = paginate(Marketplace::Allegro, 7u32, |n| async move {
            Ok(Page {
                items: vec![Ok(n)],
                next: Some(7),
                fingerprint: None,
            })
        });
        let items = block_on(s.collect::<Vec<_>>());
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(Error::Pagination { .. })));
    }

    #[test]
    fn a_repeated_page_under_a_new_cursor_ends_with_an_error() {
        let s = paginate(Marketplace::Magalu, 0u32, |n| async move {
            Ok(Page {
                items: vec![Ok(1)],
                next: Some(n + 1),
                fingerprint: Some("same".into()),
            })
        });
        let items = block_on(s.collect::<Vec<_>>());
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(Error::Pagination { .. })));
    }

    #[test]
    fn an_empty_page_ends_even_with_a_cursor() {
        let s = paginate(Marketplace::Magalu, 0u32, |n| async move {
            Ok(Page::<u32, u32> {
                items: vec![],
                next: Some(n + 1),
                fingerprint: None,
            })
        });
        assert!(block_on(s.collect::<Vec<_>>()).is_empty());
    }
}
