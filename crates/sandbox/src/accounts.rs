//! The sandbox's accounts: each has its own credentials, its own data on every
//! marketplace and its own per-account rate limits. A request is answered for the account
//! its credential names (the bearer token, an access token issued to it, or Ozon's
//! `Client-Id`); the fault layer finds it and the handlers read it from [`current`].

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{Market, Vendor};
use crate::{limits, seed, Config, Credentials};

/// Conversation numbers of account `k` (1-based) start at `(k - 1) × STRIDE`, so that no
/// two accounts share a conversation or message id.
const STRIDE: u64 = 1_000_000;

/// The most accounts a sandbox serves per marketplace.
pub const MAX_ACCOUNTS: u64 = 100_000;

tokio::task_local! {
    /// The index of the account the request being answered belongs to.
    static CURRENT: usize;
}

/// The account of the request being answered (the first outside of one).
pub(crate) fn current() -> usize {
    CURRENT.try_with(|i| *i).unwrap_or(0)
}

/// Runs `f` as a request of account `index`.
pub(crate) async fn scope<F: std::future::Future>(index: usize, f: F) -> F::Output {
    CURRENT.scope(index, f).await
}

/// One account, on all four marketplaces.
pub(crate) struct Account {
    /// Its credentials.
    pub credentials: Credentials,
    markets: [Mutex<Market>; 4],
    /// Its per-account rate limits.
    pub windows: limits::Windows,
}

impl Account {
    /// Its data on one marketplace.
    pub(crate) fn market(&self, vendor: Vendor) -> &Mutex<Market> {
        let [allegro, mercadolibre, magalu, ozon] = &self.markets;
        match vendor {
            Vendor::Allegro => allegro,
            Vendor::MercadoLibre => mercadolibre,
            Vendor::Magalu => magalu,
            Vendor::Ozon => ozon,
        }
    }
}

/// Every account, and who holds which credential.
pub(crate) struct Accounts {
    /// The first account (there always is one), then the others.
    first: Account,
    rest: Vec<Account>,
    /// A configured token (Ozon: `Client-Id`) → the account holding it, per marketplace.
    by_credential: [HashMap<String, usize>; 4],
}

/// The name of account `number` (1-based) of `vendor` in
/// [`crate::Sandbox::accounts_config`]: the marketplace's prefix for the first,
/// `prefix-number` for the others.
pub fn account_name(vendor: Vendor, number: u64) -> String {
    match number {
        1 => vendor.prefix().to_string(),
        n => format!("{}-{n}", vendor.prefix()),
    }
}

/// The account number a name stands for on `vendor`.
pub(crate) fn number_of(vendor: Vendor, name: &str) -> Option<u64> {
    if name == vendor.prefix() {
        return Some(1);
    }
    let n: u64 = name
        .strip_prefix(vendor.prefix())?
        .strip_prefix('-')?
        .parse()
        .ok()?;
    (n >= 2).then_some(n)
}

impl Credentials {
    /// The credentials of account `number` (1-based): the configured ones for the first,
    /// numbered variants of them for the others.
    pub fn of_account(&self, number: u64) -> Credentials {
        if number <= 1 {
            return self.clone();
        }
        let add = |base: &str| {
            base.parse::<u64>()
                .ok()
                .and_then(|b| b.checked_add(number - 1))
                .map_or_else(|| format!("{base}-{number}"), |n| n.to_string())
        };
        Credentials {
            allegro_token: format!("{}-{number}", self.allegro_token),
            mercadolibre_token: format!("{}-{number}", self.mercadolibre_token),
            mercadolibre_seller_id: add(&self.mercadolibre_seller_id),
            magalu_token: format!("{}-{number}", self.magalu_token),
            ozon_client_id: add(&self.ozon_client_id),
            ozon_api_key: format!("{}-{number}", self.ozon_api_key),
            mercadolibre_application_id: self.mercadolibre_application_id.clone(),
        }
    }
}

fn slot(vendor: Vendor) -> usize {
    match vendor {
        Vendor::Allegro => 0,
        Vendor::MercadoLibre => 1,
        Vendor::Magalu => 2,
        Vendor::Ozon => 3,
    }
}

impl Accounts {
    /// `config.accounts` accounts (at least one), each seeded.
    pub(crate) fn new(config: &Config) -> Accounts {
        let count = config.accounts.clamp(1, MAX_ACCOUNTS);
        let stride = STRIDE.max(config.conversations.saturating_add(1));
        let build = |number: u64| {
            let first = (number - 1).saturating_mul(stride);
            let market = |vendor| Mutex::new(seed::market(vendor, config, first, number == 1));
            Account {
                credentials: config.credentials.of_account(number),
                markets: Vendor::ALL.map(market),
                windows: limits::Windows::new(config.limits.iter().filter(|l| !l.per_application)),
            }
        };
        let mut accounts = Accounts {
            first: build(1),
            rest: (2..=count).map(build).collect(),
            by_credential: Default::default(),
        };
        let mut by_credential: [HashMap<String, usize>; 4] = Default::default();
        for (index, (_, account)) in accounts.numbered().enumerate() {
            let c = &account.credentials;
            for (vendor, key) in [
                (Vendor::Allegro, &c.allegro_token),
                (Vendor::MercadoLibre, &c.mercadolibre_token),
                (Vendor::Magalu, &c.magalu_token),
                (Vendor::Ozon, &c.ozon_client_id),
            ] {
                by_credential[slot(vendor)].insert(key.clone(), index);
            }
        }
        accounts.by_credential = by_credential;
        accounts
    }

    /// Account `index`, or the first.
    pub(crate) fn get(&self, index: usize) -> &Account {
        index
            .checked_sub(1)
            .and_then(|i| self.rest.get(i))
            .unwrap_or(&self.first)
    }

    /// Every account with its number, first to last.
    pub(crate) fn numbered(&self) -> impl Iterator<Item = (u64, &Account)> {
        (1u64..).zip(std::iter::once(&self.first).chain(&self.rest))
    }

    /// The account holding a configured credential on `vendor`.
    pub(crate) fn holding(&self, vendor: Vendor, credential: &str) -> Option<usize> {
        self.by_credential
            .get(slot(vendor))
            .and_then(|m| m.get(credential))
            .copied()
    }

    /// The index of the account named `name` on `vendor`.
    pub(crate) fn named(&self, vendor: Vendor, name: &str) -> Option<usize> {
        let n = number_of(vendor, name)?;
        let index = usize::try_from(n - 1).ok()?;
        (index < self.len()).then_some(index)
    }

    /// How many accounts there are per marketplace.
    pub(crate) fn len(&self) -> usize {
        self.rest.len().saturating_add(1)
    }
}
