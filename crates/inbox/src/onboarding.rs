//! Connecting a seller's account: each vendor's authorisation, from the app's side.
//!
//! An [`Application`] is the app registered at a vendor (its client id and secret) and
//! where that vendor's authorisation lives. It builds the authorize URL a seller's
//! browser is sent to, exchanges the code the vendor sends back (with the PKCE verifier
//! where the vendor takes one), runs Allegro's device flow, and learns who connected:
//! Allegro's JWT claim `user_name`, Mercado Libre's `user_id`, Magalu's JWT claim
//! `tenant`. Ozon's sellers paste their Client-Id and Api-Key instead (Ozon's app OAuth
//! is not confirmed by its documentation; see the README).
//!
//! | | authorize | token | client auth | PKCE |
//! |---|---|---|---|---|
//! | Allegro | `{auth}/auth/oauth/authorize` | `{auth}/auth/oauth/token` | Basic; with PKCE the id alone | S256 |
//! | Mercado Libre | `{auth}/authorization` | `{api}/oauth/token` | in the form | S256 |
//! | Magalu | `{auth}/login` | `{auth}/oauth/token` | in the form | — |

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use inbox_core::{ClientAuth, Refused, Secret, TokenClient, Tokens};
use serde::{Deserialize, Serialize};

use crate::{AccountConfig, Credentials, Error, Marketplace, OAuthCredentials};

/// An app registered at a vendor, and where that vendor authorises it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The marketplace.
    pub marketplace: Marketplace,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: Secret,
    /// The vendor's authorization host (default: production, or
    /// `INBOX_<MARKETPLACE>_AUTH_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// The vendor's API host (default: production, or `INBOX_<MARKETPLACE>_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// Who connected, and the grant they gave.
#[derive(Clone, Debug)]
pub struct Connected {
    /// The seller's id at the vendor.
    pub seller_id: String,
    /// The tokens granted.
    pub tokens: Tokens,
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The vendor refused (its `error`, such as `invalid_grant` for a code used twice or
    /// expired, `access_denied`, `slow_down`).
    #[error("{marketplace} refused: {error} (HTTP {status})")]
    Refused {
        /// The marketplace.
        marketplace: Marketplace,
        /// The vendor's error code.
        error: String,
        /// The HTTP status.
        status: u16,
    },
    /// The vendor could not be reached.
    #[error("{marketplace}: the authorization server could not be reached: {message}")]
    Unreachable {
        /// The marketplace.
        marketplace: Marketplace,
        /// What failed.
        message: String,
    },
    /// The vendor's answer did not say who connected.
    #[error("{marketplace}: the grant does not say which seller connected")]
    UnknownSeller {
        /// The marketplace.
        marketplace: Marketplace,
    },
    /// This marketplace has no such flow.
    #[error("{marketplace}: {what}")]
    Unsupported {
        /// The marketplace.
        marketplace: Marketplace,
        /// What it lacks.
        what: &'static str,
    },
}

impl ConnectError {
    /// A short reason for a redirect's `reason` (the vendor's error code, or
    /// `unreachable`, `unknown_seller`, `unsupported`).
    pub fn reason(&self) -> String {
        match self {
            ConnectError::Refused { error, .. } => error.clone(),
            ConnectError::Unreachable { .. } => "unreachable".into(),
            ConnectError::UnknownSeller { .. } => "unknown_seller".into(),
            ConnectError::Unsupported { .. } => "unsupported".into(),
        }
    }
}

/// Allegro's device flow under way: what the seller is shown, and what the app polls.
#[derive(Clone, Debug)]
pub struct DeviceCode {
    /// The code the app polls with (a secret).
    pub device_code: Secret,
    /// The code the seller types.
    pub user_code: String,
    /// Where the seller types it.
    pub verification_uri: String,
    /// The same with the code filled in.
    pub verification_uri_complete: Option<String>,
    /// How long between polls.
    pub interval: Duration,
    /// When the device code expires.
    pub expires_at: DateTime<Utc>,
}

/// How long a call to an authorization server may take.
const TIMEOUT: Duration = Duration::from_secs(30);

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

impl Application {
    /// The app of `marketplace` from the environment: `<MARKETPLACE>_CLIENT_ID` and
    /// `<MARKETPLACE>_CLIENT_SECRET` (`ALLEGRO_…`, `MERCADOLIBRE_…`, `MAGALU_…`), hosts from
    /// `INBOX_<MARKETPLACE>_AUTH_URL` and `INBOX_<MARKETPLACE>_URL`.
    pub fn from_env(marketplace: Marketplace) -> Option<Application> {
        let upper = marketplace.as_str().to_ascii_uppercase();
        Some(
            Application {
                marketplace,
                client_id: env(&format!("{upper}_CLIENT_ID"))?,
                client_secret: Secret::new(env(&format!("{upper}_CLIENT_SECRET"))?),
                auth_url: None,
                api_url: None,
            }
            .with_env_hosts(),
        )
    }

    /// Hosts not given taken from `INBOX_<MARKETPLACE>_AUTH_URL` and
    /// `INBOX_<MARKETPLACE>_URL`.
    pub fn with_env_hosts(mut self) -> Application {
        let upper = self.marketplace.as_str().to_ascii_uppercase();
        if self.auth_url.is_none() {
            self.auth_url = env(&format!("INBOX_{upper}_AUTH_URL"));
        }
        if self.api_url.is_none() {
            self.api_url = env(&format!("INBOX_{upper}_URL"));
        }
        self
    }

    /// The authorization host, without a trailing slash.
    fn auth_base(&self) -> String {
        let default = match self.marketplace {
            Marketplace::Allegro => "https://allegro.pl",
            Marketplace::MercadoLibre => "https://auth.mercadolibre.com.ar",
            Marketplace::Magalu => "https://id.magalu.com",
            Marketplace::Ozon => "https://seller.ozon.ru",
        };
        self.auth_url
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
            .to_string()
    }

    /// Whether this vendor's code flow takes PKCE (S256).
    pub fn uses_pkce(&self) -> bool {
        matches!(
            self.marketplace,
            Marketplace::Allegro | Marketplace::MercadoLibre
        )
    }

    /// Whether sellers connect through the vendor's authorize page (not Ozon: they
    /// paste their keys).
    pub fn has_code_flow(&self) -> bool {
        self.marketplace != Marketplace::Ozon
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        match self.marketplace {
            Marketplace::Allegro => format!("{}/auth/oauth/token", self.auth_base()),
            Marketplace::MercadoLibre => format!(
                "{}/oauth/token",
                self.api_url
                    .as_deref()
                    .unwrap_or("https://api.mercadolibre.com")
                    .trim_end_matches('/')
            ),
            Marketplace::Magalu => format!("{}/oauth/token", self.auth_base()),
            Marketplace::Ozon => "https://xapi.ozon.ru/oauth/token".to_string(),
        }
    }

    /// The page a seller's browser is sent to: the app, `redirect_uri`, `state`, and the
    /// PKCE challenge of `verifier` when the vendor takes one.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        verifier: Option<&str>,
    ) -> Result<String, ConnectError> {
        let base = self.auth_base();
        let path = match self.marketplace {
            Marketplace::Allegro => "/auth/oauth/authorize",
            Marketplace::MercadoLibre => "/authorization",
            Marketplace::Magalu => "/login",
            Marketplace::Ozon => {
                return Err(ConnectError::Unsupported {
                    marketplace: self.marketplace,
                    what: "sellers connect with their Client-Id and Api-Key",
                })
            }
        };
        let mut params: Vec<(&str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", redirect_uri.into()),
            ("state", state.into()),
        ];
        if self.marketplace == Marketplace::Magalu {
            params.push((
                "scope",
                "services:conversations-seller:read services:conversations-seller:write".into(),
            ));
            params.push(("choose_tenants", "true".into()));
        }
        if let (true, Some(verifier)) = (self.uses_pkce(), verifier) {
            params.push(("code_challenge", challenge(verifier)));
            params.push(("code_challenge_method", "S256".into()));
        }
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        Ok(format!("{base}{path}?{}", query.join("&")))
    }

    fn client<'a>(&'a self, endpoint: &'a str, pkce: bool) -> TokenClient<'a> {
        let auth = match (self.marketplace, pkce) {
            (Marketplace::Allegro, true) => ClientAuth::Public,
            (Marketplace::Allegro, false) => ClientAuth::Basic,
            _ => ClientAuth::Form,
        };
        TokenClient {
            endpoint,
            id: &self.client_id,
            secret: &self.client_secret,
            auth,
        }
    }

    /// Exchanges the code the vendor sent back (with `redirect_uri` as in the authorize
    /// request, and the PKCE `verifier` when one was used), and learns who connected.
    pub async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Result<Connected, ConnectError> {
        let endpoint = self.token_url();
        let verifier = verifier.filter(|_| self.uses_pkce());
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        let client = self.client(&endpoint, verifier.is_some());
        let granted = client.grant(&http()?, &form).await;
        let (tokens, answer) = match granted {
            Ok(granted) => granted,
            Err(e) => return Err(self.refused(e).await),
        };
        self.connected(tokens, &answer).await
    }

    /// Starts Allegro's device flow (no other marketplace has one).
    pub async fn device_start(&self) -> Result<DeviceCode, ConnectError> {
        if self.marketplace != Marketplace::Allegro {
            return Err(ConnectError::Unsupported {
                marketplace: self.marketplace,
                what: "no device flow",
            });
        }
        let url = format!(
            "{}/auth/oauth/device?client_id={}",
            self.auth_base(),
            encode(&self.client_id)
        );
        let answer = http()?
            .post(url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = answer.status().as_u16();
        let body: serde_json::Value = answer.json().await.map_err(|e| self.unreachable(e))?;
        let text = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let number = |k: &str| {
            body.get(k).and_then(|v| match v {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
        };
        let (Some(device_code), Some(user_code), Some(verification_uri)) = (
            text("device_code"),
            text("user_code"),
            text("verification_uri"),
        ) else {
            return Err(ConnectError::Refused {
                marketplace: self.marketplace,
                error: text("error").unwrap_or_else(|| "invalid_answer".into()),
                status,
            });
        };
        let expires_in = number("expires_in").unwrap_or(3600).min(86_400);
        Ok(DeviceCode {
            device_code: Secret::new(device_code),
            user_code,
            verification_uri,
            verification_uri_complete: text("verification_uri_complete"),
            interval: Duration::from_secs(number("interval").unwrap_or(5).clamp(1, 60)),
            expires_at: Utc::now() + chrono::Duration::seconds(expires_in as i64),
        })
    }

    /// Polls the device flow as the vendor says (its interval, 5 s more after each
    /// `slow_down`) until the seller allowed or denied, or the code expired.
    pub async fn device_wait(&self, device: &DeviceCode) -> Result<Connected, ConnectError> {
        let endpoint = self.token_url();
        let client = self.client(&endpoint, false);
        let http = http()?;
        let mut interval = device.interval;
        loop {
            tokio::time::sleep(interval).await;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device.device_code.expose()),
            ];
            match client.grant(&http, &form).await {
                Ok((tokens, answer)) => return self.connected(tokens, &answer).await,
                Err(e) => match self.refused(e).await {
                    ConnectError::Refused { error, .. } if error == "authorization_pending" => {}
                    ConnectError::Refused { error, .. } if error == "slow_down" => {
                        interval += Duration::from_secs(5);
                    }
                    other => return Err(other),
                },
            }
            if Utc::now() > device.expires_at {
                return Err(ConnectError::Refused {
                    marketplace: self.marketplace,
                    error: "expired_token".into(),
                    status: 400,
                });
            }
        }
    }

    /// The account `name` for a seller who connected: these credentials, the app's
    /// hosts, the seller's id.
    pub fn account(&self, name: &str, connected: &Connected) -> AccountConfig {
        let mut oauth = OAuthCredentials::new(
            self.client_id.clone(),
            self.client_secret.clone(),
            connected.tokens.refresh_token.clone(),
        );
        if let Some(access) = &connected.tokens.access_token {
            oauth = oauth.access_token(access.clone(), connected.tokens.expires_at);
        }
        let mut config = AccountConfig::new(name, self.marketplace, Credentials::OAuth(oauth));
        config.base_url = self.api_url.clone();
        config.token_url = Some(self.token_url());
        config.seller_id = Some(connected.seller_id.clone());
        config.application = Some(self.client_id.clone());
        if self.marketplace == Marketplace::Magalu {
            if let (Some(n), Some(id)) = (env("MAGALU_OWNER_NAME"), env("MAGALU_OWNER_ID")) {
                config = config.owner(n, id);
            }
        }
        config
    }

    /// Who connected, from the token answer (and its access token's claims).
    async fn connected(
        &self,
        tokens: Tokens,
        answer: &serde_json::Value,
    ) -> Result<Connected, ConnectError> {
        let unknown = || ConnectError::UnknownSeller {
            marketplace: self.marketplace,
        };
        let claims = tokens
            .access_token
            .as_ref()
            .and_then(|t| claims(t.expose()));
        let claim = |k: &str| claims.as_ref().and_then(|c| scalar(c.get(k)?));
        let seller = match self.marketplace {
            Marketplace::Allegro => claim("user_name"),
            Marketplace::MercadoLibre => answer.get("user_id").and_then(scalar),
            Marketplace::Magalu => claim("tenant").map(|t| {
                t.split_once('.')
                    .map_or(t.clone(), |(_, id)| id.to_string())
            }),
            Marketplace::Ozon => None,
        };
        let seller_id = seller.filter(|s| !s.is_empty()).ok_or_else(unknown)?;
        if tokens.refresh_token.expose().is_empty() {
            return Err(ConnectError::Refused {
                marketplace: self.marketplace,
                error: "no_refresh_token".into(),
                status: 200,
            });
        }
        Ok(Connected { seller_id, tokens })
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ConnectError {
        ConnectError::Unreachable {
            marketplace: self.marketplace,
            message: e.to_string(),
        }
    }

    /// What a refused grant says: the vendor's `error`.
    async fn refused(&self, refused: Refused) -> ConnectError {
        match refused {
            Refused::Transport(e) => self.unreachable(e),
            Refused::Answer(answer) => {
                let status = answer.status().as_u16();
                let error = answer
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| {
                        let e = v.get("error")?;
                        scalar(e).or_else(|| e.get("code").and_then(scalar))
                    })
                    .map(|e| crate::error::clip(&e, 64))
                    .unwrap_or_else(|| format!("http_{status}"));
                ConnectError::Refused {
                    marketplace: self.marketplace,
                    error,
                    status,
                }
            }
        }
    }
}

/// The client for authorization servers: the one every vendor client uses (TLS set
/// up once, timeouts), shared on this runtime.
fn http() -> Result<reqwest::Client, ConnectError> {
    let timeouts = inbox_core::Timeouts::new(Duration::from_secs(10), TIMEOUT, TIMEOUT);
    inbox_core::shared_http_client(timeouts).map_err(|e| ConnectError::Unreachable {
        marketplace: Marketplace::Allegro,
        message: e.to_string(),
    })
}

/// A JSON scalar as text.
fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The claims of a JWT-shaped token (its second part), unverified: read only to learn
/// who the token endpoint just gave it to.
fn claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The S256 PKCE challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Percent-encodes everything but unreserved characters (a query value).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads a marketplace's connect errors as an [`Error`] (for callers that want one).
impl From<ConnectError> for Error {
    fn from(e: ConnectError) -> Error {
        Error::config(e.to_string())
    }
}
