//! The accounts a store holds (table `accounts`, schema version 5): each with an id that
//! never changes, a name that is a label and can be renamed, its marketplace, its state,
//! the seller's id at the vendor, its settings (the config entry's fields without
//! credentials) and its credentials sealed with the operator's [`TokenKey`], bound to the
//! id. Every change raises the `accounts` counter, which processes poll to follow the
//! set of accounts without a restart.
//!
//! The mirror's rows are keyed by the account's name, so a rename renames them in the
//! same transaction (their JSON form is written again when the vendor next shows the row).

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::backend::{args, Dialect, Row};
use super::SqlStore;
use crate::key::{hex, random_hex, unhex, TokenKey, TOKEN_KEY_ENV};
use crate::sync::{StoreError, StoreErrorKind};
use crate::{AccountConfig, Credentials, Marketplace, Secret, Tokens};

/// Whether an account is synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountState {
    /// Synced.
    Active,
    /// The seller must authorise again (the grant was revoked or expired): not synced,
    /// no token calls, until it is connected again.
    Reauthorize,
    /// Kept but not synced.
    Disabled,
}

impl AccountState {
    /// `active`, `reauthorize` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::Reauthorize => "reauthorize",
            AccountState::Disabled => "disabled",
        }
    }

    fn parse(text: &str) -> Option<AccountState> {
        [
            AccountState::Active,
            AccountState::Reauthorize,
            AccountState::Disabled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for AccountState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for AccountState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        AccountState::parse(text)
            .ok_or_else(|| "an account's state is active, reauthorize or disabled".to_string())
    }
}

/// An account as the store holds it, without its credentials.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StoredAccount {
    /// Its id: `acc_` and 32 hex digits, never changed.
    pub id: String,
    /// Its name (a label; unique).
    pub name: String,
    /// Its marketplace.
    pub marketplace: Marketplace,
    /// Whether it is synced.
    pub state: AccountState,
    /// The seller's id at the vendor, when known.
    pub seller_id: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When its mirror last committed a step, if ever.
    pub last_sync: Option<DateTime<Utc>>,
    /// When its credentials stop working, where the vendor says (Ozon's API keys).
    pub credentials_expire_at: Option<DateTime<Utc>>,
    /// The row's version: raised by every change of the account.
    #[serde(skip)]
    pub version: i64,
}

/// What [`SqlStore::import_account`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imported {
    /// A new account.
    Added,
    /// An account of that name whose settings changed (its credentials are kept unless
    /// it was waiting to be authorised again).
    Updated,
    /// An account of that name, as it was.
    Unchanged,
}

/// The fields of a config entry that are credentials (sealed); the rest are settings.
const SECRET_FIELDS: [&str; 7] = [
    "token",
    "client_id",
    "client_secret",
    "refresh_token",
    "access_token",
    "expires_at",
    "api_key",
];

const COLUMNS: &str = "a.id, a.name, a.marketplace, a.state, a.seller_id, a.created_at,
  a.updated_at, c.updated_at, a.version, a.credentials_expire_at";

/// A JSON object.
type Object = Map<String, Value>;

/// A config entry split into its settings and its credentials, both JSON objects.
fn split(config: &AccountConfig) -> Result<(Object, Object), StoreError> {
    let Value::Object(mut settings) = serde_json::to_value(config).map_err(invalid)? else {
        return Err(invalid("an account's config is not an object"));
    };
    settings.remove("name");
    settings.remove("marketplace");
    let mut secrets = Map::new();
    for field in SECRET_FIELDS {
        if let Some(v) = settings.remove(field) {
            secrets.insert(field.to_string(), v);
        }
    }
    Ok((settings, secrets))
}

fn invalid(e: impl fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Other, e.to_string())
}

/// The seller's id a config entry names: Mercado Libre's `seller_id`, Ozon's `Client-Id`.
fn seller_of(config: &AccountConfig) -> Option<String> {
    match (&config.marketplace, &config.credentials) {
        (Marketplace::Ozon, Credentials::ApiKey { client_id, .. }) => Some(client_id.clone()),
        _ => config.seller_id.clone(),
    }
}

fn not_found(name: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::NotFound,
        format!("no account is named {:?}", crate::error::clip(name, 80)),
    )
}

fn stored<R: Row>(row: &R) -> Result<StoredAccount, StoreError> {
    let text = |i| -> Result<String, StoreError> { Ok(row.text(i)?.unwrap_or_default()) };
    let marketplace = text(2)?;
    let state = text(3)?;
    let corrupt = |what: &str| StoreError::new(StoreErrorKind::Corrupt, what.to_string());
    Ok(StoredAccount {
        id: text(0)?,
        name: text(1)?,
        marketplace: marketplace
            .parse()
            .map_err(|_| corrupt("an account's marketplace is unknown"))?,
        state: AccountState::parse(&state)
            .ok_or_else(|| corrupt("an account's state is unknown"))?,
        seller_id: row.text(4)?,
        created_at: row.time(5)?.unwrap_or_default(),
        updated_at: row.time(6)?.unwrap_or_default(),
        last_sync: row.time(7)?,
        version: row.int(8)?.unwrap_or(0),
        credentials_expire_at: row.time(9)?,
    })
}

impl<B: Dialect> SqlStore<B> {
    /// The accounts' counter: raised by every change of any account (0: never changed).
    pub async fn accounts_version(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            "SELECT value FROM inbox_counters WHERE name = 'accounts'".into(),
            vec![],
        )
        .await?;
        Ok(super::row::version(super::first_int(&rows)?))
    }

    /// Every account, by name.
    pub async fn accounts(&self) -> Result<Vec<StoredAccount>, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!(
                "SELECT {COLUMNS} FROM accounts a LEFT JOIN checkpoints c ON c.account = a.name
                 ORDER BY a.name"
            ),
            vec![],
        )
        .await?;
        rows.iter().map(stored).collect()
    }

    /// The account named `name`.
    pub async fn account_named(&self, name: &str) -> Result<Option<StoredAccount>, StoreError> {
        let mut conn = self.conn().await?;
        named::<B>(&mut conn, name).await
    }

    /// The account's config entry (credentials opened with `key`) under its current name.
    pub async fn account_config(
        &self,
        key: &TokenKey,
        account: &StoredAccount,
    ) -> Result<AccountConfig, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            "SELECT settings, credentials FROM accounts WHERE id = $1".into(),
            args![&account.id],
        )
        .await?;
        let row = rows.first().ok_or_else(|| not_found(&account.name))?;
        let settings = row.text(0)?.unwrap_or_default();
        let credentials = row.text(1)?.unwrap_or_default();
        let Value::Object(mut entry) = serde_json::from_str(&settings).map_err(invalid)? else {
            return Err(invalid("an account's settings are not an object"));
        };
        let secrets = open(key, &account.id, &credentials)?;
        entry.extend(secrets);
        entry.insert("name".into(), Value::from(account.name.clone()));
        entry.insert(
            "marketplace".into(),
            Value::from(account.marketplace.as_str()),
        );
        serde_json::from_value(Value::Object(entry)).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Corrupt,
                format!("the stored account {} cannot be read: {e}", account.name),
            )
        })
    }

    /// Adds an account (state `active`); its name must be free, and its seller not
    /// connected under another account.
    pub async fn add_account(
        &self,
        key: &TokenKey,
        config: &AccountConfig,
    ) -> Result<StoredAccount, StoreError> {
        if !crate::model::valid_account_name(&config.name) {
            return Err(invalid(format!(
                "account name {:?} must be 1 to 64 letters, digits, '.', '_' or '-'",
                crate::error::clip(&config.name, 80)
            )));
        }
        let (settings, secrets) = split(config)?;
        let id = format!("acc_{}", random_hex(16));
        let sealed = seal(key, &id, &secrets)?;
        let seller = seller_of(config);
        let mut tx = B::begin(&self.pool).await?;
        if named::<B>(&mut tx, &config.name).await?.is_some() {
            return Err(StoreError::conflict(format!(
                "an account is already named {}",
                config.name
            )));
        }
        seller_free::<B>(&mut tx, config.marketplace, seller.as_deref(), "").await?;
        let now = Utc::now();
        B::execute(
            &mut tx,
            "INSERT INTO accounts (id, name, marketplace, state, seller_id, settings, credentials,
               created_at, updated_at) VALUES ($1, $2, $3, 'active', $4, $5, $6, $7, $7)"
                .into(),
            args![
                &id,
                &config.name,
                config.marketplace.as_str(),
                seller,
                Value::Object(settings).to_string(),
                sealed,
                now
            ],
        )
        .await?;
        bump::<B>(&mut tx).await?;
        let added = named::<B>(&mut tx, &config.name)
            .await?
            .ok_or_else(|| not_found(&config.name))?;
        B::commit(tx).await?;
        Ok(added)
    }

    /// Adds `config` as [`SqlStore::add_account`] does, or, when an account of that name
    /// exists (of the same marketplace), brings its settings to `config`'s. Its stored
    /// credentials are kept (they may have been rotated since the file was written),
    /// unless it was waiting to be authorised again: then `config`'s replace them and it
    /// turns `active`. Importing the same entry twice changes nothing.
    pub async fn import_account(
        &self,
        key: &TokenKey,
        config: &AccountConfig,
    ) -> Result<(StoredAccount, Imported), StoreError> {
        let Some(existing) = self.account_named(&config.name).await? else {
            return Ok((self.add_account(key, config).await?, Imported::Added));
        };
        if existing.marketplace != config.marketplace {
            return Err(StoreError::conflict(format!(
                "the account {} is a {} account, not {}",
                config.name, existing.marketplace, config.marketplace
            )));
        }
        let (settings, secrets) = split(config)?;
        let settings = Value::Object(settings).to_string();
        let reauthorize = existing.state == AccountState::Reauthorize;
        let mut tx = B::begin(&self.pool).await?;
        let rows = B::fetch(
            &mut tx,
            "SELECT settings FROM accounts WHERE id = $1".into(),
            args![&existing.id],
        )
        .await?;
        let before: Option<Value> = match rows.first() {
            Some(r) => r.text(0)?.and_then(|t| serde_json::from_str(&t).ok()),
            None => return Err(not_found(&config.name)),
        };
        let same = before.as_ref() == serde_json::from_str::<Value>(&settings).ok().as_ref();
        if same && !reauthorize {
            return Ok((existing, Imported::Unchanged));
        }
        let now = Utc::now();
        if reauthorize {
            B::execute(
                &mut tx,
                "UPDATE accounts SET settings = $2, credentials = $3, state = 'active',
                   updated_at = $4, version = version + 1 WHERE id = $1"
                    .into(),
                args![
                    &existing.id,
                    settings,
                    seal(key, &existing.id, &secrets)?,
                    now
                ],
            )
            .await?;
        } else {
            B::execute(
                &mut tx,
                "UPDATE accounts SET settings = $2, updated_at = $3, version = version + 1
                 WHERE id = $1"
                    .into(),
                args![&existing.id, settings, now],
            )
            .await?;
        }
        bump::<B>(&mut tx).await?;
        let updated = named::<B>(&mut tx, &config.name)
            .await?
            .ok_or_else(|| not_found(&config.name))?;
        B::commit(tx).await?;
        Ok((updated, Imported::Updated))
    }

    /// Connects the account named `config.name` again: its credentials and settings
    /// become `config`'s and it turns `active` (its id, name and mirror stay, so its sync
    /// resumes where it stopped). Refused when `config` names another seller than the
    /// account's, or a seller connected under another account.
    pub async fn reconnect_account(
        &self,
        key: &TokenKey,
        config: &AccountConfig,
    ) -> Result<StoredAccount, StoreError> {
        let (settings, secrets) = split(config)?;
        let seller = seller_of(config);
        let mut tx = B::begin(&self.pool).await?;
        let existing = named::<B>(&mut tx, &config.name)
            .await?
            .ok_or_else(|| not_found(&config.name))?;
        if existing.marketplace != config.marketplace {
            return Err(StoreError::conflict(format!(
                "the account {} is a {} account, not {}",
                config.name, existing.marketplace, config.marketplace
            )));
        }
        if let (Some(had), Some(now)) = (&existing.seller_id, &seller) {
            if had != now {
                return Err(StoreError::conflict(format!(
                    "the account {} is another {} seller's",
                    config.name, config.marketplace
                )));
            }
        }
        seller_free::<B>(&mut tx, config.marketplace, seller.as_deref(), &existing.id).await?;
        B::execute(
            &mut tx,
            "UPDATE accounts SET settings = $2, credentials = $3, seller_id = COALESCE($4, seller_id),
               state = 'active', updated_at = $5, version = version + 1 WHERE id = $1"
                .into(),
            args![
                &existing.id,
                Value::Object(settings).to_string(),
                seal(key, &existing.id, &secrets)?,
                seller,
                Utc::now()
            ],
        )
        .await?;
        bump::<B>(&mut tx).await?;
        let updated = named::<B>(&mut tx, &config.name)
            .await?
            .ok_or_else(|| not_found(&config.name))?;
        B::commit(tx).await?;
        Ok(updated)
    }

    /// Renames an account, and its mirror with it, in one transaction; its id, and so its
    /// sealed credentials, stay as they are.
    pub async fn rename_account(&self, old: &str, new: &str) -> Result<StoredAccount, StoreError> {
        if !crate::model::valid_account_name(new) {
            return Err(invalid(format!(
                "account name {:?} must be 1 to 64 letters, digits, '.', '_' or '-'",
                crate::error::clip(new, 80)
            )));
        }
        let mut tx = B::begin(&self.pool).await?;
        let account = named::<B>(&mut tx, old)
            .await?
            .ok_or_else(|| not_found(old))?;
        if old == new {
            return Ok(account);
        }
        if named::<B>(&mut tx, new).await?.is_some() {
            return Err(StoreError::conflict(format!(
                "an account is already named {new}"
            )));
        }
        let leftover = B::fetch(
            &mut tx,
            "SELECT COUNT(*) FROM checkpoints WHERE account = $1".into(),
            args![new],
        )
        .await?;
        if super::first_int(&leftover)? > 0 {
            return Err(StoreError::conflict(format!(
                "the mirror still holds a removed account named {new}: remove it with `inbox accounts remove {new} --purge` first"
            )));
        }
        let now = Utc::now();
        B::execute(
            &mut tx,
            "UPDATE accounts SET name = $2, updated_at = $3, version = version + 1 WHERE id = $1"
                .into(),
            args![&account.id, new, now],
        )
        .await?;
        for table in ["checkpoints", "messages", "malformed", "changes"] {
            let sql = match table {
                "messages" => "UPDATE messages SET account = $2, json = NULL WHERE account = $1",
                "checkpoints" => "UPDATE checkpoints SET account = $2 WHERE account = $1",
                "malformed" => "UPDATE malformed SET account = $2 WHERE account = $1",
                _ => "UPDATE changes SET account = $2 WHERE account = $1",
            };
            B::execute(&mut tx, sql.into(), args![old, new]).await?;
        }
        B::execute(
            &mut tx,
            "UPDATE conversations SET account = $2, json = NULL,
               ref = marketplace || '@' || $2 || ':' || id WHERE account = $1"
                .into(),
            args![old, new],
        )
        .await?;
        bump::<B>(&mut tx).await?;
        let renamed = named::<B>(&mut tx, new)
            .await?
            .ok_or_else(|| not_found(new))?;
        B::commit(tx).await?;
        // The journal (a file of its own on SQLite): pending entries follow the account.
        let mut journal = B::acquire(&self.journal).await?;
        B::execute(
            &mut journal,
            "UPDATE journal SET account = $2 WHERE account = $1".into(),
            args![old, new],
        )
        .await?;
        Ok(renamed)
    }

    /// Removes the account named `name` (it stops being synced); with `purge`, its
    /// mirror's rows and journal entries too, also when only those are left of it.
    /// `None` when no account had that name.
    pub async fn remove_account(
        &self,
        name: &str,
        purge: bool,
    ) -> Result<Option<StoredAccount>, StoreError> {
        let mut tx = B::begin(&self.pool).await?;
        let account = named::<B>(&mut tx, name).await?;
        if let Some(a) = &account {
            B::execute(
                &mut tx,
                "DELETE FROM accounts WHERE id = $1".into(),
                args![&a.id],
            )
            .await?;
            bump::<B>(&mut tx).await?;
        }
        if purge {
            for table in [
                "checkpoints",
                "conversations",
                "messages",
                "malformed",
                "changes",
            ] {
                B::execute(
                    &mut tx,
                    format!("DELETE FROM {table} WHERE account = $1"),
                    args![name],
                )
                .await?;
            }
        }
        B::commit(tx).await?;
        if purge {
            let mut journal = B::acquire(&self.journal).await?;
            B::execute(
                &mut journal,
                "DELETE FROM journal WHERE account = $1".into(),
                args![name],
            )
            .await?;
        }
        Ok(account)
    }

    /// Sets the account's state; false when it already had it (or is gone).
    pub async fn set_account_state(
        &self,
        id: &str,
        state: AccountState,
    ) -> Result<bool, StoreError> {
        let mut tx = B::begin(&self.pool).await?;
        let changed = B::execute(
            &mut tx,
            "UPDATE accounts SET state = $2, updated_at = $3, version = version + 1
             WHERE id = $1 AND state <> $2"
                .into(),
            args![id, state.as_str(), Utc::now()],
        )
        .await?;
        if changed > 0 {
            bump::<B>(&mut tx).await?;
        }
        B::commit(tx).await?;
        Ok(changed > 0)
    }

    /// Records when the account's credentials stop working (not a change processes
    /// follow: the row's version stays).
    pub async fn set_credentials_expiry(
        &self,
        id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        B::execute(
            &mut conn,
            "UPDATE accounts SET credentials_expire_at = $2 WHERE id = $1".into(),
            args![id, at],
        )
        .await?;
        Ok(())
    }

    /// The OAuth tokens stored with the account (none for other credentials).
    pub async fn account_tokens(
        &self,
        key: &TokenKey,
        id: &str,
    ) -> Result<Option<Tokens>, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            "SELECT credentials FROM accounts WHERE id = $1".into(),
            args![id],
        )
        .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let secrets = open(key, id, &row.text(0)?.unwrap_or_default())?;
        Ok(tokens_of(&secrets))
    }

    /// Stores rotated OAuth tokens with the account (its other credentials kept). The
    /// row's version is not raised: a rotation is not a change processes must follow.
    pub async fn save_account_tokens(
        &self,
        key: &TokenKey,
        id: &str,
        tokens: &Tokens,
    ) -> Result<(), StoreError> {
        let mut tx = B::begin(&self.pool).await?;
        let rows = B::fetch(
            &mut tx,
            "SELECT credentials FROM accounts WHERE id = $1".into(),
            args![id],
        )
        .await?;
        let row = rows.first().ok_or_else(|| not_found(id))?;
        let mut secrets = open(key, id, &row.text(0)?.unwrap_or_default())?;
        secrets.insert(
            "refresh_token".into(),
            Value::from(tokens.refresh_token.expose()),
        );
        match &tokens.access_token {
            Some(t) => secrets.insert("access_token".into(), Value::from(t.expose())),
            None => secrets.remove("access_token"),
        };
        match tokens.expires_at {
            Some(at) => secrets.insert("expires_at".into(), Value::from(at.to_rfc3339())),
            None => secrets.remove("expires_at"),
        };
        B::execute(
            &mut tx,
            "UPDATE accounts SET credentials = $2 WHERE id = $1".into(),
            args![id, seal(key, id, &secrets)?],
        )
        .await?;
        B::commit(tx).await
    }
}

/// The account named `name`, read on `conn`.
async fn named<B: Dialect>(
    conn: &mut B::Conn,
    name: &str,
) -> Result<Option<StoredAccount>, StoreError> {
    let rows = B::fetch(
        conn,
        format!(
            "SELECT {COLUMNS} FROM accounts a LEFT JOIN checkpoints c ON c.account = a.name
             WHERE a.name = $1"
        ),
        args![name],
    )
    .await?;
    rows.first().map(stored).transpose()
}

/// Refuses a seller connected already under an account other than `except` (an id).
async fn seller_free<B: Dialect>(
    conn: &mut B::Conn,
    marketplace: Marketplace,
    seller: Option<&str>,
    except: &str,
) -> Result<(), StoreError> {
    let Some(seller) = seller else {
        return Ok(());
    };
    let rows = B::fetch(
        conn,
        "SELECT name FROM accounts WHERE marketplace = $1 AND seller_id = $2 AND id <> $3".into(),
        args![marketplace.as_str(), seller, except],
    )
    .await?;
    match rows.first() {
        Some(row) => Err(StoreError::conflict(format!(
            "this {marketplace} seller is already connected as the account {}",
            row.text(0)?.unwrap_or_default()
        ))),
        None => Ok(()),
    }
}

/// Raises the accounts' counter (inside the change's transaction).
async fn bump<B: Dialect>(conn: &mut B::Conn) -> Result<(), StoreError> {
    B::execute(
        conn,
        "UPDATE inbox_counters SET value = value + 1 WHERE name = 'accounts'".into(),
        vec![],
    )
    .await?;
    Ok(())
}

fn seal(key: &TokenKey, id: &str, secrets: &Map<String, Value>) -> Result<String, StoreError> {
    let plain = Value::Object(secrets.clone()).to_string();
    key.seal(id, plain.as_bytes())
        .map(|s| hex(&s))
        .map_err(invalid)
}

fn open(key: &TokenKey, id: &str, sealed: &str) -> Result<Map<String, Value>, StoreError> {
    let unreadable = || {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("the credentials of the account {id} cannot be decrypted (another {TOKEN_KEY_ENV}?)"),
        )
    };
    let plain = unhex(sealed)
        .and_then(|bytes| key.open(id, &bytes))
        .ok_or_else(unreadable)?;
    match serde_json::from_slice(&plain) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(unreadable()),
    }
}

/// The OAuth tokens among an account's credentials.
fn tokens_of(secrets: &Map<String, Value>) -> Option<Tokens> {
    let text = |k: &str| secrets.get(k).and_then(Value::as_str);
    Some(Tokens {
        refresh_token: Secret::new(text("refresh_token")?.to_string()),
        access_token: text("access_token").map(|t| Secret::new(t.to_string())),
        expires_at: text("expires_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    })
}
