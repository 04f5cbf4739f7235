//! OAuth 2 access tokens that refresh themselves: shortly before they expire, and once
//! when the vendor rejects one. Refreshing is single-flight (any number of requests at
//! expiry cause one refresh, and all of them continue with its token), and a rotated
//! refresh token is handed to [`PersistTokens`] before it is used.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_core::future::BoxFuture;
use serde::Deserialize;

use crate::Secret;

/// The tokens of one account at a moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    /// The access token, when one is held.
    pub access_token: Option<Secret>,
    /// The refresh token (single-use on Allegro and Mercado Libre).
    pub refresh_token: Secret,
    /// When the access token expires, when known.
    pub expires_at: Option<DateTime<Utc>>,
}

/// One refresh grant at the token endpoint, given the refresh token to spend.
pub type Grant<'a> = Box<dyn FnOnce(Secret) -> BoxFuture<'a, Result<Tokens, Refused>> + Send + 'a>;

/// Where rotated tokens are saved. Called with the new tokens after every refresh and
/// before they are used; an error is logged and the tokens are used all the same (the old
/// refresh token is already spent).
pub trait PersistTokens: Send + Sync {
    /// Saves the tokens (e.g. writes them to the configuration file).
    fn save(&self, tokens: &Tokens) -> Result<(), String>;

    /// Runs `grant`, the refresh of the tokens this process holds (`held`), as the only
    /// refresh of the account among every process sharing the store: a store shared by
    /// several processes holds its lock meanwhile, gives back tokens another process
    /// stored since instead of refreshing again, and spends the newest refresh token it
    /// holds. By default (a store of one process): `grant`, then [`PersistTokens::save`].
    fn refresh_exclusively<'a>(
        &'a self,
        held: Tokens,
        grant: Grant<'a>,
    ) -> BoxFuture<'a, Result<Tokens, Refused>> {
        Box::pin(async move {
            let tokens = grant(held.refresh_token).await?;
            if let Err(e) = self.save(&tokens) {
                tracing::error!(error = %e, "rotated tokens could not be saved");
            }
            Ok(tokens)
        })
    }
}

impl<F: Fn(&Tokens) -> Result<(), String> + Send + Sync> PersistTokens for F {
    fn save(&self, tokens: &Tokens) -> Result<(), String> {
        self(tokens)
    }
}

/// How the app's credentials go to the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic `client_id:client_secret` (Allegro).
    Basic,
    /// `client_id` and `client_secret` in the form (Mercado Libre, Magalu).
    Form,
    /// `client_id` alone in the form, the grant proven otherwise (Allegro's
    /// authorization code with PKCE).
    Public,
}

/// Why a token could not be had: the token endpoint's own answer (e.g. 400
/// `invalid_grant`: authorise again), or a transport failure.
#[derive(Debug)]
pub enum Refused {
    /// The token endpoint answered with an error status.
    Answer(reqwest::Response),
    /// The token endpoint could not be reached.
    Transport(reqwest::Error),
}

/// An OAuth 2 access token kept fresh with a refresh token.
pub struct OAuthToken {
    endpoint: String,
    client_id: String,
    client_secret: Secret,
    client_auth: ClientAuth,
    /// Refresh this long before the known expiry.
    skew: Duration,
    tokens: Mutex<Tokens>,
    refreshing: tokio::sync::Mutex<()>,
    persist: Option<Arc<dyn PersistTokens>>,
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
}

impl OAuthToken {
    /// A token for the app `client_id`/`client_secret` from `tokens`, refreshed at
    /// `endpoint` (the vendor's `…/oauth/token`).
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
        client_auth: ClientAuth,
        tokens: Tokens,
        persist: Option<Arc<dyn PersistTokens>>,
    ) -> Self {
        OAuthToken {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret,
            client_auth,
            skew: Duration::from_secs(60),
            tokens: Mutex::new(tokens),
            refreshing: tokio::sync::Mutex::new(()),
            persist,
        }
    }

    /// The tokens now held.
    pub fn tokens(&self) -> Option<Tokens> {
        self.tokens.lock().ok().map(|t| t.clone())
    }

    /// A usable access token: the one held unless it is missing or about to expire.
    pub async fn access(&self, http: &reqwest::Client) -> Result<Secret, Refused> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _one = self.refreshing.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        self.refresh(http).await
    }

    /// A new access token after the vendor rejected `rejected`: refreshed once, however
    /// many requests were rejected with the same token.
    pub async fn after_rejection(
        &self,
        http: &reqwest::Client,
        rejected: &Secret,
    ) -> Result<Secret, Refused> {
        let _one = self.refreshing.lock().await;
        match self.current() {
            Some(held) if held != *rejected => Ok(held),
            _ => self.refresh(http).await,
        }
    }

    fn current(&self) -> Option<Secret> {
        self.tokens.lock().ok()?.access_token.clone()
    }

    fn fresh(&self) -> Option<Secret> {
        let t = self.tokens.lock().ok()?;
        let expired = t.expires_at.is_some_and(|at| {
            let skew = chrono::Duration::from_std(self.skew).unwrap_or_default();
            at - skew <= Utc::now()
        });
        if expired {
            None
        } else {
            t.access_token.clone()
        }
    }

    /// One refresh, through the store when there is one; the caller holds `refreshing`.
    async fn refresh(&self, http: &reqwest::Client) -> Result<Secret, Refused> {
        let held = self
            .tokens
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let tokens = match &self.persist {
            Some(persist) => {
                let grant: Grant<'_> = Box::new(move |token| Box::pin(self.grant(http, token)));
                persist.refresh_exclusively(held, grant).await?
            }
            None => self.grant(http, held.refresh_token).await?,
        };
        let access = tokens.access_token.clone();
        if let Ok(mut held) = self.tokens.lock() {
            *held = tokens;
        }
        match access {
            Some(access) => Ok(access),
            None => Err(Refused::Answer(token_answer(
                502,
                bytes::Bytes::from_static(b"the token store gave tokens without an access token"),
            ))),
        }
    }

    /// One refresh grant spending `refresh_token`.
    async fn grant(
        &self,
        http: &reqwest::Client,
        refresh_token: Secret,
    ) -> Result<Tokens, Refused> {
        let client = TokenClient {
            endpoint: &self.endpoint,
            id: &self.client_id,
            secret: &self.client_secret,
            auth: self.client_auth,
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        let (mut tokens, _) = client.grant(http, &form).await?;
        if tokens.refresh_token.expose().is_empty() {
            // No new refresh token: the one spent stays valid.
            tokens.refresh_token = refresh_token;
        }
        tracing::info!("access token refreshed");
        Ok(tokens)
    }
}

/// An app at a vendor's token endpoint: the one place grants are requested (refreshes,
/// authorization codes, device codes).
#[derive(Clone, Copy, Debug)]
pub struct TokenClient<'a> {
    /// The token endpoint.
    pub endpoint: &'a str,
    /// The app's client id.
    pub id: &'a str,
    /// The app's client secret.
    pub secret: &'a Secret,
    /// How the app authenticates.
    pub auth: ClientAuth,
}

impl TokenClient<'_> {
    /// Posts the grant `form` (with the app's authentication) and reads the tokens
    /// granted, and the whole answer (where vendors say who granted them). A refresh
    /// token missing from the answer is empty in the tokens.
    pub async fn grant(
        &self,
        http: &reqwest::Client,
        form: &[(&str, &str)],
    ) -> Result<(Tokens, serde_json::Value), Refused> {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let mut request = http.post(self.endpoint);
        match self.auth {
            ClientAuth::Basic => {
                request = request.basic_auth(self.id, Some(self.secret.expose()));
            }
            ClientAuth::Form => {
                form.push(("client_id", self.id));
                form.push(("client_secret", self.secret.expose()));
            }
            ClientAuth::Public => form.push(("client_id", self.id)),
        }
        let started = Utc::now();
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(Refused::Transport)?;
        if !response.status().is_success() {
            tracing::warn!(status = response.status().as_u16(), "token grant refused");
            return Err(Refused::Answer(response));
        }
        let bytes = response.bytes().await.map_err(Refused::Transport)?;
        let whole: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let Ok(granted) = serde_json::from_value::<Granted>(whole.clone()) else {
            tracing::warn!("token endpoint answered without an access token");
            return Err(Refused::Answer(token_answer(502, bytes)));
        };
        let expires_in = granted.expires_in.as_ref().and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        let tokens = Tokens {
            access_token: Some(Secret::new(granted.access_token)),
            refresh_token: Secret::new(granted.refresh_token.unwrap_or_default()),
            expires_at: expires_in
                .map(|s| started + chrono::Duration::seconds(s.clamp(0, 10 * 365 * 86_400))),
        };
        Ok((tokens, whole))
    }
}

/// An answer of `status` with `body`, standing for the token endpoint's: what the
/// request path reports when the endpoint (or a token store) gave nothing usable. A
/// status that is no HTTP status is 502.
pub fn token_answer(status: u16, body: bytes::Bytes) -> reqwest::Response {
    let mut answer = http::Response::new(body);
    *answer.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    answer.into()
}
