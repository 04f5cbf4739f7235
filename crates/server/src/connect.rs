//! Sellers connecting their accounts in a browser, on `inbox serve`'s listener:
//!
//! - an operator makes a connect link ([`create_link`]: `inbox accounts link`): a
//!   single-use URL `PUBLIC/connect/SECRET` that expires (1 h by default); the store
//!   keeps a hash of its secret;
//! - opening it sends the seller to the vendor's authorize page with a `state` bound to
//!   that link (random, single use; the store keeps its hash, compared in constant
//!   time) and a PKCE challenge where the vendor takes one — or, for Ozon, shows a form
//!   for the Client-Id and Api-Key, checked with one read before anything is stored;
//! - the vendor sends the seller back to `PUBLIC/connect/callback/{marketplace}`: the code
//!   is exchanged at once, the seller's id learnt, and the account stored (a seller
//!   already connected under another account is refused; a `--reconnect` link gives an
//!   existing account its new credentials, its sync resuming where it stopped). The
//!   seller lands on the link's `return_to` with `?account=NAME&status=connected`, or
//!   `?status=error&reason=…` (never a stack trace).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use marketplace_inbox::onboarding::encode;
use marketplace_inbox::sync::{ConnectLink, LinkKey, StoreErrorKind};
use marketplace_inbox::{
    random_hex, sha256_hex, Account, AccountConfig, Credentials, InboxConfig, Marketplace, TokenKey,
};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::text::html_escape;
use crate::{Directory, Sink};

/// How long a connect link works unless told otherwise.
pub const LINK_TTL: Duration = Duration::from_secs(3600);

/// What the connect routes need.
pub struct Connect {
    directory: Directory,
    key: TokenKey,
    /// The `applications` of a config file (else the environment's).
    config: InboxConfig,
    public_url: String,
    sink: Arc<dyn Sink>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Connect {
    /// Connect routes storing accounts in `directory` (credentials sealed with `key`),
    /// with the apps of `config` (or the environment's), redirect URIs under
    /// `public_url`.
    pub fn new(
        directory: Directory,
        key: TokenKey,
        config: InboxConfig,
        public_url: &str,
        sink: Arc<dyn Sink>,
    ) -> Result<Connect> {
        Ok(Connect {
            directory,
            key,
            config,
            public_url: public_url_base(public_url)?,
            sink,
        })
    }

    /// The redirect URI registered at the vendor for `marketplace`.
    pub fn redirect_uri(&self, marketplace: Marketplace) -> String {
        format!(
            "{}/connect/callback/{}",
            self.public_url,
            marketplace.as_str()
        )
    }
}

/// `url` checked as the base of public URLs (http or https, no query), without a
/// trailing slash.
pub fn public_url_base(url: &str) -> Result<String> {
    let trimmed = url.trim().trim_end_matches('/');
    let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
        && !trimmed.contains(['?', '#', ' ']);
    if !ok {
        return Err(anyhow!(
            "the public URL must be an http(s) URL without a query, like https://inbox.example.com"
        ));
    }
    Ok(trimmed.to_string())
}

/// The connect routes: `GET|POST /connect/{link}` and `GET /connect/callback/{marketplace}`.
pub fn connect_router(connect: Arc<Connect>) -> Router {
    Router::new()
        .route("/connect/callback/{marketplace}", get(callback))
        .route("/connect/{link}", get(open).post(ozon_form))
        .with_state(connect)
}

/// Makes a connect link for the account `name` of `marketplace`, under `public_url`,
/// valid for `ttl`: its URL and when it expires. With `reconnect`, the account must
/// exist (it gets new credentials); without, the name must be free.
pub async fn create_link(
    directory: &Directory,
    marketplace: Marketplace,
    name: &str,
    return_to: Option<&str>,
    reconnect: bool,
    public_url: &str,
    ttl: Duration,
) -> Result<(String, DateTime<Utc>)> {
    if !marketplace_inbox::valid_account_name(name) {
        return Err(anyhow!(
            "account name {name:?} must be 1 to 64 letters, digits, '.', '_' or '-'"
        ));
    }
    if let Some(url) = return_to {
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && !url.contains('#')
            && !url.chars().any(char::is_whitespace);
        if !ok {
            return Err(anyhow!(
                "--return-to must be an http(s) URL without a fragment"
            ));
        }
    }
    let base = public_url_base(public_url)?;
    match (directory.named(name).await?, reconnect) {
        (Some(a), true) if a.marketplace != marketplace => {
            return Err(anyhow!("the account {name} is a {} account", a.marketplace))
        }
        (Some(_), true) | (None, false) => {}
        (None, true) => return Err(anyhow!("no account is named {name:?} to connect again")),
        (Some(_), false) => {
            return Err(anyhow!(
                "an account is already named {name} (connect it again with --reconnect)"
            ))
        }
    }
    let secret = random_hex(32);
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
    let expires_at = Utc::now() + ttl;
    directory
        .add_link(
            &sha256_hex(&secret),
            marketplace,
            name,
            return_to,
            reconnect,
            expires_at,
        )
        .await?;
    Ok((format!("{base}/connect/{secret}"), expires_at))
}

/// Connects an account from a terminal: Allegro by its device flow (unless `browser`),
/// the others through a connect link served on `127.0.0.1:port` until the seller is
/// done. `say` tells the operator what to open.
#[allow(clippy::too_many_arguments)]
pub async fn terminal(
    directory: &Directory,
    key: &TokenKey,
    applications: &InboxConfig,
    marketplace: Marketplace,
    name: &str,
    reconnect: bool,
    port: u16,
    browser: bool,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<marketplace_inbox::sync::StoredAccount> {
    if marketplace == Marketplace::Allegro && !browser {
        let app = applications.application(marketplace).ok_or_else(|| {
            anyhow!("no Allegro application: set ALLEGRO_CLIENT_ID and ALLEGRO_CLIENT_SECRET (or `applications` in --config)")
        })?;
        let device = app.device_start().await?;
        say(&format!(
            "open {} and enter the code {}",
            device.verification_uri, device.user_code
        ));
        if let Some(complete) = &device.verification_uri_complete {
            say(&format!("(or open {complete})"));
        }
        let connected = app.device_wait(&device).await?;
        let config = app.account(name, &connected);
        let stored = match reconnect {
            true => directory.reconnect(key, &config).await?,
            false => directory.add(key, &config).await?,
        };
        return Ok(stored);
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let public = format!("http://{}", listener.local_addr()?);
    let (url, _) = create_link(
        directory,
        marketplace,
        name,
        None,
        reconnect,
        &public,
        LINK_TTL,
    )
    .await?;
    let id = url
        .rsplit('/')
        .next()
        .map(sha256_hex)
        .ok_or_else(|| anyhow!("no link"))?;
    let connect = Connect::new(
        directory.clone(),
        key.clone(),
        applications.clone(),
        &public,
        Arc::new(crate::Discard),
    )?;
    let router = connect_router(Arc::new(connect));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    say(&format!("open {url} in a browser to connect the account"));
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match directory.link(&id).await? {
            Some(link) if link.expires_at <= Utc::now() => break Some("expired".to_string()),
            Some(link) => match link.outcome {
                Some(outcome) => break Some(outcome),
                None => continue,
            },
            None => break None,
        }
    };
    server.abort();
    match outcome.as_deref() {
        Some("connected") => directory
            .named(name)
            .await?
            .ok_or_else(|| anyhow!("the account {name} is gone")),
        Some(reason) => Err(anyhow!("the account was not connected: {reason}")),
        None => Err(anyhow!("the connect link is gone")),
    }
}

/// How a connect attempt ended, as the seller is told.
enum Ending {
    Connected(String),
    Failed(&'static str),
}

/// Sends the seller where the link says, with the outcome (or shows it).
fn finish(link: &ConnectLink, ending: Ending) -> Response {
    let (query, text) = match &ending {
        Ending::Connected(name) => (
            format!("account={}&status=connected", encode(name)),
            format!("The account {name} is connected. You can close this page."),
        ),
        Ending::Failed(reason) => (
            format!(
                "account={}&status=error&reason={}",
                encode(&link.name),
                encode(reason)
            ),
            format!("The account could not be connected ({reason})."),
        ),
    };
    match &link.return_to {
        Some(to) => {
            let joiner = if to.contains('?') { '&' } else { '?' };
            let location = format!("{to}{joiner}{query}");
            (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
        }
        None => {
            let status = match ending {
                Ending::Connected(_) => StatusCode::OK,
                Ending::Failed(_) => StatusCode::BAD_REQUEST,
            };
            page(
                status,
                "Connect an account",
                &format!("<p>{}</p>", html_escape(&text)),
            )
        }
    }
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head><body><h1>{t}</h1>{body}</body></html>",
            t = html_escape(title)
        ),
    )
        .into_response()
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Connect an account",
        "<p>The service cannot connect accounts right now; try again in a minute.</p>",
    )
}

fn gone() -> Response {
    page(
        StatusCode::GONE,
        "Connect an account",
        "<p>This link has expired or was used already. Ask for a new one.</p>",
    )
}

/// The link a request names by its secret, when it is usable: exists, unexpired, not
/// finished.
async fn usable(connect: &Connect, secret: &str) -> Result<Option<ConnectLink>, Response> {
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    match connect.directory.link(&sha256_hex(secret)).await {
        Ok(Some(l)) if l.expires_at > Utc::now() && l.done_at.is_none() => Ok(Some(l)),
        Ok(_) => Ok(None),
        Err(_) => Err(unavailable()),
    }
}

/// `GET /connect/{link}`: to the vendor's authorize page (Ozon: the key form).
async fn open(State(connect): State<Arc<Connect>>, Path(secret): Path<String>) -> Response {
    let link = match usable(&connect, &secret).await {
        Ok(Some(l)) => l,
        Ok(None) => return gone(),
        Err(r) => return r,
    };
    if link.marketplace == Marketplace::Ozon {
        // Opened once; the form may be posted again until the keys are right.
        if link.opened_at.is_none() {
            match connect
                .directory
                .open_link(&link.id, None, None, None)
                .await
            {
                Ok(Some(_)) => {}
                Ok(None) => return gone(),
                Err(_) => return unavailable(),
            }
        }
        return ozon_page(&link, None);
    }
    let Some(app) = connect.config.application(link.marketplace) else {
        return finish(&link, Ending::Failed("no_application"));
    };
    let state = random_hex(32);
    let verifier = app.uses_pkce().then(|| random_hex(32));
    let redirect_uri = connect.redirect_uri(link.marketplace);
    let Ok(url) = app.authorize_url(&redirect_uri, &state, verifier.as_deref()) else {
        return finish(&link, Ending::Failed("unsupported"));
    };
    match connect
        .directory
        .open_link(
            &link.id,
            Some(&sha256_hex(&state)),
            verifier.as_deref(),
            Some(&redirect_uri),
        )
        .await
    {
        Ok(Some(_)) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, url),
                (header::CACHE_CONTROL, "no-store".into()),
            ],
        )
            .into_response(),
        Ok(None) => gone(),
        Err(_) => unavailable(),
    }
}

/// What a vendor sends back to the callback.
#[derive(Debug, Default, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /connect/callback/{marketplace}`: the code exchanged, the seller identified, the
/// account stored.
async fn callback(
    State(connect): State<Arc<Connect>>,
    Path(marketplace): Path<String>,
    Query(back): Query<Callback>,
) -> Response {
    let Some(state) = back.state.filter(|s| s.len() == 64) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Connect an account",
            "<p>This answer does not belong to a connect link.</p>",
        );
    };
    let state_hash = sha256_hex(&state);
    let link = match connect
        .directory
        .finish_link(LinkKey::State(&state_hash))
        .await
    {
        Ok(Some(l)) => l,
        Ok(None) => return used_or_forged(&connect, &state_hash).await,
        Err(_) => return unavailable(),
    };
    // The store found it by the hash; compared again in constant time.
    let stored = link.state_hash.clone().unwrap_or_default();
    if !bool::from(stored.as_bytes().ct_eq(state_hash.as_bytes())) {
        return page(
            StatusCode::BAD_REQUEST,
            "Connect an account",
            "<p>Unknown link.</p>",
        );
    }
    let ending = connected(
        &connect,
        &link,
        &marketplace,
        &back.code,
        back.error.as_deref(),
    )
    .await;
    conclude(&connect, &link, ending).await
}

/// A callback whose state finishes no link: a replay of a finished one (the error
/// redirect), or a state no link ever sent (an error page).
async fn used_or_forged(connect: &Connect, state_hash: &str) -> Response {
    match connect.directory.link_by_state(state_hash).await {
        Ok(Some(link)) if link.expires_at <= Utc::now() => finish(&link, Ending::Failed("expired")),
        Ok(Some(link)) => finish(&link, Ending::Failed("already_used")),
        Ok(None) => page(
            StatusCode::BAD_REQUEST,
            "Connect an account",
            "<p>This answer does not belong to a connect link.</p>",
        ),
        Err(_) => unavailable(),
    }
}

/// Records how a finished link ended (what `accounts connect` waits for), and tells the
/// seller.
async fn conclude(connect: &Connect, link: &ConnectLink, ending: Ending) -> Response {
    let outcome = match &ending {
        Ending::Connected(_) => "connected",
        Ending::Failed(reason) => reason,
    };
    let _ = connect.directory.settle_link(&link.id, outcome).await;
    finish(link, ending)
}

/// The exchange and the account, once the link is finished.
async fn connected(
    connect: &Connect,
    link: &ConnectLink,
    marketplace: &str,
    code: &Option<String>,
    error: Option<&str>,
) -> Ending {
    if marketplace != link.marketplace.as_str() {
        return Ending::Failed("wrong_marketplace");
    }
    if let Some(error) = error {
        return Ending::Failed(match error {
            "access_denied" => "access_denied",
            "redirect_uri_mismatch" => "redirect_uri_mismatch",
            "invalid_scope" => "invalid_scope",
            "invalid_request" => "invalid_request",
            _ => "vendor_error",
        });
    }
    let (Some(code), Some(redirect_uri)) = (code, &link.redirect_uri) else {
        return Ending::Failed("no_code");
    };
    let Some(app) = connect.config.application(link.marketplace) else {
        return Ending::Failed("no_application");
    };
    let granted = match app
        .exchange(code, redirect_uri, link.verifier.as_deref())
        .await
    {
        Ok(g) => g,
        Err(e) => {
            connect.sink.note(&format!(
                "inbox: connect {}: {}",
                link.name,
                crate::text::one_line(&e.to_string(), crate::text::MAX_LINE)
            ));
            return Ending::Failed(match e.reason().as_str() {
                "invalid_grant" => "invalid_grant",
                "invalid_client" => "invalid_client",
                "invalid_request" => "invalid_request",
                "unknown_seller" => "unknown_seller",
                "unreachable" => "unreachable",
                _ => "exchange_failed",
            });
        }
    };
    let config = app.account(&link.name, &granted);
    store(connect, link, &config).await
}

/// Stores the account a link connected.
async fn store(connect: &Connect, link: &ConnectLink, config: &AccountConfig) -> Ending {
    let stored = match link.reconnect {
        true => connect.directory.reconnect(&connect.key, config).await,
        false => connect.directory.add(&connect.key, config).await,
    };
    match stored {
        Ok(account) => {
            connect.sink.note(&format!(
                "inbox: {}: connected ({} seller {})",
                account.name,
                account.marketplace,
                account.seller_id.as_deref().unwrap_or("?")
            ));
            Ending::Connected(account.name)
        }
        Err(e) if e.kind() == StoreErrorKind::Conflict => {
            let text = e.to_string();
            Ending::Failed(if text.contains("already connected") {
                "already_connected"
            } else if text.contains("another") {
                "another_seller"
            } else {
                "name_taken"
            })
        }
        Err(e) if e.kind() == StoreErrorKind::NotFound => Ending::Failed("account_gone"),
        Err(_) => Ending::Failed("store_failed"),
    }
}

/// Ozon's form: the seller's Client-Id and Api-Key.
fn ozon_page(link: &ConnectLink, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p role=\"alert\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Connect an Ozon account",
        &format!(
            "{error}<p>Account <b>{}</b>: paste the Client-Id and an Api-Key from Ozon Seller, Settings → Seller API.</p>\
<form method=\"post\"><label>Client-Id <input name=\"client_id\" required autocomplete=\"off\"></label> \
<label>Api-Key <input name=\"api_key\" type=\"password\" required autocomplete=\"off\"></label> \
<button type=\"submit\" name=\"connect\" value=\"1\">Connect</button></form>",
            html_escape(&link.name)
        ),
    )
}

/// The Ozon form posted.
#[derive(Debug, Default, Deserialize)]
struct OzonKeys {
    client_id: Option<String>,
    api_key: Option<String>,
}

/// `POST /connect/{link}`: Ozon's keys, checked with one read, then stored.
async fn ozon_form(
    State(connect): State<Arc<Connect>>,
    Path(secret): Path<String>,
    Form(keys): Form<OzonKeys>,
) -> Response {
    let link = match usable(&connect, &secret).await {
        Ok(Some(l)) if l.marketplace == Marketplace::Ozon && l.opened_at.is_some() => l,
        Ok(_) => return gone(),
        Err(r) => return r,
    };
    let client_id = keys.client_id.unwrap_or_default().trim().to_string();
    let api_key = keys.api_key.unwrap_or_default().trim().to_string();
    let digits = !client_id.is_empty()
        && client_id.len() <= 20
        && client_id.bytes().all(|b| b.is_ascii_digit());
    if !digits || api_key.is_empty() || api_key.len() > 200 {
        return ozon_page(
            &link,
            Some("The Client-Id is a number and the Api-Key is required."),
        );
    }
    let mut config = AccountConfig::new(
        link.name.clone(),
        Marketplace::Ozon,
        Credentials::api_key(client_id, api_key),
    );
    config.base_url = std::env::var("INBOX_OZON_URL")
        .ok()
        .filter(|u| !u.is_empty());
    // One read before anything is stored: the key's roles and expiry.
    let expiry = match Account::from_config(&config) {
        Ok(account) => account.credentials_expiry().await.ok(),
        Err(_) => None,
    };
    let Some(expiry) = expiry else {
        return ozon_page(
            &link,
            Some("Ozon did not accept this Client-Id and Api-Key."),
        );
    };
    if expiry.is_some_and(|at| at <= Utc::now()) {
        return ozon_page(&link, Some("This Api-Key has expired: make a new one."));
    }
    let link = match connect.directory.finish_link(LinkKey::Id(&link.id)).await {
        Ok(Some(l)) => l,
        Ok(None) => return gone(),
        Err(_) => return unavailable(),
    };
    let ending = store(&connect, &link, &config).await;
    if let (Ending::Connected(name), Some(at)) = (&ending, expiry) {
        if let Ok(Some(stored)) = connect.directory.named(name).await {
            let _ = connect
                .directory
                .set_credentials_expiry(&stored.id, Some(at))
                .await;
        }
    }
    conclude(&connect, &link, ending).await
}
