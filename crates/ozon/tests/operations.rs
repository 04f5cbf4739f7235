//! Every Ozon chat operation against a mock server, with Ozon's own example payloads.

use httpmock::prelude::*;
use httpmock::When;
use inbox_ozon::{enums, types, Ozon};
use serde_json::json;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn ozon(when: When) -> When {
    when.method(POST)
        .header("client-id", "123456")
        .header("api-key", "key-ozon")
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header_missing("api-version")
        .header_missing("authorization")
}

fn client(server: &MockServer) -> Ozon {
    Ozon::with_base_url(&server.base_url(), "123456", "key-ozon").unwrap()
}

#[tokio::test]
async fn chat_list_v3() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            ozon(when.path("/v3/chat/list")).json_body(json!({
                "filter": {"chat_status": "Opened", "unread_only": true},
                "limit": 100,
                "cursor": "304000402034"
            }));
            then.status(200)
                .header("content-type", "application/json")
                .body(fixture("chat_list.json"));
        })
        .await;
    let body = types::V3ChatList {
        filter: Some(types::V3ChatListRequestFilter {
            chat_status: Some("Opened".into()),
            unread_only: Some(true),
        }),
        limit: 100,
        cursor: Some("304000402034".into()),
    };
    let page = client(&server)
        .chat_api_chat_list_v3()
        .body(body)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert!(
        page.has_next.unwrap().get(),
        "has_next arrives as the string \"true\""
    );
    assert_eq!(page.cursor.as_deref(), Some("30000002342123123"));
    assert_eq!(page.total_unread_count.unwrap().get(), 5);
    let chat = page.chats.as_ref().unwrap()[0].valid().unwrap();
    let details = chat.chat.as_ref().unwrap();
    assert_eq!(
        details.chat_id.as_ref().unwrap().as_str(),
        "5e767w03-b400-4y1b-a841-75319ca8a5c8"
    );
    assert_eq!(
        details.chat_status,
        Some(enums::ChatInfoChatStatusEnum::Opened)
    );
    assert_eq!(
        details.chat_type,
        Some(enums::ChatInfoChatTypeEnum::SellerSupport)
    );
    assert_eq!(
        details.created_at.as_ref().unwrap().to_rfc3339(),
        "2022-07-22T08:07:19.581Z"
    );
    assert_eq!(
        chat.first_unread_message_id.as_ref().unwrap().as_u64(),
        Some(3000000000118021931)
    );
    // Ozon's own example holds a 20-digit id: kept as text, never rounded.
    assert_eq!(
        chat.last_message_id.as_ref().unwrap().as_str(),
        "30000000001280042740"
    );
}

#[tokio::test]
async fn chat_history_v3() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            ozon(when.path("/v3/chat/history")).json_body(json!({
                "chat_id": "18b8e1f9-4ae7-461c-84ea-8e1f54d1a45e",
                "direction": "Forward",
                "filter": {"message_ids": ["3000000300211559667"]},
                "from_message_id": 3000000000118032000u64,
                "limit": 1
            }));
            then.status(200)
                .header("content-type", "application/json")
                .body(fixture("chat_history.json"));
        })
        .await;
    let body = types::V3ChatHistoryRequest {
        chat_id: "18b8e1f9-4ae7-461c-84ea-8e1f54d1a45e".into(),
        direction: Some("Forward".into()),
        filter: Some(types::ChatHistoryRequestFilter {
            message_ids: vec!["3000000300211559667".into()],
        }),
        from_message_id: Some(3000000000118032000),
        limit: Some(1),
    };
    let page = client(&server)
        .chat_api_chat_history_v3()
        .body(body)
        .send()
        .await
        .unwrap();
    mock.assert_async().await;
    assert!(page.has_next.unwrap().get());
    let m = page.messages.as_ref().unwrap()[0].valid().unwrap();
    assert_eq!(
        m.message_id.as_ref().unwrap().as_u64(),
        Some(3000000000817031942)
    );
    assert!(m.data.as_ref().unwrap()[0].starts_with("Здравствуйте"));
    assert_eq!(
        m.context.as_ref().unwrap().order_number.as_deref(),
        Some("123456789")
    );
    assert_eq!(
        m.moderate_image_status,
        Some(enums::ChatMessageModerateImageStatus::Success)
    );
    let user = m.user.as_ref().unwrap();
    assert_eq!(user.id.as_ref().unwrap().as_str(), "115568");
    // The example's "Сustomer" starts with a Cyrillic С: kept, not rejected.
    assert_eq!(
        user.type_,
        Some(enums::V3UserType::Unknown("Сustomer".into()))
    );
}

#[tokio::test]
async fn send_message_start_chat_read_and_send_file() {
    let server = MockServer::start_async().await;
    let send = server
        .mock_async(|when, then| {
            ozon(when.path("/v1/chat/send/message")).json_body(
                json!({"chat_id": "99feb3fc-a474-469f-95d5-268b470cc607", "text": "test"}),
            );
            then.status(200).json_body(json!({"result": "success"}));
        })
        .await;
    let start = server
        .mock_async(|when, then| {
            ozon(when.path("/v1/chat/start"))
                .json_body(json!({"posting_number": "47873153-0052-1"}));
            then.status(200)
                .json_body(json!({"result": {"chat_id": "5969c331-2e64-44b7-8a0e-ff9526762c62"}}));
        })
        .await;
    let read = server
        .mock_async(|when, then| {
            ozon(when.path("/v2/chat/read")).json_body(json!({
                "chat_id": "99feb3fc-a474-469f-95d5-268b470cc607",
                "from_message_id": 3000000000118032000u64
            }));
            then.status(200).json_body(json!({"unread_count": 0}));
        })
        .await;
    let file = server
        .mock_async(|when, then| {
            ozon(when.path("/v1/chat/send/file")).json_body(json!({
                "base64_content": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk+A8AAQUBAScY42YAAAAASUVORK5CYII=",
                "chat_id": "99feb3fc-a474-469f-95d5-268b470cc607",
                "name": "pixel.png"
            }));
            then.status(200).json_body(json!({"result": "success"}));
        })
        .await;
    let c = client(&server);
    let r = c
        .chat_api_chat_send_message()
        .body(types::ChatChatSendMessageRequest {
            chat_id: "99feb3fc-a474-469f-95d5-268b470cc607".into(),
            text: "test".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.result.as_deref(), Some("success"));
    let r = c
        .chat_api_chat_start()
        .body(types::ChatChatStartRequest {
            posting_number: "47873153-0052-1".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.result
            .as_ref()
            .unwrap()
            .chat_id
            .as_ref()
            .unwrap()
            .as_str(),
        "5969c331-2e64-44b7-8a0e-ff9526762c62"
    );
    let r = c
        .chat_api_chat_read_v2()
        .body(types::ChatRead {
            chat_id: "99feb3fc-a474-469f-95d5-268b470cc607".into(),
            from_message_id: Some(3000000000118032000),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.unread_count.unwrap().get(), 0);
    let r = c
        .chat_api_chat_send_file()
        .body(types::ChatChatSendFileRequest {
            base64_content: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk+A8AAQUBAScY42YAAAAASUVORK5CYII=".into(),
            chat_id: "99feb3fc-a474-469f-95d5-268b470cc607".into(),
            name: "pixel.png".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.result.as_deref(), Some("success"));
    send.assert_async().await;
    start.assert_async().await;
    read.assert_async().await;
    file.assert_async().await;
}

#[tokio::test]
async fn rate_limit_error_is_typed_with_ozon_code_after_the_send_was_repeated() {
    let server = MockServer::start_async().await;
    let limited = server
        .mock_async(|when, then| {
            ozon(when.path("/v1/chat/send/message"));
            then.status(429).json_body(json!({
                "code": 8,
                "message": "You have reached request rate limit per second",
                "details": []
            }));
        })
        .await;
    // Ozon's own policy, with three attempts and short waits: a 429 means nothing was
    // done, so even a send is repeated.
    let policy = inbox_ozon::policy("test").adjusted(
        inbox_core::RetryPolicy {
            max_attempts: 3,
            rate_limited_wait: std::time::Duration::from_millis(10),
            ..inbox_core::RetryPolicy::default()
        },
        vec![],
    );
    let auth = inbox_core::Auth::ClientIdApiKey {
        client_id: "123456".into(),
        api_key: "key-ozon".into(),
    };
    let client = Ozon::with_policy(
        &server.base_url(),
        inbox_core::http_client().unwrap(),
        auth,
        policy,
    );
    let err = client
        .chat_api_chat_send_message()
        .body(types::ChatChatSendMessageRequest {
            chat_id: "c".into(),
            text: "t".into(),
        })
        .send()
        .await
        .unwrap_err();
    limited.assert_calls_async(3).await;
    assert_eq!(err.status().map(|s| s.as_u16()), Some(429));
    match err {
        inbox_ozon::Error::ErrorResponse(body) => {
            assert_eq!(body.code, Some(8));
            assert_eq!(
                body.message.as_deref(),
                Some("You have reached request rate limit per second")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn debug_output_never_shows_the_api_key() {
    let c = Ozon::with_base_url("http://127.0.0.1:9", "123456", "key-ozon").unwrap();
    assert!(!format!("{c:?}").contains("key-ozon"));
}
