//! The generated client sends what the spec says (method, path, query, headers, body)
//! and decodes the answers by the spec's types: lists, a send with its
//! `Idempotency-Key`, a reference percent-encoded as one path segment, and errors as
//! RFC 9457 problems.

use httpmock::prelude::*;
use inbox_api_client::{types, InboxApi};
use serde_json::json;

const KEY: &str = "ik_0123456789abcdef0123456789abcdef0123456789ab";

fn conversation() -> serde_json::Value {
    json!({"marketplace": "allegro", "ref": "allegro@pl-main:dpYCg9", "id": "dpYCg9",
           "account": "pl-main", "kind": "thread", "status": "open", "blocked_reason": null,
           "unread": true, "unread_count": null, "other_party": "buyer-1",
           "other_party_id": "b1", "other_party_name": "buyer-1", "other_party_role": "buyer",
           "created_at": "2026-11-01T10:00:00Z", "last_activity_at": "2026-11-20T10:00:00Z",
           "reply_deadline": null,
           "references": {"orders": ["o-1"], "offers": [], "pack": null, "posting": null},
           "vendor": {"id": "dpYCg9"}})
}

#[tokio::test]
async fn a_list_sends_its_filters_and_the_key_and_decodes_the_page() {
    let server = MockServer::start_async().await;
    let list = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v1/conversations")
                .query_param("unread", "true")
                .query_param("account", "pl-main")
                .query_param("limit", "2")
                .header("authorization", format!("Bearer {KEY}"));
            then.status(200)
                .json_body(json!({"data": [conversation()], "next_cursor": "c1"}));
        })
        .await;
    let api = InboxApi::with_base_url(&server.base_url(), KEY).unwrap();
    let page = api
        .list_conversations()
        .unread(true)
        .account("pl-main")
        .limit(std::num::NonZeroU32::new(2).unwrap())
        .send()
        .await
        .unwrap();
    list.assert_async().await;
    assert_eq!(page.next_cursor.as_deref(), Some("c1"));
    let c = page.data.first().unwrap();
    assert_eq!(c.ref_, "allegro@pl-main:dpYCg9");
    assert_eq!(c.unread, Some(true));
    assert_eq!(c.references.as_ref().unwrap().orders, ["o-1"]);
}

#[tokio::test]
async fn a_send_carries_its_idempotency_key_and_a_ref_stays_one_segment() {
    let server = MockServer::start_async().await;
    let send = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/v1/conversations/allegro%40pl-main%3Aa%2F..%2Fb/messages")
                .header("idempotency-key", "order-17-reply-1")
                .json_body(json!({"text": "Dzień dobry"}));
            then.status(201).json_body(json!({
                "send": {"id": "snd_1", "ref": "allegro@pl-main:a/../b", "state": "sent",
                         "message_id": "m-9", "error": null},
                "message": null}));
        })
        .await;
    let api = InboxApi::with_base_url(&server.base_url(), KEY).unwrap();
    let sent = api
        .send_message()
        .ref_("allegro@pl-main:a/../b")
        .idempotency_key("order-17-reply-1")
        .body(types::NewMessage {
            text: "Dzień dobry".into(),
            attachments: Vec::new(),
        })
        .send()
        .await
        .unwrap();
    send.assert_async().await;
    assert_eq!(sent.send.state, inbox_api_client::enums::SendState::Sent);
    assert_eq!(sent.send.message_id.as_deref(), Some("m-9"));
    assert!(sent.message.is_none());
}

#[tokio::test]
async fn an_error_decodes_as_a_problem() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/accounts/nobody");
            then.status(404)
                .header("content-type", "application/problem+json")
                .json_body(
                    json!({"type": "about:blank", "title": "Not Found", "status": 404,
                                  "detail": "no account is named nobody"}),
                );
        })
        .await;
    let api = InboxApi::with_base_url(&server.base_url(), KEY).unwrap();
    let err = api.get_account().name("nobody").send().await.unwrap_err();
    let inbox_api_client::Error::ErrorResponse(problem) = err else {
        panic!("not a problem: {err:?}")
    };
    assert_eq!(problem.status().as_u16(), 404);
    assert_eq!(problem.status, 404);
    assert_eq!(problem.detail, "no account is named nobody");
}
