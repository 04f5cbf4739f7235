//! Accounts pointed at a mock server, built from configuration as users build them.
#![allow(dead_code)]

use httpmock::MockServer;
use marketplace_inbox::{Account, AccountConfig, Credentials, Marketplace};

fn account(config: AccountConfig) -> Account {
    Account::from_config(&config).unwrap()
}

fn token(t: &str) -> Credentials {
    Credentials::Token(t.into())
}

pub fn allegro(server: &MockServer) -> Account {
    account(
        AccountConfig::new("pl", Marketplace::Allegro, token("tok-a")).base_url(server.base_url()),
    )
}

pub fn meli(server: &MockServer) -> Account {
    account(
        AccountConfig::new("br", Marketplace::MercadoLibre, token("tok-m"))
            .base_url(server.base_url())
            .seller_id("415458330"),
    )
}

pub fn magalu(server: &MockServer, owner: bool) -> Account {
    let config =
        AccountConfig::new("mg", Marketplace::Magalu, token("tok-g")).base_url(server.base_url());
    account(if owner {
        config.owner("Joseph Climber", "j.climber")
    } else {
        config
    })
}

pub fn ozon(server: &MockServer) -> Account {
    let credentials = Credentials::ApiKey {
        client_id: "123".into(),
        api_key: "key-o".into(),
    };
    account(AccountConfig::new("ru", Marketplace::Ozon, credentials).base_url(server.base_url()))
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
