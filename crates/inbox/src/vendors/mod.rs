//! One adapter per marketplace: listing pages, conversions into the model, send and
//! mark-read with the marketplace's own rules. Each is compiled only with its cargo
//! feature (`allegro`, `mercadolibre`, `magalu`, `ozon`).

#[cfg(feature = "allegro")]
pub mod allegro;
#[cfg(feature = "magalu")]
pub mod magalu;
#[cfg(feature = "mercadolibre")]
pub mod mercadolibre;
#[cfg(feature = "ozon")]
pub mod ozon;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use inbox_core::{
    Auth, ClientAuth, OAuthToken, PersistTokens, Policy, RateLimit, RetryPolicy, Timeouts, Tokens,
};
use progenitor_client::{Error as ClientError, ResponseValue};

use crate::adapter::Adapter;
use crate::config::{AccountConfig, Credentials};
use crate::vendor_error::{call, ErrorBody};
use crate::{ConversationRef, Error, Marketplace, References, Sent};

/// The adapter a configuration describes; `persist` receives rotated OAuth tokens.
pub(crate) fn adapter(
    config: &AccountConfig,
    persist: Option<Arc<dyn PersistTokens>>,
) -> Result<Arc<dyn Adapter>, Error> {
    match config.marketplace {
        #[cfg(feature = "allegro")]
        Marketplace::Allegro => allegro::AllegroAdapter::from_config(config, persist).map(erase),
        #[cfg(feature = "mercadolibre")]
        Marketplace::MercadoLibre => {
            mercadolibre::MercadoLibreAdapter::from_config(config, persist).map(erase)
        }
        #[cfg(feature = "magalu")]
        Marketplace::Magalu => magalu::MagaluAdapter::from_config(config, persist).map(erase),
        #[cfg(feature = "ozon")]
        Marketplace::Ozon => ozon::OzonAdapter::from_config(config).map(erase),
        #[allow(unreachable_patterns)]
        other => Err(Error::Unsupported {
            marketplace: other,
            operation: "an account",
            not_built: true,
        }),
    }
}

fn erase<A: Adapter>(a: A) -> Arc<dyn Adapter> {
    Arc::new(a)
}

/// What a marketplace brings to the wiring of its accounts.
pub(crate) struct Defaults {
    pub production: &'static str,
    pub token_url: &'static str,
    pub client_auth: ClientAuth,
    pub policy: fn(&str) -> Policy,
}

/// Everything an account's clients are built from.
pub(crate) struct Wiring {
    pub url: String,
    pub http: reqwest::Client,
    pub auth: Auth,
    pub policy: Policy,
}

/// Wires an account: its base URL, an HTTP client with its timeouts, its credentials (an
/// OAuth token that refreshes itself and hands rotated tokens to `persist`), and the
/// marketplace's request policy with the account's overrides.
pub(crate) fn wiring(
    config: &AccountConfig,
    defaults: &Defaults,
    persist: Option<Arc<dyn PersistTokens>>,
) -> Result<Wiring, Error> {
    let name = &config.name;
    // Every period and wait in a config is at most a year: longer ones are mistakes, and
    // the rate limiter cannot hold periods of centuries.
    let secs = |field: &str, v: Option<f64>, default: Duration| -> Result<Duration, Error> {
        match v {
            None => Ok(default),
            Some(s) => Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| *d <= MAX_CONFIG_PERIOD)
                .ok_or_else(|| {
                    Error::config(format!(
                        "account {name}: {field} {s:?} is not a number of seconds from 0 to {}",
                        MAX_CONFIG_PERIOD.as_secs()
                    ))
                }),
        }
    };
    let t = &config.timeouts;
    let base = Timeouts::default();
    let timeouts = Timeouts::new(
        secs("connect_secs", t.connect_secs, base.connect)?,
        secs("request_secs", t.request_secs, base.request)?,
        secs("stall_secs", t.stall_secs, base.stall)?,
    );
    let http = inbox_core::shared_http_client(timeouts).map_err(|e| http_error(config, e))?;
    let auth = match &config.credentials {
        Credentials::Token(t) => Auth::Bearer(t.clone()),
        Credentials::ApiKey { client_id, api_key } => Auth::ClientIdApiKey {
            client_id: client_id.clone(),
            api_key: api_key.clone(),
        },
        Credentials::OAuth(o) => Auth::OAuth(Arc::new(OAuthToken::new(
            config.token_url.as_deref().unwrap_or(defaults.token_url),
            o.client_id.clone(),
            o.client_secret.clone(),
            defaults.client_auth,
            Tokens {
                access_token: o.access_token.clone(),
                refresh_token: o.refresh_token.clone(),
                expires_at: o.expires_at,
            },
            persist,
        ))),
    };
    let vendor = (defaults.policy)(name);
    let r = &config.retry;
    let base = vendor.retry().clone();
    let retry = RetryPolicy {
        max_attempts: r.max_attempts.unwrap_or(base.max_attempts).max(1),
        base_delay: secs("base_delay_secs", r.base_delay_secs, base.base_delay)?,
        max_total_delay: secs(
            "max_total_delay_secs",
            r.max_total_delay_secs,
            base.max_total_delay,
        )?,
        rate_limited_wait: secs(
            "rate_limited_wait_secs",
            r.rate_limited_wait_secs,
            base.rate_limited_wait,
        )?,
        ..base
    };
    let mut limits: Vec<RateLimit> = vendor.limits().cloned().collect();
    for (limit_name, setting) in &config.limits {
        let Some(limit) = limits.iter_mut().find(|l| l.name == limit_name.as_str()) else {
            let known: Vec<&str> = vendor.limits().map(|l| l.name).collect();
            return Err(Error::config(format!(
                "account {name}: {} has no limit named {limit_name:?} (it has {})",
                config.marketplace,
                known.join(", ")
            )));
        };
        limit.requests = setting.requests;
        limit.per = secs("per_secs", setting.per_secs, limit.per)?;
    }
    Ok(Wiring {
        url: config
            .base_url
            .as_deref()
            .unwrap_or(defaults.production)
            .to_string(),
        http,
        auth,
        policy: {
            let policy = vendor.adjusted(retry, limits);
            match config.application_id() {
                Some(application) => policy.of_application(application),
                None => policy,
            }
        },
    })
}

/// The longest period or wait a config may give (a year).
const MAX_CONFIG_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

/// An HTTP client failure at construction, as a configuration error.
pub(crate) fn http_error(config: &AccountConfig, e: inbox_core::HttpClientError) -> Error {
    Error::config(format!("account {}: {e}", config.name))
}

/// The text rules every marketplace shares: not blank, at most `max` characters.
pub(crate) fn check_text(marketplace: Marketplace, text: &str, max: usize) -> Result<(), Error> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(Error::invalid(marketplace, "the message text is empty"));
    }
    if chars > max {
        return Err(Error::invalid(
            marketplace,
            format!("the message has {chars} characters; {marketplace} accepts at most {max}"),
        ));
    }
    Ok(())
}

/// References holding at most one order and one offer id.
pub(crate) fn order_and_offer(order: Option<String>, offer: Option<String>) -> References {
    References {
        orders: order.into_iter().collect(),
        offers: offer.into_iter().collect(),
        pack: None,
        posting: None,
    }
}

/// Awaits a send request and describes what it created: the conversation, the new
/// message's id (read from the answer by `id`), and the vendor's answer.
pub(crate) async fn deliver<T: serde::Serialize + serde::de::DeserializeOwned, E: ErrorBody>(
    marketplace: Marketplace,
    conversation: &str,
    request: impl Future<Output = Result<ResponseValue<T>, ClientError<E>>>,
    id: impl FnOnce(&T) -> Option<String>,
) -> Result<Sent, Error> {
    let answer = call(marketplace, request).await?;
    Ok(Sent {
        conversation: ConversationRef::new(marketplace, conversation),
        message_id: id(&answer),
        vendor: crate::RawJson::of(&answer),
    })
}

/// The domains a marketplace serves message files from (besides its API's own host):
/// a file address elsewhere is refused, so that no data a vendor (or a buyer) controls
/// can make this process fetch an arbitrary address.
fn file_domains(marketplace: Marketplace) -> &'static [&'static str] {
    match marketplace {
        Marketplace::Ozon => &["ozon.ru", "ozone.ru", "ozon.com"],
        Marketplace::Magalu => &["magalu.com", "magazineluiza.com.br", "luizalabs.com"],
        Marketplace::Allegro => &["allegro.pl", "allegroimg.com"],
        Marketplace::MercadoLibre => &["mercadolibre.com", "mlstatic.com"],
    }
}

/// Whether the http(s) address `url` is on the API's own host and port (`api`), or
/// (https only) on a domain the marketplace serves files from.
fn file_address_allowed(marketplace: Marketplace, api: &str, url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let same_as_api = reqwest::Url::parse(api).is_ok_and(|api| {
        api.host_str() == Some(host) && api.port_or_known_default() == url.port_or_known_default()
    });
    same_as_api
        || (url.scheme() == "https"
            && file_domains(marketplace).iter().any(|d| {
                host == *d || host.strip_suffix(d).is_some_and(|rest| rest.ends_with('.'))
            }))
}

/// A file at a URL the vendor gave (Magalu's attachment links, Ozon's image addresses),
/// fetched without any of the account's credentials, which must never reach another
/// host; only from the API's host or the marketplace's file domains
/// ([`file_address_allowed`]), never following a redirect.
pub(crate) async fn fetch_url(
    api: &str,
    marketplace: Marketplace,
    attachment: &crate::Attachment,
) -> Result<crate::Download, Error> {
    let url = attachment
        .url
        .as_deref()
        .ok_or_else(|| Error::invalid(marketplace, "the attachment has no address"))?;
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http"))
        .ok_or_else(|| {
            Error::invalid(
                marketplace,
                "the attachment's address is not an http(s) URL",
            )
        })?;
    if !file_address_allowed(marketplace, api, &parsed) {
        return Err(Error::invalid(
            marketplace,
            format!(
                "the attachment's address is on {}, not a host {marketplace} serves files from",
                crate::error::clip(parsed.host_str().unwrap_or("no host"), 80)
            ),
        ));
    }
    let response = inbox_core::http_client_without_redirects(inbox_core::Timeouts::default())
        .map_err(|e| Error::config(format!("the HTTP client for files could not be made: {e}")))?
        .get(parsed)
        .send()
        .await
        .map_err(|e| crate::vendor_error::transport(marketplace, e))?;
    if !response.status().is_success() {
        return Err(Error::Api {
            operation: None,
            marketplace,
            status: response.status().as_u16(),
            code: None,
            message: Some(match response.status().is_redirection() {
                true => "the attachment's address redirects elsewhere; redirects are not followed"
                    .into(),
                false => "the attachment could not be fetched".into(),
            }),
            request_id: None,
            attempts: 1,
        });
    }
    let mime = content_type(response.headers());
    Ok(download(
        marketplace,
        attachment,
        mime,
        response.bytes_stream(),
    ))
}

/// The media type a download's answer declares.
fn content_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Awaits a generated client's file download and streams it as a [`crate::Download`].
pub(crate) async fn api_download<E: ErrorBody>(
    marketplace: Marketplace,
    attachment: &crate::Attachment,
    request: impl Future<Output = Result<ResponseValue<progenitor_client::ByteStream>, ClientError<E>>>,
) -> Result<crate::Download, Error> {
    let (result, outcome) = inbox_core::observe(request).await;
    match result {
        Ok(rv) => {
            let mime = content_type(rv.headers());
            Ok(download(
                marketplace,
                attachment,
                mime,
                rv.into_inner().into_inner(),
            ))
        }
        Err(e) => Err(crate::vendor_error::map(marketplace, e, outcome).await),
    }
}

/// A download of `attachment` from a stream of bytes.
pub(crate) fn download(
    marketplace: Marketplace,
    attachment: &crate::Attachment,
    mime: Option<String>,
    bytes: impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
) -> crate::Download {
    use futures::StreamExt;
    crate::Download {
        name: attachment.name.clone(),
        mime: attachment.mime.clone().or(mime),
        body: bytes
            .map(move |chunk| chunk.map_err(|e| crate::vendor_error::transport(marketplace, e)))
            .boxed(),
    }
}

/// The attachment's vendor id, needed to download it through the API.
pub(crate) fn attachment_id(
    marketplace: Marketplace,
    attachment: &crate::Attachment,
) -> Result<&str, Error> {
    attachment
        .id
        .as_deref()
        .ok_or_else(|| Error::invalid(marketplace, "the attachment has no id to download it by"))
}
