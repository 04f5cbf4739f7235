//! Every Mercado Libre messaging operation against a mock server, with Mercado Libre's
//! own example payloads.

use futures::StreamExt;
use httpmock::prelude::*;
use httpmock::When;
use inbox_mercadolibre::{enums, types, MercadoLibre};
use serde_json::json;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn meli(when: When) -> When {
    when.header("authorization", "Bearer tok-meli")
        .header_missing("api-version")
        .query_param("tag", "post_sale")
}

fn client(server: &MockServer) -> MercadoLibre {
    MercadoLibre::with_base_url(&server.base_url(), "tok-meli").unwrap()
}

#[tokio::test]
async fn pack_messages_without_marking_read() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            meli(
                when.method(GET)
                    .path("/messages/packs/2000000089077943/sellers/415458330"),
            )
            .header("accept", "application/json")
            .query_param("mark_as_read", "false")
            .query_param("limit", "10")
            .query_param("offset", "20");
            then.status(200)
                .header("content-type", "application/json")
                .body(fixture("pack_messages.json"));
        })
        .await;
    let page = client(&server)
        .get_pack_messages()
        .pack_id("2000000089077943")
        .seller_id("415458330")
        .tag(enums::Tag::PostSale)
        .mark_as_read(false)
        .limit(std::num::NonZeroU64::new(10).unwrap())
        .offset(20u64)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    let paging = page.paging.as_ref().unwrap();
    assert_eq!(paging.total.unwrap().get(), 31);
    let status = page.conversation_status.as_ref().unwrap();
    assert_eq!(status.status, Some(enums::ConversationStatusStatus::Active));
    assert_eq!(status.substatus, None);
    let messages = page.messages.as_ref().unwrap();
    assert_eq!(messages.len(), 2);
    let m = messages[0].valid().unwrap();
    assert_eq!(
        m.id.as_ref().unwrap().as_str(),
        "2c92808469fea23a0169febf14580001"
    );
    assert_eq!(
        m.from.as_ref().unwrap().user_id.as_ref().unwrap().as_str(),
        "415458330"
    );
    assert_eq!(m.text.as_deref(), Some("Test message ToUserId"));
    // An older status value the docs still show is kept, not rejected.
    assert_eq!(
        m.status,
        Some(enums::MessageStatus::Unknown("IN_MODERATION".into()))
    );
    let dates = m.message_date.as_ref().unwrap();
    assert_eq!(
        dates.created.as_ref().unwrap().to_rfc3339(),
        "2019-04-08T20:58:49.000Z"
    );
    assert!(dates.available.is_none());
    let att = &m.message_attachments.as_ref().unwrap()[0];
    assert_eq!(
        att.original_filename.as_deref(),
        Some("Ayuda-Memoria-Arduino-ELINSI.pdf")
    );
    assert_eq!(att.size.unwrap().get(), 225677);
    assert_eq!(
        m.message_moderation.as_ref().unwrap().status,
        Some(enums::MessageModerationStatus::Unknown(
            "NON_MODERATED".into()
        ))
    );
}

#[tokio::test]
async fn send_pack_message_to_the_buyer() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            meli(
                when.method(POST)
                    .path("/messages/packs/2000000089077943/sellers/415458330"),
            )
            .header("content-type", "application/json")
            .json_body(json!({
                "from": {"user_id": "415458330"},
                "to": {"user_id": "1977056109"},
                "text": "Olá, seu pedido foi enviado."
            }));
            then.status(200).json_body(json!({
                "id": "0c2d1e0a6a9b4a51b0c9c6a1d1f5e7a2",
                "site_id": "MLB",
                "from": {"user_id": 415458330},
                "to": {"user_id": "1977056109"},
                "text": "Olá, seu pedido foi enviado.",
                "status": "available",
                "message_date": {"created": "2026-11-20T10:00:00.000-03:00"}
            }));
        })
        .await;
    let body = types::NewMessage {
        from: types::NewMessageUser {
            user_id: "415458330".into(),
        },
        to: types::NewMessageUser {
            user_id: "1977056109".into(),
        },
        text: "Olá, seu pedido foi enviado.".try_into().unwrap(),
        attachments: vec![],
    };
    let m = client(&server)
        .send_pack_message()
        .pack_id("2000000089077943")
        .seller_id("415458330")
        .tag(enums::Tag::PostSale)
        .body(body)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(m.status, Some(enums::MessageStatus::Available));
    assert_eq!(
        m.from.as_ref().unwrap().user_id.as_ref().unwrap().as_str(),
        "415458330"
    );
    assert_eq!(
        m.message_date
            .as_ref()
            .unwrap()
            .created
            .as_ref()
            .unwrap()
            .to_rfc3339(),
        "2026-11-20T13:00:00.000Z"
    );
}

#[tokio::test]
async fn text_over_350_characters_is_refused_before_sending() {
    assert!(types::NewMessageText::try_from("a".repeat(351)).is_err());
    assert!(types::NewMessageText::try_from("a".repeat(350)).is_ok());
}

#[tokio::test]
async fn message_by_id() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            meli(
                when.method(GET)
                    .path("/messages/2c92808469fea23a0169febf14580001"),
            )
            .header("x-version", "2");
            then.status(200).body(fixture("pack_messages.json"));
        })
        .await;
    let r = client(&server)
        .get_message()
        .message_id("2c92808469fea23a0169febf14580001")
        .tag(enums::Tag::PostSale)
        .x_version(enums::GetMessageXVersion::V2)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(r.messages.as_ref().unwrap().len(), 2);
    assert!(r.message_id.is_none());
}

#[tokio::test]
async fn message_by_id_in_the_legacy_flat_shape_is_decoded_too() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/0b3a9b0a31d84b53bd0e0f6d0c3f7a10");
            then.status(200).json_body(serde_json::json!({
                "message_id": "0b3a9b0a31d84b53bd0e0f6d0c3f7a10", "site_id": "MLA",
                "date_created": "2019-03-13T09:34:26.450-04:00", "date_received": "2019-03-13T09:34:26.450-04:00",
                "date_read": null, "from": {"user_id": "1977056109"}, "to": {"user_id": 415458330},
                "subject": null, "text": {"plain": "Hola, ¿llegó el pedido?"}, "status": "available",
                "moderation_status": "clean", "resource": "orders", "resource_id": "2000000089077943"}));
        })
        .await;
    let r = client(&server)
        .get_message()
        .message_id("0b3a9b0a31d84b53bd0e0f6d0c3f7a10")
        .tag(enums::Tag::PostSale)
        .x_version(enums::GetMessageXVersion::V2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.message_id.as_ref().map(|i| i.as_str()),
        Some("0b3a9b0a31d84b53bd0e0f6d0c3f7a10")
    );
    assert_eq!(
        r.text.as_ref().and_then(|t| t.plain.as_deref()),
        Some("Hola, ¿llegó el pedido?")
    );
    assert_eq!(
        r.resource_id.as_ref().map(|i| i.as_str()),
        Some("2000000089077943")
    );
    assert!(r.date_created.is_some());
    assert!(r.messages.is_none());
}

#[tokio::test]
async fn upload_attachment_is_multipart_with_the_file_field() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            meli(when.method(POST).path("/messages/attachments"))
                .query_param("site_id", "MLA")
                .header("accept", "application/json")
                .header_includes("content-type", "multipart/form-data; boundary=")
                .body_includes("name=\"file\"; filename=\"Adjunto.txt\"")
                .body_includes("Content-Type: text/plain")
                .body_includes("contenido del adjunto");
            then.status(200)
                .json_body(json!({"id": "210438685_59f0f034-db1b-4ea6-8c5e-1d34e2092482.jpg"}));
        })
        .await;
    let r = client(&server)
        .upload_attachment(
            "MLA",
            "Adjunto.txt",
            "text/plain",
            b"contenido del adjunto".to_vec(),
        )
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(
        r.id.as_ref().unwrap().as_str(),
        "210438685_59f0f034-db1b-4ea6-8c5e-1d34e2092482.jpg"
    );
}

#[tokio::test]
async fn upload_attachment_error_keeps_the_vendor_message() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/messages/attachments");
            then.status(400).json_body(json!({
                "message": "File attachment is bigger than 25 Mb.", "error": "bad_request", "status": 400, "cause": []
            }));
        })
        .await;
    let err = client(&server)
        .upload_attachment("MLA", "a.pdf", "application/pdf", vec![1, 2])
        .await
        .unwrap_err();
    match err {
        inbox_mercadolibre::Error::ErrorResponse(body) => {
            assert_eq!(
                body.message.as_deref(),
                Some("File attachment is bigger than 25 Mb.")
            );
            assert_eq!(body.status(), 400);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn download_attachment() {
    let server = MockServer::start_async().await;
    let mock =
        server
            .mock_async(|when, then| {
                meli(when.method(GET).path(
                    "/messages/attachments/76601286_5946e4c4-168a-45fd-945e-b8f0c306c58d.png",
                ))
                .query_param("site_id", "MLA");
                then.status(200)
                    .header("content-type", "image/png")
                    .body("PNGDATA");
            })
            .await;
    let r = client(&server)
        .download_attachment()
        .attachment_id("76601286_5946e4c4-168a-45fd-945e-b8f0c306c58d.png")
        .tag(enums::Tag::PostSale)
        .site_id("MLA")
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    let mut stream = r.into_inner().into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, b"PNGDATA");
}

#[tokio::test]
async fn unread_all_and_per_pack() {
    let server = MockServer::start_async().await;
    let all = server
        .mock_async(|when, then| {
            meli(when.method(GET).path("/messages/unread")).query_param("role", "seller");
            then.status(200).body(fixture("unread.json"));
        })
        .await;
    let one = server
        .mock_async(|when, then| {
            meli(when.method(GET).path("/messages/unread/packs/1234/sellers/2345"));
            then.status(200).json_body(json!({"user_id": 2345, "results": [{"resource": "/packs/1234/sellers/2345", "count": 1}]}));
        })
        .await;
    let c = client(&server);
    let r = c
        .get_unread_messages()
        .role(enums::GetUnreadMessagesRole::Seller)
        .tag(enums::Tag::PostSale)
        .send()
        .await
        .unwrap();
    assert_eq!(r.user_id.as_ref().unwrap().as_str(), "378136913");
    let first = r.results.as_ref().unwrap()[0].valid().unwrap();
    assert_eq!(
        first.resource.as_deref(),
        Some("/packs/1977056109/sellers/378136913")
    );
    assert_eq!(first.count.unwrap().get(), 1);
    let r = c
        .get_unread_messages_by_pack()
        .pack_id("1234")
        .seller_id("2345")
        .tag(enums::Tag::PostSale)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.results.as_ref().unwrap()[0]
            .valid()
            .unwrap()
            .count
            .unwrap()
            .get(),
        1
    );
    all.assert_async().await;
    one.assert_async().await;
}

#[tokio::test]
async fn blocked_conversation_status_object() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/1/sellers/2");
            then.status(200).json_body(json!({
                "paging": {"limit": 10, "offset": 0, "total": 0},
                "conversation_status": {
                    "path": "/packs/1/sellers/2/conversations/post_sale",
                    "status": "blocked",
                    "substatus": "blocked_by_mediation",
                    "status_date": "2017-05-26T13:17:23.511-04:00",
                    "status_update_allowed": false,
                    "claim_ids": ["5012345678"],
                    "shipping_id": null
                },
                "messages": []
            }));
        })
        .await;
    let r = client(&server)
        .get_pack_messages()
        .pack_id("1")
        .seller_id("2")
        .tag(enums::Tag::PostSale)
        .mark_as_read(false)
        .send()
        .await
        .unwrap();
    let s = r.conversation_status.as_ref().unwrap();
    assert_eq!(s.status, Some(enums::ConversationStatusStatus::Blocked));
    assert_eq!(
        s.substatus,
        Some(enums::ConversationStatusSubstatus::BlockedByMediation)
    );
    assert_eq!(
        s.status_date.as_ref().unwrap().to_rfc3339(),
        "2017-05-26T17:17:23.511Z"
    );
    assert_eq!(
        s.claim_ids.as_ref().unwrap(),
        &vec!["5012345678".to_string()]
    );
    assert!(!s.status_update_allowed.unwrap().get());
}
