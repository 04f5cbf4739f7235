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

use inbox_core::Secret;
use progenitor_client::{Error as ClientError, ResponseValue};

use crate::adapter::Adapter;
use crate::config::{AccountConfig, Credentials};
use crate::vendor_error::{call, ErrorBody};
use crate::{ConversationRef, Error, Marketplace, References, Sent};

/// The adapter a configuration describes.
pub(crate) fn adapter(config: &AccountConfig) -> Result<Arc<dyn Adapter>, Error> {
    match config.marketplace {
        #[cfg(feature = "allegro")]
        Marketplace::Allegro => allegro::AllegroAdapter::from_config(config).map(erase),
        #[cfg(feature = "mercadolibre")]
        Marketplace::MercadoLibre => {
            mercadolibre::MercadoLibreAdapter::from_config(config).map(erase)
        }
        #[cfg(feature = "magalu")]
        Marketplace::Magalu => magalu::MagaluAdapter::from_config(config).map(erase),
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

/// The base URL of an account: its own, else the marketplace's production API.
pub(crate) fn base_url<'a>(config: &'a AccountConfig, production: &'a str) -> &'a str {
    config.base_url.as_deref().unwrap_or(production)
}

/// The bearer token of an account that authenticates with one.
pub(crate) fn bearer(config: &AccountConfig) -> Result<Secret, Error> {
    match &config.credentials {
        Credentials::Token(t) => Ok(t.clone()),
        Credentials::OAuth(o) => o.access_token.clone().ok_or_else(|| {
            Error::config(format!(
                "account {}: OAuth credentials need an access_token for now (token refresh is not available yet)",
                config.name
            ))
        }),
        Credentials::ApiKey { .. } => Err(Error::config(format!(
            "account {}: {} authenticates with an OAuth token, not an API key",
            config.name, config.marketplace
        ))),
    }
}

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
pub(crate) async fn deliver<T: serde::Serialize, E: ErrorBody>(
    marketplace: Marketplace,
    conversation: &str,
    request: impl Future<Output = Result<ResponseValue<T>, ClientError<E>>>,
    id: impl FnOnce(&T) -> Option<String>,
) -> Result<Sent, Error> {
    let answer = call(marketplace, request).await?;
    Ok(Sent {
        conversation: ConversationRef::new(marketplace, conversation),
        message_id: id(&answer),
        vendor: serde_json::to_value(&answer).unwrap_or(serde_json::Value::Null),
    })
}
