//! Sync v2 on every marketplace: a malformed element costs only itself, a time from the
//! future hides nothing, instants at chrono's limits never panic, two runners of one
//! account never both commit, a targeted sync and a step never both store a message, and
//! a version-1 database migrates and syncs on.

use std::collections::HashSet;

use inbox_sandbox::{Config, Injection, Sandbox, Vendor};
use marketplace_inbox::sync::{self, Change, Event, SqliteStore, Store, StoreErrorKind};
use marketplace_inbox::*;
use serde_json::{json, Value};

mod common;
use common::example;
#[path = "support/gated.rs"]
mod gated;
#[path = "support/migrated.rs"]
mod migrated;
use gated::Gated;
use std::sync::Arc;
use tokio::sync::Barrier;

/// A sandbox of `conversations` generated conversations of `messages` messages each.
async fn sandbox(conversations: u64, messages: u64) -> Sandbox {
    Sandbox::start(Config {
        conversations,
        messages_per_conversation: messages,
        ..Config::default()
    })
    .await
    .unwrap()
}

/// Messages of the example conversations the sandbox seeds from the vendor docs.
fn example_messages(vendor: Vendor) -> usize {
    match vendor {
        Vendor::Allegro | Vendor::MercadoLibre => 2,
        _ => 1,
    }
}

/// A generated conversation of the sandbox, by number.
fn generated(vendor: Vendor, n: u64) -> String {
    match vendor {
        Vendor::Allegro => format!("sbx{n:040}"),
        Vendor::MercadoLibre => (2_000_000_100_000_000u64 + n).to_string(),
        Vendor::Magalu => format!("6628d7a3{n:016x}"),
        Vendor::Ozon => format!("{n:08x}-a474-469f-95d5-{n:012x}"),
    }
}

fn seller(sandbox: &Sandbox) -> String {
    sandbox.accounts_config()["accounts"][1]["seller_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The path, body filter and array of `vendor`'s conversation listing.
fn conversations_at(vendor: Vendor) -> (&'static str, &'static str) {
    match vendor {
        Vendor::Allegro => ("/messaging/threads", "/threads"),
        Vendor::MercadoLibre => ("/orders/search", "/results"),
        Vendor::Magalu => ("/v0/conversations", "/results"),
        Vendor::Ozon => ("/v3/chat/list", "/chats"),
    }
}

/// Where `vendor` lists the messages of `conversation`: path, body filter, array.
fn messages_at(
    sandbox: &Sandbox,
    vendor: Vendor,
    conversation: &str,
) -> (String, Option<String>, &'static str) {
    match vendor {
        Vendor::Allegro => (
            format!("/messaging/threads/{conversation}/messages"),
            None,
            "/messages",
        ),
        Vendor::MercadoLibre => (
            format!("/messages/packs/{conversation}/sellers/{}", seller(sandbox)),
            None,
            "/messages",
        ),
        Vendor::Magalu => (
            format!("/v0/conversations/{conversation}/messages"),
            None,
            "/results",
        ),
        Vendor::Ozon => (
            "/v3/chat/history".into(),
            Some(conversation.to_string()),
            "/messages",
        ),
    }
}

/// An element of each listing that does not decode (an id that is an object).
fn broken_conversation(vendor: Vendor) -> Value {
    match vendor {
        Vendor::Ozon => json!({"chat": "not an object", "unread_count": 1}),
        Vendor::MercadoLibre => {
            json!({"id": {"not": "an id"}, "date_created": "2026-11-30T10:00:00Z"})
        }
        _ => json!({"id": {"not": "an id"}, "read": false}),
    }
}

fn broken_message(vendor: Vendor) -> Value {
    match vendor {
        Vendor::Ozon => json!({"message_id": {"not": "an id"}, "data": ["broken"]}),
        _ => json!({"id": {"not": "an id"}, "text": "broken"}),
    }
}

fn new_texts(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Message(Event::NewMessage, m) => Some(m.text.clone()),
            _ => None,
        })
        .collect()
}

fn malformed(changes: &[Change]) -> Vec<&sync::Malformed> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Malformed(m) => Some(m),
            _ => None,
        })
        .collect()
}

async fn sqlite(db: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

async fn malformed_rows(db: &std::path::Path) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT conversation, listing, raw FROM malformed ORDER BY conversation, raw")
        .fetch_all(&mut sqlite(db).await)
        .await
        .unwrap()
}

async fn user_version(db: &std::path::Path) -> i64 {
    sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut sqlite(db).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_conversation_or_message_costs_only_itself_on_every_marketplace() {
    for vendor in Vendor::ALL {
        let sandbox = sandbox(4, 3).await;
        let bad_conversation = broken_conversation(vendor);
        let bad_message = broken_message(vendor);
        let (path, array) = conversations_at(vendor);
        sandbox.inject(Injection {
            vendor,
            path: path.into(),
            body_contains: None,
            array: array.into(),
            raw: bad_conversation.clone(),
        });
        let (path, body_contains, array) = messages_at(&sandbox, vendor, example(vendor));
        sandbox.inject(Injection {
            vendor,
            path,
            body_contains,
            array: array.into(),
            raw: bad_message.clone(),
        });
        let account = common::unpaced_account(&sandbox, vendor);
        let dir = std::env::temp_dir().join(format!(
            "inbox-sync-v2-malformed-{}-{vendor:?}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("inbox.db");
        let store = SqliteStore::open(&db).await.unwrap();

        // First pass: everything else is stored and printed; each bad element reported once.
        let first = sync::sync_account(&account, &store).await.unwrap();
        let examples = example_messages(vendor);
        assert_eq!(
            new_texts(&first.changes).len(),
            4 * 3 + examples,
            "{vendor:?}"
        );
        assert_eq!(
            store.message_count(None).await.unwrap(),
            4 * 3 + examples as u64
        );
        let bad = malformed(&first.changes);
        assert_eq!(bad.len(), 2, "{vendor:?}: {bad:?}");
        let listing = bad
            .iter()
            .find(|m| m.listed == sync::Listed::Conversations)
            .unwrap();
        assert_eq!(listing.conversation, None);
        assert_eq!(
            serde_json::from_str::<Value>(&listing.raw).unwrap(),
            bad_conversation
        );
        assert_eq!(listing.marketplace.as_str(), vendor.prefix());
        let message = bad
            .iter()
            .find(|m| m.listed == sync::Listed::Messages)
            .unwrap();
        assert_eq!(
            message.conversation.as_ref().map(|c| c.id.as_str()),
            Some(example(vendor))
        );
        assert_eq!(
            serde_json::from_str::<Value>(&message.raw).unwrap(),
            bad_message
        );
        assert!(!message.error.is_empty());
        assert_eq!(malformed_rows(&db).await.len(), 2, "{vendor:?}: stored raw");

        // Next pass: exactly the new buyer messages, one in the bad element's conversation.
        let other = generated(vendor, 2);
        assert!(sandbox.buyer_writes(vendor, example(vendor), "next to the broken one"));
        assert!(sandbox.buyer_writes(vendor, &other, "elsewhere"));
        let second = sync::sync_account(&account, &store).await.unwrap();
        let mut texts = new_texts(&second.changes);
        texts.sort();
        assert_eq!(texts, ["elsewhere", "next to the broken one"], "{vendor:?}");
        assert!(malformed(&second.changes).is_empty(), "reported once");

        // A later pass: nothing.
        let third = sync::sync_account(&account, &store).await.unwrap();
        assert!(new_texts(&third.changes).is_empty(), "{vendor:?}");
        assert!(malformed(&third.changes).is_empty());

        // The vendor fixes the message: the next read of its conversation clears it.
        sandbox.clear_injections();
        assert!(sandbox.buyer_writes(vendor, example(vendor), "after the fix"));
        let fourth = sync::sync_account(&account, &store).await.unwrap();
        assert_eq!(new_texts(&fourth.changes), ["after the fix"], "{vendor:?}");
        let rows = malformed_rows(&db).await;
        assert_eq!(rows.len(), 1, "{vendor:?}: {rows:?}");
        assert_eq!(
            rows[0].0, "",
            "the conversation listing's stays until a sweep"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `raw` with every timestamp set to `to` and every id made new (`suffix` appended,
/// numbers moved up), so that it is another element of the same shape.
fn retimed(raw: &Value, to: &Value, suffix: &str) -> Value {
    match raw {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("id" | "message_id" | "chat_id", Value::String(s)) => {
                            json!(format!("{s}{suffix}"))
                        }
                        ("id" | "message_id" | "chat_id", Value::Number(n)) => {
                            json!(n.as_u64().unwrap_or(0) + 1_000_000_000_000)
                        }
                        _ => retimed(v, to, suffix),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| retimed(v, to, suffix)).collect()),
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => to.clone(),
        other => other.clone(),
    }
}

/// The vendor's raw JSON of the newest message of `conversation`.
async fn a_message(account: &Account, conversation: &str) -> Value {
    use futures::TryStreamExt;
    let messages: Vec<Message> = account
        .messages(&account.reference(conversation), MessageQuery::new())
        .try_collect()
        .await
        .unwrap();
    messages.first().unwrap().vendor.to_value()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_dated_2099_hides_none_of_the_messages_after_it() {
    for vendor in Vendor::ALL {
        let sandbox = sandbox(2, 2).await;
        let account = common::unpaced_account(&sandbox, vendor);
        let future = retimed(
            &a_message(&account, example(vendor)).await,
            &json!("2099-01-01T00:00:00Z"),
            "f",
        );
        let (path, body_contains, array) = messages_at(&sandbox, vendor, example(vendor));
        sandbox.inject(Injection {
            vendor,
            path,
            body_contains,
            array: array.into(),
            raw: future,
        });
        let store = SqliteStore::in_memory().await.unwrap();
        let first = sync::sync_account(&account, &store).await.unwrap();
        assert!(
            first
                .changes
                .iter()
                .any(|c| matches!(c, Change::Message(_, m)
                if m.created_at.format("%Y").to_string() == "2099")),
            "{vendor:?}: the message from the future is stored like any other"
        );
        for round in 0..2 {
            let text = format!("after the future, {round}");
            assert!(sandbox.buyer_writes(vendor, example(vendor), &text));
            let next = sync::sync_account(&account, &store).await.unwrap();
            assert_eq!(new_texts(&next.changes), [text], "{vendor:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_at_chronos_limits_go_through_a_step_without_a_panic() {
    let limits = [
        json!(chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis()),
        json!(chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis()),
        json!("0001-01-01T00:00:00Z"),
        json!("9999-12-31T23:59:59.999999999Z"),
    ];
    for vendor in Vendor::ALL {
        let sandbox = sandbox(2, 2).await;
        let account = common::unpaced_account(&sandbox, vendor);
        let message = a_message(&account, example(vendor)).await;
        let (path, body_contains, array) = messages_at(&sandbox, vendor, example(vendor));
        for (i, at) in limits.iter().enumerate() {
            sandbox.inject(Injection {
                vendor,
                path: path.clone(),
                body_contains: body_contains.clone(),
                array: array.into(),
                raw: retimed(&message, at, &format!("t{i}")),
            });
        }
        let store = SqliteStore::in_memory().await.unwrap();
        for round in 0..3 {
            let text = format!("round {round}");
            assert!(sandbox.buyer_writes(vendor, &generated(vendor, 1), &text));
            let synced = sync::sync_account(&account, &store).await.unwrap();
            assert!(
                new_texts(&synced.changes).contains(&text),
                "{vendor:?} round {round}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_steps_of_one_account_at_once_one_commits_the_other_conflicts() {
    for vendor in Vendor::ALL {
        let sandbox = sandbox(3, 2).await;
        let account = common::unpaced_account(&sandbox, vendor);
        let store = SqliteStore::in_memory().await.unwrap();
        let mut printed = HashSet::new();
        for round in 0..3 {
            assert!(sandbox.buyer_writes(vendor, example(vendor), &format!("round {round}")));
            // Both steps read everything, then commit at the same moment.
            let both = Arc::new(Barrier::new(2));
            let a_store = Gated::new(&store, vec![both.clone()]);
            let b_store = Gated::new(&store, vec![both]);
            let (first, second) = tokio::join!(
                sync::sync_account(&account, &a_store),
                sync::sync_account(&account, &b_store)
            );
            let (won, lost) = match (first, second) {
                (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
                (a, b) => panic!("{vendor:?}: exactly one commits: {a:?} {b:?}"),
            };
            assert!(!won.changes.is_empty());
            match &lost {
                Error::Store(e) => {
                    assert_eq!(e.kind(), StoreErrorKind::Conflict);
                    assert!(lost.is_retryable());
                }
                other => panic!("{other:?}"),
            }
            for change in won.changes {
                if let Change::Message(Event::NewMessage, m) = change {
                    assert!(printed.insert(m.id.clone()), "{vendor:?}: twice {}", m.id);
                }
            }
            // The loser's step, run again, finds nothing the winner stored.
            let again = sync::sync_account(&account, &store).await.unwrap();
            assert!(new_texts(&again.changes).is_empty(), "{vendor:?}");
        }
        let examples = example_messages(vendor);
        assert_eq!(printed.len(), 3 * 2 + examples + 3);
        assert_eq!(
            store.message_count(None).await.unwrap(),
            printed.len() as u64
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targeted_sync_and_a_step_never_both_store_a_message() {
    for vendor in Vendor::ALL {
        let sandbox = sandbox(3, 2).await;
        let account = common::unpaced_account(&sandbox, vendor);
        let store = SqliteStore::in_memory().await.unwrap();
        sync::sync_account(&account, &store).await.unwrap();
        let reference = account.reference(example(vendor));

        // Alone: exactly the new message, then nothing.
        assert!(sandbox.buyer_writes(vendor, example(vendor), "pushed"));
        let targeted = sync::sync_conversation(&account, &store, &reference)
            .await
            .unwrap();
        assert_eq!(new_texts(&targeted.changes), ["pushed"], "{vendor:?}");
        let step = sync::sync_account(&account, &store).await.unwrap();
        assert!(
            new_texts(&step.changes).is_empty(),
            "{vendor:?}: stored once"
        );

        // Racing a step over the same conversation: the targeted sync commits first, so
        // the step skips only that conversation (its mark changed) and commits the rest.
        assert!(sandbox.buyer_writes(vendor, example(vendor), "raced"));
        let other = generated(vendor, 1);
        assert!(sandbox.buyer_writes(vendor, &other, "elsewhere"));
        let (arrived, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let gated = Gated::new(&store, vec![arrived.clone(), release.clone()]);
        let (step, targeted) = tokio::join!(sync::sync_account(&account, &gated), async {
            arrived.wait().await;
            let targeted = sync::sync_conversation(&account, &store, &reference).await;
            release.wait().await;
            targeted
        });
        let (step, targeted) = (step.unwrap(), targeted.unwrap());
        assert_eq!(new_texts(&targeted.changes), ["raced"], "{vendor:?}");
        assert_eq!(
            new_texts(&step.changes),
            ["elsewhere"],
            "{vendor:?}: the rest committed"
        );
        assert_eq!(step.skipped.len(), 1, "{vendor:?}");
        assert_eq!(step.skipped[0].conversation.id, example(vendor));
        assert!(
            matches!(&step.skipped[0].error, Error::Store(e) if e.kind() == StoreErrorKind::Conflict)
        );
        let again = sync::sync_account(&account, &store).await.unwrap();
        assert!(
            new_texts(&again.changes).is_empty(),
            "{vendor:?}: {:?}",
            again.changes
        );

        // Another account's reference is refused before any request.
        let foreign = ConversationRef::new(account.marketplace(), "x").with_account("other");
        assert!(sync::sync_conversation(&account, &store, &foreign)
            .await
            .is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mercadolibre_message_names_its_pack() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let account = common::unpaced_account(&sandbox, Vendor::MercadoLibre);
    let message = a_message(&account, example(Vendor::MercadoLibre)).await;
    let id = message["id"].as_str().unwrap();
    let found = account.conversation_of_message(id).await.unwrap();
    assert_eq!(
        found.map(|r| r.id),
        Some(example(Vendor::MercadoLibre).to_string())
    );
    let allegro = common::unpaced_account(&sandbox, Vendor::Allegro);
    assert!(matches!(
        allegro.conversation_of_message("x").await,
        Err(Error::Unsupported { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_migrates_and_syncs_on_with_nothing_twice() {
    // Written by `inbox --sandbox --json sync` of the version-1 code (294 messages).
    let dir = std::env::temp_dir().join(format!("inbox-sync-v1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("inbox.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sync-v1.db"),
        &db,
    )
    .unwrap();
    let store = SqliteStore::open(&db).await.unwrap();
    assert_eq!(store.message_count(None).await.unwrap(), 294);
    let checkpoint = store.checkpoint("allegro").await.unwrap();
    assert_eq!(checkpoint.version, 1);
    assert!(checkpoint.watermark.is_some());
    let marks = store
        .marks("allegro", vec![example(Vendor::Allegro).to_string()])
        .await
        .unwrap();
    assert!(marks[example(Vendor::Allegro)].listing.is_some());

    migrated::syncs_on_with_nothing_twice(&store).await;
    assert_eq!(store.message_count(None).await.unwrap(), 298);
    assert_eq!(user_version(&db).await, 7);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_database_migrates_with_nothing_lost_and_syncs_on() {
    // Written by `inbox --sandbox --json sync` of the version-3 code (294 messages), with
    // a pending notification and a malformed element added as that code stores them.
    let dir = std::env::temp_dir().join(format!("inbox-sync-v3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("inbox.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sync-v3.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db).await, 3);
    let before: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT account, conversation, id, created_at FROM messages ORDER BY account, conversation, id",
    )
    .fetch_all(&mut sqlite(&db).await)
    .await
    .unwrap();
    assert_eq!(before.len(), 294);

    let store = SqliteStore::open(&db).await.unwrap();
    assert_eq!(user_version(&db).await, 7);
    // Every message, with its instant exactly as version 3 wrote it.
    let after: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT account, conversation, id, created_at FROM messages ORDER BY account, conversation, id",
    )
    .fetch_all(&mut sqlite(&db).await)
    .await
    .unwrap();
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.0, &b.1, &b.2), (&a.0, &a.1, &a.2));
        let t = chrono::DateTime::parse_from_rfc3339(&b.3).unwrap();
        assert_eq!(t.timestamp_micros(), a.3, "{b:?}");
    }
    let checkpoint = store.checkpoint("allegro").await.unwrap();
    assert_eq!(checkpoint.version, 1);
    assert!(checkpoint.watermark.is_some());
    let marks = store
        .marks("magalu", vec![example(Vendor::Magalu).to_string()])
        .await
        .unwrap();
    assert!(marks[example(Vendor::Magalu)].listing.is_some());
    assert!(marks[example(Vendor::Magalu)].last_message_at.is_some());
    // The pending notification moved to the journal's own file, number and all.
    let pending = store.journal_pending().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, 1);
    assert_eq!(pending[0].entry.dedup_key, "ozon:k1");
    assert_eq!(
        pending[0].entry.received_at.timestamp_micros(),
        chrono::DateTime::parse_from_rfc3339("2026-12-06T22:00:00.123456Z")
            .unwrap()
            .timestamp_micros()
    );
    assert_eq!(store.malformed("allegro").await.unwrap().len(), 1);

    migrated::syncs_on_with_nothing_twice(&store).await;
    assert_eq!(store.message_count(None).await.unwrap(), 298);
    // Opening it again changes nothing.
    drop(store);
    let again = SqliteStore::open(&db).await.unwrap();
    assert_eq!(again.message_count(None).await.unwrap(), 298);
    assert_eq!(again.journal_pending().await.unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_message_text_is_reported_once_as_updated() {
    for vendor in Vendor::ALL {
        let sandbox = sandbox(2, 1).await;
        let account = common::unpaced_account(&sandbox, vendor);
        let store = SqliteStore::in_memory().await.unwrap();
        sync::sync_account(&account, &store).await.unwrap();
        let reference = account.reference(example(vendor));
        let id = sandbox
            .buyer_writes_to(vendor, vendor.prefix(), example(vendor), "Olá, tudo bem?")
            .unwrap();
        let first = sync::sync_conversation(&account, &store, &reference)
            .await
            .unwrap();
        assert_eq!(new_texts(&first.changes), ["Olá, tudo bem?"], "{vendor:?}");
        let before = store
            .message_states(account.name(), example(vendor), vec![id.clone()])
            .await
            .unwrap();

        assert!(sandbox.buyer_edits(vendor, example(vendor), &id, "Olá, tudo bem? (editado)"));
        let edited = sync::sync_conversation(&account, &store, &reference)
            .await
            .unwrap();
        let updated: Vec<&Message> = edited
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Message(Event::UpdatedMessage, m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(updated.len(), 1, "{vendor:?}: {:?}", edited.changes);
        assert_eq!(updated[0].id, id);
        assert_eq!(updated[0].text, "Olá, tudo bem? (editado)");
        assert!(new_texts(&edited.changes).is_empty());
        let after = store
            .message_states(account.name(), example(vendor), vec![id.clone()])
            .await
            .unwrap();
        assert_ne!(
            before[&id], after[&id],
            "{vendor:?}: the stored state follows"
        );
        // Reported once: neither a targeted sync nor a step finds it again.
        let again = sync::sync_conversation(&account, &store, &reference)
            .await
            .unwrap();
        assert!(again.changes.is_empty(), "{vendor:?}: {:?}", again.changes);
        let step = sync::sync_account(&account, &store).await.unwrap();
        assert!(
            !step
                .changes
                .iter()
                .any(|c| matches!(c, Change::Message(_, m) if m.id == id)),
            "{vendor:?}: {:?}",
            step.changes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_journal_insert_is_answered_while_a_large_commit_is_in_flight() {
    let sandbox = sandbox(120, 10).await;
    let account = common::unpaced_account(&sandbox, Vendor::Magalu);
    let dir = std::env::temp_dir().join(format!("inbox-journal-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("inbox.db")).await.unwrap();
    let took = gated::journal_while_committing(&store, &account).await;
    assert!(took < std::time::Duration::from_secs(10));
    assert_eq!(store.journal_pending().await.unwrap().len(), 1);
    assert_eq!(store.message_count(None).await.unwrap(), 120 * 10 + 1);
    let _ = std::fs::remove_dir_all(&dir);
}
