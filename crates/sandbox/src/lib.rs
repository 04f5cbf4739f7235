// Handlers return early with the vendor's error `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]
//! A local HTTP sandbox that speaks the messaging APIs of Allegro, Mercado Libre, Magalu
//! and Ozon: same paths, methods, media types, paging, error bodies and auth checks as
//! the vendors document, over state kept in memory.
//!
//! Each marketplace lives under its own prefix of one server
//! (`http://127.0.0.1:PORT/allegro`, `/mercadolibre`, `/magalu`, `/ozon`), so a client
//! pointed at that base URL sees the vendor's own paths. The JSON is written by hand from
//! the vendors' documented shapes; it shares no types with the generated clients, so a
//! mistake in our specs cannot hide behind the same mistake on both sides.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
//! assert!(sandbox.url(inbox_sandbox::Vendor::Ozon).ends_with("/ozon"));
//! // A buyer writes; a client of the Ozon API sees it in the chat's history.
//! assert!(sandbox.buyer_writes(
//!     inbox_sandbox::Vendor::Ozon,
//!     "99feb3fc-a474-469f-95d5-268b470cc607",
//!     "Здравствуйте!"
//! ));
//! # Ok(())
//! # })
//! # }
//! ```

mod accounts;
mod allegro;
mod consent;
mod control;
mod http;
mod inject;
mod limits;
mod magalu;
mod mercadolibre;
mod oauth;
mod ozon;
mod push;
mod seed;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

pub use accounts::{account_name, MAX_ACCOUNTS};
pub use consent::{authorize_path, DEVICE_GRANT};
pub use inject::Injection;
pub use limits::Limit;
pub use oauth::{token_path, OAuthConfig};
pub use push::PushStats;
pub use store::Vendor;

/// Credentials the sandbox accepts; anything else gets the vendor's 401 body.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Allegro bearer token.
    pub allegro_token: String,
    /// Mercado Libre bearer token.
    pub mercadolibre_token: String,
    /// Mercado Libre seller id (the sandbox account).
    pub mercadolibre_seller_id: String,
    /// Magalu bearer token.
    pub magalu_token: String,
    /// Ozon `Client-Id`.
    pub ozon_client_id: String,
    /// Ozon `Api-Key`.
    pub ozon_api_key: String,
    /// Mercado Libre's application id (what its notifications name).
    pub mercadolibre_application_id: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            allegro_token: "sandbox-allegro-token".into(),
            mercadolibre_token: "sandbox-mercadolibre-token".into(),
            mercadolibre_seller_id: "415458330".into(),
            magalu_token: "sandbox-magalu-token".into(),
            ozon_client_id: "123456".into(),
            ozon_api_key: "sandbox-ozon-api-key".into(),
            mercadolibre_application_id: "3486171129139063".into(),
        }
    }
}

/// Injected misbehaviour, for tests and benchmarks.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Added to every request.
    pub latency: Duration,
    /// Share of requests answered 429 with the vendor's body and `Retry-After` (0.0–1.0).
    pub rate_429: f64,
    /// The `Retry-After` of an injected 429, in seconds.
    pub retry_after_secs: u64,
    /// Share of requests answered 500 (0.0–1.0).
    pub rate_500: f64,
    /// Share of requests delayed by `slow_delay` (0.0–1.0).
    pub rate_slow: f64,
    /// Delay of a slow response.
    pub slow_delay: Duration,
    /// Share of requests whose connection breaks before the handler runs (0.0–1.0).
    pub rate_reset: f64,
    /// Share of requests whose answer stops half-way for `stall` (0.0–1.0).
    pub rate_stall: f64,
    /// How long a stalled answer stops.
    pub stall: Duration,
    /// Share of writes (POST, PUT, PATCH, DELETE) that are carried out but whose answer
    /// breaks off, so the client cannot know (0.0–1.0).
    pub rate_lost_write: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            rate_429: 0.0,
            retry_after_secs: 1,
            rate_500: 0.0,
            rate_slow: 0.0,
            slow_delay: Duration::ZERO,
            rate_reset: 0.0,
            rate_stall: 0.0,
            stall: Duration::ZERO,
            rate_lost_write: 0.0,
        }
    }
}

/// What the sandbox serves.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Generated conversations per marketplace (after the vendors' examples).
    pub conversations: u64,
    /// Generated messages per conversation (computed on demand, not stored).
    pub messages_per_conversation: u64,
    /// Largest page served, when lower than the vendor's own cap.
    pub page_cap: Option<u64>,
    /// Whether Allegro serves beta.v1 (false: 406, as for accounts without beta access).
    pub allegro_beta: bool,
    /// Accepted credentials.
    pub credentials: Credentials,
    /// Injected latency and errors.
    pub faults: Faults,
    /// The OAuth app and token lifetime of the token endpoints.
    pub oauth: OAuthConfig,
    /// Rate limits enforced with 429 (none by default; [`Limit::published`] has the
    /// vendors' own).
    pub limits: Vec<Limit>,
    /// Accounts served per marketplace, each with its own credentials and data (1 by
    /// default; at most [`MAX_ACCOUNTS`]).
    pub accounts: u64,
    /// Every `oauth_every`th account (by number) appears in
    /// [`Sandbox::accounts_config`] with OAuth credentials rather than a token (0: none;
    /// Ozon keeps its API key).
    pub oauth_every: u64,
    /// Where to push Mercado Libre's and Ozon's notifications (`BASE/mercadolibre`,
    /// `BASE/ozon`); none by default.
    pub push_url: Option<String>,
    /// How long an undelivered notification is tried again (the vendors: an hour).
    pub push_retry_for: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            conversations: 12,
            messages_per_conversation: 6,
            page_cap: None,
            allegro_beta: true,
            credentials: Credentials::default(),
            faults: Faults::default(),
            oauth: OAuthConfig::default(),
            limits: Vec::new(),
            accounts: 1,
            oauth_every: 0,
            push_url: None,
            push_retry_for: Duration::from_secs(3600),
        }
    }
}

impl Config {
    /// `conversations` × `messages` a marketplace under the vendors' published limits
    /// (enforced), every request answered after `latency`: how production feels.
    pub fn paced(conversations: u64, messages: u64, latency: Duration) -> Config {
        Config {
            conversations,
            messages_per_conversation: messages,
            faults: Faults {
                latency,
                ..Faults::default()
            },
            limits: Limit::published(),
            ..Config::default()
        }
    }
}

/// One request as the sandbox received it, so tests can assert who asked for what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Which marketplace's API it reached.
    pub vendor: Vendor,
    /// HTTP method.
    pub method: String,
    /// Path below the marketplace's prefix, with the query string.
    pub path: String,
    /// The credential presented: the bearer token, or Ozon's `Client-Id`.
    pub credential: Option<String>,
}

/// What one account holds on one marketplace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AccountStats {
    /// The marketplace's prefix (`allegro`, `mercadolibre`, `magalu`, `ozon`).
    pub marketplace: &'static str,
    /// The account's name in [`Sandbox::accounts_config`].
    pub account: String,
    /// Its conversations.
    pub conversations: u64,
    /// Its messages a client can list now (not those held by moderation).
    pub messages: u64,
}

/// How many received requests [`Sandbox::received`] keeps (the newest).
pub const RECEIVED_KEPT: usize = 10_000;

/// Shared state of the running sandbox.
pub(crate) struct App {
    pub config: Config,
    pub accounts: accounts::Accounts,
    pub requests: AtomicU64,
    pub received: Mutex<std::collections::VecDeque<Received>>,
    /// Every request counted by marketplace and path (without the query), since the
    /// start: unlike `received`, nothing is dropped.
    pub paths: Mutex<HashMap<(Vendor, String), u64>>,
    pub grants: [Mutex<oauth::Grants>; 4],
    /// The per-application limits (every account belongs to the one OAuth app).
    pub windows: limits::Windows,
    pub rate_limited: AtomicU64,
    pub lost_writes: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// The latency in force, in microseconds (starts as the configured one).
    pub latency_us: AtomicU64,
    /// While set, every request to a vendor's API is answered 503 (an outage).
    pub outage: std::sync::atomic::AtomicBool,
    /// Raw elements added to answers ([`Sandbox::inject`]).
    pub injections: Mutex<Vec<Injection>>,
    /// The vendors' push, when a push URL is configured.
    pub pusher: Option<push::Pusher>,
    /// Consents given, codes and device grants (connecting sellers).
    pub consents: Mutex<consent::Consents>,
    /// When Ozon API keys expire, by account (default: six months after the start).
    pub key_expiry: Mutex<HashMap<usize, chrono::DateTime<chrono::Utc>>>,
    /// When the sandbox started.
    pub started: chrono::DateTime<chrono::Utc>,
}

impl App {
    /// The data on `vendor` of the account whose request is being answered.
    pub(crate) fn market(&self, vendor: Vendor) -> &Mutex<store::Market> {
        self.accounts.get(accounts::current()).market(vendor)
    }

    /// The credentials of the account whose request is being answered.
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.accounts.get(accounts::current()).credentials
    }

    /// When account `index`'s Ozon API key expires.
    pub(crate) fn key_expiry(&self, index: usize) -> chrono::DateTime<chrono::Utc> {
        self.key_expiry
            .lock()
            .ok()
            .and_then(|k| k.get(&index).copied())
            .unwrap_or(self.started + chrono::Duration::days(182))
    }

    /// A buyer message written now in a conversation of account `index`, pushed where the
    /// sandbox pushes; `None` when there is no such conversation.
    pub(crate) fn buyer_writes(
        self: &Arc<Self>,
        vendor: Vendor,
        index: usize,
        conversation: &str,
        text: &str,
    ) -> Option<store::Msg> {
        let written = self
            .accounts
            .get(index)
            .market(vendor)
            .lock()
            .ok()?
            .append(vendor, conversation, store::Author::Buyer, text, Vec::new())?;
        push::notify(
            self,
            vendor,
            index,
            conversation,
            &written.id,
            push::Event::Created,
        );
        Some(written)
    }

    /// Refresh grants refused with `invalid_grant`, on every marketplace.
    pub(crate) fn invalid_grants(&self) -> u64 {
        Vendor::ALL
            .iter()
            .filter_map(|v| self.grants(*v).lock().ok())
            .map(|g| g.invalid_grants.load(std::sync::atomic::Ordering::SeqCst))
            .sum()
    }

    /// What the push side delivered so far (all zero without a push URL).
    pub(crate) fn push_stats(&self) -> PushStats {
        self.pusher.as_ref().map(|p| p.stats()).unwrap_or_default()
    }

    pub(crate) fn grants(&self, vendor: Vendor) -> &Mutex<oauth::Grants> {
        let i = Vendor::ALL.iter().position(|v| *v == vendor).unwrap_or(0);
        self.grants.get(i).unwrap_or(&self.grants[0])
    }

    pub(crate) fn page(&self, vendor_max: u64, asked: Option<u64>, default: u64) -> u64 {
        let cap = self
            .config
            .page_cap
            .map_or(vendor_max, |c| c.min(vendor_max))
            .max(1);
        asked.unwrap_or(default).clamp(1, cap)
    }
}

/// A running sandbox; dropping it stops the server.
pub struct Sandbox {
    addr: SocketAddr,
    app: Arc<App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Sandbox {
    /// Seeds the state and starts serving on `config.listen`.
    pub async fn start(config: Config) -> std::io::Result<Sandbox> {
        let accounts = accounts::Accounts::new(&config);
        let app = Arc::new(App {
            requests: AtomicU64::new(0),
            received: Mutex::new(std::collections::VecDeque::new()),
            paths: Mutex::new(HashMap::new()),
            grants: Vendor::ALL.map(|_| oauth::Grants::new(&config.oauth, accounts.len())),
            windows: limits::Windows::new(config.limits.iter().filter(|l| l.per_application)),
            accounts,
            rate_limited: AtomicU64::new(0),
            lost_writes: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            latency_us: AtomicU64::new(
                u64::try_from(config.faults.latency.as_micros()).unwrap_or(u64::MAX),
            ),
            injections: Mutex::new(Vec::new()),
            outage: std::sync::atomic::AtomicBool::new(false),
            pusher: config
                .push_url
                .as_deref()
                .and_then(|base| push::Pusher::new(base, config.push_retry_for)),
            consents: Mutex::new(consent::Consents::default()),
            key_expiry: Mutex::new(HashMap::new()),
            started: chrono::Utc::now(),
            config,
        });
        let listener = tokio::net::TcpListener::bind(app.config.listen).await?;
        let addr = listener.local_addr()?;
        let router = router(app.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        push::ping(&app);
        Ok(Sandbox {
            addr,
            app,
            shutdown: Some(tx),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of one marketplace's API.
    pub fn url(&self, vendor: Vendor) -> String {
        format!("http://{}/{}", self.addr, vendor.prefix())
    }

    /// The credentials it accepts.
    pub fn credentials(&self) -> &Credentials {
        &self.app.config.credentials
    }

    /// Puts a raw element first in the answers `injection` names (a malformed
    /// conversation or message, say), until [`Sandbox::clear_injections`].
    pub fn inject(&self, injection: Injection) {
        if let Ok(mut all) = self.app.injections.lock() {
            all.push(injection);
        }
    }

    /// Removes every injected element.
    pub fn clear_injections(&self) {
        if let Ok(mut all) = self.app.injections.lock() {
            all.clear();
        }
    }

    /// Simulates the buyer writing in a conversation of the first account (what a real
    /// marketplace would deliver from its side); returns false when there is no such
    /// conversation.
    pub fn buyer_writes(&self, vendor: Vendor, conversation_id: &str, text: &str) -> bool {
        self.buyer_writes_to(vendor, vendor.prefix(), conversation_id, text)
            .is_some()
    }

    /// Simulates the buyer writing in a conversation of the account named `account` (its
    /// name in [`Sandbox::accounts_config`]); the new message's id, or `None` when there
    /// is no such account or conversation.
    pub fn buyer_writes_to(
        &self,
        vendor: Vendor,
        account: &str,
        conversation_id: &str,
        text: &str,
    ) -> Option<String> {
        let index = self.app.accounts.named(vendor, account)?;
        self.app
            .buyer_writes(vendor, index, conversation_id, text)
            .map(|m| m.id)
    }

    /// Simulates the buyer editing the text of a message written through the API or
    /// [`Sandbox::buyer_writes`] (generated messages cannot change) in a conversation of
    /// the first account; false when there is no such message.
    pub fn buyer_edits(
        &self,
        vendor: Vendor,
        conversation_id: &str,
        message_id: &str,
        text: &str,
    ) -> bool {
        let Some(index) = self.app.accounts.named(vendor, vendor.prefix()) else {
            return false;
        };
        let Ok(mut market) = self.app.accounts.get(index).market(vendor).lock() else {
            return false;
        };
        let Some(conversation) = market.get_mut(conversation_id) else {
            return false;
        };
        match conversation.extra.iter_mut().find(|m| m.id == message_id) {
            Some(message) => {
                message.text = text.to_string();
                true
            }
            None => false,
        }
    }

    /// How many requests each path of `vendor`'s API received since the start (the path
    /// without its query; nothing is dropped, unlike [`Sandbox::received`]).
    pub fn path_counts(&self, vendor: Vendor) -> HashMap<String, u64> {
        self.app
            .paths
            .lock()
            .map(|paths| {
                paths
                    .iter()
                    .filter(|((v, _), _)| *v == vendor)
                    .map(|((_, path), n)| (path.clone(), *n))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What the push side has delivered so far (all zero without a push URL).
    pub fn pushes(&self) -> PushStats {
        self.app
            .pusher
            .as_ref()
            .map(|p| p.stats())
            .unwrap_or_default()
    }

    /// The ids of the conversations of the account named `account` on `vendor`, in
    /// listing order (empty for no such account).
    pub fn conversations_of(&self, vendor: Vendor, account: &str) -> Vec<String> {
        let Some(index) = self.app.accounts.named(vendor, account) else {
            return Vec::new();
        };
        self.app
            .accounts
            .get(index)
            .market(vendor)
            .lock()
            .map(|m| m.convs.iter().map(|c| c.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The accounts of this sandbox in the form of an `inbox --config` file
    /// (`{"accounts": [...]}`): per account number, one per marketplace, named by
    /// [`account_name`]; every [`Config::oauth_every`]th with OAuth credentials.
    pub fn accounts_config(&self) -> serde_json::Value {
        self.config_of(|number| {
            let every = self.app.config.oauth_every;
            every > 0 && number % every == 0
        })
    }

    /// Every account's entry, with OAuth credentials where `oauth(number)`.
    fn config_of(&self, oauth: impl Fn(u64) -> bool) -> serde_json::Value {
        let mut accounts = Vec::new();
        for (number, account) in self.app.accounts.numbered() {
            let c = &account.credentials;
            let index = usize::try_from(number - 1).unwrap_or(usize::MAX);
            for vendor in Vendor::ALL {
                let mut entry = serde_json::json!({
                    "name": account_name(vendor, number),
                    "marketplace": vendor.prefix(),
                    "base_url": self.url(vendor),
                });
                let extra = match vendor {
                    // Every sandbox account belongs to the one OAuth app, whose limit
                    // they share.
                    Vendor::Allegro => serde_json::json!({"token": c.allegro_token,
                        "application": self.app.config.oauth.client_id}),
                    Vendor::MercadoLibre => serde_json::json!({"token": c.mercadolibre_token,
                        "seller_id": c.mercadolibre_seller_id,
                        "application_id": self.app.config.credentials.mercadolibre_application_id}),
                    Vendor::Magalu => serde_json::json!({"token": c.magalu_token,
                        "owner_name": "Sandbox Attendant", "owner_id": "sandbox-attendant"}),
                    Vendor::Ozon => serde_json::json!({"client_id": c.ozon_client_id,
                        "api_key": c.ozon_api_key}),
                };
                if let (Some(e), serde_json::Value::Object(extra)) = (entry.as_object_mut(), extra)
                {
                    e.extend(extra);
                    if vendor != Vendor::Ozon && oauth(number) {
                        e.remove("token");
                        let o = &self.app.config.oauth;
                        e.insert("client_id".into(), o.client_id.clone().into());
                        e.insert("client_secret".into(), o.client_secret.clone().into());
                        e.insert(
                            "refresh_token".into(),
                            self.refresh_token_of(vendor, index).into(),
                        );
                        e.insert(
                            "token_url".into(),
                            format!("{}{}", self.url(vendor), token_path(vendor)).into(),
                        );
                    }
                }
                accounts.push(entry);
            }
        }
        serde_json::json!({ "accounts": accounts })
    }

    /// The text of every message the seller sent through the API on a marketplace (first
    /// account), one entry per stored message (to count duplicates).
    pub fn seller_texts(&self, vendor: Vendor) -> Vec<String> {
        let Ok(market) = self.app.accounts.get(0).market(vendor).lock() else {
            return Vec::new();
        };
        market
            .convs
            .iter()
            .flat_map(|c| &c.extra)
            .filter(|m| m.author == store::Author::Seller)
            .map(|m| m.text.clone())
            .collect()
    }

    /// The same accounts, all with OAuth credentials: the sandbox's app, the refresh token
    /// valid now, and the token endpoint (Ozon keeps its API key).
    pub fn oauth_accounts_config(&self) -> serde_json::Value {
        self.config_of(|_| true)
    }

    /// The OAuth app the sandbox accepts (every marketplace's).
    pub fn oauth(&self) -> &OAuthConfig {
        &self.app.config.oauth
    }

    /// The seller's id at the vendor of the account named `account` (what connecting it
    /// learns): Allegro's user id, Mercado Libre's user id, Magalu's tenant uuid, Ozon's
    /// Client-Id.
    pub fn seller_id(&self, vendor: Vendor, account: &str) -> Option<String> {
        let index = self.app.accounts.named(vendor, account)?;
        Some(consent::seller_id(&self.app, vendor, index))
    }

    /// The refresh token the first account holds now on a marketplace.
    pub fn refresh_token(&self, vendor: Vendor) -> String {
        self.refresh_token_of(vendor, 0)
    }

    fn refresh_token_of(&self, vendor: Vendor, index: usize) -> String {
        self.app
            .grants(vendor)
            .lock()
            .map(|g| g.refresh_token(index).to_string())
            .unwrap_or_default()
    }

    /// Sets when the Ozon API key of the account named `account` expires (what
    /// `POST /v1/roles` answers); false for no such account.
    pub fn set_key_expiry(&self, account: &str, at: chrono::DateTime<chrono::Utc>) -> bool {
        let Some(index) = self.app.accounts.named(Vendor::Ozon, account) else {
            return false;
        };
        self.app
            .key_expiry
            .lock()
            .map(|mut k| k.insert(index, at))
            .is_ok()
    }

    /// The seller of the account named `account` revokes the app's grant on `vendor`: its
    /// refresh token and access tokens are refused from now on (`invalid_grant`, 401).
    /// False for no such account.
    pub fn revoke(&self, vendor: Vendor, account: &str) -> bool {
        let Some(index) = self.app.accounts.named(vendor, account) else {
            return false;
        };
        self.app
            .grants(vendor)
            .lock()
            .map(|mut g| g.revoke(index))
            .is_ok()
    }

    /// The seller of the account named `account` authorises the app again on `vendor`:
    /// the new refresh token (the old tokens stop working).
    pub fn authorize_again(&self, vendor: Vendor, account: &str) -> Option<String> {
        let index = self.app.accounts.named(vendor, account)?;
        self.app
            .grants(vendor)
            .lock()
            .ok()?
            .authorize_again(vendor, index)
    }

    /// How many refresh grants a marketplace has answered (all accounts).
    pub fn refreshes(&self, vendor: Vendor) -> u64 {
        self.app
            .grants(vendor)
            .lock()
            .map(|g| g.refreshes.load(std::sync::atomic::Ordering::SeqCst))
            .unwrap_or(0)
    }

    /// How many refresh grants were refused with `invalid_grant` (all marketplaces and
    /// accounts): a refresh token spent twice shows here.
    pub fn invalid_grants(&self) -> u64 {
        self.app.invalid_grants()
    }

    /// What every account holds now (the answer of `GET /_sandbox/stats`).
    pub fn stats(&self) -> Vec<AccountStats> {
        control::stats_of(&self.app)
    }

    /// Changes the latency added to every request from now on.
    pub fn set_latency(&self, latency: std::time::Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.app
            .latency_us
            .store(us, std::sync::atomic::Ordering::SeqCst);
    }

    /// Starts (true) or ends (false) an outage: meanwhile every request to a vendor's
    /// API is answered 503 (the control endpoint and the push side go on).
    pub fn set_outage(&self, on: bool) {
        self.app
            .outage
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// The most requests it was answering at one time.
    pub fn max_in_flight(&self) -> u64 {
        self.app
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many writes were carried out but had their answer broken off.
    pub fn lost_writes(&self) -> u64 {
        self.app
            .lost_writes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many requests were refused for a configured rate limit.
    pub fn rate_limited(&self) -> u64 {
        self.app
            .rate_limited
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The requests received so far, oldest first (at most the newest [`RECEIVED_KEPT`]).
    pub fn received(&self) -> Vec<Received> {
        self.app
            .received
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Simulates a buyer message that becomes visible only after `delay` (as after
    /// moderation), keeping its earlier creation time; false when there is no such
    /// conversation.
    pub fn buyer_writes_later(
        &self,
        vendor: Vendor,
        conversation_id: &str,
        text: &str,
        delay: Duration,
    ) -> bool {
        let visible_at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        self.app
            .market(vendor)
            .lock()
            .map(|mut m| {
                m.append_later(vendor, conversation_id, text, visible_at)
                    .is_some()
            })
            .unwrap_or(false)
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.app.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Vendor {
    /// The URL prefix of this marketplace in the sandbox.
    pub fn prefix(self) -> &'static str {
        match self {
            Vendor::Allegro => "allegro",
            Vendor::MercadoLibre => "mercadolibre",
            Vendor::Magalu => "magalu",
            Vendor::Ozon => "ozon",
        }
    }

    /// Every marketplace.
    pub const ALL: [Vendor; 4] = [
        Vendor::Allegro,
        Vendor::MercadoLibre,
        Vendor::Magalu,
        Vendor::Ozon,
    ];
}

fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    for vendor in Vendor::ALL {
        let routes = match vendor {
            Vendor::Allegro => allegro::routes(),
            Vendor::MercadoLibre => mercadolibre::routes(),
            Vendor::Magalu => magalu::routes(),
            Vendor::Ozon => ozon::routes(),
        };
        let mut token = axum::Router::new()
            .route(token_path(vendor), axum::routing::post(oauth::token))
            .route(
                consent::authorize_path(vendor),
                axum::routing::get(consent::authorize_page).post(consent::authorize_submit),
            );
        if vendor == Vendor::Allegro {
            token = token
                .route("/auth/oauth/device", axum::routing::post(consent::device))
                .route(
                    "/skojarz-aplikacje",
                    axum::routing::get(consent::device_page).post(consent::device_submit),
                );
        }
        let token = token.with_state((app.clone(), vendor));
        let routes = routes
            .layer(axum::middleware::from_fn_with_state(
                (app.clone(), vendor),
                http::faults,
            ))
            .with_state(app.clone())
            .merge(token);
        router = router.nest(&format!("/{}", vendor.prefix()), routes);
    }
    router.nest("/_sandbox", control::routes().with_state(app))
}
