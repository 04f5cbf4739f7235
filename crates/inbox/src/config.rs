//! Accounts from configuration: [`AccountConfig`] per account, [`InboxConfig`] for many,
//! read from code, a JSON file or the environment.
//!
//! The file form is flat, one object per account:
//!
//! ```json
//! {"accounts": [
//!   {"name": "pl-main", "marketplace": "allegro", "token": "…"},
//!   {"name": "br", "marketplace": "mercadolibre", "token": "…", "seller_id": "415458330"},
//!   {"name": "mg", "marketplace": "magalu", "token": "…", "owner_name": "Ana", "owner_id": "ana"},
//!   {"name": "ru", "marketplace": "ozon", "client_id": "123456", "api_key": "…"},
//!   {"name": "pl-oauth", "marketplace": "allegro", "client_id": "…", "client_secret": "…",
//!    "refresh_token": "…", "access_token": "…", "expires_at": "2026-11-27T10:00:00Z"}
//! ]}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use inbox_core::Secret;
use serde::{Deserialize, Serialize};

use crate::{Error, Marketplace};

/// How an account authenticates.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Credentials {
    /// A bearer access token used as it is (Allegro, Mercado Libre, Magalu).
    Token(Secret),
    /// OAuth 2 credentials of an app the seller authorised (Allegro, Mercado Libre,
    /// Magalu).
    OAuth(OAuthCredentials),
    /// Ozon's `Client-Id` and `Api-Key`.
    ApiKey {
        /// The seller's numeric client id.
        client_id: String,
        /// The API key.
        api_key: Secret,
    },
}

impl Credentials {
    /// A bearer access token used as it is.
    pub fn token(token: impl Into<String>) -> Credentials {
        Credentials::Token(Secret::from(token.into()))
    }

    /// Ozon's `Client-Id` and `Api-Key`.
    pub fn api_key(client_id: impl Into<String>, api_key: impl Into<String>) -> Credentials {
        Credentials::ApiKey {
            client_id: client_id.into(),
            api_key: Secret::from(api_key.into()),
        }
    }
}

/// OAuth 2 credentials: the app's id and secret, the seller's refresh token, and the
/// current access token with its expiry when known.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OAuthCredentials {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: Secret,
    /// The seller's refresh token (single-use on Allegro and Mercado Libre).
    pub refresh_token: Secret,
    /// The current access token, when one is held.
    pub access_token: Option<Secret>,
    /// When the access token expires, when known.
    pub expires_at: Option<DateTime<Utc>>,
}

impl OAuthCredentials {
    /// OAuth credentials without a current access token.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        refresh_token: impl Into<Secret>,
    ) -> Self {
        OAuthCredentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: refresh_token.into(),
            access_token: None,
            expires_at: None,
        }
    }

    /// With the current access token and, when known, its expiry.
    pub fn access_token(
        mut self,
        token: impl Into<Secret>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        self.access_token = Some(token.into());
        self.expires_at = expires_at;
        self
    }
}

/// Where an inbox saves rotated OAuth tokens: called with the account's name and its new
/// tokens after every refresh, before they are used. An error is logged and the new
/// tokens are used all the same (the old refresh token is already spent).
pub trait TokenStore: Send + Sync {
    /// Saves `tokens` for the account `account`.
    fn save(&self, account: &str, tokens: &inbox_core::Tokens) -> Result<(), String>;

    /// Runs `grant` as the only refresh of `account` among every process sharing the
    /// store (see [`inbox_core::PersistTokens::refresh_exclusively`]). By default (a
    /// store of one process): `grant`, then [`TokenStore::save`].
    fn refresh_exclusively<'a>(
        &'a self,
        account: &'a str,
        held: inbox_core::Tokens,
        grant: inbox_core::Grant<'a>,
    ) -> futures::future::BoxFuture<'a, Result<inbox_core::Tokens, inbox_core::Refused>> {
        Box::pin(async move {
            let tokens = grant(held.refresh_token).await?;
            if let Err(e) = self.save(account, &tokens) {
                tracing::error!(account, error = %e, "rotated tokens could not be saved");
            }
            Ok(tokens)
        })
    }
}

/// The seller-side attendant Magalu requires on every reply (`owner`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MagaluOwner {
    /// Display name, e.g. `Joseph Climber`.
    pub name: String,
    /// Your id for the attendant, e.g. `j.climber`.
    pub external_id: String,
}

/// How an account's requests are repeated; each `None` keeps the marketplace's default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all, the first included (1: never repeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The first backoff, in seconds (it doubles, with full jitter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_delay_secs: Option<f64>,
    /// The most time spent waiting between attempts of one request, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_delay_secs: Option<f64>,
    /// The wait after a 429 without `Retry-After`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited_wait_secs: Option<f64>,
}

impl RetrySettings {
    /// Never repeat a request.
    pub fn never() -> Self {
        RetrySettings {
            max_attempts: Some(1),
            ..RetrySettings::default()
        }
    }
}

/// A rate limit: at most `requests` per `per_secs` seconds (`requests: 0` lifts it;
/// without `per_secs`, the marketplace's own period is kept).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSetting {
    /// Requests allowed…
    pub requests: u32,
    /// …per this many seconds (default: the marketplace's period for that limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_secs: Option<f64>,
}

/// How long an account's requests may take; each `None` keeps the default (connect
/// 10 s, request 60 s, stall 20 s).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSettings {
    /// To open a connection, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_secs: Option<f64>,
    /// For a whole request and its answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_secs: Option<f64>,
    /// Between two reads of a body (a stalled transfer), in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_secs: Option<f64>,
}

/// One marketplace account: its unique name, marketplace, credentials, and what the
/// marketplace needs besides (Mercado Libre's seller id, Magalu's reply owner).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AccountFile", into = "AccountFile")]
#[non_exhaustive]
pub struct AccountConfig {
    /// The account's name: 1 to 64 letters, digits, `.`, `_`, `-`; unique in an inbox.
    pub name: String,
    /// Which marketplace.
    pub marketplace: Marketplace,
    /// How it authenticates.
    pub credentials: Credentials,
    /// The API's base URL; `None` for the marketplace's production API.
    pub base_url: Option<String>,
    /// Mercado Libre: the seller's user id (required there).
    pub seller_id: Option<String>,
    /// Magalu: who signs replies (required to send there).
    pub owner: Option<MagaluOwner>,
    /// OAuth: the token endpoint; `None` for the marketplace's own.
    pub token_url: Option<String>,
    /// Overrides of the marketplace's rate limits, by name (`all`, `reads`, `writes`,
    /// `messages`; see each client's `policy`).
    pub limits: BTreeMap<String, LimitSetting>,
    /// Retries.
    pub retry: RetrySettings,
    /// Timeouts.
    pub timeouts: TimeoutSettings,
    /// How many conversations' messages are fetched at once when walking every
    /// conversation (export, first sync); `None` for the marketplace's default. The rate
    /// limiter still decides the pace.
    pub concurrency: Option<u32>,
    /// How often `inbox worker` syncs the account, in seconds; `None` for
    /// [`DEFAULT_POLL_INTERVAL_SECS`].
    pub poll_interval_secs: Option<f64>,
    /// The application (client id) the account's requests count against, for limits
    /// a vendor sets per application (Allegro's 9,000 a minute), and that Mercado Libre's
    /// notifications for it name; `None` for its OAuth client id, or no application for
    /// a bare token. In a config file `application` or `application_id`, text or a number.
    pub application: Option<String>,
}

/// How often a worker syncs an account that names no `poll_interval_secs`.
pub const DEFAULT_POLL_INTERVAL_SECS: f64 = 60.0;

impl AccountConfig {
    /// An account of `marketplace` named `name`, against the production API.
    pub fn new(
        name: impl Into<String>,
        marketplace: Marketplace,
        credentials: Credentials,
    ) -> Self {
        AccountConfig {
            name: name.into(),
            marketplace,
            credentials,
            base_url: None,
            seller_id: None,
            owner: None,
            token_url: None,
            limits: BTreeMap::new(),
            retry: RetrySettings::default(),
            timeouts: TimeoutSettings::default(),
            concurrency: None,
            poll_interval_secs: None,
            application: None,
        }
    }

    /// The application whose limits the account's requests count against:
    /// `application`, else its OAuth client id.
    pub fn application_id(&self) -> Option<&str> {
        self.application.as_deref().or(match &self.credentials {
            Credentials::OAuth(o) => Some(o.client_id.as_str()),
            _ => None,
        })
    }

    /// How often a worker syncs the account: `poll_interval_secs` when it is a number of
    /// seconds from 0.05 to a day, else the default (60 s).
    pub fn poll_interval(&self) -> std::time::Duration {
        let secs = self
            .poll_interval_secs
            .filter(|s| s.is_finite() && (0.05..=86_400.0).contains(s))
            .unwrap_or(DEFAULT_POLL_INTERVAL_SECS);
        std::time::Duration::try_from_secs_f64(secs).unwrap_or(std::time::Duration::from_secs(60))
    }

    /// How many conversations' messages are fetched at once.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// Another OAuth token endpoint (a sandbox, a test server).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Overrides the rate limit `name` (`requests: 0` lifts it).
    pub fn limit(mut self, name: impl Into<String>, requests: u32, per_secs: f64) -> Self {
        self.limits.insert(
            name.into(),
            LimitSetting {
                requests,
                per_secs: Some(per_secs),
            },
        );
        self
    }

    /// These retry settings.
    pub fn retry(mut self, retry: RetrySettings) -> Self {
        self.retry = retry;
        self
    }

    /// These timeouts.
    pub fn timeouts(mut self, timeouts: TimeoutSettings) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Against another base URL (a proxy, a sandbox, a test server).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Mercado Libre's seller id.
    pub fn seller_id(mut self, id: impl Into<String>) -> Self {
        self.seller_id = Some(id.into());
        self
    }

    /// Magalu's reply owner.
    pub fn owner(mut self, name: impl Into<String>, external_id: impl Into<String>) -> Self {
        self.owner = Some(MagaluOwner {
            name: name.into(),
            external_id: external_id.into(),
        });
        self
    }
}

/// Several accounts: the form of the `inbox --config` file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct InboxConfig {
    /// The accounts, in order.
    pub accounts: Vec<AccountConfig>,
    /// The apps registered at the vendors, through which sellers connect accounts
    /// (`{"marketplace", "client_id", "client_secret", "auth_url"?, "api_url"?}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<crate::onboarding::Application>,
}

impl InboxConfig {
    /// A configuration of these accounts.
    pub fn new(accounts: Vec<AccountConfig>) -> Self {
        InboxConfig {
            accounts,
            applications: Vec::new(),
        }
    }

    /// The app sellers of `marketplace` connect through: the file's `applications`
    /// entry, else `<MARKETPLACE>_CLIENT_ID` and `_CLIENT_SECRET` from the environment.
    pub fn application(&self, marketplace: Marketplace) -> Option<crate::onboarding::Application> {
        self.applications
            .iter()
            .find(|a| a.marketplace == marketplace)
            .cloned()
            .or_else(|| crate::onboarding::Application::from_env(marketplace))
    }

    /// Reads a JSON file `{"accounts": [...]}`. Accounts without a `base_url` take
    /// `INBOX_<MARKETPLACE>_URL` from the environment when it is set.
    pub fn from_file(path: impl AsRef<Path>) -> Result<InboxConfig, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
        let config: InboxConfig = serde_json::from_str(&text)
            .map_err(|e| Error::config(format!("{}: {e}", path.display())))?;
        Ok(config.with_env_urls())
    }

    /// Reads the file form (`{"accounts": [...]}`) from JSON text; accounts without a
    /// `base_url` take `INBOX_<MARKETPLACE>_URL` when it is set.
    pub fn from_json(text: &str) -> Result<InboxConfig, Error> {
        let config: InboxConfig =
            serde_json::from_str(text).map_err(|e| Error::config(format!("accounts: {e}")))?;
        Ok(config.with_env_urls())
    }

    /// Reads the file form from a JSON value (such as the sandbox's
    /// `accounts_config()`), like [`InboxConfig::from_json`].
    pub fn from_value(value: serde_json::Value) -> Result<InboxConfig, Error> {
        let config: InboxConfig =
            serde_json::from_value(value).map_err(|e| Error::config(format!("accounts: {e}")))?;
        Ok(config.with_env_urls())
    }

    fn with_env_urls(mut self) -> InboxConfig {
        self.applications = std::mem::take(&mut self.applications)
            .into_iter()
            .map(crate::onboarding::Application::with_env_hosts)
            .collect();
        for account in &mut self.accounts {
            if account.base_url.is_none() {
                account.base_url = env_url(account.marketplace);
            }
        }
        self
    }

    /// One account per marketplace whose variables are set, named after the marketplace:
    /// `ALLEGRO_TOKEN`; `MERCADOLIBRE_TOKEN` and `MERCADOLIBRE_SELLER_ID` (with
    /// `MERCADOLIBRE_APPLICATION_ID`, the application its notifications name); `MAGALU_TOKEN`
    /// (with `MAGALU_OWNER_NAME`, `MAGALU_OWNER_ID`); `OZON_CLIENT_ID` and `OZON_API_KEY`.
    /// Base URLs from `INBOX_<MARKETPLACE>_URL`. A half-set pair is an error.
    pub fn from_env() -> Result<InboxConfig, Error> {
        use Marketplace::*;
        let account = |m: Marketplace, credentials| {
            let mut a = AccountConfig::new(m.as_str(), m, credentials);
            a.base_url = env_url(m);
            a
        };
        let mut accounts = Vec::new();
        if let Some(token) = env("ALLEGRO_TOKEN") {
            accounts.push(account(Allegro, Credentials::Token(token.into())));
        }
        match (env("MERCADOLIBRE_TOKEN"), env("MERCADOLIBRE_SELLER_ID")) {
            (Some(token), Some(seller)) => {
                let mut a =
                    account(MercadoLibre, Credentials::Token(token.into())).seller_id(seller);
                a.application = env("MERCADOLIBRE_APPLICATION_ID");
                accounts.push(a);
            }
            (Some(_), None) => {
                return Err(Error::config(
                    "MERCADOLIBRE_TOKEN is set but MERCADOLIBRE_SELLER_ID is not: set both",
                ))
            }
            _ => {}
        }
        if let Some(token) = env("MAGALU_TOKEN") {
            let mut a = account(Magalu, Credentials::Token(token.into()));
            if let (Some(name), Some(id)) = (env("MAGALU_OWNER_NAME"), env("MAGALU_OWNER_ID")) {
                a = a.owner(name, id);
            }
            accounts.push(a);
        }
        match (env("OZON_CLIENT_ID"), env("OZON_API_KEY")) {
            (Some(client_id), Some(key)) => accounts.push(account(
                Ozon,
                Credentials::ApiKey {
                    client_id,
                    api_key: key.into(),
                },
            )),
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::config("set both OZON_CLIENT_ID and OZON_API_KEY"))
            }
            _ => {}
        }
        Ok(InboxConfig::new(accounts))
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// `INBOX_ALLEGRO_URL`, `INBOX_MERCADOLIBRE_URL`, `INBOX_MAGALU_URL`, `INBOX_OZON_URL`.
fn env_url(m: Marketplace) -> Option<String> {
    env(&format!("INBOX_{}_URL", m.as_str().to_ascii_uppercase()))
}

/// The flat file form of [`AccountConfig`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    name: String,
    marketplace: Marketplace,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seller_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    limits: BTreeMap<String, LimitSetting>,
    #[serde(default, skip_serializing_if = "is_default")]
    retry: RetrySettings,
    #[serde(default, skip_serializing_if = "is_default")]
    timeouts: TimeoutSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    poll_interval_secs: Option<f64>,
    #[serde(
        default,
        alias = "application_id",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "number_or_text"
    )]
    application: Option<String>,
}

/// An id given as text or as a whole number (Mercado Libre's application ids are numbers).
fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "an application id is text or a whole number, not {other}"
        ))),
    }
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl TryFrom<AccountFile> for AccountConfig {
    type Error = String;

    fn try_from(f: AccountFile) -> Result<Self, String> {
        let name = &f.name;
        let credentials = match (f.token, f.client_id, f.api_key, f.client_secret, f.refresh_token) {
            (Some(token), None, None, None, None) => Credentials::Token(token),
            (None, Some(client_id), Some(api_key), None, None) => {
                Credentials::ApiKey { client_id, api_key }
            }
            (None, Some(client_id), None, Some(client_secret), Some(refresh_token)) => {
                Credentials::OAuth(OAuthCredentials {
                    client_id,
                    client_secret,
                    refresh_token,
                    access_token: f.access_token,
                    expires_at: f.expires_at,
                })
            }
            _ => {
                return Err(format!(
                    "account {name}: give either `token`, or `client_id` and `api_key` (Ozon), or `client_id`, `client_secret` and `refresh_token` (OAuth)"
                ))
            }
        };
        let owner = match (f.owner_name, f.owner_id) {
            (Some(name), Some(external_id)) => Some(MagaluOwner { name, external_id }),
            (None, None) => None,
            _ => {
                return Err(format!(
                    "account {name}: give both `owner_name` and `owner_id`"
                ))
            }
        };
        Ok(AccountConfig {
            name: f.name,
            marketplace: f.marketplace,
            credentials,
            base_url: f.base_url,
            seller_id: f.seller_id,
            owner,
            token_url: f.token_url,
            limits: f.limits,
            retry: f.retry,
            timeouts: f.timeouts,
            concurrency: f.concurrency,
            poll_interval_secs: f.poll_interval_secs,
            application: f.application,
        })
    }
}

impl From<AccountConfig> for AccountFile {
    fn from(a: AccountConfig) -> Self {
        let mut f = AccountFile {
            name: a.name,
            marketplace: a.marketplace,
            base_url: a.base_url,
            token: None,
            client_id: None,
            api_key: None,
            client_secret: None,
            refresh_token: None,
            access_token: None,
            expires_at: None,
            seller_id: a.seller_id,
            owner_name: None,
            owner_id: None,
            token_url: a.token_url,
            limits: a.limits,
            retry: a.retry,
            timeouts: a.timeouts,
            concurrency: a.concurrency,
            poll_interval_secs: a.poll_interval_secs,
            application: a.application,
        };
        if let Some(owner) = a.owner {
            f.owner_name = Some(owner.name);
            f.owner_id = Some(owner.external_id);
        }
        match a.credentials {
            Credentials::Token(t) => f.token = Some(t),
            Credentials::ApiKey { client_id, api_key } => {
                f.client_id = Some(client_id);
                f.api_key = Some(api_key);
            }
            Credentials::OAuth(o) => {
                f.client_id = Some(o.client_id);
                f.client_secret = Some(o.client_secret);
                f.refresh_token = Some(o.refresh_token);
                f.access_token = o.access_token;
                f.expires_at = o.expires_at;
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_lifted_with_requests_zero_needs_no_period() {
        let text = r#"{"accounts": [{"name": "pl", "marketplace": "allegro", "token": "t",
            "limits": {"all": {"requests": 0}}}]}"#;
        let config: InboxConfig = serde_json::from_str(text).unwrap();
        let limit = config.accounts[0].limits["all"];
        assert_eq!((limit.requests, limit.per_secs), (0, None));
        #[cfg(feature = "allegro")]
        assert!(crate::Account::from_config(&config.accounts[0]).is_ok());
    }

    #[test]
    fn the_file_form_round_trips_and_refuses_mixed_credentials() {
        let text = r#"{"accounts": [
            {"name": "pl", "marketplace": "allegro", "token": "t"},
            {"name": "ru", "marketplace": "Ozon", "client_id": "1", "api_key": "k", "base_url": "http://x"},
            {"name": "br", "marketplace": "mercadolibre", "client_id": "c", "client_secret": "s",
             "refresh_token": "r", "seller_id": "9"},
            {"name": "mg", "marketplace": "magalu", "token": "g", "owner_name": "Ana", "owner_id": "ana",
             "limits": {"reads": {"requests": 100, "per_secs": 60}}, "retry": {"max_attempts": 2},
             "timeouts": {"stall_secs": 5}}
        ]}"#;
        let config: InboxConfig = serde_json::from_str(text).unwrap();
        assert_eq!(config.accounts.len(), 4);
        assert!(matches!(
            &config.accounts[2].credentials,
            Credentials::OAuth(o) if o.refresh_token.expose() == "r" && o.access_token.is_none()
        ));
        assert_eq!(
            config.accounts[3].owner.as_ref().map(|o| o.name.as_str()),
            Some("Ana")
        );
        assert_eq!(config.accounts[1].marketplace, Marketplace::Ozon);
        assert_eq!(config.accounts[3].retry.max_attempts, Some(2));
        assert_eq!(config.accounts[3].limits["reads"].requests, 100);
        let again: InboxConfig =
            serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
        assert_eq!(again, config);
        assert!(!format!("{config:?}").contains("\"t\""), "{config:?}");

        for bad in [
            r#"{"accounts": [{"name": "a", "marketplace": "allegro", "token": "t", "api_key": "k"}]}"#,
            r#"{"accounts": [{"name": "a", "marketplace": "allegro"}]}"#,
            r#"{"accounts": [{"name": "a", "marketplace": "ebay", "token": "t"}]}"#,
            r#"{"accounts": [{"name": "a", "marketplace": "allegro", "token": "t", "tokn": "x"}]}"#,
        ] {
            assert!(serde_json::from_str::<InboxConfig>(bad).is_err(), "{bad}");
        }
    }
}
