//! Where accounts come from: the environment, a config file, or the in-process sandbox.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use marketplace_inbox::vendors::{
    allegro::AllegroAccount, magalu::*, mercadolibre::MercadoLibreAccount, ozon::OzonAccount,
};
use marketplace_inbox::{Inbox, Marketplace};
use serde::Deserialize;

/// One account in a config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountConfig {
    name: String,
    marketplace: String,
    token: Option<String>,
    seller_id: Option<String>,
    client_id: Option<String>,
    api_key: Option<String>,
    owner_name: Option<String>,
    owner_id: Option<String>,
    base_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    accounts: Vec<AccountConfig>,
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

fn url(marketplace: Marketplace, configured: Option<String>) -> String {
    let (var, default) = match marketplace {
        Marketplace::Allegro => ("INBOX_ALLEGRO_URL", inbox_allegro::PRODUCTION_URL),
        Marketplace::MercadoLibre => ("INBOX_MERCADOLIBRE_URL", inbox_mercadolibre::PRODUCTION_URL),
        Marketplace::Magalu => ("INBOX_MAGALU_URL", inbox_magalu::PRODUCTION_URL),
        Marketplace::Ozon => ("INBOX_OZON_URL", inbox_ozon::PRODUCTION_URL),
    };
    configured
        .or_else(|| env(var))
        .unwrap_or_else(|| default.to_string())
}

fn owner(name: Option<String>, id: Option<String>) -> Option<MagaluOwner> {
    Some(MagaluOwner {
        name: name?,
        external_id: id?,
    })
}

fn add(inbox: &mut Inbox, a: AccountConfig) -> Result<()> {
    let marketplace: Marketplace = a
        .marketplace
        .parse()
        .map_err(|e| anyhow!("account {}: {e}", a.name))?;
    let need = |v: Option<String>, what: &str| {
        v.ok_or_else(|| anyhow!("account {}: {what} is missing", a.name))
    };
    let base = url(marketplace, a.base_url.clone());
    match marketplace {
        Marketplace::Allegro => {
            let client = inbox_allegro::Allegro::with_base_url(&base, need(a.token, "token")?)?;
            inbox.add(a.name, AllegroAccount::new(client));
        }
        Marketplace::MercadoLibre => {
            let client =
                inbox_mercadolibre::MercadoLibre::with_base_url(&base, need(a.token, "token")?)?;
            inbox.add(
                a.name.clone(),
                MercadoLibreAccount::new(client, need(a.seller_id, "seller_id")?),
            );
        }
        Marketplace::Magalu => {
            let client = inbox_magalu::Magalu::with_base_url(&base, need(a.token, "token")?)?;
            inbox.add(
                a.name,
                MagaluAccount::new(client, owner(a.owner_name, a.owner_id)),
            );
        }
        Marketplace::Ozon => {
            let client = inbox_ozon::Ozon::with_base_url(
                &base,
                need(a.client_id, "client_id")?,
                need(a.api_key, "api_key")?,
            )?;
            inbox.add(a.name, OzonAccount::new(client));
        }
    }
    Ok(())
}

/// Accounts from `ALLEGRO_TOKEN`, `MERCADOLIBRE_TOKEN` + `MERCADOLIBRE_SELLER_ID`,
/// `MAGALU_TOKEN` (+ `MAGALU_OWNER_NAME`, `MAGALU_OWNER_ID`), `OZON_CLIENT_ID` + `OZON_API_KEY`.
pub fn from_env() -> Result<Inbox> {
    let mut inbox = Inbox::new();
    let account = |name: &str, marketplace: &str| AccountConfig {
        name: name.into(),
        marketplace: marketplace.into(),
        token: None,
        seller_id: None,
        client_id: None,
        api_key: None,
        owner_name: None,
        owner_id: None,
        base_url: None,
    };
    if let Some(token) = env("ALLEGRO_TOKEN") {
        add(
            &mut inbox,
            AccountConfig {
                token: Some(token),
                ..account("allegro", "allegro")
            },
        )?;
    }
    match (env("MERCADOLIBRE_TOKEN"), env("MERCADOLIBRE_SELLER_ID")) {
        (Some(token), Some(seller)) => add(
            &mut inbox,
            AccountConfig {
                token: Some(token),
                seller_id: Some(seller),
                ..account("mercadolibre", "mercadolibre")
            },
        )?,
        (Some(_), None) => {
            bail!("MERCADOLIBRE_TOKEN is set but MERCADOLIBRE_SELLER_ID is not: set both")
        }
        _ => {}
    }
    if let Some(token) = env("MAGALU_TOKEN") {
        add(
            &mut inbox,
            AccountConfig {
                token: Some(token),
                owner_name: env("MAGALU_OWNER_NAME"),
                owner_id: env("MAGALU_OWNER_ID"),
                ..account("magalu", "magalu")
            },
        )?;
    }
    match (env("OZON_CLIENT_ID"), env("OZON_API_KEY")) {
        (Some(id), Some(key)) => add(
            &mut inbox,
            AccountConfig {
                client_id: Some(id),
                api_key: Some(key),
                ..account("ozon", "ozon")
            },
        )?,
        (Some(_), None) | (None, Some(_)) => bail!("set both OZON_CLIENT_ID and OZON_API_KEY"),
        _ => {}
    }
    Ok(inbox)
}

/// Accounts from a JSON file `{"accounts": [{"name", "marketplace", "token", …}]}`.
pub fn from_file(path: &Path) -> Result<Inbox> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let file: ConfigFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid accounts file", path.display()))?;
    let mut inbox = Inbox::new();
    for a in file.accounts {
        add(&mut inbox, a)?;
    }
    Ok(inbox)
}

/// One account per marketplace, pointed at a running sandbox.
pub fn sandbox(s: &inbox_sandbox::Sandbox) -> Result<Inbox> {
    use inbox_sandbox::Vendor;
    let c = s.credentials().clone();
    let mut inbox = Inbox::new();
    inbox.add(
        "allegro",
        AllegroAccount::new(inbox_allegro::Allegro::with_base_url(
            &s.url(Vendor::Allegro),
            c.allegro_token,
        )?),
    );
    inbox.add(
        "mercadolibre",
        MercadoLibreAccount::new(
            inbox_mercadolibre::MercadoLibre::with_base_url(
                &s.url(Vendor::MercadoLibre),
                c.mercadolibre_token,
            )?,
            c.mercadolibre_seller_id,
        ),
    );
    inbox.add(
        "magalu",
        MagaluAccount::new(
            inbox_magalu::Magalu::with_base_url(&s.url(Vendor::Magalu), c.magalu_token)?,
            Some(MagaluOwner {
                name: "Sandbox Attendant".into(),
                external_id: "sandbox-attendant".into(),
            }),
        ),
    );
    inbox.add(
        "ozon",
        OzonAccount::new(inbox_ozon::Ozon::with_base_url(
            &s.url(Vendor::Ozon),
            c.ozon_client_id,
            c.ozon_api_key,
        )?),
    );
    Ok(inbox)
}
