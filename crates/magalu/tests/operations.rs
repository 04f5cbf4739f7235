//! Every Magalu conversation operation against a mock server, with Magalu's own example
//! payloads.

use httpmock::prelude::*;
use httpmock::When;
use inbox_magalu::{enums, types, Magalu};
use serde_json::json;

const CONV: &str = "6628d7a3c01daebde56f5600";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn magalu(when: When) -> When {
    when.header("authorization", "Bearer tok-magalu")
        .header("accept", "application/json")
        .header_missing("api-version")
}

fn client(server: &MockServer) -> Magalu {
    Magalu::with_base_url(&server.base_url(), "tok-magalu").unwrap()
}

#[tokio::test]
async fn list_conversations_with_filters() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            magalu(when.method(GET).path("/v0/conversations"))
                .query_param("_limit", "20")
                .query_param("_offset", "0")
                .query_param("status", "OPENED")
                .query_param("last_interaction_at_start", "2024-04-01T00:00:00.000Z");
            then.status(200)
                .header("content-type", "application/json")
                .body(fixture("conversations.json"));
        })
        .await;
    let start: inbox_core::FlexDateTime = "2024-04-01T00:00:00Z".parse().unwrap();
    let page = client(&server)
        .list_conversations()
        .limit(std::num::NonZeroU64::new(20).unwrap())
        .offset(0u64)
        .status("OPENED")
        .last_interaction_at_start(start)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    let meta = page.meta.as_ref().unwrap();
    assert_eq!(meta.page.as_ref().unwrap().max_limit.unwrap().get(), 100);
    assert_eq!(meta.links.as_ref().unwrap().next, None);
    let c = page.results.as_ref().unwrap()[0].valid().unwrap();
    assert_eq!(c.id.as_ref().unwrap().as_str(), CONV);
    assert_eq!(c.status, Some(enums::ConversationStatus::Opened));
    assert_eq!(c.unread_to_count.unwrap().get(), 2);
    assert_eq!(
        c.from_user.as_ref().unwrap().type_,
        Some(enums::UserType::Customer)
    );
    let last = c.last_message.as_ref().unwrap();
    assert_eq!(
        last.when_at.as_ref().unwrap().to_rfc3339(),
        "2024-04-24T09:57:56.851Z"
    );
    assert_eq!(
        c.tags.as_ref().unwrap()[0].value.as_deref(),
        Some("237497000")
    );
}

#[tokio::test]
async fn list_messages_page_from_the_docs() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            magalu(
                when.method(GET)
                    .path(format!("/v0/conversations/{CONV}/messages")),
            )
            .query_param("_offset", "150")
            .query_param("_limit", "20");
            then.status(200).body(fixture("messages.json"));
        })
        .await;
    let page = client(&server)
        .list_messages()
        .conversation_id(CONV)
        .offset(150u64)
        .limit(std::num::NonZeroU64::new(20).unwrap())
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    let links = page.meta.as_ref().unwrap().links.as_ref().unwrap();
    assert_eq!(links.next.as_deref(), Some("?_offset=170&_limit=20"));
    let m = page.results.as_ref().unwrap()[0].valid().unwrap();
    assert_eq!(m.id.as_ref().unwrap().as_str(), "630e3bbc950b052e8724491a");
    assert_eq!(
        m.content.as_deref(),
        Some("Como faz para montar ? Onde encontramos montador?")
    );
    assert_eq!(
        m.when_at.as_ref().unwrap().to_rfc3339(),
        "2024-04-24T09:57:56.851Z"
    );
    let moderation = m.moderation.as_ref().unwrap();
    assert_eq!(moderation.status, Some(enums::ModerationStatus::Approved));
    assert_eq!(
        moderation.when_at.as_ref().unwrap().to_rfc3339(),
        "2024-04-24T09:57:57.620Z"
    );
    assert_eq!(
        m.read_by.as_ref().unwrap(),
        &vec!["6628d7a3c01daebde56f5599".to_string()]
    );
    match &m.attachments.as_ref().unwrap()[0] {
        types::Attachment::String(url) => assert_eq!(url, "https://docs.com/doc.pdf"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        m.from_user.as_ref().unwrap().ref_key.as_deref(),
        Some("e8528120-fc36-43e9-bd01-fd453d938da7")
    );
    assert!(m.metadata.as_ref().unwrap().contains_key("coupom"));
}

#[tokio::test]
async fn get_conversation_and_message() {
    let server = MockServer::start_async().await;
    let conversations: serde_json::Value =
        serde_json::from_str(&fixture("conversations.json")).unwrap();
    let messages: serde_json::Value = serde_json::from_str(&fixture("messages.json")).unwrap();
    let conv = server
        .mock_async(|when, then| {
            magalu(when.method(GET).path(format!("/v0/conversations/{CONV}")));
            then.status(200)
                .json_body(conversations["results"][0].clone());
        })
        .await;
    let msg = server
        .mock_async(|when, then| {
            magalu(when.method(GET).path(format!(
                "/v0/conversations/{CONV}/messages/630e3bbc950b052e8724491a"
            )));
            then.status(200).json_body(messages["results"][0].clone());
        })
        .await;
    let c = client(&server);
    let conversation = c
        .get_conversation()
        .conversation_id(CONV)
        .send()
        .await
        .unwrap();
    assert_eq!(conversation.display_name.as_deref(), Some("John Doe"));
    let message = c
        .get_message()
        .conversation_id(CONV)
        .message_id("630e3bbc950b052e8724491a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        message.to_user.as_ref().unwrap().type_,
        Some(enums::UserType::Seller)
    );
    conv.assert_async().await;
    msg.assert_async().await;
}

#[tokio::test]
async fn send_message_with_owner() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            magalu(when.method(POST).path(format!("/v0/conversations/{CONV}/messages")))
                .header("content-type", "application/json")
                .json_body(json!({
                    "content": "Olá! O montador acompanha a entrega.",
                    "external_id": "resposta-01",
                    "owner": {"name": "Joseph Climber", "external_id": "j.climber"}
                }));
            then.status(201).json_body(json!({
                "id": "630e3bbc950b052e8724491b",
                "content": "Olá! O montador acompanha a entrega.",
                "external_id": "resposta-01",
                "from_user": {
                    "full_name": "Z Store", "full_name_normalized": "zstore", "external_id": "zstore",
                    "type": "SELLER", "owner": {"name": "Joseph Climber", "external_id": "j.climber"}
                }
            }));
        })
        .await;
    let sent = client(&server)
        .send_message()
        .conversation_id(CONV)
        .body(types::NewMessage {
            content: "Olá! O montador acompanha a entrega.".into(),
            external_id: Some("resposta-01".into()),
            owner: types::NewMessageOwner {
                name: "Joseph Climber".into(),
                external_id: "j.climber".into(),
            },
        })
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(sent.status().as_u16(), 201);
    assert_eq!(sent.external_id.as_ref().unwrap().as_str(), "resposta-01");
    let owner = sent.from_user.as_ref().unwrap().owner.as_ref().unwrap();
    assert_eq!(owner.name.as_deref(), Some("Joseph Climber"));
}

#[tokio::test]
async fn mark_read_patches_read_by() {
    let server = MockServer::start_async().await;
    let conversations: serde_json::Value =
        serde_json::from_str(&fixture("conversations.json")).unwrap();
    let mut after = conversations["results"][0].clone();
    after["unread_to_count"] = json!(0);
    let mock = server
        .mock_async(|when, then| {
            magalu(
                when.method(PATCH)
                    .path(format!("/v0/conversations/{CONV}/read_by")),
            );
            then.status(200).json_body(after);
        })
        .await;
    let c = client(&server)
        .mark_conversation_read()
        .conversation_id(CONV)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(c.unread_to_count.unwrap().get(), 0);
}
