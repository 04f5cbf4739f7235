//! Where accounts come from: the in-process sandbox, a config file, or the environment.
//! All three give an [`InboxConfig`], the one way the facade builds accounts.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use marketplace_inbox::{Inbox, InboxConfig};

/// The inbox, and the in-process sandbox it talks to when `--sandbox` started one (kept
/// alive as long as the inbox is used).
pub struct Loaded {
    pub inbox: Inbox,
    /// The config file rotated tokens go back to, when accounts came from one.
    pub tokens: Option<Arc<inbox_server::tokens::ConfigFile>>,
    pub _sandbox: Option<Box<dyn Any>>,
}

/// Accounts from the sandbox (`--sandbox`), else from `--config FILE` (rotated OAuth
/// tokens are written back to it), else from the environment.
pub async fn load(sandbox: bool, config: Option<&Path>) -> Result<Loaded> {
    if sandbox {
        return start_sandbox().await;
    }
    let (inbox, tokens) = match config {
        Some(path) => {
            let store = Arc::new(inbox_server::tokens::ConfigFile::new(path.to_path_buf()));
            let inbox =
                Inbox::from_config_with_store(&InboxConfig::from_file(path)?, store.clone())?;
            (inbox, Some(store))
        }
        None => (Inbox::from_config(&InboxConfig::from_env()?)?, None),
    };
    Ok(Loaded {
        inbox,
        tokens,
        _sandbox: None,
    })
}

#[cfg(feature = "sandbox")]
async fn start_sandbox() -> Result<Loaded> {
    let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default())
        .await
        .context("starting the sandbox")?;
    let config: InboxConfig = serde_json::from_value(sandbox.accounts_config())
        .context("reading the sandbox's accounts")?;
    Ok(Loaded {
        inbox: Inbox::from_config(&config)?,
        tokens: None,
        _sandbox: Some(Box::new(sandbox)),
    })
}

#[cfg(not(feature = "sandbox"))]
async fn start_sandbox() -> Result<Loaded> {
    anyhow::bail!("this inbox was built without the sandbox (cargo feature `sandbox`)")
}

/// How a command would run accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// Not a syncing command: accounts come from `--config` or the environment.
    NotAtAll,
    /// One pass (`sync`).
    Once,
    /// Passes until stopped (`watch`): the database's accounts are read again when they
    /// change.
    Following,
    /// `serve` and `worker`: the engine follows the database's accounts itself.
    Serving,
    /// `serve --public-url`: sellers connect accounts into the database, so its accounts
    /// are the ones run, whatever the environment names.
    Connecting,
}

/// What decides where a command's accounts come from.
#[derive(Debug)]
pub struct Choice {
    /// `--sandbox` given.
    pub sandbox: bool,
    /// `--config` given.
    pub config: bool,
    /// The command's `--db`.
    pub db: Option<inbox_server::Db>,
    /// How the command runs them.
    pub runs: Runs,
}

/// The database's accounts, as a command runs them.
pub struct Following {
    /// The operator's key.
    pub key: marketplace_inbox::TokenKey,
    directory: inbox_server::Directory,
    tokens: Arc<dyn marketplace_inbox::TokenStore>,
    /// The active accounts read last.
    pub loaded: inbox_server::directory::Loaded,
    version: u64,
}

impl Following {
    /// The accounts again, when they changed since they were read.
    pub async fn reload(&mut self) -> Option<Inbox> {
        let version = self.directory.version().await.ok()?;
        if version == self.version {
            return None;
        }
        let next = self
            .directory
            .load(&self.key, &self.tokens, &self.loaded)
            .await
            .ok()?;
        for (name, why) in &next.failed {
            eprintln!("inbox: {name}: not synced: {why}");
        }
        self.version = version;
        self.loaded = next;
        Some(self.loaded.inbox())
    }
}

/// The database's own accounts, when the command runs on them: a syncing command
/// without `--sandbox` or `--config`, on a database that holds accounts — or, for
/// `serve`, `worker` and `watch`, one where the environment names none either (they run
/// on the database's accounts as they are added).
pub async fn from_store(choice: &Choice) -> Result<Option<Following>> {
    if choice.sandbox || choice.config || choice.runs == Runs::NotAtAll {
        return Ok(None);
    }
    let directory = inbox_server::Directory::open(choice.db.clone()).await?;
    let version = directory.version().await?;
    let held = directory.list().await?;
    if held.is_empty() {
        let env_has_accounts = InboxConfig::from_env().is_ok_and(|c| !c.accounts.is_empty());
        let waits = matches!(choice.runs, Runs::Serving | Runs::Following);
        let connecting = choice.runs == Runs::Connecting;
        if !connecting && (env_has_accounts || !waits) {
            return Ok(None);
        }
    }
    let key = inbox_server::directory::required_key()?;
    let tokens = directory.tokens(&key).await?;
    let loaded = match choice.runs {
        // The engine loads them itself.
        Runs::Serving | Runs::Connecting => inbox_server::directory::Loaded::default(),
        _ => {
            let loaded = directory
                .load(&key, &tokens, &inbox_server::directory::Loaded::default())
                .await?;
            for (name, why) in &loaded.failed {
                eprintln!("inbox: {name}: not synced: {why}");
            }
            loaded
        }
    };
    Ok(Some(Following {
        key,
        directory,
        tokens,
        loaded,
        version,
    }))
}
