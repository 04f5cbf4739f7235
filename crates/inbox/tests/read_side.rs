//! The mirror's read side on SQLite and on PostgreSQL alike, after a sync of the
//! sandbox's four marketplaces: conversation pages by keyset walk the same as one page
//! (newest activity first, none twice), filters, a conversation's messages both ways,
//! unread counts, sends claimed once per key, a conversation marked read, and the event
//! log in commit order.

use chrono::Utc;
use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::sync::backend::Dialect;
use marketplace_inbox::sync::{
    self, Claim, ConversationFilter, EventFilter, SendRecord, SqlStore, SqliteStore,
};
use marketplace_inbox::*;

mod common;
#[path = "support/postgres.rs"]
mod pg;

async fn exercise<B: Dialect>(store: &SqlStore<B>, sandbox: &Sandbox) {
    let config = sandbox.accounts_config();
    let mut names = Vec::new();
    for vendor in [
        Vendor::Allegro,
        Vendor::MercadoLibre,
        Vendor::Magalu,
        Vendor::Ozon,
    ] {
        let entry = common::sandbox_account(&config, vendor, |_| {});
        names.push(entry.name.clone());
        let account = Account::from_config(&entry).unwrap();
        sync::sync_account(&account, store).await.unwrap();
    }
    let all = store
        .conversations_page(&ConversationFilter::default(), None, 1000)
        .await
        .unwrap();
    assert!(all.len() >= 8, "{}", all.len());
    for pair in all.windows(2) {
        let (a, b) = (&pair[0].key, &pair[1].key);
        let ordered = match (a.at, b.at) {
            (Some(x), Some(y)) => x > y || (x == y && (&a.account, &a.id) < (&b.account, &b.id)),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => (&a.account, &a.id) < (&b.account, &b.id),
        };
        assert!(ordered, "{a:?} before {b:?}");
    }
    // Walked three at a time: the same conversations in the same order.
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .conversations_page(&ConversationFilter::default(), after.as_ref(), 3)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|c| c.key.clone());
        walked.extend(page);
    }
    let keys = |v: &[sync::StoredConversation]| v.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&walked), keys(&all));
    for c in &all {
        assert_eq!(
            c.json["ref"],
            format!(
                "{}@{}:{}",
                c.json["marketplace"].as_str().unwrap(),
                c.key.account,
                c.key.id
            )
        );
        assert!(c.json.get("vendor").is_some());
    }
    // Filters.
    let ozon = store
        .conversations_page(
            &ConversationFilter {
                marketplace: Some(Marketplace::Ozon),
                ..ConversationFilter::default()
            },
            None,
            1000,
        )
        .await
        .unwrap();
    assert!(!ozon.is_empty() && ozon.iter().all(|c| c.marketplace == Marketplace::Ozon));
    let none = store
        .conversations_page(
            &ConversationFilter {
                accounts: Some(Vec::new()),
                ..ConversationFilter::default()
            },
            None,
            1000,
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let unread = store
        .conversations_page(
            &ConversationFilter {
                unread: Some(true),
                ..ConversationFilter::default()
            },
            None,
            1000,
        )
        .await
        .unwrap();
    let read = store
        .conversations_page(
            &ConversationFilter {
                unread: Some(false),
                ..ConversationFilter::default()
            },
            None,
            1000,
        )
        .await
        .unwrap();
    assert_eq!(unread.len() + read.len(), all.len());
    let counts = store.unread_counts(None).await.unwrap();
    let counted: u64 = counts.iter().map(|c| c.conversations).sum();
    assert_eq!(counted, unread.len() as u64);

    // A conversation's messages, two at a time, both ways.
    let c = &all[0].key;
    let everything = store
        .messages_page(&c.account, &c.id, false, None, 1000)
        .await
        .unwrap();
    assert!(!everything.is_empty());
    for newest_first in [false, true] {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .messages_page(&c.account, &c.id, newest_first, after.as_ref(), 2)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|m| m.key.clone());
            ids.extend(page.into_iter().map(|m| m.key.id));
        }
        let mut want: Vec<String> = everything.iter().map(|m| m.key.id.clone()).collect();
        if newest_first {
            want.reverse();
        }
        assert_eq!(ids, want);
    }
    let one = &everything[0];
    let found = store
        .stored_message(&c.account, &c.id, &one.key.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.json, one.json);

    // Marked read in the mirror: no longer unread.
    if let Some(u) = unread.first() {
        assert!(store
            .mark_read_in_mirror(&u.key.account, &u.key.id)
            .await
            .unwrap());
        let now = store
            .stored_conversation(&u.key.account, &u.key.id)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(now.json["unread"], serde_json::json!(true));
        assert!(now.json["unread_count"].as_u64().unwrap_or(0) == 0);
    }

    // A send's key is claimed once.
    let record = SendRecord {
        id: "snd_1".into(),
        api_key: "key_1".into(),
        idempotency_key: "k".into(),
        body_hash: "h".into(),
        account: names[0].clone(),
        reference: "allegro@allegro:x".into(),
        state: "pending".into(),
        message_id: None,
        error: None,
        answer: None,
        created_at: Utc::now(),
        running_until: Some(Utc::now() + chrono::Duration::seconds(60)),
    };
    assert!(matches!(
        store.claim_send(&record).await.unwrap(),
        Claim::New(_)
    ));
    let again = SendRecord {
        id: "snd_2".into(),
        ..record.clone()
    };
    match store.claim_send(&again).await.unwrap() {
        Claim::Existing(r) => assert_eq!(r.id, "snd_1"),
        other => panic!("{other:?}"),
    }
    assert!(
        !store.take_over_send("snd_1", Utc::now()).await.unwrap(),
        "still held"
    );
    store
        .finish_send("snd_1", "sent", Some("m1"), None, "{}")
        .await
        .unwrap();
    let done = store.send_record("snd_1").await.unwrap().unwrap();
    assert_eq!(
        (done.state.as_str(), done.message_id.as_deref()),
        ("sent", Some("m1"))
    );

    // An event appended beside the mirror's changes, with its object.
    let seq = store
        .append_event(
            &names[0],
            Marketplace::Allegro,
            "send.updated",
            &serde_json::json!({"id": "snd_1", "state": "sent"}),
        )
        .await
        .unwrap();
    let appended = store
        .events_after(seq - 1, &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(appended.len(), 1);
    assert_eq!(appended[0]["type"], "send.updated");
    assert_eq!(appended[0]["data"]["state"], "sent");
    assert!(store
        .append_event(
            &names[0],
            Marketplace::Allegro,
            "nothing",
            &serde_json::json!({})
        )
        .await
        .is_err());
    // The event log: every change once, in seq order, as many as committed.
    let events = store
        .events_after(0, &EventFilter::default(), 100_000)
        .await
        .unwrap();
    let last = store.last_change().await.unwrap();
    assert_eq!(events.len() as u64, last);
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let created = store
        .events_after(
            0,
            &EventFilter {
                types: Some(vec!["message.created".into()]),
                accounts: Some(vec![names[3].clone()]),
            },
            100_000,
        )
        .await
        .unwrap();
    assert!(!created.is_empty());
    assert!(created
        .iter()
        .all(|e| e["type"] == "message.created" && e["account"] == names[3].as_str()));
}

#[tokio::test]
async fn sqlite_reads_pages_filters_sends_and_events() {
    let sandbox = Sandbox::start(Config {
        conversations: 4,
        messages_per_conversation: 3,
        ..Config::default()
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("inbox-read-side-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("inbox.db")).await.unwrap();
    exercise(&store, &sandbox).await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn postgres_reads_pages_filters_sends_and_events() {
    let Some(db) = pg::database("read_side").await else {
        return;
    };
    let sandbox = Sandbox::start(Config {
        conversations: 4,
        messages_per_conversation: 3,
        ..Config::default()
    })
    .await
    .unwrap();
    let store = sync::PostgresStore::connect(&db.url, 2).await.unwrap();
    exercise(&store, &sandbox).await;
    drop(store);
    db.drop_now().await;
}
