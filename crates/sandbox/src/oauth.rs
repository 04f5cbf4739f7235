//! The vendors' OAuth token endpoints: `grant_type=refresh_token` (form-encoded) answers
//! a new access token that expires after the configured time and a new refresh token;
//! the old refresh token is spent (single-use, rotating), and using it again gets the
//! vendor's `invalid_grant` body. Every account has its own refresh token; all of them
//! belong to one OAuth app.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde_json::json;

use crate::http::json;
use crate::{App, Vendor};

/// The OAuth app the sandbox accepts, and how long its access tokens live.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: String,
    /// The refresh token valid at start (the same for every marketplace).
    pub refresh_token: String,
    /// How long an issued access token is accepted.
    pub access_ttl: Duration,
    /// Consent is given without showing the consent page (for scripts).
    pub auto_consent: bool,
    /// The polling interval Allegro's device flow asks for (its own: 5 s).
    pub device_interval: Duration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            client_id: "sandbox-app".into(),
            client_secret: "sandbox-app-secret".into(),
            refresh_token: "sandbox-refresh-0".into(),
            access_ttl: Duration::from_secs(3600),
            auto_consent: false,
            device_interval: Duration::from_secs(5),
        }
    }
}

/// Tokens of one marketplace, for every account.
#[derive(Debug)]
pub(crate) struct Grants {
    /// The refresh token valid now, per account.
    refresh_tokens: Vec<String>,
    /// A valid refresh token → its account.
    by_refresh: HashMap<String, usize>,
    /// An issued access token → its account and expiry.
    issued: HashMap<String, (usize, Instant)>,
    /// Refresh grants answered, per account.
    per_account: Vec<u64>,
    /// Refresh grants answered, in all.
    pub refreshes: AtomicU64,
    /// Refresh grants refused with `invalid_grant`.
    pub invalid_grants: AtomicU64,
}

/// The tokens account `index` gets at its `n`th refresh on `vendor`: the first account's
/// as before accounts existed, the others' numbered.
fn minted(vendor: Vendor, index: usize, n: u64, kind: &str) -> String {
    match index {
        0 => format!("{}-{kind}-{n}", vendor.prefix()),
        i => format!("{}-{}-{kind}-{n}", vendor.prefix(), i + 1),
    }
}

impl Grants {
    pub(crate) fn new(config: &OAuthConfig, accounts: usize) -> Mutex<Grants> {
        let refresh_tokens: Vec<String> = (0..accounts)
            .map(|i| match i {
                0 => config.refresh_token.clone(),
                i => format!("{}-{}", config.refresh_token, i + 1),
            })
            .collect();
        let by_refresh = (0..)
            .zip(&refresh_tokens)
            .map(|(i, t)| (t.clone(), i))
            .collect();
        Mutex::new(Grants {
            refresh_tokens,
            by_refresh,
            issued: HashMap::new(),
            per_account: vec![0; accounts],
            refreshes: AtomicU64::new(0),
            invalid_grants: AtomicU64::new(0),
        })
    }

    /// The refresh token account `index` holds now.
    pub(crate) fn refresh_token(&self, index: usize) -> &str {
        self.refresh_tokens.get(index).map_or("", String::as_str)
    }

    /// The seller revoked the app's grant for account `index`: its refresh token and
    /// every access token issued to it stop working.
    pub(crate) fn revoke(&mut self, index: usize) {
        if let Some(held) = self.refresh_tokens.get(index) {
            self.by_refresh.remove(held);
        }
        self.issued.retain(|_, (account, _)| *account != index);
    }

    /// The seller authorised the app again for account `index`: a new refresh token
    /// (as an authorization-code exchange would give it).
    pub(crate) fn authorize_again(&mut self, vendor: Vendor, index: usize) -> Option<String> {
        self.revoke(index);
        let count = self.per_account.get_mut(index)?;
        *count += 1;
        let refresh = minted(vendor, index, *count, "consent");
        self.by_refresh.insert(refresh.clone(), index);
        if let Some(held) = self.refresh_tokens.get_mut(index) {
            *held = refresh.clone();
        }
        Some(refresh)
    }

    /// Spends `refresh_token` and mints the next pair for its account.
    fn rotate(
        &mut self,
        vendor: Vendor,
        refresh_token: &str,
        ttl: Duration,
    ) -> Option<(String, String)> {
        let index = self.by_refresh.remove(refresh_token)?;
        let count = self.per_account.get_mut(index)?;
        *count += 1;
        let n = *count;
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let access = minted(vendor, index, n, "access");
        let refresh = minted(vendor, index, n, "refresh");
        self.by_refresh.insert(refresh.clone(), index);
        if let Some(held) = self.refresh_tokens.get_mut(index) {
            *held = refresh.clone();
        }
        self.issued
            .insert(access.clone(), (index, Instant::now() + ttl));
        Some((access, refresh))
    }
}

/// The account an issued access token belongs to, and whether it is still valid.
pub(crate) fn issued(app: &App, vendor: Vendor, token: &str) -> Option<(usize, bool)> {
    let grants = app.grants(vendor).lock().ok()?;
    grants
        .issued
        .get(token)
        .map(|(index, until)| (*index, Instant::now() < *until))
}

/// What a token request carries (form-encoded), for every grant type.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(crate) struct Grant {
    pub grant_type: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub device_code: Option<String>,
}

/// A new grant of `account` (a consent): its access token accepted from now on, its
/// refresh token valid (and the one the account holds).
pub(crate) fn register(app: &App, vendor: Vendor, account: usize, access: &str, refresh: &str) {
    let ttl = app.config.oauth.access_ttl;
    if let Ok(mut grants) = app.grants(vendor).lock() {
        grants
            .issued
            .insert(access.to_string(), (account, Instant::now() + ttl));
        grants.by_refresh.insert(refresh.to_string(), account);
        if let Some(held) = grants.refresh_tokens.get_mut(account) {
            *held = refresh.to_string();
        }
    }
}

/// `POST …/oauth/token`.
pub(crate) async fn token(
    State((app, vendor)): State<(Arc<App>, Vendor)>,
    headers: HeaderMap,
    Form(grant): Form<Grant>,
) -> Response {
    if let Some(answer) = crate::consent::token(&app, vendor, &headers, &grant) {
        return answer;
    }
    let config = &app.config.oauth;
    let (id, secret) = match vendor {
        // Allegro: HTTP Basic client authentication.
        Vendor::Allegro => basic(&headers).unwrap_or_default(),
        _ => (
            grant.client_id.clone().unwrap_or_default(),
            grant.client_secret.clone().unwrap_or_default(),
        ),
    };
    if id != config.client_id || secret != config.client_secret {
        return refusal(
            vendor,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        );
    }
    if grant.grant_type.as_deref() != Some("refresh_token") {
        return refusal(
            vendor,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only refresh_token is served here",
        );
    }
    let Ok(mut grants) = app.grants(vendor).lock() else {
        return refusal(
            vendor,
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "lock",
        );
    };
    let given = grant.refresh_token.as_deref().unwrap_or_default();
    let Some((access, refresh)) = grants.rotate(vendor, given, config.access_ttl) else {
        grants.invalid_grants.fetch_add(1, Ordering::SeqCst);
        return refusal(vendor, StatusCode::BAD_REQUEST, "invalid_grant", "Error validating grant. Your authorization code or refresh token may be expired or it was already used");
    };
    json(
        StatusCode::OK,
        json!({"access_token": access, "token_type": "bearer", "expires_in": config.access_ttl.as_secs(),
               "refresh_token": refresh, "scope": "offline_access read write"}),
    )
}

pub(crate) fn refusal(
    vendor: Vendor,
    status: StatusCode,
    error: &str,
    description: &str,
) -> Response {
    let body = match vendor {
        Vendor::MercadoLibre => {
            json!({"error_description": description, "error": error, "status": status.as_u16(), "cause": []})
        }
        _ => json!({"error": error, "error_description": description}),
    };
    json(status, body)
}

pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The path of a marketplace's token endpoint below its prefix.
pub fn token_path(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Allegro => "/auth/oauth/token",
        _ => "/oauth/token",
    }
}
