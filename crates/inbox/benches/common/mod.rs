//! What the benchmarks share.
#![allow(dead_code)]

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

/// Whether this run is a smoke test: `cargo test` runs benchmarks without `--bench`
/// (as criterion does, once and small); `cargo bench` passes it.
pub fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}
