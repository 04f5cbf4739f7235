//! Webhook endpoints in the store, on SQLite and on PostgreSQL alike: an endpoint takes
//! only the events committed after it (its filter applied, once however many processes
//! take them), lanes come out as prefixes in `seq` order, a claim is exclusive, a retry
//! holds its lane back while a final failure does not, `410` and a failing streak
//! disable with a `webhook.disabled` event, replays start new rounds with the same
//! events, rotation keeps the old secret for its while, and retention drops the log.

use chrono::{Duration, Utc};
use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::sync::backend::Dialect;
use marketplace_inbox::sync::{
    self, Attempt, DeliveryOutcome, Due, EventFilter, Replay, SqlStore, SqliteStore,
};
use marketplace_inbox::*;

mod common;
#[path = "support/postgres.rs"]
mod pg;

fn attempt(d: &Due, status: Option<u16>) -> Attempt {
    Attempt {
        id: 0,
        webhook: d.webhook.clone(),
        seq: d.seq,
        attempt: d.attempts + 1,
        status,
        error: None,
        at: Utc::now(),
        next_attempt_at: None,
    }
}

/// The endpoint `id` as it stands, taking its new events.
async fn fan<B: Dialect>(store: &SqlStore<B>, id: &str, limit: usize) -> usize {
    let hook = store.webhook(id).await.unwrap().unwrap();
    store.fan_out(&hook, limit).await.unwrap()
}

/// The endpoint `id` as it stands, replaying `replay`.
async fn replay<B: Dialect>(store: &SqlStore<B>, id: &str, replay: &Replay) -> u64 {
    let hook = store.webhook(id).await.unwrap().unwrap();
    store.replay_webhook(&hook, replay).await.unwrap()
}

/// The first delivery due now for `webhook`, claimed from `now` until `until`.
async fn claim_next<B: Dialect>(
    store: &SqlStore<B>,
    webhook: &str,
    now: chrono::DateTime<Utc>,
    until: chrono::DateTime<Utc>,
) -> Due {
    let due = store
        .due_deliveries(Utc::now(), 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.webhook == webhook)
        .unwrap();
    let claimed = store
        .claim_deliveries(std::slice::from_ref(&due), now, until)
        .await
        .unwrap();
    assert_eq!(claimed, std::slice::from_ref(&due));
    due
}

async fn exercise<B: Dialect>(store: &SqlStore<B>, sandbox: &Sandbox) {
    let config = sandbox.accounts_config();
    let entry = common::sandbox_account(&config, Vendor::Allegro, |_| {});
    let account = Account::from_config(&entry).unwrap();
    // An event before the endpoints: none of them takes it.
    store
        .append_event(
            &entry.name,
            Marketplace::Allegro,
            "account.connected",
            &serde_json::json!({"name": entry.name}),
        )
        .await
        .unwrap();
    let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let created = EventFilter {
        types: Some(vec!["message.created".into()]),
        accounts: None,
    };
    let w1 = store
        .create_webhook("wh_1", "https://a.example/h", &created, None, &secret)
        .await
        .unwrap();
    let others = EventFilter {
        types: None,
        accounts: Some(vec!["someone-else".into()]),
    };
    let w2 = store
        .create_webhook("wh_2", "https://b.example/h", &others, Some("x"), &secret)
        .await
        .unwrap();
    assert_eq!(w1.cursor, 1);
    assert_eq!(w1.state, "enabled");
    assert!(
        !format!("{w1:?}").contains("MfKQ9r8"),
        "Debug shows no secret"
    );
    assert!(w1.to_json().get("secret").is_none());

    sync::sync_account(&account, store).await.unwrap();
    let messages = store.events_after(1, &created, 10_000).await.unwrap().len();
    assert!(messages >= 4, "{messages}");
    // Taken once, however often (and by however many processes) fan-out runs.
    let stale = store.webhook("wh_1").await.unwrap().unwrap();
    assert_eq!(fan(store, "wh_1", 3).await, 3);
    assert_eq!(
        store.fan_out(&stale, 10_000).await.unwrap(),
        0,
        "its cursor moved since it was read"
    );
    assert_eq!(fan(store, "wh_1", 10_000).await, messages - 3);
    assert_eq!(fan(store, "wh_1", 10_000).await, 0);
    assert_eq!(fan(store, "wh_2", 10_000).await, 0, "not its account");
    assert_eq!(
        store.webhook("wh_2").await.unwrap().unwrap().cursor,
        store.last_change().await.unwrap()
    );

    // Lanes: each conversation's events in seq order, every one due.
    let now = Utc::now();
    let due = store.due_deliveries(now, 1000).await.unwrap();
    assert_eq!(due.len(), messages);
    for pair in due.windows(2) {
        if pair[0].lane == pair[1].lane {
            assert!(pair[0].seq < pair[1].seq);
        }
    }
    let until = now + Duration::seconds(40);
    let claimed = store.claim_deliveries(&due, now, until).await.unwrap();
    assert_eq!(claimed, due);
    assert!(store
        .claim_deliveries(&due, now, until)
        .await
        .unwrap()
        .is_empty());
    assert!(store.due_deliveries(now, 1000).await.unwrap().is_empty());

    // The first lane's head fails and waits an hour; the rest of that lane waits with
    // it; every other lane is delivered.
    let lane = due[0].lane.clone();
    let later = now + Duration::hours(1);
    let mut finished = vec![(
        Attempt {
            next_attempt_at: Some(later),
            ..attempt(&due[0], Some(500))
        },
        DeliveryOutcome::Retry(later),
    )];
    let held: Vec<Due> = due[1..]
        .iter()
        .filter(|d| d.lane == lane)
        .cloned()
        .collect();
    for d in due[1..].iter().filter(|d| d.lane != lane) {
        finished.push((attempt(d, Some(204)), DeliveryOutcome::Delivered));
    }
    let disabled = store
        .finish_deliveries(&finished, now - Duration::days(5))
        .await
        .unwrap();
    assert!(disabled.is_empty());
    store.release_deliveries(&held).await.unwrap();
    assert!(store.due_deliveries(now, 1000).await.unwrap().is_empty());
    let after_an_hour = store
        .due_deliveries(later + Duration::seconds(1), 1000)
        .await
        .unwrap();
    assert_eq!(after_an_hour.len(), 1 + held.len());
    assert_eq!(after_an_hour[0].seq, due[0].seq);
    assert_eq!(after_an_hour[0].attempts, 1);
    let tried = store.webhook_attempts("wh_1", None, 1000).await.unwrap();
    assert_eq!(tried.len(), finished.len());
    let head = tried.iter().find(|a| a.seq == due[0].seq).unwrap();
    assert_eq!(head.status, Some(500));
    assert!(head.next_attempt_at.is_some());
    // Paged newest first.
    let first = store.webhook_attempts("wh_1", None, 2).await.unwrap();
    let next = store
        .webhook_attempts("wh_1", Some(first[1].id), 1000)
        .await
        .unwrap();
    assert_eq!(first.len() + next.len(), tried.len());
    assert!(first[0].id > first[1].id && first[1].id > next[0].id);
    let streak = store.webhook("wh_1").await.unwrap().unwrap().failing_since;
    assert!(
        streak.is_none(),
        "a later delivery ended the failing streak"
    );

    // A final failure no longer holds its lane back.
    let head = after_an_hour[0].clone();
    let t = later + Duration::seconds(1);
    assert_eq!(
        store
            .claim_deliveries(std::slice::from_ref(&head), t, t + Duration::seconds(40))
            .await
            .unwrap()
            .len(),
        1
    );
    store
        .finish_deliveries(
            &[(attempt(&head, None), DeliveryOutcome::Failed)],
            now - Duration::days(5),
        )
        .await
        .unwrap();
    let now_due = store.due_deliveries(now, 1000).await.unwrap();
    assert_eq!(now_due.len(), held.len());

    // Replay: a delivered event and the failed one come back with their seqs, in a
    // new round; replay after 0 takes every message.created again.
    let delivered = finished[1].0.seq;
    assert_eq!(
        replay(
            store,
            "wh_1",
            &Replay::Events(vec![delivered, head.seq, 999_999])
        )
        .await,
        2
    );
    let replayed = store.due_deliveries(Utc::now(), 1000).await.unwrap();
    let again = replayed.iter().find(|d| d.seq == delivered).unwrap();
    assert_eq!((again.attempts, again.round_start), (1, 1));
    let failed_again = replayed.iter().find(|d| d.seq == head.seq).unwrap();
    assert_eq!((failed_again.attempts, failed_again.round_start), (2, 2));
    assert_eq!(
        replay(store, "wh_1", &Replay::After(0)).await as usize,
        messages
    );

    // 410: the endpoint is disabled, with an event; so is one failing for 5 days.
    store
        .create_webhook(
            "wh_3",
            "https://c.example/h",
            &EventFilter::default(),
            None,
            &secret,
        )
        .await
        .unwrap();
    store
        .append_event(
            &entry.name,
            Marketplace::Allegro,
            "account.reauthorize",
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    assert_eq!(fan(store, "wh_3", 100).await, 1);
    let gone = claim_next(store, "wh_3", now, until).await;
    let disabled = store
        .finish_deliveries(
            &[(attempt(&gone, Some(410)), DeliveryOutcome::Gone)],
            now - Duration::days(5),
        )
        .await
        .unwrap();
    assert_eq!(disabled, ["wh_3"]);
    assert_eq!(
        store.webhook("wh_3").await.unwrap().unwrap().state,
        "disabled"
    );
    let dropped = EventFilter {
        types: Some(vec!["webhook.disabled".into()]),
        accounts: None,
    };
    let events = store.events_after(0, &dropped, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["id"], "wh_3");
    assert_eq!(events[0]["data"]["reason"], "gone");
    assert!(events[0]["data"].get("secret").is_none());
    // wh_1: failing since a retry; a second one past the 5 days disables it.
    let d = claim_next(store, "wh_1", now, until).await;
    let disabled = store
        .finish_deliveries(
            &[(attempt(&d, Some(500)), DeliveryOutcome::Retry(later))],
            now - Duration::days(5),
        )
        .await
        .unwrap();
    assert!(disabled.is_empty());
    assert!(store
        .webhook("wh_1")
        .await
        .unwrap()
        .unwrap()
        .failing_since
        .is_some());
    let d2 = claim_next(store, "wh_1", now, until).await;
    let disabled = store
        .finish_deliveries(
            &[(attempt(&d2, Some(500)), DeliveryOutcome::Retry(later))],
            Utc::now() + Duration::seconds(1),
        )
        .await
        .unwrap();
    assert_eq!(disabled, ["wh_1"]);
    assert_eq!(store.events_after(0, &dropped, 10).await.unwrap().len(), 2);
    // Disabled endpoints have nothing due; enabled again, the streak starts afresh.
    assert!(store
        .due_deliveries(later + Duration::hours(2), 1000)
        .await
        .unwrap()
        .iter()
        .all(|d| d.webhook != "wh_1"));
    let change = sync::WebhookChange {
        state: Some("enabled".into()),
        ..Default::default()
    };
    let back = store
        .update_webhook("wh_1", &change)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.state.as_str(), back.failing_since), ("enabled", None));

    // Rotation: the old secret signs until its time.
    let rotated = store
        .rotate_webhook(
            "wh_1",
            &Secret::new("whsec_bmV3"),
            now + Duration::hours(24),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.signing_secrets(now).len(), 2);
    assert_eq!(rotated.signing_secrets(now + Duration::hours(25)).len(), 1);
    assert_eq!(rotated.signing_secrets(now)[0].expose(), "whsec_bmV3");

    // Removing an endpoint drops what it was owed; retention drops the log.
    assert!(store.delete_webhook("wh_1").await.unwrap());
    assert!(!store.delete_webhook("wh_1").await.unwrap());
    assert!(store
        .due_deliveries(later + Duration::days(1), 1000)
        .await
        .unwrap()
        .iter()
        .all(|d| d.webhook != "wh_1"));
    assert!(store
        .webhook_backlogs()
        .await
        .unwrap()
        .iter()
        .all(|b| b.webhook != "wh_1"));
    assert_eq!(w2.description.as_deref(), Some("x"));
    // Retention keeps only what an endpoint still owes (wh_3's, disabled by its 410).
    let owed: Vec<u64> = store
        .due_deliveries(later + Duration::days(1), 1000)
        .await
        .unwrap()
        .iter()
        .map(|d| d.seq)
        .collect();
    let before = store
        .events_after(0, &EventFilter::default(), 100_000)
        .await
        .unwrap()
        .len();
    let pruned = store
        .prune_events(Utc::now() + Duration::days(1))
        .await
        .unwrap();
    let left: Vec<u64> = store
        .events_after(0, &EventFilter::default(), 100_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        left,
        [gone.seq],
        "only the event an endpoint still owes is kept"
    );
    assert!(owed.is_empty(), "a disabled endpoint has nothing due");
    assert_eq!(pruned as usize, before - 1);
}

fn small() -> Config {
    Config {
        conversations: 2,
        messages_per_conversation: 2,
        ..Config::default()
    }
}

#[tokio::test]
async fn sqlite_keeps_webhook_endpoints_queues_and_attempts() {
    let sandbox = Sandbox::start(small()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("inbox-webhook-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("inbox.db")).await.unwrap();
    exercise(&store, &sandbox).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn postgres_keeps_webhook_endpoints_queues_and_attempts() {
    let Some(db) = pg::database("webhook_store").await else {
        return;
    };
    let sandbox = Sandbox::start(small()).await.unwrap();
    let store = sync::PostgresStore::connect(&db.url, 2).await.unwrap();
    exercise(&store, &sandbox).await;
}
