//! Accounts pointed at a mock server or the sandbox, built from configuration as users
//! build them.
#![allow(dead_code)]

use httpmock::MockServer;
use marketplace_inbox::{Account, AccountConfig, Credentials, Marketplace};

fn token(t: &str) -> Credentials {
    Credentials::Token(t.into())
}

pub fn allegro_config(server: &MockServer) -> AccountConfig {
    AccountConfig::new("pl", Marketplace::Allegro, token("tok-a")).base_url(server.base_url())
}

pub fn meli_config(server: &MockServer) -> AccountConfig {
    AccountConfig::new("br", Marketplace::MercadoLibre, token("tok-m"))
        .base_url(server.base_url())
        .seller_id("415458330")
}

pub fn magalu_config(server: &MockServer) -> AccountConfig {
    AccountConfig::new("mg", Marketplace::Magalu, token("tok-g"))
        .base_url(server.base_url())
        .owner("Joseph Climber", "j.climber")
}

pub fn ozon_config(server: &MockServer) -> AccountConfig {
    let credentials = Credentials::ApiKey {
        client_id: "123".into(),
        api_key: "key-o".into(),
    };
    AccountConfig::new("ru", Marketplace::Ozon, credentials).base_url(server.base_url())
}

pub fn allegro(server: &MockServer) -> Account {
    Account::from_config(&allegro_config(server)).unwrap()
}

pub fn meli(server: &MockServer) -> Account {
    Account::from_config(&meli_config(server)).unwrap()
}

pub fn magalu(server: &MockServer, owner: bool) -> Account {
    let mut config = magalu_config(server);
    if !owner {
        config.owner = None;
    }
    Account::from_config(&config).unwrap()
}

pub fn ozon(server: &MockServer) -> Account {
    Account::from_config(&ozon_config(server)).unwrap()
}

/// The sandbox account of `vendor` in an accounts JSON (`Sandbox::accounts_config`),
/// edited by `edit`.
pub fn sandbox_account(
    config: &serde_json::Value,
    vendor: inbox_sandbox::Vendor,
    edit: impl FnOnce(&mut serde_json::Value),
) -> AccountConfig {
    let mut a = config["accounts"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["marketplace"] == vendor.prefix()))
        .cloned()
        .unwrap();
    edit(&mut a);
    serde_json::from_value(a).unwrap()
}

/// Each marketplace's example conversation (the sandbox seeds it from the vendor docs).
pub fn example(vendor: inbox_sandbox::Vendor) -> &'static str {
    use inbox_sandbox::Vendor;
    match vendor {
        Vendor::Allegro => "dpYCg9auts9xpSojwC6DWPvyVKHraqDCZCiT70j6pcf",
        Vendor::MercadoLibre => "2000000089077943",
        Vendor::Magalu => "6628d7a3c01daebde56f5600",
        Vendor::Ozon => "99feb3fc-a474-469f-95d5-268b470cc607",
    }
}

/// The sandbox's account of `vendor` with every client-side rate limit lifted (the
/// sandbox enforces none unless told to), built.
pub fn unpaced_account(sandbox: &inbox_sandbox::Sandbox, vendor: inbox_sandbox::Vendor) -> Account {
    use inbox_sandbox::Vendor;
    let names: &[&str] = match vendor {
        Vendor::Allegro => &["all", "messages"],
        Vendor::Ozon => &["all"],
        _ => &["reads", "writes"],
    };
    let config = names.iter().fold(
        sandbox_account(&sandbox.accounts_config(), vendor, |_| {}),
        |c, name| c.limit(*name, 0, 1.0),
    );
    Account::from_config(&config).unwrap()
}

/// A sandbox of `config` in which `vendor` answers after 20 ms and refuses reads past
/// `per_second` (its rule's shape, scaled so that tests take seconds), and that vendor's
/// account told the same limit.
pub async fn paced_sandbox(
    vendor: inbox_sandbox::Vendor,
    per_second: u32,
    config: inbox_sandbox::Config,
) -> (inbox_sandbox::Sandbox, AccountConfig) {
    use inbox_sandbox::{Faults, Limit, Sandbox, Vendor};
    use std::time::Duration;
    let sandbox = Sandbox::start(inbox_sandbox::Config {
        faults: Faults {
            latency: Duration::from_millis(20),
            ..Faults::default()
        },
        limits: vec![Limit {
            vendor,
            writes: Some(false),
            requests: per_second as usize,
            per: Duration::from_secs(1),
            per_application: false,
        }],
        ..config
    })
    .await
    .unwrap();
    let reads = match vendor {
        Vendor::Allegro | Vendor::Ozon => "all",
        Vendor::MercadoLibre | Vendor::Magalu => "reads",
    };
    let account =
        sandbox_account(&sandbox.accounts_config(), vendor, |_| {}).limit(reads, per_second, 1.0);
    (sandbox, account)
}
