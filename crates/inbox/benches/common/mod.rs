//! What the benchmarks share.

use inbox_sandbox::{Sandbox, Vendor};
use marketplace_inbox::{AccountConfig, InboxConfig};

/// The sandbox's account of `vendor`, as configuration.
pub fn account(sandbox: &Sandbox, vendor: Vendor) -> AccountConfig {
    let config: InboxConfig = serde_json::from_value(sandbox.accounts_config()).expect("config");
    config
        .accounts
        .into_iter()
        .find(|a| a.marketplace.as_str() == vendor.prefix())
        .expect("account")
}
