//! What the examples share: the accounts to run on.

use marketplace_inbox::InboxConfig;

/// The accounts of the `inbox --config` file `path`, else the environment's; with none
/// there, the local sandbox's (returned too: it runs while it is kept).
pub async fn accounts(
    path: Option<std::ffi::OsString>,
) -> Result<(InboxConfig, Option<inbox_sandbox::Sandbox>), Box<dyn std::error::Error>> {
    let config = match path {
        Some(path) => InboxConfig::from_file(path)?,
        None => InboxConfig::from_env()?,
    };
    if !config.accounts.is_empty() {
        return Ok((config, None));
    }
    let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
    println!("(no accounts configured: using the local sandbox)");
    Ok((
        InboxConfig::from_value(sandbox.accounts_config())?,
        Some(sandbox),
    ))
}
