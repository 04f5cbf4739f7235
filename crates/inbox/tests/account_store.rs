//! The accounts a store holds, on SQLite and on PostgreSQL alike: added with their
//! credentials sealed (never in the clear in the database), read back under their
//! current name, renamed with their mirror and tokens, imported idempotently, removed
//! (with `--purge`, their mirror too), and every change raising the accounts' counter.

use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::sync::backend::Dialect;
use marketplace_inbox::sync::{
    self, AccountState, Imported, SqlStore, SqliteStore, StoreErrorKind,
};
use marketplace_inbox::*;
use serde_json::json;

mod common;
#[path = "support/postgres.rs"]
mod pg;

fn key() -> TokenKey {
    TokenKey::from_hex(&"3c".repeat(32)).unwrap()
}

/// Every row of `table` as text, for looking for secrets in the clear.
async fn all_text_sqlite(path: &std::path::Path) -> String {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT name, settings, credentials FROM accounts")
            .fetch_all(&pool)
            .await
            .unwrap();
    format!("{rows:?}")
}

async fn exercise<B: Dialect>(store: &SqlStore<B>, sandbox: &Sandbox) -> String {
    let config = sandbox.accounts_config();
    let ml = common::sandbox_account(&config, Vendor::MercadoLibre, |a| {
        a["name"] = json!("br-main");
        a["poll_interval_secs"] = json!(30.0);
    });
    let ozon = common::sandbox_account(&config, Vendor::Ozon, |a| a["name"] = json!("ru"));
    assert_eq!(store.accounts_version().await.unwrap(), 0);
    assert_eq!(store.accounts().await.unwrap(), vec![]);

    let added = store.add_account(&key(), &ml).await.unwrap();
    assert!(
        added.id.starts_with("acc_") && added.id.len() == 36,
        "{}",
        added.id
    );
    assert_eq!(added.name, "br-main");
    assert_eq!(added.marketplace, Marketplace::MercadoLibre);
    assert_eq!(added.state, AccountState::Active);
    assert_eq!(added.seller_id, ml.seller_id);
    assert_eq!(added.last_sync, None);
    assert_eq!(store.accounts_version().await.unwrap(), 1);
    let ozon_added = store.add_account(&key(), &ozon).await.unwrap();
    let Credentials::ApiKey { client_id, .. } = &ozon.credentials else {
        panic!("ozon has an api key")
    };
    assert_eq!(ozon_added.seller_id.as_deref(), Some(client_id.as_str()));

    // Read back whole, credentials included, under its name.
    let back = store.account_config(&key(), &added).await.unwrap();
    assert_eq!(back, ml);
    // Another key opens nothing, and the error names no secret.
    let other = TokenKey::from_hex(&"4d".repeat(32)).unwrap();
    let err = store.account_config(&other, &added).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    assert!(err.to_string().contains("INBOX_TOKEN_KEY"), "{err}");

    // A name taken, the same seller again, a bad name: refused, nothing stored.
    let err = store.add_account(&key(), &ml).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let mut twin = ml.clone();
    twin.name = "br-twin".into();
    let err = store.add_account(&key(), &twin).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    assert!(
        err.to_string()
            .contains("already connected as the account br-main"),
        "{err}"
    );
    let mut bad = ml.clone();
    bad.name = "../x".into();
    assert!(store.add_account(&key(), &bad).await.is_err());
    assert_eq!(store.accounts().await.unwrap().len(), 2);
    assert_eq!(store.accounts_version().await.unwrap(), 2);

    // A sync, then a rename: the mirror and the credentials follow; the id stays.
    let account = Account::from_config(&back).unwrap();
    sync::sync_account(&account, store).await.unwrap();
    let messages = store.message_count(Some("br-main")).await.unwrap();
    assert!(messages > 0);
    let synced = store.account_named("br-main").await.unwrap().unwrap();
    assert!(synced.last_sync.is_some());
    let renamed = store.rename_account("br-main", "br-renamed").await.unwrap();
    assert_eq!(renamed.id, added.id);
    assert_eq!(renamed.name, "br-renamed");
    assert!(renamed.version > added.version);
    assert_eq!(store.message_count(Some("br-main")).await.unwrap(), 0);
    assert_eq!(
        store.message_count(Some("br-renamed")).await.unwrap(),
        messages
    );
    let config_after = store.account_config(&key(), &renamed).await.unwrap();
    assert_eq!(config_after.name, "br-renamed");
    assert_eq!(config_after.credentials, ml.credentials);
    // Synced on under its new name: nothing imported again.
    let again = Account::from_config(&config_after).unwrap();
    let pass = sync::sync_account(&again, store).await.unwrap();
    assert_eq!(pass.changes.len(), 0, "{:?}", pass.changes);
    assert_eq!(
        store
            .rename_account("nobody", "x")
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        store
            .rename_account("br-renamed", "ru")
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::Conflict
    );

    // Import: the same entry twice changes nothing; new settings update; credentials of
    // an active account are kept.
    let mut imported = ml.clone();
    imported.name = "br-renamed".into();
    let version = store.accounts_version().await.unwrap();
    for _ in 0..2 {
        let (_, what) = store.import_account(&key(), &imported).await.unwrap();
        assert_eq!(what, Imported::Unchanged);
    }
    assert_eq!(store.accounts_version().await.unwrap(), version);
    let mut slower = imported.clone();
    slower.poll_interval_secs = Some(120.0);
    slower.credentials = Credentials::token("another-token");
    let (_, what) = store.import_account(&key(), &slower).await.unwrap();
    assert_eq!(what, Imported::Updated);
    let now = store.account_named("br-renamed").await.unwrap().unwrap();
    let read = store.account_config(&key(), &now).await.unwrap();
    assert_eq!(read.poll_interval_secs, Some(120.0));
    assert_eq!(read.credentials, ml.credentials, "credentials kept");
    assert!(store.accounts_version().await.unwrap() > version);

    // A revoked grant: reauthorize once; an import then replaces its credentials.
    assert!(store
        .set_account_state(&now.id, AccountState::Reauthorize)
        .await
        .unwrap());
    assert!(!store
        .set_account_state(&now.id, AccountState::Reauthorize)
        .await
        .unwrap());
    let (account, what) = store.import_account(&key(), &slower).await.unwrap();
    assert_eq!(what, Imported::Updated);
    assert_eq!(account.state, AccountState::Active);
    let read = store.account_config(&key(), &account).await.unwrap();
    assert_eq!(read.credentials, Credentials::token("another-token"));

    // Removed: gone from the list; the mirror stays unless purged.
    let removed = store
        .remove_account("br-renamed", false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(removed.id, added.id);
    assert!(store.account_named("br-renamed").await.unwrap().is_none());
    assert_eq!(
        store.message_count(Some("br-renamed")).await.unwrap(),
        messages
    );
    assert!(store
        .remove_account("br-renamed", true)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.message_count(Some("br-renamed")).await.unwrap(), 0);
    let names: Vec<String> = store
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["ru"]);
    ozon_added.id
}

#[tokio::test]
async fn sqlite_keeps_accounts_sealed_renamable_and_removable() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("inbox-accounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("inbox.db");
    let store = SqliteStore::open(&path).await.unwrap();
    exercise(&store, &sandbox).await;
    // The Ozon account's key is in the database only sealed.
    let ozon = common::sandbox_account(&sandbox.accounts_config(), Vendor::Ozon, |_| {});
    let Credentials::ApiKey { api_key, .. } = &ozon.credentials else {
        panic!("ozon has an api key")
    };
    let everything = all_text_sqlite(&path).await;
    assert!(everything.contains("\"ru\""), "{everything}");
    assert!(!everything.contains(api_key.expose()), "{everything}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn postgres_keeps_accounts_sealed_renamable_and_removable() {
    let Some(db) = pg::database("accounts").await else {
        return;
    };
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let store = sync::PostgresStore::connect(&db.url, 2).await.unwrap();
    let id = exercise(&store, &sandbox).await;
    let ozon = common::sandbox_account(&sandbox.accounts_config(), Vendor::Ozon, |_| {});
    let Credentials::ApiKey { api_key, .. } = &ozon.credentials else {
        panic!("ozon has an api key")
    };
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, settings, credentials FROM accounts")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows.first().map(|r| r.0.as_str()), Some(id.as_str()));
    assert!(!format!("{rows:?}").contains(api_key.expose()));
    drop(store);
    db.drop_now().await;
}
