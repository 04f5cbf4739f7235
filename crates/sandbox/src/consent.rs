//! The vendors' side of connecting a seller:
//!
//! - authorize endpoints (Allegro `/auth/oauth/authorize`, Mercado Libre
//!   `/authorization`, Magalu `/login`) answering a consent page: one HTML `<form>`
//!   whose submit buttons are named `allow` and `deny`, with a choice of the sandbox
//!   account that consents (the next one not yet connected by default, so each consent
//!   brings another seller). With [`OAuthConfig::auto_consent`] the page is skipped.
//! - the authorization-code grant on each token endpoint: codes single-use, living as
//!   long as the vendor's (Allegro 10 s, Mercado Libre and Magalu 10 minutes), the
//!   `redirect_uri` compared exactly with the one the code was given for, PKCE verified
//!   (S256; Allegro refuses `plain`), each vendor's client authentication.
//! - Allegro's device flow: `POST /auth/oauth/device`, a consent page at
//!   `/skojarz-aplikacje`, and the token endpoint's `authorization_pending`,
//!   `slow_down` and `access_denied`.
//! - who connected, each vendor's way: Allegro's JWT claim `user_name`, Mercado Libre's
//!   `user_id` in the token answer, Magalu's JWT claim `tenant`.
//!
//! [`OAuthConfig::auto_consent`]: crate::OAuthConfig::auto_consent

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::http::json;
use crate::{App, Vendor};

/// Codes, device grants and the consents given so far, for every marketplace.
#[derive(Debug, Default)]
pub(crate) struct Consents {
    codes: HashMap<String, Code>,
    devices: HashMap<String, Device>,
    /// Consents given per marketplace (which account the next one defaults to).
    given: HashMap<Vendor, usize>,
    /// Numbers codes and tokens.
    minted: u64,
}

#[derive(Debug)]
struct Code {
    vendor: Vendor,
    account: usize,
    client_id: String,
    redirect_uri: String,
    challenge: Option<(String, String)>,
    until: Instant,
}

#[derive(Debug)]
struct Device {
    user_code: String,
    /// The consenting account, once the seller allowed.
    account: Option<usize>,
    denied: bool,
    until: Instant,
    interval: Duration,
    polled: Option<Instant>,
}

impl Consents {
    fn next(&mut self) -> String {
        self.minted = self.minted.wrapping_add(1);
        let mut noise = [0u8; 12];
        for (i, b) in noise.iter_mut().enumerate() {
            let shift = (i % 8) * 8;
            *b = (self.minted.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as u8 ^ (i as u8);
        }
        format!(
            "{}{}",
            self.minted,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(noise)
        )
    }
}

/// How long a code lives, per marketplace.
fn code_lifetime(vendor: Vendor) -> Duration {
    match vendor {
        Vendor::Allegro => Duration::from_secs(10),
        _ => Duration::from_secs(600),
    }
}

/// The path of a marketplace's authorize endpoint below its prefix.
pub fn authorize_path(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Allegro => "/auth/oauth/authorize",
        Vendor::MercadoLibre => "/authorization",
        Vendor::Magalu => "/login",
        Vendor::Ozon => "/app/appstore/oauth/authorize",
    }
}

/// The seller's id at the vendor of sandbox account `index` (what a connect flow learns).
pub fn seller_id(app: &App, vendor: Vendor, index: usize) -> String {
    let number = index.saturating_add(1);
    match vendor {
        Vendor::Allegro => format!("{}", 44_000_000usize.saturating_add(number)),
        Vendor::MercadoLibre => app
            .accounts
            .get(index)
            .credentials
            .mercadolibre_seller_id
            .clone(),
        Vendor::Magalu => format!("6f1c0000-0000-4000-8000-{number:012}"),
        Vendor::Ozon => app.accounts.get(index).credentials.ozon_client_id.clone(),
    }
}

/// The authorize request's parameters (query, or the consent form's hidden fields).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Authorize {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    scope: Option<String>,
    /// The consent form: which sandbox account consents (its name).
    account: Option<String>,
    /// The consent form's buttons.
    allow: Option<String>,
    deny: Option<String>,
}

/// `GET` authorize: the consent page (or, with automatic consent, the redirect).
pub(crate) async fn authorize_page(
    State((app, vendor)): State<(Arc<App>, Vendor)>,
    Query(request): Query<Authorize>,
) -> Response {
    if let Err(refused) = check(&app, vendor, &request) {
        return refused;
    }
    if app.config.oauth.auto_consent {
        let account = default_account(&app, vendor);
        return grant(&app, vendor, &request, account);
    }
    let hidden: String = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("state", &request.state),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
        ("scope", &request.scope),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .map(|(k, v)| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(v)))
    .collect();
    let path = format!("/{}{}", vendor.prefix(), authorize_path(vendor));
    page(
        &app,
        vendor,
        &path,
        &hidden,
        "connect your account to the application",
    )
}

/// `POST` authorize: the consent form submitted.
pub(crate) async fn authorize_submit(
    State((app, vendor)): State<(Arc<App>, Vendor)>,
    Form(request): Form<Authorize>,
) -> Response {
    if let Err(refused) = check(&app, vendor, &request) {
        return refused;
    }
    let redirect = request.redirect_uri.clone().unwrap_or_default();
    if request.deny.is_some() || request.allow.is_none() {
        return back(
            &redirect,
            &[
                ("error", "access_denied"),
                ("error_description", "The user denied access"),
            ],
            request.state.as_deref(),
        );
    }
    let account = chosen(&app, vendor, request.account.as_deref());
    grant(&app, vendor, &request, account)
}

/// A request the vendor refuses before any consent: an unknown client, no redirect,
/// another response type, a PKCE method it does not take (an error page, or an error
/// redirect where the redirect is known).
fn check(app: &App, vendor: Vendor, request: &Authorize) -> Result<(), Response> {
    let Some(redirect) = request
        .redirect_uri
        .as_deref()
        .filter(|r| r.starts_with("http"))
    else {
        return Err(text_page(StatusCode::BAD_REQUEST, "invalid redirect_uri"));
    };
    if request.client_id.as_deref() != Some(app.config.oauth.client_id.as_str()) {
        return Err(text_page(StatusCode::BAD_REQUEST, "unknown client_id"));
    }
    let fail = |error: &str, description: &str| {
        back(
            redirect,
            &[("error", error), ("error_description", description)],
            request.state.as_deref(),
        )
    };
    if request.response_type.as_deref() != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    match (
        request.code_challenge.as_deref(),
        request.code_challenge_method.as_deref(),
    ) {
        (None, _) => Ok(()),
        (Some(_), Some("S256")) => Ok(()),
        (Some(_), Some("plain") | None) if vendor == Vendor::MercadoLibre => Ok(()),
        _ => Err(fail(
            "invalid_request",
            "code_challenge_method must be S256",
        )),
    }
}

/// The account the next consent defaults to: the one after the last consent.
fn default_account(app: &App, vendor: Vendor) -> usize {
    let accounts = app.accounts.len().max(1);
    app.consents
        .lock()
        .map(|c| c.given.get(&vendor).copied().unwrap_or(0) % accounts)
        .unwrap_or(0)
}

/// The account the form names, else the default one.
fn chosen(app: &App, vendor: Vendor, name: Option<&str>) -> usize {
    name.and_then(|n| app.accounts.named(vendor, n))
        .unwrap_or_else(|| default_account(app, vendor))
}

/// Consent given by `account`: a code, and the redirect carrying it.
fn grant(app: &App, vendor: Vendor, request: &Authorize, account: usize) -> Response {
    let redirect = request.redirect_uri.clone().unwrap_or_default();
    let Ok(mut consents) = app.consents.lock() else {
        return text_page(StatusCode::INTERNAL_SERVER_ERROR, "lock");
    };
    *consents.given.entry(vendor).or_insert(0) += 1;
    let code = consents.next();
    let challenge = request.code_challenge.clone().map(|c| {
        (
            request
                .code_challenge_method
                .clone()
                .unwrap_or_else(|| "plain".into()),
            c,
        )
    });
    consents.codes.insert(
        code.clone(),
        Code {
            vendor,
            account,
            client_id: request.client_id.clone().unwrap_or_default(),
            redirect_uri: redirect.clone(),
            challenge,
            until: Instant::now() + code_lifetime(vendor),
        },
    );
    drop(consents);
    back(&redirect, &[("code", &code)], request.state.as_deref())
}

/// A 302 to `redirect` with `params` (and `state`, as given) added to its query.
fn back(redirect: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if let Some(state) = state {
        query.push(format!("state={}", encode(state)));
    }
    let joiner = if redirect.contains('?') { '&' } else { '?' };
    let location = format!("{redirect}{joiner}{}", query.join("&"));
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn text_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!(
            "<!doctype html><title>error</title><p>{}</p>",
            escape(message)
        ),
    )
        .into_response()
}

/// The consent page: one form, posting to `action`, its buttons `allow` and `deny`.
fn page(app: &App, vendor: Vendor, action: &str, hidden: &str, what: &str) -> Response {
    let default = default_account(app, vendor);
    let options: String = (0..app.accounts.len())
        .map(|i| {
            let name = crate::accounts::account_name(vendor, i as u64 + 1);
            let selected = if i == default { " selected" } else { "" };
            format!(
                r#"<option value="{name}"{selected}>{name} (seller {})</option>"#,
                escape(&seller_id(app, vendor, i))
            )
        })
        .collect();
    let body = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{title} sandbox: consent</title></head>
<body><h1>{title} sandbox</h1><p>The application <b>{client}</b> asks to {what}.</p>
<form method="post" action="{action}">{hidden}
<label>Account <select name="account">{options}</select></label>
<button type="submit" name="allow" value="1" id="allow">Allow</button>
<button type="submit" name="deny" value="1" id="deny">Deny</button>
</form></body></html>"#,
        title = vendor.prefix(),
        client = escape(&app.config.oauth.client_id),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The device flow's grant type.
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The token endpoint's `authorization_code` and device grants; `None` for another
/// grant type (the refresh grant, answered by [`crate::oauth::token`]).
pub(crate) fn token(
    app: &App,
    vendor: Vendor,
    headers: &HeaderMap,
    grant: &crate::oauth::Grant,
) -> Option<Response> {
    let kind = grant.grant_type.as_deref()?;
    if kind != "authorization_code" && kind != DEVICE_GRANT {
        return None;
    }
    let refuse = |status: StatusCode, error: &str, description: &str| {
        Some(crate::oauth::refusal(vendor, status, error, description))
    };
    // Each vendor's client authentication: Allegro HTTP Basic (with PKCE, the client
    // id alone in the body), the others in the body.
    let basic = crate::oauth::basic(headers);
    let with_pkce = grant.code_verifier.is_some();
    let (id, secret) = match (vendor, basic) {
        (Vendor::Allegro, Some(pair)) => (pair.0, Some(pair.1)),
        _ => (
            grant.client_id.clone().unwrap_or_default(),
            grant.client_secret.clone(),
        ),
    };
    let config = &app.config.oauth;
    let secret_ok = match secret {
        Some(s) => s == config.client_secret,
        None => with_pkce,
    };
    if id != config.client_id || !secret_ok {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        );
    }
    let Ok(mut consents) = app.consents.lock() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "lock");
    };
    let account = if kind == DEVICE_GRANT {
        let given = grant.device_code.clone().unwrap_or_default();
        let Some(device) = consents.devices.get_mut(&given) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid device code",
            );
        };
        let now = Instant::now();
        if now > device.until {
            consents.devices.remove(&given);
            return refuse(
                StatusCode::BAD_REQUEST,
                "expired_token",
                "The device code expired",
            );
        }
        if device.denied {
            consents.devices.remove(&given);
            return refuse(
                StatusCode::BAD_REQUEST,
                "access_denied",
                "The user denied access",
            );
        }
        let too_soon = device.polled.is_some_and(|at| now < at + device.interval);
        device.polled = Some(now);
        if too_soon {
            device.interval += Duration::from_secs(5);
            return refuse(StatusCode::BAD_REQUEST, "slow_down", "Polling too often");
        }
        if config.auto_consent && device.account.is_none() {
            device.account = Some(0);
        }
        let Some(account) = device.account else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "authorization_pending",
                "The user has not yet authorized the device",
            );
        };
        consents.devices.remove(&given);
        account
    } else {
        // Single use: gone at its first presentation, right or wrong.
        let given = grant.code.clone().unwrap_or_default();
        let Some(code) = consents.codes.remove(&given) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid authorization code: it may be expired or it was already used",
            );
        };
        if code.vendor != vendor || Instant::now() > code.until || code.client_id != id {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid authorization code: it may be expired or it was already used",
            );
        }
        if grant.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "redirect_uri does not match the one of the authorization request",
            );
        }
        match (&code.challenge, grant.code_verifier.as_deref()) {
            (None, None) => {}
            (None, Some(_)) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "code_verifier without a code_challenge",
                )
            }
            (Some(_), None) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code_verifier is a required parameter",
                )
            }
            (Some((method, challenge)), Some(verifier)) => {
                let computed = match method.as_str() {
                    "S256" => base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(verifier.as_bytes())),
                    _ => verifier.to_string(),
                };
                if &computed != challenge {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "code_verifier does not match the code_challenge",
                    );
                }
            }
        }
        code.account
    };
    let serial = consents.next();
    drop(consents);
    let seller = seller_id(app, vendor, account);
    let access = match vendor {
        Vendor::Allegro => {
            jwt(&json!({"user_name": seller, "jti": serial, "scope": ["allegro:api:messaging"]}))
        }
        Vendor::MercadoLibre => format!("APP_USR-{serial}-{seller}"),
        Vendor::Magalu => jwt(&json!({"tenant": format!("seller.{seller}"), "jti": serial})),
        Vendor::Ozon => format!("ozon-access-{serial}"),
    };
    let refresh = format!("{}-grant-{serial}", vendor.prefix());
    crate::oauth::register(app, vendor, account, &access, &refresh);
    let ttl = config.access_ttl.as_secs();
    let mut body = json!({"access_token": access, "token_type": "bearer", "expires_in": ttl,
        "refresh_token": refresh});
    if let Some(map) = body.as_object_mut() {
        let extra: Vec<(&str, Value)> = match vendor {
            Vendor::Allegro => vec![
                (
                    "scope",
                    json!("allegro:api:messaging allegro:api:profile:read"),
                ),
                ("allegro_api", json!(true)),
                ("jti", json!(serial)),
            ],
            Vendor::MercadoLibre => vec![
                ("scope", json!("offline_access read write")),
                (
                    "user_id",
                    json!(seller
                        .parse::<u64>()
                        .map(Value::from)
                        .unwrap_or(Value::from(seller.clone()))),
                ),
            ],
            Vendor::Magalu => vec![
                (
                    "scope",
                    json!("services:conversations-seller:read services:conversations-seller:write"),
                ),
                ("created_at", json!(chrono::Utc::now().timestamp())),
            ],
            Vendor::Ozon => vec![],
        };
        for (k, v) in extra {
            map.insert(k.into(), v);
        }
    }
    Some(json(StatusCode::OK, body))
}

/// A JWT-shaped token with `claims` (not signed: the sandbox's, read only for claims).
fn jwt(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sandbox",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

/// Allegro's `POST /auth/oauth/device?client_id=…` (HTTP Basic).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeviceRequest {
    client_id: Option<String>,
}

/// Allegro's device authorization: a device code for the app, a user code for the
/// seller, the page where they enter it.
pub(crate) async fn device(
    State((app, vendor)): State<(Arc<App>, Vendor)>,
    headers: HeaderMap,
    Query(request): Query<DeviceRequest>,
) -> Response {
    let config = &app.config.oauth;
    let authenticated = crate::oauth::basic(&headers)
        .is_some_and(|(id, secret)| id == config.client_id && secret == config.client_secret);
    if !authenticated || request.client_id.as_deref() != Some(config.client_id.as_str()) {
        return crate::oauth::refusal(
            vendor,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        );
    }
    let Ok(mut consents) = app.consents.lock() else {
        return text_page(StatusCode::INTERNAL_SERVER_ERROR, "lock");
    };
    let device_code = consents.next();
    let n = consents.minted;
    let user_code = format!("{:04}{:04}", n % 10_000, (n.wrapping_mul(7919)) % 10_000);
    let interval = config.device_interval;
    consents.devices.insert(
        device_code.clone(),
        Device {
            user_code: user_code.clone(),
            account: None,
            denied: false,
            until: Instant::now() + Duration::from_secs(3600),
            interval,
            polled: None,
        },
    );
    drop(consents);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let base = format!("http://{host}/{}", vendor.prefix());
    json(
        StatusCode::OK,
        json!({"device_code": device_code, "user_code": user_code,
               "verification_uri": format!("{base}/skojarz-aplikacje"),
               "verification_uri_complete": format!("{base}/skojarz-aplikacje?code={user_code}"),
               "expires_in": "3600", "interval": interval.as_secs().to_string()}),
    )
}

/// The device consent page's parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeviceConsent {
    code: Option<String>,
    account: Option<String>,
    allow: Option<String>,
    deny: Option<String>,
}

/// `GET /skojarz-aplikacje?code=…`: the consent page for a device's user code.
pub(crate) async fn device_page(
    State((app, vendor)): State<(Arc<App>, Vendor)>,
    Query(request): Query<DeviceConsent>,
) -> Response {
    let code = request.code.unwrap_or_default();
    let hidden = format!(
        r#"<input type="text" name="code" value="{}">"#,
        escape(&code)
    );
    let path = format!("/{}/skojarz-aplikacje", vendor.prefix());
    page(
        &app,
        vendor,
        &path,
        &hidden,
        "connect a device to your account",
    )
}

/// `POST /skojarz-aplikacje`: the seller allowed (or denied) a device's user code.
pub(crate) async fn device_submit(
    State((app, vendor)): State<(Arc<App>, Vendor)>,
    Form(request): Form<DeviceConsent>,
) -> Response {
    let account = chosen(&app, vendor, request.account.as_deref());
    let Ok(mut consents) = app.consents.lock() else {
        return text_page(StatusCode::INTERNAL_SERVER_ERROR, "lock");
    };
    let code = request.code.unwrap_or_default();
    let allowed = request.allow.is_some() && request.deny.is_none();
    let Some(device) = consents.devices.values_mut().find(|d| d.user_code == code) else {
        return text_page(StatusCode::NOT_FOUND, "unknown or expired code");
    };
    if allowed {
        device.account = Some(account);
    } else {
        device.denied = true;
    }
    if allowed {
        *consents.given.entry(vendor).or_insert(0) += 1;
    }
    text_page(
        StatusCode::OK,
        if allowed {
            "The device is connected; you can close this page."
        } else {
            "The device was refused."
        },
    )
}
