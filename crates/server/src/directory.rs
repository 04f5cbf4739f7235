//! The accounts a store holds, as a process runs them: the [`Directory`] (SQLite or
//! PostgreSQL) adds, lists, renames and removes them, and builds the [`Inbox`] of the
//! active ones, each refreshing its OAuth tokens through the store (`AccountTokens`):
//! on PostgreSQL through the fleet's token table keyed by the account's id, on SQLite in
//! the account's own row under a lock file beside the database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use marketplace_inbox::sync::{
    AccountState, ApiKey, Claim, ConnectLink, ConversationFilter, ConversationKey, EventFilter,
    Imported, LinkKey, MessageKey, PostgresStore, SendRecord, SqliteStore, Store, StoreError,
    StoredAccount, StoredConversation, StoredMessage, UnreadCount,
};
use marketplace_inbox::{
    Account, AccountConfig, Grant, Inbox, PostgresTokens, Refused, TokenKey, TokenStore, Tokens,
    TOKEN_KEY_ENV,
};

use crate::store::{default_path, Db, POSTGRES_CONNECTIONS};

/// The store's accounts, on one backend or the other. Clones share the pool.
#[derive(Clone, Debug)]
pub enum Directory {
    /// A SQLite file (its path: the refresh lock lives beside it).
    Sqlite(SqliteStore, PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresStore),
}

/// Runs the same call on whichever store the directory is.
macro_rules! on_store {
    ($dir:expr, $s:ident => $call:expr) => {
        match $dir {
            $crate::Directory::Sqlite($s, _) => $call,
            $crate::Directory::Postgres($s) => $call,
        }
    };
}
pub(crate) use on_store;

impl Directory {
    /// The store at `db` (the default SQLite file when `None`), opened.
    pub async fn open(db: Option<Db>) -> Result<Directory> {
        Self::open_with(db, POSTGRES_CONNECTIONS).await
    }

    /// Likewise, with at most `connections` to PostgreSQL.
    pub async fn open_with(db: Option<Db>, connections: u32) -> Result<Directory> {
        match db {
            Some(Db::Postgres(url)) => Ok(Directory::Postgres(
                PostgresStore::connect(&url, connections)
                    .await
                    .context("opening the PostgreSQL database")?,
            )),
            Some(Db::Sqlite(path)) => Self::sqlite(path).await,
            None => Self::sqlite(default_path()?).await,
        }
    }

    async fn sqlite(path: PathBuf) -> Result<Directory> {
        let store = SqliteStore::open(&path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Directory::Sqlite(store, path))
    }

    /// The mirror's store.
    pub fn store(&self) -> Arc<dyn Store> {
        on_store!(self, s => Arc::new(s.clone()))
    }

    /// The accounts' counter (raised by every change of an account).
    pub async fn version(&self) -> Result<u64, StoreError> {
        on_store!(self, s => s.accounts_version().await)
    }

    /// Every account, by name.
    pub async fn list(&self) -> Result<Vec<StoredAccount>, StoreError> {
        on_store!(self, s => s.accounts().await)
    }

    /// The account named `name`.
    pub async fn named(&self, name: &str) -> Result<Option<StoredAccount>, StoreError> {
        on_store!(self, s => s.account_named(name).await)
    }

    /// Adds an account.
    pub async fn add(
        &self,
        key: &TokenKey,
        config: &AccountConfig,
    ) -> Result<StoredAccount, StoreError> {
        let added = on_store!(self, s => s.add_account(key, config).await)?;
        self.announce(&added, "account.connected").await;
        Ok(added)
    }

    /// Appends an account's event to the log (`account.connected`, …), with the account
    /// as it is now. The account's change is made already: an event that cannot be
    /// written is noted, not an error of the change.
    async fn announce(&self, account: &StoredAccount, kind: &str) {
        let data = serde_json::to_value(account).unwrap_or_default();
        let appended = on_store!(self, s => s.append_event(&account.name, account.marketplace, kind, &data).await);
        if let Err(e) = appended {
            tracing::warn!(account = %account.name, error = %e, "the {kind} event could not be written");
        }
    }

    /// Appends a send's `send.updated` event (its object as `data`).
    pub async fn send_updated(
        &self,
        account: &str,
        marketplace: marketplace_inbox::Marketplace,
        send: &serde_json::Value,
    ) -> Result<u64, StoreError> {
        on_store!(self, s => s.append_event(account, marketplace, "send.updated", send).await)
    }

    /// Adds or updates an account from a config entry (idempotent).
    pub async fn import(
        &self,
        key: &TokenKey,
        config: &AccountConfig,
    ) -> Result<(StoredAccount, Imported), StoreError> {
        let before = self.named(&config.name).await?;
        let done = on_store!(self, s => s.import_account(key, config).await)?;
        // Authorised again with new credentials: the fleet's rotated pair is stale.
        let again = before.is_some_and(|b| b.state == AccountState::Reauthorize);
        if again {
            self.forget_tokens(&done.0.id).await?;
        }
        if done.1 == Imported::Added || (again && done.1 == Imported::Updated) {
            self.announce(&done.0, "account.connected").await;
        }
        Ok(done)
    }

    /// Connects an existing account again with new credentials (see
    /// [`marketplace_inbox::sync::SqlStore::reconnect_account`]); the fleet's rotated
    /// tokens of the old grant are dropped.
    pub async fn reconnect(
        &self,
        key: &TokenKey,
        config: &AccountConfig,
    ) -> Result<StoredAccount, StoreError> {
        let done = on_store!(self, s => s.reconnect_account(key, config).await)?;
        self.forget_tokens(&done.id).await?;
        self.announce(&done, "account.connected").await;
        Ok(done)
    }

    /// Adds a connect link.
    pub async fn add_link(
        &self,
        id: &str,
        marketplace: marketplace_inbox::Marketplace,
        name: &str,
        return_to: Option<&str>,
        reconnect: bool,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        on_store!(self, s => s.add_link(id, marketplace, name, return_to, reconnect, expires_at).await)
    }

    /// A connect link by the hash of its secret.
    pub async fn link(&self, id: &str) -> Result<Option<ConnectLink>, StoreError> {
        on_store!(self, s => s.link(id).await)
    }

    /// The connect link that sent the state hashing to `state_hash`.
    pub async fn link_by_state(&self, state_hash: &str) -> Result<Option<ConnectLink>, StoreError> {
        on_store!(self, s => s.link_by_state(state_hash).await)
    }

    /// Opens a connect link once.
    pub async fn open_link(
        &self,
        id: &str,
        state_hash: Option<&str>,
        verifier: Option<&str>,
        redirect_uri: Option<&str>,
    ) -> Result<Option<ConnectLink>, StoreError> {
        on_store!(self, s => s.open_link(id, state_hash, verifier, redirect_uri).await)
    }

    /// Finishes a connect link once.
    pub async fn finish_link(&self, key: LinkKey<'_>) -> Result<Option<ConnectLink>, StoreError> {
        on_store!(self, s => s.finish_link(key).await)
    }

    /// Records how a link ended.
    pub async fn settle_link(&self, id: &str, outcome: &str) -> Result<(), StoreError> {
        on_store!(self, s => s.settle_link(id, outcome).await)
    }

    /// Stores an API key by its hash.
    pub async fn add_key(
        &self,
        id: &str,
        hash: &str,
        label: Option<&str>,
        scopes: &[String],
        accounts: Option<&[String]>,
        per_minute: Option<u32>,
    ) -> Result<ApiKey, StoreError> {
        on_store!(self, s => s.add_key(id, hash, label, scopes, accounts, per_minute).await)
    }

    /// Every API key.
    pub async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        on_store!(self, s => s.keys().await)
    }

    /// The unrevoked API key of this hash, and the hash stored.
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        on_store!(self, s => s.key_by_hash(hash).await)
    }

    /// Revokes an API key.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        on_store!(self, s => s.revoke_key(id).await)
    }

    /// Renames an account (its mirror with it).
    pub async fn rename(&self, old: &str, new: &str) -> Result<StoredAccount, StoreError> {
        on_store!(self, s => s.rename_account(old, new).await)
    }

    /// Removes an account (with `purge`, its mirror too), and its rotated tokens.
    pub async fn remove(
        &self,
        name: &str,
        purge: bool,
    ) -> Result<Option<StoredAccount>, StoreError> {
        let removed = on_store!(self, s => s.remove_account(name, purge).await)?;
        if let Some(a) = &removed {
            self.forget_tokens(&a.id).await?;
            self.announce(a, "account.removed").await;
        }
        Ok(removed)
    }

    /// A page of conversations (see [`marketplace_inbox::sync::SqlStore::conversations_page`]).
    pub async fn conversations_page(
        &self,
        filter: &ConversationFilter,
        after: Option<&ConversationKey>,
        limit: usize,
    ) -> Result<Vec<StoredConversation>, StoreError> {
        on_store!(self, s => s.conversations_page(filter, after, limit).await)
    }

    /// One stored conversation.
    pub async fn conversation(
        &self,
        account: &str,
        id: &str,
    ) -> Result<Option<StoredConversation>, StoreError> {
        on_store!(self, s => s.stored_conversation(account, id).await)
    }

    /// A page of a conversation's messages (see
    /// [`marketplace_inbox::sync::SqlStore::messages_page`]).
    pub async fn messages_page(
        &self,
        account: &str,
        conversation: &str,
        newest_first: bool,
        after: Option<&MessageKey>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        on_store!(self, s => s.messages_page(account, conversation, newest_first, after, limit).await)
    }

    /// One stored message.
    pub async fn message(
        &self,
        account: &str,
        conversation: &str,
        id: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        on_store!(self, s => s.stored_message(account, conversation, id).await)
    }

    /// Marks a conversation read in the mirror; false when it has none.
    pub async fn mark_read_in_mirror(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        on_store!(self, s => s.mark_read_in_mirror(account, id).await)
    }

    /// Up to `limit` events after `after` (see
    /// [`marketplace_inbox::sync::SqlStore::events_after`]).
    pub async fn events_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        on_store!(self, s => s.events_after(after, filter, limit).await)
    }

    /// The last event's `seq` (0: none yet).
    pub async fn last_event(&self) -> Result<u64, StoreError> {
        on_store!(self, s => s.last_change().await)
    }

    /// Unread conversations per account (only `accounts` when given).
    pub async fn unread_counts(
        &self,
        accounts: Option<&[String]>,
    ) -> Result<Vec<UnreadCount>, StoreError> {
        on_store!(self, s => s.unread_counts(accounts).await)
    }

    /// Claims a send's idempotency key (see [`marketplace_inbox::sync::SqlStore::claim_send`]).
    pub async fn claim_send(&self, new: &SendRecord) -> Result<Claim, StoreError> {
        on_store!(self, s => s.claim_send(new).await)
    }

    /// Takes over a pending send whose runner's hold lapsed.
    pub async fn take_over_send(
        &self,
        id: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        on_store!(self, s => s.take_over_send(id, until).await)
    }

    /// Records how a send ended.
    pub async fn finish_send(
        &self,
        id: &str,
        state: &str,
        message_id: Option<&str>,
        error: Option<&str>,
        answer: &str,
    ) -> Result<(), StoreError> {
        on_store!(self, s => s.finish_send(id, state, message_id, error, answer).await)
    }

    /// Forgets a send that certainly reached no vendor.
    pub async fn forget_send(&self, id: &str) -> Result<(), StoreError> {
        on_store!(self, s => s.forget_send(id).await)
    }

    /// The send `id`.
    pub async fn send_record(&self, id: &str) -> Result<Option<SendRecord>, StoreError> {
        on_store!(self, s => s.send_record(id).await)
    }

    /// Sets an account's state; false when it had it already.
    pub async fn set_state(&self, id: &str, state: AccountState) -> Result<bool, StoreError> {
        let changed = on_store!(self, s => s.set_account_state(id, state).await)?;
        if changed && state == AccountState::Reauthorize {
            if let Some(a) = self.list().await?.into_iter().find(|a| a.id == id) {
                self.announce(&a, "account.reauthorize").await;
            }
        }
        Ok(changed)
    }

    /// Records when an account's credentials stop working.
    pub async fn set_credentials_expiry(
        &self,
        id: &str,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError> {
        on_store!(self, s => s.set_credentials_expiry(id, at).await)
    }

    /// The account's config entry, credentials opened.
    pub async fn config(
        &self,
        key: &TokenKey,
        account: &StoredAccount,
    ) -> Result<AccountConfig, StoreError> {
        on_store!(self, s => s.account_config(key, account).await)
    }

    /// The fleet's rotated tokens of the account `id` are dropped (PostgreSQL).
    async fn forget_tokens(&self, id: &str) -> Result<(), StoreError> {
        if let Directory::Postgres(s) = self {
            let exists: Option<String> =
                sqlx::query_scalar("SELECT to_regclass('inbox_tokens')::text")
                    .fetch_one(s.pool())
                    .await?;
            if exists.is_some() {
                sqlx::query("DELETE FROM inbox_tokens WHERE account = $1")
                    .bind(id)
                    .execute(s.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// The token store of this directory's accounts, called with account ids (the
    /// fleet's table on PostgreSQL).
    pub async fn tokens(&self, key: &TokenKey) -> Result<Arc<dyn TokenStore>> {
        Ok(match self {
            Directory::Postgres(s) => {
                Arc::new(PostgresTokens::new(s.pool().clone(), key.clone()).await?)
            }
            Directory::Sqlite(store, path) => Arc::new(SqliteTokens {
                store: store.clone(),
                key: key.clone(),
                database: path.clone(),
            }),
        })
    }

    /// The active accounts, built as [`Account`]s refreshing through `tokens`; an account
    /// whose entry cannot be read or built is left out and named in `failed`. An account
    /// in `reuse` whose row has not changed since is kept as it is (its limiter and
    /// tokens with it).
    pub async fn load(
        &self,
        key: &TokenKey,
        tokens: &Arc<dyn TokenStore>,
        reuse: &Loaded,
    ) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        for stored in self.list().await? {
            if stored.state != AccountState::Active {
                continue;
            }
            if let Some((row, account)) = reuse.by_id.get(&stored.id) {
                if row.version == stored.version && row.name == stored.name {
                    loaded.insert(stored, account.clone());
                    continue;
                }
            }
            let built = self
                .config(key, &stored)
                .await
                .map_err(anyhow::Error::from)
                .and_then(|config| {
                    let store = Arc::new(AccountTokens {
                        id: stored.id.clone(),
                        tokens: tokens.clone(),
                    });
                    Account::from_config_with_store(&config, store)
                        .map(|a| a.stored_as(stored.id.as_str()))
                        .map_err(anyhow::Error::from)
                });
            match built {
                Ok(account) => loaded.insert(stored, account),
                Err(e) => loaded.failed.push((stored.name.clone(), format!("{e:#}"))),
            }
        }
        Ok(loaded)
    }
}

/// The active accounts a [`Directory`] held at one moment.
#[derive(Clone, Default)]
pub struct Loaded {
    by_id: HashMap<String, (StoredAccount, Account)>,
    /// Accounts that could not be built, with why.
    pub failed: Vec<(String, String)>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("accounts", &self.by_id.len())
            .finish_non_exhaustive()
    }
}

impl Loaded {
    fn insert(&mut self, stored: StoredAccount, account: Account) {
        self.by_id.insert(stored.id.clone(), (stored, account));
    }

    /// The accounts as an inbox (by name).
    pub fn inbox(&self) -> Inbox {
        let mut all: Vec<&(StoredAccount, Account)> = self.by_id.values().collect();
        all.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let mut inbox = Inbox::new();
        for (_, account) in all {
            // Names are unique in the store.
            let _ = inbox.add(account.clone());
        }
        inbox
    }

    /// The accounts held, with their rows.
    pub fn accounts(&self) -> impl Iterator<Item = (&StoredAccount, &Account)> {
        self.by_id.values().map(|(s, a)| (s, a))
    }

    /// The id of the account named `name`.
    pub fn id_of(&self, name: &str) -> Option<&str> {
        self.by_id
            .values()
            .find(|(s, _)| s.name == name)
            .map(|(s, _)| s.id.as_str())
    }

    /// The names held, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_id.values().map(|(s, _)| s.name.clone()).collect();
        names.sort();
        names
    }
}

/// One stored account's token store: the directory's, called with the account's id
/// whatever its name is now (a rename keeps its tokens).
struct AccountTokens {
    id: String,
    tokens: Arc<dyn TokenStore>,
}

impl TokenStore for AccountTokens {
    fn save(&self, _name: &str, tokens: &Tokens) -> Result<(), String> {
        self.tokens.save(&self.id, tokens)
    }

    fn refresh_exclusively<'a>(
        &'a self,
        _name: &'a str,
        held: Tokens,
        grant: Grant<'a>,
    ) -> BoxFuture<'a, Result<Tokens, Refused>> {
        self.tokens.refresh_exclusively(&self.id, held, grant)
    }
}

/// Rotated tokens in the account's row of a SQLite store, refreshed by one process at a
/// time (an exclusive lock on a file beside the database; the row read again under it).
#[derive(Clone)]
struct SqliteTokens {
    store: SqliteStore,
    key: TokenKey,
    /// The database file (the lock file is beside it).
    database: PathBuf,
}

impl SqliteTokens {
    async fn write(&self, id: &str, tokens: &Tokens) -> Result<(), String> {
        self.store
            .save_account_tokens(&self.key, id, tokens)
            .await
            .map_err(|e| format!("could not save the rotated tokens of {id}: {e}"))
    }
}

impl TokenStore for SqliteTokens {
    fn save(&self, id: &str, tokens: &Tokens) -> Result<(), String> {
        // Called outside a refresh (never by this crate): written in the background.
        let (this, id, tokens) = (self.clone(), id.to_string(), tokens.clone());
        tokio::spawn(async move {
            if let Err(e) = this.write(&id, &tokens).await {
                tracing::error!(account = %id, error = %e, "rotated tokens could not be saved");
            }
        });
        Ok(())
    }

    fn refresh_exclusively<'a>(
        &'a self,
        id: &'a str,
        held: Tokens,
        grant: Grant<'a>,
    ) -> BoxFuture<'a, Result<Tokens, Refused>> {
        Box::pin(async move {
            let lock = match crate::tokens::lock_beside(&self.database).await {
                Ok(lock) => Some(lock),
                Err(e) => {
                    tracing::warn!(account = %id, error = %e, "the refresh lock could not be taken; refreshing without it");
                    None
                }
            };
            // Another process rotated the pair since this one read it: that one is valid.
            if lock.is_some() {
                if let Ok(Some(stored)) = self.store.account_tokens(&self.key, id).await {
                    if stored.refresh_token.expose() != held.refresh_token.expose() {
                        return Ok(stored);
                    }
                }
            }
            let tokens = grant(held.refresh_token).await?;
            if let Err(e) = self.write(id, &tokens).await {
                tracing::error!(account = %id, error = %e, "rotated tokens could not be saved");
            }
            drop(lock);
            Ok(tokens)
        })
    }
}

/// The operator's key, required to keep accounts in a store.
pub fn required_key() -> Result<TokenKey> {
    TokenKey::from_env()?.ok_or_else(|| {
        anyhow::anyhow!(
            "accounts in the database need {TOKEN_KEY_ENV} (64 hex digits): their credentials are stored encrypted with it"
        )
    })
}
