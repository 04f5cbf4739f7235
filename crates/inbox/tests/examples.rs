//! Each example run against the sandbox, as its `main` runs it: their code is compiled
//! here as modules and their functions asserted on.
// Each example is a binary of its own and declares the shared `support` module; compiled
// together here, it is loaded once per example.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/answer_unread.rs"]
mod answer_unread;
#[cfg(feature = "postgres")]
#[path = "../examples/fleet.rs"]
mod fleet;
#[path = "../examples/merged_inbox.rs"]
mod merged_inbox;
#[path = "../examples/mirror.rs"]
mod mirror;
#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;
#[path = "../examples/push_receiver.rs"]
mod push_receiver;

use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::sync::SqliteStore;
use marketplace_inbox::{ConversationQuery, Credentials, Inbox, InboxConfig, Marketplace};

async fn sandbox() -> (Sandbox, Inbox) {
    let sandbox = Sandbox::start(Config {
        conversations: 4,
        messages_per_conversation: 2,
        ..Config::default()
    })
    .await
    .unwrap();
    // The typed way from the sandbox to a configuration.
    let config = InboxConfig::from_value(sandbox.accounts_config()).unwrap();
    let inbox = Inbox::from_config(&config).unwrap();
    (sandbox, inbox)
}

#[tokio::test]
async fn answer_unread_answers_and_marks_read_what_it_can() {
    use futures::StreamExt;
    let (sandbox, inbox) = sandbox().await;
    let unread_before: Vec<_> = inbox
        .conversations(ConversationQuery::new().unread_only(true))
        .collect()
        .await;
    let done = answer_unread::answer_unread(&inbox, "Obrigado!")
        .await
        .unwrap();
    assert_eq!(
        done.answered.len() + done.failed.len(),
        unread_before.len(),
        "every unread conversation tried once"
    );
    assert!(!done.answered.is_empty());
    // Each answered conversation got the reply once, and is read now.
    for vendor in Vendor::ALL {
        let sent = sandbox.seller_texts(vendor);
        let answered = done
            .answered
            .iter()
            .filter(|r| r.marketplace.as_str() == vendor.prefix())
            .count();
        assert_eq!(
            sent.iter().filter(|t| *t == "Obrigado!").count(),
            answered,
            "{vendor:?}"
        );
    }
    let left: Vec<String> = inbox
        .conversations(ConversationQuery::new().unread_only(true))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter_map(|t| t.item.ok())
        .map(|c| c.reference.to_string())
        .collect();
    for r in &done.answered {
        assert!(!left.contains(&r.to_string()), "{r} still unread");
    }
    // A failure names its conversation and keeps the vendor's reason.
    for (r, e) in &done.failed {
        assert!(!e.to_string().is_empty(), "{r}");
    }
}

#[tokio::test]
async fn merged_inbox_lists_every_accounts_unread_conversations_once() {
    use futures::StreamExt;
    let (_sandbox, inbox) = sandbox().await;
    let unread: Vec<String> = inbox
        .conversations(ConversationQuery::new().unread_only(true))
        .filter_map(|t| async move { t.item.ok() })
        .map(|c| c.reference.to_string())
        .collect()
        .await;
    let lines = merged_inbox::merged_inbox(&inbox).await;
    assert_eq!(lines.len(), unread.len(), "{lines:#?}");
    for reference in &unread {
        let with = lines
            .iter()
            .filter(|l| l.contains(reference.as_str()))
            .count();
        assert_eq!(with, 1, "{reference} in {lines:#?}");
    }
    for m in Marketplace::ALL {
        assert!(
            lines.iter().any(|l| l.starts_with(m.as_str())),
            "{m}: {lines:#?}"
        );
    }
    assert!(lines.iter().all(|l| !l.contains("error")), "{lines:#?}");
}

#[tokio::test]
async fn mirror_imports_once_then_finds_only_what_is_new() {
    let (sandbox, inbox) = sandbox().await;
    let dir = std::env::temp_dir().join(format!("inbox-example-mirror-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteStore::open(dir.join("mirror.db")).await.unwrap();
    let first = mirror::mirror(&inbox, &store).await.unwrap();
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|(_, n)| *n >= 8), "{first:?}");
    assert!(sandbox.buyer_writes(Vendor::Magalu, "6628d7a3c01daebde56f5600", "mais uma"));
    let second = mirror::mirror(&inbox, &store).await.unwrap();
    let new: Vec<(&str, usize)> = second.iter().map(|(a, n)| (a.as_str(), *n)).collect();
    assert_eq!(
        new,
        [
            ("allegro", 0),
            ("magalu", 1),
            ("mercadolibre", 0),
            ("ozon", 0)
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn push_receiver_stores_the_notified_message_and_ignores_other_sellers() {
    let (sandbox, inbox) = sandbox().await;
    let store = SqliteStore::in_memory().await.unwrap();
    let chat = "99feb3fc-a474-469f-95d5-268b470cc607";
    let id = sandbox
        .buyer_writes_to(Vendor::Ozon, "ozon", chat, "Есть в наличии?")
        .unwrap();
    let body = |seller: &str| {
        serde_json::json!({"message_type": "TYPE_NEW_MESSAGE", "chat_id": chat, "message_id": id,
            "seller_id": seller, "user": {"id": "115568", "type": "\u{421}ustomer"}})
        .to_string()
    };
    let other = push_receiver::on_ozon_notification(&inbox, &store, body("999").as_bytes())
        .await
        .unwrap();
    assert!(other.is_empty());
    let c = sandbox.credentials().clone();
    let texts =
        push_receiver::on_ozon_notification(&inbox, &store, body(&c.ozon_client_id).as_bytes())
            .await
            .unwrap();
    assert!(texts.contains(&"Есть в наличии?".to_string()), "{texts:?}");
    // Again: already stored, nothing new.
    let again =
        push_receiver::on_ozon_notification(&inbox, &store, body(&c.ozon_client_id).as_bytes())
            .await
            .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

/// Three runners at once on one PostgreSQL database (the machine's; a database of this
/// test's own) store every message once, and one more message once.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_runners_store_every_message_once_on_postgres() {
    let Some(db) = pg::database("example_fleet").await else {
        return;
    };
    let (sandbox, inbox) = sandbox().await;
    let in_sandbox: u64 = sandbox.stats().iter().map(|s| s.messages).sum();
    let (runners, stored) = fleet::fleet(&inbox, &db.url, 3, 2).await.unwrap();
    assert_eq!(stored, in_sandbox, "{runners:?}");
    let found: usize = runners.iter().map(|r| r.new_messages).sum();
    assert_eq!(
        found as u64, stored,
        "each message found new by exactly one runner"
    );
    for r in &runners {
        assert_eq!(r.committed + r.conflicts, 2 * 4, "{r:?}");
    }
    assert!(sandbox.buyer_writes(
        Vendor::Ozon,
        "99feb3fc-a474-469f-95d5-268b470cc607",
        "Ещё вопрос"
    ));
    let (runners, stored) = fleet::fleet(&inbox, &db.url, 3, 1).await.unwrap();
    assert_eq!(stored, in_sandbox + 1);
    assert_eq!(
        runners.iter().map(|r| r.new_messages).sum::<usize>(),
        1,
        "{runners:?}"
    );
    db.drop_now().await;
}

/// The smaller frictions a new integrator met, each the new way.
#[test]
fn the_api_reads_well() {
    use marketplace_inbox::{ConversationKind, ConversationRef, ConversationStatus, Role, Unread};
    // Credentials constructors and a configuration from JSON text.
    let config = InboxConfig::from_json(
        r#"{"accounts": [{"name": "ru", "marketplace": "ozon", "client_id": "1", "api_key": "k"}]}"#,
    )
    .unwrap();
    assert_eq!(
        config.accounts[0].credentials,
        Credentials::api_key("1", "k")
    );
    assert!(matches!(Credentials::token("t"), Credentials::Token(_)));
    assert!(InboxConfig::from_json("{").is_err());
    // Display everywhere, honouring width and alignment.
    assert_eq!(format!("[{:<13}]", Marketplace::Ozon), "[ozon         ]");
    let r = ConversationRef::new(Marketplace::Ozon, "c1").with_account("ru");
    assert_eq!(format!("[{r:>12}]"), "[  ozon@ru:c1]");
    assert_eq!(Unread::Count(3).to_string(), "3 unread");
    assert_eq!(Unread::Count(3).count(), Some(3));
    assert_eq!(Unread::Flag(true).count(), None);
    assert_eq!(format!("{:>8}", Unread::Flag(false)), "    read");
    assert_eq!(Role::Buyer.to_string(), "buyer");
    assert_eq!(
        ConversationKind::PostPurchaseIssue.to_string(),
        "post_purchase_issue"
    );
    assert_eq!(
        ConversationStatus::Blocked {
            reason: Some("blocked_by_mediation".into())
        }
        .to_string(),
        "blocked (blocked_by_mediation)"
    );
    assert_eq!(
        ConversationStatus::Unknown("ARCHIVED".into()).as_str(),
        "ARCHIVED"
    );
}

/// With the `sandbox` feature (which the CLI turns on), the sandbox's vendors and the
/// facade's marketplaces convert both ways.
#[cfg(feature = "sandbox")]
#[test]
fn marketplaces_and_the_sandboxs_vendors_convert() {
    for vendor in Vendor::ALL {
        let m = Marketplace::from(vendor);
        assert_eq!(m.as_str(), vendor.prefix());
        assert_eq!(Vendor::from(m), vendor);
    }
}
