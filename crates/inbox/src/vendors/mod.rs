//! One adapter per marketplace: listing streams, conversions into the model, send and
//! mark-read with the marketplace's own rules.

pub mod allegro;
pub mod magalu;
pub mod mercadolibre;
pub mod ozon;

use crate::{ConversationRef, Error, Marketplace, References, Sent};

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

/// What a send returned: the conversation, the new message's id, the vendor's answer.
pub(crate) fn sent<T: serde::Serialize>(
    marketplace: Marketplace,
    conversation: &str,
    message_id: Option<String>,
    answer: &T,
) -> Sent {
    Sent {
        conversation: ConversationRef::new(marketplace, conversation),
        message_id,
        vendor: serde_json::to_value(answer).unwrap_or(serde_json::Value::Null),
    }
}
