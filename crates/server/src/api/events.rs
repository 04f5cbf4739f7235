//! `/v1/events` and `/v1/events/stream` (`events`): the store's event log as a feed to
//! page through by `seq`, and as Server-Sent Events resumed with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use marketplace_inbox::sync::{check_event_types, EventFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::problem::Problem;
use super::ApiState;

/// How often a stream looks for new events.
const POLL: Duration = Duration::from_millis(250);

/// A comment a quiet stream sends to keep its connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /v1/events` and `/v1/events/stream` query.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
    types: Option<String>,
    account: Option<String>,
    limit: Option<String>,
}

impl EventsQuery {
    /// `after`, a `seq` (none: `None`); a 400 for anything else.
    fn after(&self) -> Result<Option<u64>, Problem> {
        self.after
            .as_deref()
            .map(|a| {
                a.parse::<u64>().map_err(|_| {
                    Problem::bad_request("after must be an event's seq (a whole number)")
                })
            })
            .transpose()
    }

    /// The events it asks for, within the accounts `caller` sees.
    fn filter(&self, caller: &Caller) -> Result<EventFilter, Problem> {
        let types = match &self.types {
            None => None,
            Some(list) => {
                let wanted: Vec<String> = list
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect();
                check_event_types(&wanted).map_err(Problem::bad_request)?;
                Some(wanted)
            }
        };
        let accounts = caller.accounts_named(self.account.as_deref());
        Ok(EventFilter { types, accounts })
    }

    /// The page size, 1 to 1000 (default 100).
    fn limit(&self) -> Result<usize, Problem> {
        super::limit_of(self.limit.as_deref(), 100, 1000)
    }
}

/// `GET /v1/events` (`events`): events after `after` (0 when not given), oldest first;
/// `next_after` resumes the walk (on an empty page, the `after` given).
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(query): Query<EventsQuery>,
) -> Result<Json<Value>, Problem> {
    caller.require("events")?;
    let after = query.after()?.unwrap_or(0);
    let filter = query.filter(&caller)?;
    let limit = query.limit()?;
    let events = state
        .directory
        .events_after(after, &filter, limit)
        .await
        .map_err(|e| Problem::store(&e))?;
    let next = events
        .last()
        .and_then(|e| e.get("seq"))
        .and_then(Value::as_u64)
        .unwrap_or(after);
    Ok(Json(json!({"data": events, "next_after": next})))
}

/// `GET /v1/events/stream` (`events`): Server-Sent Events (`id:` the seq, `event:` the
/// type, `data:` the event), from after `Last-Event-ID` (or `after`; with neither, from
/// the next event on); a comment after 15 s without an event; the stream ends when the
/// service stops.
pub async fn stream(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    caller.require("events")?;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| Problem::bad_request("Last-Event-ID must be an event's seq"))
        })
        .transpose()?;
    let after = match resumed.or(query.after()?) {
        Some(after) => after,
        None => state
            .directory
            .last_event()
            .await
            .map_err(|e| Problem::store(&e))?,
    };
    let filter = query.filter(&caller)?;
    let directory = state.directory.clone();
    let stopped = Box::pin(crate::shutdown_signal());
    let signal = directory.event_signal();
    let start = (after, VecDeque::<Value>::new(), stopped, signal);
    let events = futures::stream::unfold(
        start,
        move |(mut after, mut queue, mut stopped, mut signal)| {
            let directory = directory.clone();
            let filter = filter.clone();
            async move {
                loop {
                    if let Some(event) = queue.pop_front() {
                        let seq = event.get("seq").and_then(Value::as_u64).unwrap_or(after);
                        after = after.max(seq);
                        let kind = event
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("event")
                            .to_string();
                        let sse = Event::default()
                            .id(seq.to_string())
                            .event(kind)
                            .data(event.to_string());
                        return Some((Ok(sse), (after, queue, stopped, signal)));
                    }
                    if let Ok(page) = directory.events_after(after, &filter, 100).await {
                        queue.extend(page);
                    }
                    if queue.is_empty() {
                        tokio::select! {
                            _ = signal.changed() => {}
                            _ = tokio::time::sleep(POLL) => {}
                            _ = &mut stopped => return None,
                        }
                    }
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
