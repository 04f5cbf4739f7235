//! What each marketplace documents reaches the model: blocked conversations, system
//! authors, message kinds, attachment safety, image messages, reply rules.

use futures::TryStreamExt;
use httpmock::prelude::*;
use marketplace_inbox::*;
use serde_json::json;

mod common;

const BETA: &str = "application/vnd.allegro.beta.v1+json";
const V1: &str = "application/vnd.allegro.public.v1+json";

#[tokio::test]
async fn a_blocked_mercadolibre_pack_shows_why_and_refuses_a_send_before_sending() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/unread");
            then.status(200).json_body(
                json!({"results": [{"resource": "/packs/5/sellers/415458330", "count": 1}]}),
            );
        })
        .await;
    let page = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/messages/packs/5/sellers/415458330")
                .query_param("mark_as_read", "false");
            then.status(200).json_body(json!({
                "paging": {"limit": 10, "offset": 0, "total": 1},
                "conversation_status": {"path": "/packs/5/sellers/415458330", "status": "blocked",
                    "substatus": "blocked_by_mediation", "status_date": "2026-11-20T10:00:00.000-03:00",
                    "status_update_allowed": false, "claim_id": 5167436, "shipping_id": null},
                "messages": [{"id": "m1", "from": {"user_id": 77}, "to": {"user_id": 415458330}, "text": "Oi",
                    "message_date": {"created": "2026-11-20T10:00:00.000-03:00"},
                    "message_moderation": {"status": "rejected", "reason": "OUT_OF_PLACE_LANGUAGE", "source": "online"},
                    "message_attachments": [{"filename": "415458330_a.pdf", "original_filename": "a.pdf", "type": "application/pdf",
                        "size": 10, "potential_security_threat": true}]}]}));
        })
        .await;
    let send = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/messages/packs/5/sellers/415458330");
            then.status(200).json_body(json!({"id": "never"}));
        })
        .await;
    let account = Account::from_config(&common::meli_config(&server)).unwrap();
    let listed: Vec<Conversation> = account
        .conversations(ConversationQuery::new().unread_only(true).with_state(true))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        listed[0].status,
        Some(ConversationStatus::Blocked {
            reason: Some("blocked_by_mediation".into())
        })
    );
    let messages: Vec<Message> = account
        .messages(&listed[0].reference, MessageQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(messages[0].status.as_deref(), Some("rejected"));
    assert_eq!(
        messages[0].moderation_reason.as_deref(),
        Some("OUT_OF_PLACE_LANGUAGE")
    );
    let file = &messages[0].attachments[0];
    assert_eq!(file.status.as_deref(), Some("UNSAFE"));
    assert!(!file.downloadable());

    let err = account
        .send(&listed[0].reference, "Olá", &[])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("blocked_by_mediation"), "{err}");
    send.assert_calls_async(0).await;
    page.assert_calls_async(3).await;
}

fn beta_message(id: &str, login: &str, role: &str) -> serde_json::Value {
    json!({"id": id, "status": "DELIVERED", "type": "ASK_QUESTION", "createdAt": "2026-11-20T10:00:00.123456Z",
           "author": {"login": login, "role": role, "id": "98765"}, "text": "x", "subject": null,
           "relatesTo": {"offer": null, "order": null}, "hasAdditionalAttachments": true,
           "attachments": [
               {"id": "a1", "fileName": "ok.pdf", "mimeType": "application/pdf", "url": "https://x/a1", "status": "SAFE"},
               {"id": "a2", "fileName": "bad.exe", "mimeType": "application/pdf", "url": "https://x/a2", "status": "UNSAFE"},
               {"id": "a3", "fileName": "old.pdf", "mimeType": "application/pdf", "url": "https://x/a3", "status": "EXPIRED"}],
           "additionalInformation": null})
}

#[tokio::test]
async fn allegro_messages_keep_author_kind_and_attachment_safety() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/messaging/threads/t1/messages")
                .header("accept", BETA);
            then.status(200).json_body(json!({"messages": [
                beta_message("m1", "allegro", "USER"),
                beta_message("m2", "client:44300444", "BUYER")], "nextPage": null}));
        })
        .await;
    let account = Account::from_config(&common::allegro_config(&server)).unwrap();
    let messages: Vec<Message> = account
        .messages(&account.reference("t1"), MessageQuery::new())
        .try_collect()
        .await
        .unwrap();
    // The system author is the marketplace, never the buyer.
    assert_eq!(messages[0].author.role, Role::Marketplace);
    assert_eq!(messages[1].author.role, Role::Buyer);
    assert_eq!(messages[1].author.id.as_deref(), Some("98765"));
    assert_eq!(messages[1].author.name.as_deref(), Some("client:44300444"));
    assert_eq!(messages[1].kind.as_deref(), Some("ASK_QUESTION"));
    assert_eq!(messages[1].more_attachments, Some(true));
    let downloadable: Vec<bool> = messages[1]
        .attachments
        .iter()
        .map(Attachment::downloadable)
        .collect();
    assert_eq!(downloadable, [true, false, false]);
    assert_eq!(messages[1].attachments[1].status.as_deref(), Some("UNSAFE"));
}

#[tokio::test]
async fn an_allegro_account_without_beta_is_asked_once_then_served_public_v1() {
    let server = MockServer::start_async().await;
    let refused = server
        .mock_async(|when, then| {
            when.header("accept", BETA);
            then.status(406).json_body(json!({"errors": [{"code": "NotAcceptableException", "message": "Not acceptable"}]}));
        })
        .await;
    let threads = server
        .mock_async(|when, then| {
            when.method(GET).path("/messaging/threads").header("accept", V1);
            then.status(200).json_body(json!({"threads": [{"id": "t1", "read": true}, {"id": "t2", "read": true}], "offset": 0, "limit": 20}));
        })
        .await;
    let messages = server
        .mock_async(|when, then| {
            when.method(GET)
                .path_includes("/messages")
                .header("accept", V1);
            then.status(200)
                .json_body(json!({"messages": [], "offset": 0, "limit": 20}));
        })
        .await;
    let reply = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/messaging/threads/t2/messages")
                .header("content-type", V1);
            then.status(201)
                .json_body(json!({"id": "new", "text": "Dzień dobry"}));
        })
        .await;
    let account = Account::from_config(&common::allegro_config(&server)).unwrap();
    let listed: Vec<Conversation> = account
        .conversations(ConversationQuery::new())
        .try_collect()
        .await
        .unwrap();
    for c in &listed {
        let _: Vec<Message> = account
            .messages(&c.reference, MessageQuery::new())
            .try_collect()
            .await
            .unwrap();
    }
    account
        .send(&listed[1].reference, "Dzień dobry", &[])
        .await
        .unwrap();
    refused.assert_calls_async(1).await;
    threads.assert_calls_async(1).await;
    messages.assert_calls_async(2).await;
    reply.assert_calls_async(1).await;
}

#[tokio::test]
async fn ozon_image_messages_are_attachments_and_types_match_in_any_case() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/history");
            then.status(200).json_body(json!({"has_next": false, "messages": [
                {"message_id": "2", "created_at": "2026-11-20T10:00:00Z", "is_image": true,
                 "data": ["![](https://cdn1.ozone.ru/s3/chat/photo-1.jpg)", "https://cdn1.ozone.ru/s3/chat/photo-2.png?x=1"],
                 "user": {"id": "u1", "type": "Сustomer"}},
                {"message_id": "1", "created_at": "2026-11-20T09:00:00Z", "data": ["Здравствуйте"],
                 "user": {"id": "s1", "type": "SELLER"}}]}));
        })
        .await;
    let account = Account::from_config(&common::ozon_config(&server)).unwrap();
    let messages: Vec<Message> = account
        .messages(&account.reference("c"), MessageQuery::new())
        .try_collect()
        .await
        .unwrap();
    let image = &messages[0];
    assert_eq!(image.text, "");
    let urls: Vec<&str> = image
        .attachments
        .iter()
        .filter_map(|a| a.url.as_deref())
        .collect();
    assert_eq!(
        urls,
        [
            "https://cdn1.ozone.ru/s3/chat/photo-1.jpg",
            "https://cdn1.ozone.ru/s3/chat/photo-2.png?x=1"
        ]
    );
    assert_eq!(image.attachments[1].name.as_deref(), Some("photo-2.png"));
    assert_eq!(image.author.role, Role::Buyer);
    assert_eq!(messages[1].author.role, Role::Seller);
    assert_eq!(messages[1].text, "Здравствуйте");
}

#[tokio::test]
async fn magalu_replies_are_checked_against_its_moderation_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_, then| {
            then.status(201).json_body(json!({"id": "x"}));
        })
        .await;
    let account = Account::from_config(&common::magalu_config(&server)).unwrap();
    let conversation = account.reference("c1");
    for text in [
        "x".repeat(2201),
        "Escreva para ana.souza@example.com.br".into(),
        "Meu CPF é 123.456.789-09".into(),
        "PIX 12345678909".into(),
    ] {
        let err = account.send(&conversation, &text, &[]).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{text}: {err}");
    }
    any.assert_calls_async(0).await;
    // A phone-like short number, an order code, and an @ mention pass.
    for text in [
        "Pedido 1234-5678 enviado",
        "Obrigado @Ana!",
        "Até 2026-12-01.",
    ] {
        account.send(&conversation, text, &[]).await.unwrap();
    }
    any.assert_calls_async(3).await;
}

#[tokio::test]
async fn allegro_error_bodies_reach_the_caller_with_code_and_user_message() {
    use inbox_sandbox::{Config, Sandbox, Vendor};
    let sandbox = Sandbox::start(Config {
        conversations: 35,
        ..Config::default()
    })
    .await
    .unwrap();
    let config = common::sandbox_account(&sandbox.accounts_config(), Vendor::Allegro, |_| {});
    let account = Account::from_config(&config).unwrap();
    // Thread 35 is a closed post-purchase issue.
    let closed = account.reference(format!("sbx{:040}", 35));
    let err = account.send(&closed, "Dzień dobry", &[]).await.unwrap_err();
    match &err {
        Error::Api {
            status: 422,
            code,
            message,
            ..
        } => {
            assert_eq!(code.as_deref(), Some("THREAD_CLOSED"));
            let message = message.as_deref().unwrap_or_default();
            assert!(
                message.contains("closed POST_PURCHASE_ISSUE thread"),
                "{message}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("THREAD_CLOSED"), "{err}");
}

#[tokio::test]
async fn a_malformed_part_of_a_page_costs_only_itself_and_never_silently() {
    let server = MockServer::start_async().await;
    // Mercado Libre: paging, status and limits malformed; one element past every JSON
    // limit serde has; the rest of the page is delivered.
    let deep = format!("{}0{}", "[".repeat(300), "]".repeat(300));
    let body = format!(
        r#"{{"paging": "garbage", "conversation_status": 5, "seller_max_message_length": {{}},
            "messages": [
              {{"id": "m1", "from": {{"user_id": 77}}, "text": "ok", "message_date": {{"created": "2026-11-20T10:00:00Z"}}}},
              {{"id": "m2", "text": "deep", "x": {deep}}},
              {{"id": "m3", "text": "\ud800", "message_date": {{"created": "2026-11-20T10:00:00Z"}}}},
              {{"id": "m4", "n": 1e400}},
              {{"id": "m5", "from": {{"user_id": 77}}, "text": "ok too", "message_date": {{"created": "2026-11-20T10:00:00Z"}}}}
            ]}}"#
    );
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/5/sellers/415458330");
            then.status(200)
                .header("content-type", "application/json")
                .body(body);
        })
        .await;
    let meli = Account::from_config(&common::meli_config(&server)).unwrap();
    let items: Vec<Result<Message, Error>> =
        futures::StreamExt::collect(meli.messages(&meli.reference("5"), MessageQuery::new())).await;
    let ok: Vec<&str> = items
        .iter()
        .filter_map(|m| m.as_ref().ok())
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(ok, ["m1", "m5"]);
    assert_eq!(items.len(), 5, "{items:?}");
    for bad in &items[1..4] {
        assert!(
            matches!(
                bad,
                Err(Error::Decode {
                    marketplace: Marketplace::MercadoLibre,
                    raw: Some(_),
                    ..
                })
            ),
            "{bad:?}"
        );
    }

    // Magalu: a count, a previous link and a duplicated key in the page info; next kept.
    server
        .mock_async(|when, then| {
            when.method(GET).path("/v0/conversations").query_param("_offset", "0");
            then.status(200).header("content-type", "application/json").body(
                r#"{"meta": {"page": {"limit": 1, "count": "abc", "count": 2}, "links": {"previous": 5, "next": "?_offset=1&_limit=1"}},
                    "results": [{"id": "c1", "status": "OPENED"}]}"#,
            );
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/v0/conversations").query_param("_offset", "1");
            then.status(200).json_body(json!({"meta": {"links": {"next": null}}, "results": [{"id": "c2", "status": "OPENED"}]}));
        })
        .await;
    let magalu = Account::from_config(&common::magalu_config(&server)).unwrap();
    let listed: Vec<Conversation> = magalu
        .conversations(ConversationQuery::new())
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|c| c.reference.id.as_str()).collect();
    assert_eq!(
        ids,
        ["c1", "c2"],
        "the next link survived the malformed fields beside it"
    );

    // Ozon: a missing list is an error naming the marketplace, never an empty page.
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/list");
            then.status(200)
                .json_body(json!({"total_unread_count": "lots", "has_next": false}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/history");
            then.status(200)
                .json_body(json!({"has_next": false, "messages": null}));
        })
        .await;
    let ozon = Account::from_config(&common::ozon_config(&server)).unwrap();
    let chats: Vec<Result<Conversation, Error>> =
        futures::StreamExt::collect(ozon.conversations(ConversationQuery::new())).await;
    assert!(
        matches!(
            chats.as_slice(),
            [Err(Error::Decode {
                marketplace: Marketplace::Ozon,
                ..
            })]
        ),
        "{chats:?}"
    );
    let history: Vec<Result<Message, Error>> =
        futures::StreamExt::collect(ozon.messages(&ozon.reference("c"), MessageQuery::new())).await;
    assert!(
        matches!(
            history.as_slice(),
            [Err(Error::Decode {
                marketplace: Marketplace::Ozon,
                ..
            })]
        ),
        "{history:?}"
    );
}

#[tokio::test]
async fn downloads_from_vendor_addresses_carry_no_credentials_and_unsafe_files_are_refused() {
    use futures::StreamExt;
    let server = MockServer::start_async().await;
    let file = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/files/photo-1.jpg")
                .header_missing("authorization")
                .header_missing("api-key")
                .header_missing("client-id");
            then.status(200)
                .header("content-type", "image/jpeg")
                .body("JPEGDATA");
        })
        .await;
    let url = format!("{}/files/photo-1.jpg", server.base_url());
    for config in [common::ozon_config(&server), common::magalu_config(&server)] {
        let account = Account::from_config(&config).unwrap();
        let attachment = Attachment {
            url: Some(url.clone()),
            ..Attachment::default()
        };
        let download = account
            .download(&account.reference("c"), &attachment)
            .await
            .unwrap();
        assert_eq!(download.mime.as_deref(), Some("image/jpeg"));
        let bytes: Vec<u8> = download
            .body
            .map(|chunk| chunk.unwrap().to_vec())
            .concat()
            .await;
        assert_eq!(bytes, b"JPEGDATA");
    }
    file.assert_calls_async(2).await;

    let account = Account::from_config(&common::allegro_config(&server)).unwrap();
    let unsafe_file = Attachment {
        id: Some("a2".into()),
        status: Some("UNSAFE".into()),
        ..Attachment::default()
    };
    let err = account
        .download(&account.reference("t"), &unsafe_file)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let not_http = Attachment {
        url: Some("file:///etc/passwd".into()),
        ..Attachment::default()
    };
    let ozon = Account::from_config(&common::ozon_config(&server)).unwrap();
    assert!(ozon
        .download(&ozon.reference("c"), &not_http)
        .await
        .is_err());
}

#[tokio::test]
async fn vendor_paging_numbers_at_the_edge_of_u64_never_panic() {
    let server = MockServer::start_async().await;
    // Magalu's next link points at the largest offset; the page there is empty but says
    // there is more: the listing ends with an error, without arithmetic overflow.
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/v0/conversations")
                .query_param("_offset", "0");
            then.status(200).json_body(
                json!({"meta": {"links": {"next": "?_offset=18446744073709551615&_limit=100"}},
                "results": [{"id": "c1", "status": "OPENED"}]}),
            );
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/v0/conversations").query_param("_offset", "18446744073709551615");
            then.status(200).json_body(json!({"meta": {"links": {"next": "?_offset=18446744073709551615"}}, "results": []}));
        })
        .await;
    // Mercado Libre's total near the top of u64, on a page at offset 0.
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/5/sellers/415458330");
            then.status(200).json_body(json!({"paging": {"total": 18446744073709551615u64, "offset": 18446744073709551615u64},
                "messages": [{"id": "m1", "text": "x", "message_date": {"created": "2026-11-20T10:00:00Z"}}]}));
        })
        .await;
    let magalu = Account::from_config(&common::magalu_config(&server)).unwrap();
    let listed: Vec<Result<Conversation, Error>> =
        futures::StreamExt::collect(magalu.conversations(ConversationQuery::new())).await;
    assert!(listed[0].is_ok());
    assert!(
        matches!(listed.last(), Some(Err(Error::Pagination { .. }))),
        "{listed:?}"
    );
    let meli = Account::from_config(&common::meli_config(&server)).unwrap();
    let messages: Vec<Result<Message, Error>> =
        futures::StreamExt::collect(meli.messages(&meli.reference("5"), MessageQuery::new())).await;
    assert!(messages[0].is_ok(), "{messages:?}");
}

#[tokio::test]
async fn magalu_moderation_rules_are_kept() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/v0/conversations/c1/messages");
            then.status(200).json_body(json!({"meta": {"links": {"next": null}}, "results": [
                {"id": "m1", "content": "meu e-mail", "when_at": {"$date": "2026-11-20T10:00:00.000Z"},
                 "from_user": {"id": "u", "type": "SELLER"},
                 "moderation": {"status": "REJECTED", "when_at": {"$date": "2026-11-20T10:00:05.000Z"},
                                "block_rules": ["EMAIL", {"name": "PHONE_NUMBER"}]}}]}));
        })
        .await;
    let account = Account::from_config(&common::magalu_config(&server)).unwrap();
    let messages: Vec<Message> = account
        .messages(&account.reference("c1"), MessageQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(messages[0].status.as_deref(), Some("REJECTED"));
    assert_eq!(
        messages[0].moderation_reason.as_deref(),
        Some("EMAIL, PHONE_NUMBER")
    );
}
