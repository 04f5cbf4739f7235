//! `inbox accounts …`: the accounts a database holds — added, listed, renamed, removed
//! and imported from a config file. Credentials are sealed with `INBOX_TOKEN_KEY` and are
//! never printed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use inbox_server::directory::required_key;
use inbox_server::{Db, Directory};
use marketplace_inbox::sync::{AccountState, Imported, StoredAccount};
use marketplace_inbox::{AccountConfig, InboxConfig, Marketplace};
use serde_json::{json, Map, Value};

/// The database an `accounts` command works on.
#[derive(Args, Debug, Clone)]
pub struct DbArg {
    /// The database: a SQLite file (default: $XDG_DATA_HOME/inbox/inbox.db) or a
    /// `postgres://` URL.
    #[arg(long, value_name = "FILE|URL", value_parser = |t: &str| t.parse::<Db>())]
    pub db: Option<Db>,
}

/// `inbox accounts` subcommands.
#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Add an account: the fields of a config entry, from flags or from a JSON file.
    Add(Box<AddArgs>),
    /// List the accounts, with their state and last sync.
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Rename an account (its mirror and tokens follow; its id stays).
    Rename {
        /// The account's name now.
        old: String,
        /// Its new name.
        new: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Stop syncing an account but keep it (state `disabled`).
    Disable {
        /// The account.
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Sync a disabled account again (state `active`).
    Enable {
        /// The account.
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove an account: every process stops syncing it within seconds.
    Remove {
        /// The account.
        name: String,
        /// Delete its mirror (conversations, messages, changes, journal) too.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Make a single-use connect link a seller opens in a browser (served by `inbox
    /// serve --public-url`): it prints the link first.
    Link {
        /// The marketplace.
        marketplace: Marketplace,
        /// The account's name.
        #[arg(long)]
        name: String,
        /// Where the seller lands afterwards (`?account=NAME&status=connected`, or
        /// `status=error&reason=…`).
        #[arg(long, value_name = "URL")]
        return_to: Option<String>,
        /// Connect an existing account again (new credentials, its sync resumes).
        #[arg(long)]
        reconnect: bool,
        /// The service's public base URL (the links and redirect URIs are under it).
        #[arg(long, value_name = "URL", env = "INBOX_PUBLIC_URL")]
        public_url: String,
        /// How long the link works, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 3600)]
        expires: u64,
        #[command(flatten)]
        db: DbArg,
    },
    /// Connect an account from this terminal: Allegro by its device flow (a code to
    /// enter at the URL printed); the others through a connect link served on a local
    /// port until the seller is done.
    Connect {
        /// The marketplace.
        marketplace: Marketplace,
        /// The account's name.
        #[arg(long)]
        name: String,
        /// Connect an existing account again.
        #[arg(long)]
        reconnect: bool,
        /// The local port for the browser's way back (0 picks one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Allegro: use the browser's way too, not the device flow.
        #[arg(long)]
        browser: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Import the accounts of a config file (`--config` format); importing again
    /// changes nothing, and never replaces the tokens of an account that is active.
    Import {
        /// The config file.
        file: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
}

/// `inbox accounts add`'s fields.
#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    db: DbArg,
    /// A JSON file holding the entry (one object, as in a config file's `accounts`);
    /// flags given beside it override its fields.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The account's name.
    #[arg(long)]
    name: Option<String>,
    /// Its marketplace.
    #[arg(long)]
    marketplace: Option<Marketplace>,
    /// A bearer access token (Allegro, Mercado Libre, Magalu).
    #[arg(long, env = "INBOX_ACCOUNT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// OAuth: the app's client id; Ozon: the seller's Client-Id.
    #[arg(long)]
    client_id: Option<String>,
    /// OAuth: the app's client secret.
    #[arg(long, env = "INBOX_ACCOUNT_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// OAuth: the seller's refresh token.
    #[arg(long, env = "INBOX_ACCOUNT_REFRESH_TOKEN", hide_env_values = true)]
    refresh_token: Option<String>,
    /// OAuth: the current access token.
    #[arg(long, env = "INBOX_ACCOUNT_ACCESS_TOKEN", hide_env_values = true)]
    access_token: Option<String>,
    /// Ozon: the API key.
    #[arg(long, env = "INBOX_ACCOUNT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Mercado Libre: the seller's user id.
    #[arg(long)]
    seller_id: Option<String>,
    /// Magalu: the name that signs replies.
    #[arg(long)]
    owner_name: Option<String>,
    /// Magalu: your id for that attendant.
    #[arg(long)]
    owner_id: Option<String>,
    /// The API's base URL (default: the marketplace's production API).
    #[arg(long)]
    base_url: Option<String>,
    /// OAuth: the token endpoint (default: the marketplace's own).
    #[arg(long)]
    token_url: Option<String>,
    /// The application (client id) the account's requests count against.
    #[arg(long)]
    application: Option<String>,
    /// Seconds between its syncs.
    #[arg(long, value_name = "SECS")]
    poll_interval: Option<f64>,
}

impl AddArgs {
    /// The entry: the file's fields, then the flags given.
    fn entry(&self) -> Result<AccountConfig> {
        let mut entry = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                match serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?
                {
                    Value::Object(map) => map,
                    _ => return Err(anyhow!("{} must hold one JSON object", path.display())),
                }
            }
            None => Map::new(),
        };
        let mut set = |field: &str, value: Option<Value>| {
            if let Some(v) = value {
                entry.insert(field.to_string(), v);
            }
        };
        let text = |v: &Option<String>| v.clone().map(Value::from);
        set("name", text(&self.name));
        set(
            "marketplace",
            self.marketplace.map(|m| Value::from(m.as_str())),
        );
        set("token", text(&self.token));
        set("client_id", text(&self.client_id));
        set("client_secret", text(&self.client_secret));
        set("refresh_token", text(&self.refresh_token));
        set("access_token", text(&self.access_token));
        set("api_key", text(&self.api_key));
        set("seller_id", text(&self.seller_id));
        set("owner_name", text(&self.owner_name));
        set("owner_id", text(&self.owner_id));
        set("base_url", text(&self.base_url));
        set("token_url", text(&self.token_url));
        set("application", text(&self.application));
        set("poll_interval_secs", self.poll_interval.map(Value::from));
        for required in ["name", "marketplace"] {
            if !entry.contains_key(required) {
                return Err(anyhow!(
                    "inbox accounts add needs --{required} (or a --file naming it)"
                ));
            }
        }
        // The config file's own checks, so that what is stored is what `--config` takes.
        let config: InboxConfig = serde_json::from_value(json!({ "accounts": [entry] }))
            .map_err(|e| anyhow!("the account is not valid: {e}"))?;
        config
            .accounts
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("the account is not valid"))
    }
}

/// Runs an `accounts` subcommand; `applications` are a config file's apps (else the
/// environment's).
pub async fn run(
    command: AccountsCommand,
    json: bool,
    applications: InboxConfig,
) -> Result<ExitCode> {
    match command {
        AccountsCommand::Link {
            marketplace,
            name,
            return_to,
            reconnect,
            public_url,
            expires,
            db,
        } => {
            let directory = Directory::open(db.db).await?;
            let (url, expires_at) = inbox_server::connect::create_link(
                &directory,
                marketplace,
                &name,
                return_to.as_deref(),
                reconnect,
                &public_url,
                std::time::Duration::from_secs(expires.clamp(1, 7 * 86_400)),
            )
            .await?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", json!({"url": url, "expires_at": expires_at}))?;
            } else {
                writeln!(out, "{url}")?;
                writeln!(out, "(single use; expires {expires_at})")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        AccountsCommand::Connect {
            marketplace,
            name,
            reconnect,
            port,
            browser,
            db,
        } => {
            let key = required_key()?;
            let directory = Directory::open(db.db).await?;
            let connected = inbox_server::connect::terminal(
                &directory,
                &key,
                &applications,
                marketplace,
                &name,
                reconnect,
                port,
                browser,
                &|line| eprintln!("inbox: {line}"),
            )
            .await?;
            let mut out = std::io::stdout().lock();
            print(&mut out, &connected, json, "connected")?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let mut out = std::io::stdout().lock();
    match command {
        AccountsCommand::Link { .. } | AccountsCommand::Connect { .. } => {}
        AccountsCommand::Add(args) => {
            let config = args.entry()?;
            let key = required_key()?;
            // Built once as the engine will build it (credentials that fit the
            // marketplace), before anything is stored.
            marketplace_inbox::Account::from_config(&config)?;
            let directory = Directory::open(args.db.db.clone()).await?;
            let added = directory.add(&key, &config).await?;
            print(&mut out, &added, json, "added")?;
        }
        AccountsCommand::List { db } => {
            let directory = Directory::open(db.db).await?;
            let all = directory.list().await?;
            if json {
                for a in &all {
                    writeln!(out, "{}", object(a))?;
                }
            } else if all.is_empty() {
                writeln!(out, "no accounts (add one with `inbox accounts add` or `inbox accounts import FILE`)")?;
            } else {
                writeln!(
                    out,
                    "{:<24} {:<13} {:<12} {:<16} {:<20} {:<11} ID",
                    "NAME", "MARKETPLACE", "STATE", "SELLER", "LAST SYNC", "KEY EXPIRES"
                )?;
                for a in &all {
                    writeln!(
                        out,
                        "{:<24} {:<13} {:<12} {:<16} {:<20} {:<11} {}",
                        a.name,
                        a.marketplace.as_str(),
                        a.state.as_str(),
                        a.seller_id.as_deref().unwrap_or("-"),
                        a.last_sync
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_else(|| "never".into()),
                        a.credentials_expire_at
                            .map(|t| t.format("%Y-%m-%d").to_string())
                            .unwrap_or_else(|| "-".into()),
                        a.id
                    )?;
                }
            }
        }
        AccountsCommand::Rename { old, new, db } => {
            let directory = Directory::open(db.db).await?;
            let renamed = directory.rename(&old, &new).await?;
            print(&mut out, &renamed, json, "renamed")?;
        }
        AccountsCommand::Disable { name, db } => {
            set_state(&mut out, db, &name, AccountState::Disabled, json).await?
        }
        AccountsCommand::Enable { name, db } => {
            set_state(&mut out, db, &name, AccountState::Active, json).await?
        }
        AccountsCommand::Remove { name, purge, db } => {
            let directory = Directory::open(db.db).await?;
            match directory.remove(&name, purge).await? {
                Some(removed) => print(
                    &mut out,
                    &removed,
                    json,
                    if purge {
                        "removed and purged"
                    } else {
                        "removed"
                    },
                )?,
                None if purge => {
                    if json {
                        writeln!(out, "{}", json!({"name": name, "status": "purged"}))?;
                    } else {
                        writeln!(out, "purged what was left of {name}")?;
                    }
                }
                None => return Err(anyhow!("no account is named {name:?}")),
            }
        }
        AccountsCommand::Import { file, db } => {
            let config = InboxConfig::from_file(&file)?;
            let key = required_key()?;
            for entry in &config.accounts {
                marketplace_inbox::Account::from_config(entry)?;
            }
            let directory = Directory::open(db.db).await?;
            for entry in &config.accounts {
                let (account, what) = directory.import(&key, entry).await?;
                let status = match what {
                    Imported::Added => "added",
                    Imported::Updated => "updated",
                    Imported::Unchanged => "unchanged",
                };
                print(&mut out, &account, json, status)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sets the state of the account named `name`, and prints it as it is now.
async fn set_state(
    out: &mut impl Write,
    db: DbArg,
    name: &str,
    state: AccountState,
    json: bool,
) -> Result<()> {
    let directory = Directory::open(db.db).await?;
    let missing = || anyhow!("no account is named {name:?}");
    let account = directory.named(name).await?.ok_or_else(missing)?;
    directory.set_state(&account.id, state).await?;
    let now = directory.named(name).await?.ok_or_else(missing)?;
    print(out, &now, json, state.as_str())
}

/// An account's JSON form (never its credentials).
fn object(a: &StoredAccount) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "marketplace": a.marketplace.as_str(),
        "state": a.state.as_str(),
        "seller_id": a.seller_id,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "last_sync": a.last_sync,
        "credentials_expire_at": a.credentials_expire_at,
    })
}

fn print(out: &mut impl Write, a: &StoredAccount, json: bool, status: &str) -> Result<()> {
    if json {
        let mut v = object(a);
        if let Some(map) = v.as_object_mut() {
            map.insert("status".into(), Value::from(status));
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "{status} {} ({} {}, {})",
            a.name,
            a.marketplace.as_str(),
            a.state.as_str(),
            a.id
        )?;
    }
    Ok(())
}
