//! Where accounts come from: the in-process sandbox, a config file, or the environment.
//! All three give an [`InboxConfig`], the one way the facade builds accounts.

use std::any::Any;
use std::path::Path;

use anyhow::{Context, Result};
use marketplace_inbox::{Inbox, InboxConfig};

/// The inbox, and the in-process sandbox it talks to when `--sandbox` started one (kept
/// alive as long as the inbox is used).
pub struct Loaded {
    pub inbox: Inbox,
    pub _sandbox: Option<Box<dyn Any>>,
}

/// Accounts from the sandbox (`--sandbox`), else from `--config FILE`, else from the
/// environment.
pub async fn load(sandbox: bool, config: Option<&Path>) -> Result<Loaded> {
    if sandbox {
        return start_sandbox().await;
    }
    let config = match config {
        Some(path) => InboxConfig::from_file(path)?,
        None => InboxConfig::from_env()?,
    };
    Ok(Loaded {
        inbox: Inbox::from_config(&config)?,
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
        _sandbox: Some(Box::new(sandbox)),
    })
}

#[cfg(not(feature = "sandbox"))]
async fn start_sandbox() -> Result<Loaded> {
    anyhow::bail!("this inbox was built without the sandbox (cargo feature `sandbox`)")
}
