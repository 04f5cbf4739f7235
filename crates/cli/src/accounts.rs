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
