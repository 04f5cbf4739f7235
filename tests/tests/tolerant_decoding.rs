//! What vendors really send, decoded by the generated types without loss.
//! One test per tolerant-decoding case, named after it.

use inbox_allegro::{beta_v1, public_v1};
use inbox_magalu as magalu;
use inbox_mercadolibre as meli;
use inbox_ozon as ozon;
use serde_json::json;

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn unknown_enum_values_are_kept() {
    let m: beta_v1::types::MessageVBeta1 = decode(json!({
        "id": "m1", "status": "QUARANTINED", "type": "MESSAGE_CENTER",
        "author": {"role": "COURIER", "login": "dpd"}
    }));
    assert_eq!(
        m.status,
        Some(beta_v1::enums::MessageVBeta1Status::Unknown(
            "QUARANTINED".into()
        ))
    );
    assert_eq!(m.author.unwrap().role.unwrap().as_str(), "COURIER");
    let chat: ozon::types::V3ChatDetailsInfo = decode(json!({"chat_type": "BUYER_SELLER_RETURNS"}));
    assert_eq!(
        chat.chat_type.as_ref().unwrap().as_str(),
        "BUYER_SELLER_RETURNS"
    );
    assert!(!chat.chat_type.unwrap().is_known());
    let status: meli::types::ConversationStatus =
        decode(json!({"status": "blocked", "substatus": "blocked_by_something_new"}));
    assert_eq!(
        status.substatus.unwrap().as_str(),
        "blocked_by_something_new"
    );
    // Serialises back exactly as it came.
    let again =
        serde_json::to_value(decode::<ozon::types::V3User>(json!({"type": "Сustomer"}))).unwrap();
    assert_eq!(again, json!({"type": "Сustomer"}));
}

#[test]
fn ids_as_string_or_number() {
    let a: ozon::types::V3ChatMessage = decode(json!({"message_id": 3000000000817031942u64}));
    let b: ozon::types::V3ChatMessage = decode(json!({"message_id": "3000000000817031942"}));
    assert_eq!(
        a.message_id.as_ref().unwrap().as_str(),
        b.message_id.as_ref().unwrap().as_str()
    );
    let from_number: meli::types::MessageUser = decode(json!({"user_id": 415458330}));
    let from_string: meli::types::MessageUser = decode(json!({"user_id": "415458330"}));
    assert_eq!(
        from_number.user_id,
        from_string
            .user_id
            .clone()
            .map(|id| inbox_core::FlexId::number(id.as_u64().unwrap()))
    );
    assert_eq!(from_number.user_id.unwrap().as_str(), "415458330");
    let t: public_v1::types::Thread = decode(json!({"id": 12345}));
    assert_eq!(t.id.unwrap().as_str(), "12345");
}

#[test]
fn dates_with_offsets() {
    let d: meli::types::MessageDate = decode(json!({
        "received": "2019-03-13T09:34:26.450-04:00",
        "created": "2020-12-05T20:01:46.000Z",
        "available": "2024-06-01T12:00:00-03:00"
    }));
    assert_eq!(d.received.unwrap().to_rfc3339(), "2019-03-13T13:34:26.450Z");
    assert_eq!(d.created.unwrap().to_rfc3339(), "2020-12-05T20:01:46.000Z");
    assert_eq!(
        d.available.unwrap().to_rfc3339(),
        "2024-06-01T15:00:00.000Z"
    );
}

#[test]
fn magalu_dollar_date_objects() {
    let m: magalu::types::Message = decode(json!({
        "id": "630e3bbc950b052e8724491a",
        "when_at": {"$date": "2024-04-24T09:57:56.851Z"},
        "moderation": {"status": "APPROVED", "when_at": {"$date": {"$numberLong": "1713952677620"}}}
    }));
    assert_eq!(m.when_at.unwrap().to_rfc3339(), "2024-04-24T09:57:56.851Z");
    assert_eq!(
        m.moderation.unwrap().when_at.unwrap().to_rfc3339(),
        "2024-04-24T09:57:57.620Z"
    );
}

#[test]
fn null_where_docs_show_a_value() {
    let m: public_v1::types::Message = decode(json!({
        "id": "x", "status": null, "createdAt": null, "author": null, "text": null,
        "relatesTo": {"offer": null, "order": null}, "attachments": null, "thread": null,
        "hasAdditionalAttachments": null
    }));
    assert!(m.status.is_none() && m.created_at.is_none() && m.attachments.is_none());
    let p: meli::types::PackMessages =
        decode(json!({"paging": null, "conversation_status": null, "messages": null}));
    assert!(p.paging.is_none() && p.messages.is_none());
    let c: magalu::types::Message = decode(json!({"id": "1", "metadata": null, "read_by": null}));
    assert!(c.metadata.is_none());
}

#[test]
fn extra_fields_are_ignored() {
    let t: public_v1::types::Thread = decode(json!({
        "id": "t", "read": false, "brandNewField": {"nested": [1, 2]}, "interlocutor": {"login": "a", "badge": "gold"}
    }));
    assert_eq!(t.interlocutor.unwrap().login.as_deref(), Some("a"));
}

#[test]
fn scalars_as_strings() {
    let page: ozon::types::V3ChatListResponse =
        decode(json!({"has_next": "true", "total_unread_count": "5"}));
    assert!(page.has_next.unwrap().get());
    assert_eq!(page.total_unread_count.unwrap().get(), 5);
    let att: meli::types::MessageAttachment = decode(json!({"size": "103584"}));
    assert_eq!(att.size.unwrap().get(), 103584);
}

#[test]
fn one_malformed_element_costs_only_itself() {
    let page: ozon::types::V3ChatHistoryResponse = decode(json!({
        "has_next": false,
        "messages": [
            {"message_id": "1", "data": ["a"]},
            {"message_id": "2", "created_at": "not a date"},
            {"message_id": "3", "data": ["c"]}
        ]
    }));
    let messages = page.messages.unwrap();
    assert_eq!(
        messages[0]
            .valid()
            .unwrap()
            .message_id
            .as_ref()
            .unwrap()
            .as_str(),
        "1"
    );
    let bad = messages[1].as_result().unwrap_err();
    assert_eq!(bad.raw["message_id"], "2");
    assert!(
        bad.error.contains("unrecognised timestamp"),
        "{}",
        bad.error
    );
    assert_eq!(
        messages[2]
            .valid()
            .unwrap()
            .message_id
            .as_ref()
            .unwrap()
            .as_str(),
        "3"
    );
}
