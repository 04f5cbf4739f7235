//! Send, mark-read, unread and the merged inbox against mock servers.

use futures::StreamExt;
use httpmock::prelude::*;
mod common;

use common::{allegro, magalu, meli, ozon};
use marketplace_inbox::*;
use serde_json::json;

const V1: &str = "application/vnd.allegro.public.v1+json";
const BETA: &str = "application/vnd.allegro.beta.v1+json";

fn r(s: &str) -> ConversationRef {
    s.parse().unwrap()
}
fn file(name: &str, mime: &str, bytes: &[u8]) -> OutgoingAttachment {
    OutgoingAttachment {
        name: name.into(),
        mime: mime.into(),
        bytes: bytes.to_vec(),
    }
}

#[tokio::test]
async fn send_side_rules_reject_before_any_request() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_, then| {
            then.status(500);
        })
        .await;
    let cases: Vec<(Account, &str, String, Vec<OutgoingAttachment>)> = vec![
        (allegro(&server), "allegro:t", "x".repeat(2001), vec![]),
        (
            allegro(&server),
            "allegro:t",
            "ok".into(),
            vec![file("a.exe", "application/x-msdownload", b"MZ")],
        ),
        (
            allegro(&server),
            "allegro:t",
            "ok".into(),
            vec![file("big.png", "image/png", &vec![0; 5_242_881])],
        ),
        (meli(&server), "mercadolibre:1", "x".repeat(351), vec![]),
        (meli(&server), "mercadolibre:1", "Привет".into(), vec![]),
        (
            meli(&server),
            "mercadolibre:1",
            "ok".into(),
            vec![file("a/b.png", "image/png", b"x")],
        ),
        (ozon(&server), "ozon:c", "x".repeat(1001), vec![]),
        (ozon(&server), "ozon:c", String::new(), vec![]),
        (magalu(&server, false), "magalu:c", "ok".into(), vec![]),
        (magalu(&server, true), "magalu:c", "   ".into(), vec![]),
        (allegro(&server), "ozon:c", "ok".into(), vec![]),
    ];
    for (account, conv, text, files) in cases {
        let err = account.send(&r(conv), &text, &files).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{conv}: {err}");
    }
    let err = magalu(&server, true)
        .send(
            &r("magalu:c"),
            "ok",
            &[file("a.pdf", "application/pdf", b"x")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                marketplace: Marketplace::Magalu,
                ..
            }
        ),
        "{err}"
    );
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn allegro_send_declares_uploads_then_replies() {
    let server = MockServer::start_async().await;
    let declare = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/messaging/message-attachments")
                .header("accept", V1)
                .header("content-type", V1)
                .json_body(json!({"filename": "a.pdf", "size": 4}));
            then.status(201).json_body(json!({"id": "att-1"}));
        })
        .await;
    let upload = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/messaging/message-attachments/att-1")
                .header("content-type", "application/pdf")
                .header("accept", V1)
                .body("%PDF");
            then.status(200).json_body(json!({"id": "att-1"}));
        })
        .await;
    let reply = server
        .mock_async(|when, then| {
            // The reply goes through beta.v1 (post-purchase threads exist only there); the
            // attachment endpoints are the same in both versions.
            when.method(POST).path("/messaging/threads/t1/messages").header("accept", BETA).header("content-type", BETA).json_body(json!({"text": "Dzień dobry", "attachments": [{"id": "att-1"}]}));
            then.status(201).json_body(json!({"id": "new-1", "status": "VERIFYING", "createdAt": "2026-11-21T10:00:00Z", "text": "Dzień dobry"}));
        })
        .await;
    let sent = allegro(&server)
        .send(
            &r("allegro:t1"),
            "Dzień dobry",
            &[file("a.pdf", "application/pdf", b"%PDF")],
        )
        .await
        .unwrap();
    assert_eq!(sent.message_id.as_deref(), Some("new-1"));
    assert_eq!(sent.conversation.to_string(), "allegro@pl:t1");
    declare.assert_async().await;
    upload.assert_async().await;
    reply.assert_async().await;
}

#[tokio::test]
async fn mercadolibre_send_goes_to_the_messaging_agent_on_migrated_threads() {
    let server = MockServer::start_async().await;
    let read = server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/2000000089077943/sellers/415458330").query_param("mark_as_read", "false");
            then.status(200).json_body(json!({"messages": [
                {"id": "a", "site_id": "MLB", "from": {"user_id": 3037675074u64}, "to": {"user_id": "415458330"}, "text": "Olá", "message_date": {"created": "2026-11-01T10:00:00Z"}}
            ]}));
        })
        .await;
    let upload = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/messages/attachments")
                .query_param("site_id", "MLB")
                .query_param("tag", "post_sale")
                .body_includes("filename=\"nota.pdf\"");
            then.status(200)
                .json_body(json!({"id": "415458330_abc.pdf"}));
        })
        .await;
    let send = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/messages/packs/2000000089077943/sellers/415458330")
                .query_param("tag", "post_sale")
                .json_body(json!({"from": {"user_id": "415458330"}, "to": {"user_id": "3037675074"}, "text": "Segue a nota fiscal.", "attachments": ["415458330_abc.pdf"]}));
            then.status(200).json_body(json!({"id": "m-new", "status": "available"}));
        })
        .await;
    let sent = meli(&server)
        .send(
            &r("mercadolibre:2000000089077943"),
            "Segue a nota fiscal.",
            &[file("nota.pdf", "application/pdf", b"%PDF")],
        )
        .await
        .unwrap();
    assert_eq!(sent.message_id.as_deref(), Some("m-new"));
    read.assert_async().await;
    upload.assert_async().await;
    send.assert_async().await;
}

#[tokio::test]
async fn ozon_send_file_as_base64_then_text_and_mark_read() {
    let server = MockServer::start_async().await;
    let file_mock = server
        .mock_async(|when, then| {
            when.method(POST).path("/v1/chat/send/file").json_body(
                json!({"base64_content": "aGVsbG8=", "chat_id": "c1", "name": "hello.txt"}),
            );
            then.status(200).json_body(json!({"result": "success"}));
        })
        .await;
    let text = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/v1/chat/send/message")
                .json_body(json!({"chat_id": "c1", "text": "Здравствуйте"}));
            then.status(200).json_body(json!({"result": "success"}));
        })
        .await;
    let newest = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/v3/chat/history")
                .json_body(json!({"chat_id": "c1", "direction": "Backward", "limit": 1}));
            then.status(200).json_body(json!({"has_next": true, "messages": [
                {"message_id": "3000000000118021931", "created_at": "2026-11-20T10:00:00Z", "data": ["Спасибо"], "user": {"id": "u", "type": "Customer"}}]}));
        })
        .await;
    // Marked read from the newest message, as documented.
    let read = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/v2/chat/read")
                .json_body(json!({"chat_id": "c1", "from_message_id": 3000000000118021931u64}));
            then.status(200).json_body(json!({"unread_count": 0}));
        })
        .await;
    let account = ozon(&server);
    let sent = account
        .send(
            &r("ozon:c1"),
            "Здравствуйте",
            &[file("hello.txt", "text/plain", b"hello")],
        )
        .await
        .unwrap();
    assert_eq!(sent.message_id, None);
    account.mark_read(&r("ozon:c1")).await.unwrap();
    file_mock.assert_async().await;
    text.assert_async().await;
    newest.assert_async().await;
    read.assert_async().await;
}

#[tokio::test]
async fn mark_read_per_marketplace() {
    let server = MockServer::start_async().await;
    let a = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path("/messaging/threads/t1/read")
                .header("accept", BETA)
                .header("content-type", BETA)
                .json_body(json!({"read": true}));
            then.status(200).json_body(json!({"read": true}));
        })
        .await;
    let m = server
        .mock_async(|when, then| {
            // The documented way: a read without `mark_as_read=false`, and no other value.
            when.method(GET)
                .path("/messages/packs/9/sellers/415458330")
                .query_param_missing("mark_as_read");
            then.status(200).json_body(json!({"messages": []}));
        })
        .await;
    let g = server
        .mock_async(|when, then| {
            when.method(PATCH).path("/v0/conversations/c1/read_by");
            then.status(200)
                .json_body(json!({"id": "c1", "unread_to_count": 0}));
        })
        .await;
    allegro(&server).mark_read(&r("allegro:t1")).await.unwrap();
    meli(&server).mark_read(&r("mercadolibre:9")).await.unwrap();
    magalu(&server, true)
        .mark_read(&r("magalu:c1"))
        .await
        .unwrap();
    a.assert_async().await;
    m.assert_async().await;
    g.assert_async().await;
}

#[tokio::test]
async fn vendor_errors_name_the_marketplace_and_keep_the_vendor_words() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/messages/packs/1/sellers/415458330");
            then.status(403).json_body(json!({"message": "You can not send the message because a mediation is in process.", "error": "blocked_conversation_send_message_forbidden", "status": 403, "cause": "blocked_by_mediation"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/1/sellers/415458330");
            then.status(200).json_body(json!({"messages": [{"id": "a", "from": {"user_id": "77"}, "message_date": {"created": "2026-11-01T10:00:00Z"}}]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messaging/threads");
            // Longer than the whole retry budget: answered at once, not waited for.
            then.status(429).header("retry-after", "3600").json_body(
                json!({"errors": [{"code": "TooManyRequests", "message": "slow down"}]}),
            );
        })
        .await;
    let err = meli(&server)
        .send(&r("mercadolibre:1"), "Olá", &[])
        .await
        .unwrap_err();
    match &err {
        Error::Api {
            marketplace: Marketplace::MercadoLibre,
            status: 403,
            code,
            message,
            ..
        } => {
            assert_eq!(
                code.as_deref(),
                Some("blocked_conversation_send_message_forbidden")
            );
            assert!(message.as_deref().unwrap().contains("mediation"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().starts_with("mercadolibre: send: HTTP 403"),
        "{err}"
    );
    let items: Vec<_> = allegro(&server)
        .conversations(ConversationQuery::new())
        .collect()
        .await;
    match &items[0] {
        Err(
            e @ Error::RateLimited {
                marketplace: Marketplace::Allegro,
                retry_after,
                ..
            },
        ) => {
            assert_eq!(retry_after.map(|d| d.as_secs()), Some(3600));
            assert!(!format!("{e:?}{e}").contains("tok-a"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn inbox_merges_accounts_and_sums_unread() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/list");
            then.status(200).json_body(json!({"chats": [{"chat": {"chat_id": "o1"}, "unread_count": 2}, {"chat": {"chat_id": "o2"}, "unread_count": 0}], "has_next": false}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/unread");
            then.status(200).json_body(
                json!({"results": [{"resource": "/packs/5/sellers/415458330", "count": 4}]}),
            );
        })
        .await;
    // Every pack: the seller's orders (two of pack 5, one without a pack).
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/orders/search")
                .query_param("seller", "415458330")
                .query_param("sort", "date_desc");
            then.status(200).json_body(
                json!({"paging": {"total": 3, "offset": 0, "limit": 50}, "results": [
                {"id": 11, "pack_id": 5}, {"id": 12, "pack_id": 5}, {"id": 13, "pack_id": null}]}),
            );
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/5/sellers/415458330");
            then.status(200)
                .json_body(json!({"messages": [], "conversation_status": {"status": "active"}}));
        })
        .await;
    let mut inbox = Inbox::new();
    inbox
        .add(ozon(&server))
        .unwrap()
        .add(meli(&server))
        .unwrap();
    let mut got: Vec<(String, String)> = inbox
        .conversations(ConversationQuery::new())
        .map(|t| (t.account, t.item.unwrap().reference.to_string()))
        .collect()
        .await;
    got.sort();
    assert_eq!(
        got,
        [
            ("br".to_string(), "mercadolibre@br:13".to_string()),
            ("br".into(), "mercadolibre@br:5".into()),
            ("ru".into(), "ozon@ru:o1".into()),
            ("ru".into(), "ozon@ru:o2".into())
        ]
    );
    let mut unread = inbox.unread().await;
    unread.sort_by(|a, b| a.account.cmp(&b.account));
    let summaries: Vec<_> = unread.into_iter().map(|t| t.item.unwrap()).collect();
    assert_eq!(
        summaries[0],
        UnreadSummary {
            marketplace: Marketplace::MercadoLibre,
            conversations: 1,
            messages: Some(4)
        }
    );
    assert_eq!(
        summaries[1],
        UnreadSummary {
            marketplace: Marketplace::Ozon,
            conversations: 1,
            messages: Some(2)
        }
    );
}

/// What the request path knows (the token was refused, the attempts it took) travels
/// beside the answer, so a server that sends the names it once used as headers steers
/// nothing.
#[tokio::test]
async fn a_server_cannot_forge_the_request_paths_own_signals() {
    let server = MockServer::start_async().await;
    let forged = server
        .mock_async(|_, then| {
            then.status(404)
                .header("x-inbox-token-refused", "1")
                .header("x-inbox-attempts", "9")
                .json_body(json!({"message": "not found"}));
        })
        .await;
    let quick = RetrySettings {
        max_attempts: Some(3),
        base_delay_secs: Some(0.001),
        ..RetrySettings::default()
    };
    let configs = [
        common::allegro_config(&server),
        common::meli_config(&server),
        common::magalu_config(&server),
        common::ozon_config(&server),
    ];
    for config in configs {
        let account = Account::from_config(&config.retry(quick.clone())).unwrap();
        let first = account
            .conversations(ConversationQuery::new())
            .next()
            .await
            .unwrap();
        match first {
            Err(Error::Api {
                status: 404,
                attempts: 1,
                ..
            }) => {}
            other => panic!("{}: {other:?}", account.marketplace()),
        }
    }
    assert_eq!(
        forged.calls_async().await,
        4,
        "one request each, never repeated"
    );

    // A repeated request reports the attempts it really took, whatever the server says.
    let busy = MockServer::start_async().await;
    let unavailable = busy
        .mock_async(|when, then| {
            when.method(GET).path("/messaging/threads");
            then.status(503).header("x-inbox-attempts", "1");
        })
        .await;
    let account = Account::from_config(&common::allegro_config(&busy).retry(quick)).unwrap();
    let err = account
        .conversations(ConversationQuery::new())
        .next()
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Api {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(unavailable.calls_async().await, 3);
}

/// After a send and a mark-read, the error says which failed: the send went through, the
/// mark-read got a server error, in the operation's own words.
#[tokio::test]
async fn errors_name_the_operation_that_failed() {
    let server = MockServer::start_async().await;
    let text = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/v1/chat/send/message")
                .json_body(json!({"chat_id": "c1", "text": "Добрый день"}));
            then.status(200).json_body(json!({"result": "success"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/history");
            then.status(200).json_body(json!({"has_next": false, "messages": [
                {"message_id": "3000000000118021931", "created_at": "2026-11-20T10:00:00Z", "data": ["Спасибо"], "user": {"id": "u", "type": "Customer"}}]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v2/chat/read");
            then.status(500)
                .json_body(json!({"code": 13, "message": "internal error", "details": []}));
        })
        .await;
    let account =
        Account::from_config(&common::ozon_config(&server).retry(RetrySettings::never())).unwrap();
    account
        .send(&r("ozon:c1"), "Добрый день", &[])
        .await
        .unwrap();
    let failed = account.mark_read(&r("ozon:c1")).await.unwrap_err();
    assert_eq!(failed.operation(), Some("mark read"));
    assert!(
        failed.to_string().starts_with("ozon: mark read: HTTP 500"),
        "{failed}"
    );
    text.assert_async().await;
    // A listing's errors name it too.
    let missing = MockServer::start_async().await;
    missing
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/history");
            then.status(404)
                .json_body(json!({"code": 5, "message": "chat not found", "details": []}));
        })
        .await;
    let account =
        Account::from_config(&common::ozon_config(&missing).retry(RetrySettings::never())).unwrap();
    let listed: Vec<Result<Message, Error>> = account
        .messages(&r("ozon:c9"), MessageQuery::new())
        .collect()
        .await;
    let e = listed.into_iter().find_map(Result::err).unwrap();
    assert_eq!(e.operation(), Some("list messages"));
    assert!(
        e.to_string().starts_with("ozon: list messages: HTTP 404"),
        "{e}"
    );
}
