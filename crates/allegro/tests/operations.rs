//! Every Allegro messaging operation against a mock server: the exact request sent
//! (method, path, query, headers, body) and the fields parsed from Allegro's own examples.

use std::num::NonZeroU32;

use futures::StreamExt;
use httpmock::prelude::*;
use httpmock::When;
use inbox_allegro::{beta_v1, public_v1, Allegro};
use serde_json::json;

const V1: &str = "application/vnd.allegro.public.v1+json";
const BETA: &str = "application/vnd.allegro.beta.v1+json";
const THREAD: &str = "dpYCg9auts9xpSojwC6DWPvyVKHraqDCZCiT70j6pcf";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Headers every Allegro request must carry, and the ones it must not.
fn allegro(when: When, media: &str) -> When {
    when.header("accept", media)
        .header("authorization", "Bearer tok-allegro")
        .header_missing("api-version")
}

fn client(server: &MockServer) -> Allegro {
    Allegro::with_base_url(&server.base_url(), "tok-allegro").unwrap()
}

#[tokio::test]
async fn list_threads_public_v1() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(when.method(GET).path("/messaging/threads"), V1)
                .query_param("limit", "20")
                .query_param("offset", "40")
                .header_missing("content-type");
            then.status(200)
                .header("content-type", V1)
                .body(fixture("threads.json"));
        })
        .await;
    let page = client(&server)
        .v1
        .list_threads_get()
        .limit(NonZeroU32::new(20).unwrap())
        .offset(40u64)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    let threads = page.threads.as_ref().unwrap();
    assert_eq!(threads.len(), 2);
    let first = threads[0].valid().unwrap();
    assert_eq!(
        first.id.as_ref().unwrap().as_str(),
        "4lN1A6WTKM8AcfP1bLiumXuJ14Es1fiCguyqRvj3qDf"
    );
    assert!(!first.read.unwrap().get());
    assert_eq!(
        first.last_message_date_time.as_ref().unwrap().to_rfc3339(),
        "2021-07-13T19:53:05.051Z"
    );
    assert_eq!(
        first.interlocutor.as_ref().unwrap().login.as_deref(),
        Some("client:44300444")
    );
    assert_eq!(page.limit.unwrap().get(), 20);
}

#[tokio::test]
async fn get_thread_public_v1() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(
                when.method(GET)
                    .path(format!("/messaging/threads/{THREAD}")),
                V1,
            );
            then.status(200)
                .header("content-type", V1)
                .body(fixture("thread.json"));
        })
        .await;
    let thread = client(&server)
        .v1
        .get_thread_get()
        .thread_id(THREAD)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(thread.id.as_ref().unwrap().as_str(), THREAD);
    assert!(thread.read.unwrap().get());
}

#[tokio::test]
async fn mark_thread_read_public_v1() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(
                when.method(PUT)
                    .path(format!("/messaging/threads/{THREAD}/read")),
                V1,
            )
            .header("content-type", V1)
            .json_body(json!({"read": true}));
            then.status(200)
                .header("content-type", V1)
                .body(fixture("thread.json"));
        })
        .await;
    let thread = client(&server)
        .v1
        .change_read_flag_on_thread_put()
        .thread_id(THREAD)
        .body(public_v1::types::ThreadReadFlag { read: true })
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert!(thread.read.unwrap().get());
}

#[tokio::test]
async fn list_messages_public_v1_with_before_filter() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(
                when.method(GET)
                    .path(format!("/messaging/threads/{THREAD}/messages")),
                V1,
            )
            .query_param("limit", "20")
            .query_param("before", "2021-07-14T08:00:00.000Z")
            .query_param_missing("offset");
            then.status(200)
                .header("content-type", V1)
                .body(fixture("messages.json"));
        })
        .await;
    let before: inbox_core::FlexDateTime = "2021-07-14T08:00:00Z".parse().unwrap();
    let page = client(&server)
        .v1
        .list_messages_get()
        .thread_id(THREAD)
        .limit(NonZeroU32::new(20).unwrap())
        .before(before)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    let messages = page.messages.as_ref().unwrap();
    assert_eq!(messages.len(), 2);
    let m = messages[0].valid().unwrap();
    assert_eq!(m.text.as_deref(), Some("Jaki jest rok wydania?"));
    assert_eq!(m.status, Some(public_v1::enums::MessageStatus::Delivered));
    assert_eq!(m.author.as_ref().unwrap().login.as_deref(), Some("allegro"));
    assert_eq!(
        m.relates_to
            .as_ref()
            .unwrap()
            .offer
            .as_ref()
            .unwrap()
            .id
            .as_ref()
            .unwrap()
            .as_str(),
        "7680560734"
    );
    // The second example has `author.id` instead of `login`: it still decodes.
    let second = messages[1].valid().unwrap();
    assert_eq!(second.author.as_ref().unwrap().login, None);
    let att = &second.attachments.as_ref().unwrap()[0];
    assert_eq!(att.file_name.as_deref(), Some("image.png"));
    assert_eq!(
        att.status,
        Some(public_v1::enums::MessageAttachmentInfoStatus::Safe)
    );
}

#[tokio::test]
async fn get_message_public_v1() {
    let server = MockServer::start_async().await;
    let body = serde_json::to_string(
        &serde_json::from_str::<serde_json::Value>(&fixture("messages.json")).unwrap()["messages"]
            [0],
    )
    .unwrap();
    let mock = server
        .mock_async(|when, then| {
            allegro(
                when.method(GET)
                    .path("/messaging/messages/3793aee2-7fd5-48b0-9de1-cfc804fbf002"),
                V1,
            );
            then.status(200).header("content-type", V1).body(body);
        })
        .await;
    let m = client(&server)
        .v1
        .get_message_get()
        .message_id("3793aee2-7fd5-48b0-9de1-cfc804fbf002")
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(
        m.thread.as_ref().unwrap().id.as_ref().unwrap().as_str(),
        THREAD
    );
    assert_eq!(m.type_, Some(public_v1::enums::MessageType::MessageCenter));
}

#[tokio::test]
async fn new_message_public_v1() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(when.method(POST).path("/messaging/messages"), V1)
                .header("content-type", V1)
                .json_body(json!({
                    "recipient": {"login": "allegrofan"},
                    "text": "Proszę o kontakt",
                    "order": {"id": "29f2a1a0-b21e-11ee-9e5a-3b1d3b6c0e11"}
                }));
            then.status(201)
                .header("content-type", V1)
                .body(fixture("new_message.json"));
        })
        .await;
    let body = public_v1::types::NewMessage {
        recipient: public_v1::types::Recipient {
            login: "allegrofan".into(),
        },
        text: "Proszę o kontakt".try_into().unwrap(),
        attachments: None,
        order: public_v1::types::MessageOrder {
            id: Some("29f2a1a0-b21e-11ee-9e5a-3b1d3b6c0e11".into()),
        },
    };
    let m = client(&server)
        .v1
        .new_message_post()
        .body(body)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(m.status, Some(public_v1::enums::MessageStatus::Verifying));
    assert_eq!(
        m.id.as_ref().unwrap().as_str(),
        "b58e920b-4d1d-46d1-815a-702311a784c3"
    );
}

#[tokio::test]
async fn new_message_text_over_2000_characters_is_refused_before_sending() {
    let too_long = "x".repeat(2001);
    assert!(public_v1::types::NewMessageInThreadText::try_from(too_long).is_err());
    assert!(public_v1::types::NewMessageInThreadText::try_from("x".repeat(2000)).is_ok());
}

#[tokio::test]
async fn new_message_in_thread_public_v1() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(when.method(POST).path(format!("/messaging/threads/{THREAD}/messages")), V1)
                .header("content-type", V1)
                .json_body(json!({"text": "Hello", "attachments": [{"id": "97dc0b60-2da4-4247-92ba-b748630ba0f6"}]}));
            then.status(201).header("content-type", V1).body(fixture("new_message.json"));
        })
        .await;
    let body = public_v1::types::NewMessageInThread {
        text: "Hello".try_into().unwrap(),
        attachments: Some(vec![public_v1::types::MessageAttachmentId {
            id: Some("97dc0b60-2da4-4247-92ba-b748630ba0f6".into()),
        }]),
    };
    let m = client(&server)
        .v1
        .new_message_in_thread_post()
        .thread_id(THREAD)
        .body(body)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(m.text.as_deref(), Some("Proszę o kontakt"));
}

#[tokio::test]
async fn delete_message_public_v1() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(
                when.method(DELETE)
                    .path("/messaging/messages/3793aee2-7fd5-48b0-9de1-cfc804fbf002"),
                V1,
            );
            then.status(204);
        })
        .await;
    let r = client(&server)
        .v1
        .delete_message_delete()
        .message_id("3793aee2-7fd5-48b0-9de1-cfc804fbf002")
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(r.status().as_u16(), 204);
}

#[tokio::test]
async fn declare_attachment() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(when.method(POST).path("/messaging/message-attachments"), V1)
                .header("content-type", V1)
                .json_body(json!({"filename": "image.png", "size": 21876}));
            then.status(201)
                .header("content-type", V1)
                .body(r#"{"id": "97dc0b60-2da4-4247-92ba-b748630ba0f6"}"#);
        })
        .await;
    let r = client(&server)
        .v1
        .new_attachment_declaration_post()
        .body(public_v1::types::NewAttachmentDeclaration {
            filename: "image.png".into(),
            size: 21876,
        })
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(
        r.id.as_ref().unwrap().as_str(),
        "97dc0b60-2da4-4247-92ba-b748630ba0f6"
    );
}

#[tokio::test]
async fn upload_attachment_sends_the_files_own_content_type_and_bytes() {
    let server = MockServer::start_async().await;
    let pdf = "%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
    let mock = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/messaging/message-attachments/97dc0b60-2da4-4247-92ba-b748630ba0f6")
                .header("accept", V1)
                .header("authorization", "Bearer tok-allegro")
                .header("content-type", "application/pdf")
                .header_missing("api-version")
                .body(pdf);
            then.status(200)
                .header("content-type", V1)
                .body(r#"{"id": "97dc0b60-2da4-4247-92ba-b748630ba0f6"}"#);
        })
        .await;
    let r = client(&server)
        .v1
        .upload_attachment_put()
        .attachment_id("97dc0b60-2da4-4247-92ba-b748630ba0f6")
        .content_type("application/pdf")
        .body(pdf.as_bytes().to_vec())
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(
        r.id.as_ref().unwrap().as_str(),
        "97dc0b60-2da4-4247-92ba-b748630ba0f6"
    );
}

#[tokio::test]
async fn download_attachment_streams_the_bytes() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/messaging/message-attachments/97dc0b60-2da4-4247-92ba-b748630ba0f6")
                .header("accept", "*/*")
                .header("authorization", "Bearer tok-allegro")
                .header_missing("api-version");
            then.status(200)
                .header("content-type", "image/png")
                .header("content-disposition", "attachment; filename=\"image.png\"")
                .body("PNG-BYTES");
        })
        .await;
    let r = client(&server)
        .v1
        .download_attachment_get()
        .attachment_id("97dc0b60-2da4-4247-92ba-b748630ba0f6")
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert_eq!(r.headers()["content-type"], "image/png");
    let mut stream = r.into_inner().into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, b"PNG-BYTES");
}

#[tokio::test]
async fn list_threads_beta_v1_sends_beta_media_type_and_page_cursor() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(when.method(GET).path("/messaging/threads"), BETA)
                .query_param("limit", "20")
                .query_param("page.id", "eyJvZmZzZXQiOjB9")
                .query_param("type", "POST_PURCHASE_ISSUE")
                .query_param_missing("offset");
            then.status(200)
                .header("content-type", BETA)
                .body(fixture("beta_threads.json"));
        })
        .await;
    let page = client(&server)
        .beta
        .list_threads_get()
        .limit(NonZeroU32::new(20).unwrap())
        .page_id("eyJvZmZzZXQiOjB9")
        .type_(beta_v1::enums::ListThreadsGETType::PostPurchaseIssue)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    let threads = page.threads.as_ref().unwrap();
    let issue = threads[0].valid().unwrap();
    assert_eq!(
        issue.type_,
        Some(beta_v1::enums::ThreadVBeta1Type::PostPurchaseIssue)
    );
    assert_eq!(
        issue.sub_type,
        Some(beta_v1::enums::ThreadVBeta1SubType::ProductArrivedDamaged)
    );
    assert_eq!(issue.status, Some(beta_v1::enums::ThreadVBeta1Status::Open));
    let participants = issue.participants.as_ref().unwrap();
    assert_eq!(
        participants[0].role,
        Some(beta_v1::enums::ThreadParticipantVBeta1Role::Buyer)
    );
    let order = &issue.orders.as_ref().unwrap()[0];
    assert_eq!(order.offers.as_ref().unwrap()[0].quantity.unwrap().get(), 2);
    assert!(threads[1].valid().unwrap().orders.is_none());
    assert_eq!(
        page.next_page
            .as_ref()
            .unwrap()
            .id
            .as_ref()
            .unwrap()
            .as_str(),
        "eyJvZmZzZXQiOjIwfQ"
    );
}

#[tokio::test]
async fn list_messages_beta_v1_last_page_has_null_next_page() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(
                when.method(GET)
                    .path(format!("/messaging/threads/{THREAD}/messages")),
                BETA,
            )
            .query_param("page.id", "abc");
            then.status(200)
                .header("content-type", BETA)
                .body(fixture("beta_messages.json"));
        })
        .await;
    let page = client(&server)
        .beta
        .list_messages_get()
        .thread_id(THREAD)
        .page_id("abc")
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert!(page.next_page.is_none());
    let m = page.messages.as_ref().unwrap()[0].valid().unwrap();
    let author = m.author.as_ref().unwrap();
    assert_eq!(
        author.role,
        Some(beta_v1::enums::MessageAuthorVBeta1Role::Consultant)
    );
    assert_eq!(author.login, None);
    let att = &m.attachments.as_ref().unwrap()[0];
    assert_eq!(
        att.id.as_ref().unwrap().as_str(),
        "97dc0b60-2da4-4247-92ba-b748630ba0f6"
    );
}

#[tokio::test]
async fn mark_thread_read_beta_v1_returns_the_flag() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            allegro(
                when.method(PUT)
                    .path(format!("/messaging/threads/{THREAD}/read")),
                BETA,
            )
            .header("content-type", BETA)
            .json_body(json!({"read": true}));
            then.status(200)
                .header("content-type", BETA)
                .body(r#"{"read": true}"#);
        })
        .await;
    let flag = client(&server)
        .beta
        .change_read_flag_on_thread_put()
        .thread_id(THREAD)
        .body(beta_v1::types::ThreadReadFlagVBeta1 {
            read: Some(true.into()),
        })
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert!(flag.read.unwrap().get());
}

#[tokio::test]
async fn beta_get_thread_and_message_and_new_message() {
    let server = MockServer::start_async().await;
    let threads: serde_json::Value = serde_json::from_str(&fixture("beta_threads.json")).unwrap();
    let messages: serde_json::Value = serde_json::from_str(&fixture("beta_messages.json")).unwrap();
    let get_thread = server
        .mock_async(|when, then| {
            allegro(when.method(GET).path("/messaging/threads/Rk2"), BETA);
            then.status(200).json_body(threads["threads"][0].clone());
        })
        .await;
    let get_message = server
        .mock_async(|when, then| {
            allegro(when.method(GET).path("/messaging/messages/7d1c"), BETA);
            then.status(200).json_body(messages["messages"][0].clone());
        })
        .await;
    let new_message = server
        .mock_async(|when, then| {
            allegro(when.method(POST).path("/messaging/messages"), BETA)
                .header("content-type", BETA)
                .json_body(json!({"recipient": {"login": "allegrofan"}, "text": "Dzień dobry"}));
            then.status(201).json_body(messages["messages"][0].clone());
        })
        .await;
    let c = client(&server);
    let t = c
        .beta
        .get_thread_get()
        .thread_id("Rk2")
        .send()
        .await
        .unwrap();
    assert_eq!(t.status, Some(beta_v1::enums::ThreadVBeta1Status::Open));
    let m = c
        .beta
        .get_message_get()
        .message_id("7d1c")
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.text.as_deref(),
        Some("Dzień dobry, pomagamy w rozwiązaniu problemu.")
    );
    let sent = c
        .beta
        .new_message_post()
        .body(beta_v1::types::NewMessageVBeta1 {
            recipient: beta_v1::types::Recipient {
                login: "allegrofan".into(),
            },
            text: "Dzień dobry".try_into().unwrap(),
            attachments: None,
            order: None,
        })
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.id.as_ref().unwrap().as_str(),
        "7d1c9a55-3b2c-4c1a-9d77-1f0b8a2f6e10"
    );
    get_thread.assert_async().await;
    get_message.assert_async().await;
    new_message.assert_async().await;
}

#[tokio::test]
async fn debug_output_never_shows_the_token() {
    let c = Allegro::with_base_url("http://127.0.0.1:9", "tok-allegro").unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("tok-allegro"), "{debug}");
}
