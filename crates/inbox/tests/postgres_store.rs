//! The sync engine on `PostgresStore`, against the PostgreSQL server the machine runs
//! (each test in a database of its own; see `support/postgres.rs`): every marketplace
//! mirrored exactly once, compare-and-set between two runners, malformed elements kept
//! and cleared, concurrent migrations, and the same rows as the SQLite store.

use std::collections::HashSet;

use inbox_sandbox::{Config, Injection, Sandbox, Vendor};
use marketplace_inbox::sync::{
    self, Change, Event, PostgresStore, SqliteStore, Store, StoreErrorKind,
};
use marketplace_inbox::*;
use serde_json::json;

mod common;
#[path = "support/gated.rs"]
mod gated;
#[path = "support/migrated.rs"]
mod migrated;
#[path = "support/postgres.rs"]
mod pg;

async fn sandbox() -> Sandbox {
    Sandbox::start(Config {
        conversations: 3,
        messages_per_conversation: 2,
        ..Config::default()
    })
    .await
    .unwrap()
}

fn new_messages(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Message(Event::NewMessage, m) => {
                Some(format!("{}/{}", m.conversation.id, m.id))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_marketplace_is_mirrored_exactly_once_like_on_sqlite() {
    let Some(db) = pg::database("mirror").await else {
        return;
    };
    let store = PostgresStore::connect(&db.url, 4).await.unwrap();
    let lite = SqliteStore::in_memory().await.unwrap();
    let sandbox = sandbox().await;
    for vendor in Vendor::ALL {
        let account = common::unpaced_account(&sandbox, vendor);
        let first = sync::sync_account(&account, &store).await.unwrap();
        let mirrored = new_messages(&first.changes);
        let unique: HashSet<&String> = mirrored.iter().collect();
        assert_eq!(unique.len(), mirrored.len(), "{vendor:?}: nothing twice");
        assert!(mirrored.len() >= 6, "{vendor:?}: {mirrored:?}");
        // SQLite, from the same sandbox, finds exactly the same messages.
        let on_sqlite = sync::sync_account(&account, &lite).await.unwrap();
        let mut a = mirrored.clone();
        let mut b = new_messages(&on_sqlite.changes);
        a.sort();
        b.sort();
        assert_eq!(a, b, "{vendor:?}");
        // A quiet pass finds nothing; a buyer's message is found once.
        let quiet = sync::sync_account(&account, &store).await.unwrap();
        assert!(new_messages(&quiet.changes).is_empty(), "{vendor:?}");
        let conversation = mirrored[0].split('/').next().unwrap().to_string();
        assert!(sandbox.buyer_writes(vendor, &conversation, "Olá, ainda aguardo"));
        let next = sync::sync_account(&account, &store).await.unwrap();
        let found = new_messages(&next.changes);
        assert_eq!(found.len(), 1, "{vendor:?}: {found:?}");
        assert!(found[0].starts_with(&format!("{conversation}/")));
        let count = store.message_count(Some(account.name())).await.unwrap();
        assert_eq!(count, mirrored.len() as u64 + 1, "{vendor:?}");
        let checkpoint = store.checkpoint(account.name()).await.unwrap();
        // Two commits: the quiet pass wrote nothing at all.
        assert_eq!(checkpoint.version, 2, "{vendor:?}: one version per commit");
    }
    store.pool().close().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_of_one_account_one_commits_the_other_conflicts() {
    let Some(db) = pg::database("race").await else {
        return;
    };
    // Two processes' worth of stores: two pools on one database.
    let a_store = PostgresStore::connect(&db.url, 2).await.unwrap();
    let b_store = PostgresStore::connect(&db.url, 2).await.unwrap();
    let sandbox = sandbox().await;
    for vendor in Vendor::ALL {
        let account = common::unpaced_account(&sandbox, vendor);
        let mut stored = HashSet::new();
        for round in 0..3 {
            assert!(sandbox.buyer_writes(
                vendor,
                common::example(vendor),
                &format!("round {round}")
            ));
            // Both read everything, then commit at the same moment.
            let both = std::sync::Arc::new(tokio::sync::Barrier::new(2));
            let a = gated::Gated::new(&a_store, vec![both.clone()]);
            let b = gated::Gated::new(&b_store, vec![both]);
            let (first, second) = tokio::join!(
                sync::sync_account(&account, &a),
                sync::sync_account(&account, &b)
            );
            let (won, lost) = match (first, second) {
                (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
                (a, b) => panic!("{vendor:?}: exactly one commits: {a:?} {b:?}"),
            };
            assert!(
                matches!(&lost, Error::Store(e) if e.kind() == StoreErrorKind::Conflict),
                "{lost:?}"
            );
            assert!(lost.is_retryable());
            for id in new_messages(&won.changes) {
                assert!(stored.insert(id.clone()), "{vendor:?}: {id} twice");
            }
            let again = sync::sync_account(&account, &b_store).await.unwrap();
            assert!(new_messages(&again.changes).is_empty(), "{vendor:?}");
        }
        let count = a_store.message_count(Some(account.name())).await.unwrap();
        assert_eq!(count, stored.len() as u64, "{vendor:?}");
    }
    a_store.pool().close().await;
    b_store.pool().close().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_elements_are_kept_raw_and_reported_once() {
    let Some(db) = pg::database("malformed").await else {
        return;
    };
    let store = PostgresStore::connect(&db.url, 2).await.unwrap();
    let sandbox = sandbox().await;
    let vendor = Vendor::Ozon;
    let bad = json!({"chat": {"chat_id": ["not", "an", "id"]}, "unread_count": "lots"});
    sandbox.inject(Injection {
        vendor,
        path: "/v3/chat/list".into(),
        body_contains: None,
        array: "/chats".into(),
        raw: bad.clone(),
    });
    let account = common::unpaced_account(&sandbox, vendor);
    let first = sync::sync_account(&account, &store).await.unwrap();
    let reported: Vec<&sync::Malformed> = first
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Malformed(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 1, "{:?}", first.changes);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reported[0].raw).unwrap(),
        bad
    );
    assert!(
        new_messages(&first.changes).len() >= 6,
        "the rest is mirrored"
    );
    let kept = store.malformed(account.name()).await.unwrap();
    assert_eq!(kept.len(), 1);
    // Reported once: the next pass is quiet.
    let quiet = sync::sync_account(&account, &store).await.unwrap();
    assert!(quiet
        .changes
        .iter()
        .all(|c| !matches!(c, Change::Malformed(_))));
    sandbox.clear_injections();
    store.pool().close().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_opening_one_database_at_once_migrate_it_once() {
    let Some(db) = pg::database("migrate").await else {
        return;
    };
    let opened =
        futures::future::join_all((0..6).map(|_| PostgresStore::connect(&db.url, 1))).await;
    for store in &opened {
        assert!(store.is_ok(), "{:?}", store.as_ref().err());
    }
    let store = PostgresStore::connect(&db.url, 1).await.unwrap();
    let versions: Vec<(i64,)> = sqlx::query_as("SELECT version FROM inbox_schema")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(versions, [(7,)]);
    for s in opened.into_iter().flatten() {
        s.pool().close().await;
    }
    store.pool().close().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_answer_is_an_unavailable_store_without_the_password() {
    let err = PostgresStore::connect("postgres://inbox:hunter2@127.0.0.1:9/none", 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_database_migrates_with_nothing_lost_and_syncs_on() {
    let Some(db) = pg::database("v3").await else {
        return;
    };
    // Dumped (pg_dump --inserts) from a database the version-3 code wrote with
    // `inbox --sandbox --json sync` (294 messages), plus a pending notification.
    let dump = include_str!("fixtures/sync-v3-postgres.sql");
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(dump))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
    }
    let before: Vec<(String, String, String, String)> = pg::rows(
        &db.url,
        "SELECT account, conversation, id, created_at FROM messages ORDER BY account, conversation, id",
    )
    .await
    .unwrap();
    assert_eq!(before.len(), 294);
    let store = PostgresStore::connect(&db.url, 2).await.unwrap();
    let after: Vec<(String, String, String, chrono::DateTime<chrono::Utc>)> = pg::rows(
        &db.url,
        "SELECT account, conversation, id, created_at FROM messages ORDER BY account, conversation, id",
    )
    .await
    .unwrap();
    assert_eq!(after.len(), 294);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.0, &b.1, &b.2), (&a.0, &a.1, &a.2));
        let t = chrono::DateTime::parse_from_rfc3339(&b.3).unwrap();
        assert_eq!(t.timestamp_micros(), a.3.timestamp_micros(), "{b:?}");
    }
    let versions: Vec<(i64,)> = pg::rows(&db.url, "SELECT version FROM inbox_schema")
        .await
        .unwrap();
    assert_eq!(versions, [(7,)]);
    let pending = store.journal_pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, 1);
    // The journal numbers on after the copied entries.
    let next = store
        .journal_add(sync::journal::NewEntry {
            marketplace: Marketplace::Ozon,
            account: Some("ozon".into()),
            received_at: chrono::Utc::now(),
            raw: "{}".into(),
            dedup_key: "ozon:k2".into(),
            target: None,
            state: sync::journal::JournalState::Done,
        })
        .await
        .unwrap();
    assert_eq!(next, Some(2));
    let checkpoint = store.checkpoint("allegro").await.unwrap();
    assert_eq!(checkpoint.version, 1);

    migrated::syncs_on_with_nothing_twice(&store).await;
    assert_eq!(store.message_count(None).await.unwrap(), 298);
    store.pool().close().await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_journal_insert_is_answered_while_a_large_commit_is_in_flight() {
    let Some(db) = pg::database("journal_race").await else {
        return;
    };
    let store = PostgresStore::connect(&db.url, 4).await.unwrap();
    let sandbox = Sandbox::start(Config {
        conversations: 120,
        messages_per_conversation: 10,
        ..Config::default()
    })
    .await
    .unwrap();
    let account = common::unpaced_account(&sandbox, Vendor::Magalu);
    let took = gated::journal_while_committing(&store, &account).await;
    assert!(took < std::time::Duration::from_secs(10));
    assert_eq!(store.journal_pending().await.unwrap().len(), 1);
    assert_eq!(store.message_count(None).await.unwrap(), 120 * 10 + 1);
    store.pool().close().await;
    db.drop_now().await;
}

/// The database fails right after the vendor rotated the tokens (every connection of
/// the store cut between the vendor's answer and the write): the rotated pair is neither
/// dropped nor lost — the refresh answers it, and it reaches the store, where another
/// process finds it without calling the vendor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_after_the_token_answer_keeps_the_rotated_pair() {
    use inbox_core::{Secret, Tokens};
    use marketplace_inbox::TokenStore;
    let Some(db) = pg::database("token_cut").await else {
        return;
    };
    let key = TokenKey::from_hex(&"42".repeat(32)).unwrap();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let store = PostgresTokens::new(pool.clone(), key.clone())
        .await
        .unwrap();
    let held = Tokens {
        access_token: None,
        refresh_token: Secret::new("refresh-1".to_string()),
        expires_at: None,
    };
    let url = db.url.clone();
    let grant: inbox_core::Grant<'_> = Box::new(move |refresh: Secret| {
        Box::pin(async move {
            assert_eq!(refresh.expose(), "refresh-1");
            // The vendor answered; now every connection of this database is cut.
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .execute(&mut admin)
            .await
            .unwrap();
            admin.close().await.ok();
            Ok(Tokens {
                access_token: Some(Secret::new("access-2".to_string())),
                refresh_token: Secret::new("refresh-2".to_string()),
                expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(6)),
            })
        })
    });
    let got = store
        .refresh_exclusively("allegro", held.clone(), grant)
        .await
        .expect("the rotated pair, not an error");
    assert_eq!(got.refresh_token.expose(), "refresh-2");
    // Another process (a store of its own) finds the rotated pair and calls no vendor.
    let other = PostgresTokens::new(sqlx::PgPool::connect(&db.url).await.unwrap(), key)
        .await
        .unwrap();
    let never: inbox_core::Grant<'_> =
        Box::new(|_| Box::pin(async { panic!("the vendor was called again") }));
    let found = other
        .refresh_exclusively("allegro", held, never)
        .await
        .unwrap();
    assert_eq!(found.refresh_token.expose(), "refresh-2");
    assert_eq!(found.access_token.unwrap().expose(), "access-2");
    pool.close().await;
    db.drop_now().await;
}
