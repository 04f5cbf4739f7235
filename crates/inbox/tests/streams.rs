//! The facade's streams against mock servers: every request sent and every item
//! received, in order, over at least three pages per marketplace.

use futures::StreamExt;
use httpmock::prelude::*;
mod common;

use common::{allegro, magalu, meli, ozon};
use marketplace_inbox::*;
use serde_json::{json, Value};

const V1: &str = "application/vnd.allegro.public.v1+json";
const BETA: &str = "application/vnd.allegro.beta.v1+json";

async fn collect<T: Send + 'static>(s: Listing<T>) -> Vec<Result<T, Error>> {
    s.collect().await
}

fn ids<T>(items: &[Result<T, Error>], id: impl Fn(&T) -> String) -> Vec<String> {
    items
        .iter()
        .map(|r| id(r.as_ref().unwrap_or_else(|e| panic!("{e}"))))
        .collect()
}

fn beta_thread(id: &str) -> Value {
    json!({"id": id, "read": false, "type": "COMMON", "status": "OPEN", "createdAt": "2026-11-01T10:00:00Z",
           "lastMessageDateTime": "2026-11-02T10:00:00Z", "participants": [{"role": "BUYER", "login": format!("buyer-{id}")}]})
}

fn beta_message(id: &str) -> Value {
    json!({"id": id, "status": "DELIVERED", "type": "MESSAGE_CENTER", "createdAt": "2026-11-02T10:00:00+01:00",
           "author": {"role": "BUYER", "login": "kupujacy"}, "text": format!("text {id}"), "subject": null,
           "relatesTo": {"offer": null, "order": {"id": "o-1"}}, "hasAdditionalAttachments": false, "attachments": [],
           "additionalInformation": null})
}

#[tokio::test]
async fn allegro_walks_three_beta_pages_of_threads_and_messages() {
    let server = MockServer::start_async().await;
    let mut mocks = Vec::new();
    for (page, next, items) in [
        (None, Some("p2"), ["t1", "t2"]),
        (Some("p2"), Some("p3"), ["t3", "t4"]),
        (Some("p3"), None, ["t5", "t6"]),
    ] {
        let body = json!({"threads": items.iter().map(|i| beta_thread(i)).collect::<Vec<_>>(), "nextPage": next.map(|n| json!({"id": n}))});
        mocks.push(
            server
                .mock_async(|when, then| {
                    let when = when
                        .method(GET)
                        .path("/messaging/threads")
                        .header("accept", BETA)
                        .header("authorization", "Bearer tok-a")
                        .query_param("limit", "20")
                        .query_param_missing("offset");
                    match page {
                        Some(p) => when.query_param("page.id", p),
                        None => when.query_param_missing("page.id"),
                    };
                    then.status(200)
                        .header("content-type", BETA)
                        .json_body(body);
                })
                .await,
        );
    }
    let account = allegro(&server);
    let items = collect(account.conversations(ConversationQuery::new())).await;
    assert_eq!(
        ids(&items, |c: &Conversation| c.reference.to_string()),
        [
            "allegro@pl:t1",
            "allegro@pl:t2",
            "allegro@pl:t3",
            "allegro@pl:t4",
            "allegro@pl:t5",
            "allegro@pl:t6"
        ]
    );
    let first = items[0].as_ref().unwrap();
    assert_eq!(first.kind, ConversationKind::BuyerChat);
    assert_eq!(first.status, Some(ConversationStatus::Open));
    assert_eq!(first.unread, Some(Unread::Flag(true)));
    assert_eq!(
        first.other_party.as_ref().unwrap().name.as_deref(),
        Some("buyer-t1")
    );
    for m in &mocks {
        m.assert_async().await;
    }

    let mut mocks = Vec::new();
    for (page, next, items) in [
        (None, Some("m2"), ["m1", "m2"]),
        (Some("m2"), Some("m3"), ["m3", "m4"]),
        (Some("m3"), None, ["m5", "m6"]),
    ] {
        let body = json!({"messages": items.iter().map(|i| beta_message(i)).collect::<Vec<_>>(), "nextPage": next.map(|n| json!({"id": n}))});
        mocks.push(
            server
                .mock_async(|when, then| {
                    let when = when
                        .method(GET)
                        .path("/messaging/threads/t1/messages")
                        .header("accept", BETA)
                        .query_param("limit", "20");
                    match page {
                        Some(p) => when.query_param("page.id", p),
                        None => when.query_param_missing("page.id"),
                    };
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let items =
        collect(account.messages(&"allegro@pl:t1".parse().unwrap(), MessageQuery::new())).await;
    assert_eq!(
        ids(&items, |m: &Message| m.id.clone()),
        ["m1", "m2", "m3", "m4", "m5", "m6"]
    );
    let m = items[0].as_ref().unwrap();
    assert_eq!(m.author.role, Role::Buyer);
    assert_eq!(m.created_at.to_rfc3339(), "2026-11-02T09:00:00+00:00");
    assert_eq!(m.references.orders, ["o-1"]);
    for m in &mocks {
        m.assert_async().await;
    }
}

#[tokio::test]
async fn allegro_falls_back_to_public_v1_on_406() {
    let server = MockServer::start_async().await;
    let refused = server
        .mock_async(|when, then| {
            when.method(GET).path("/messaging/threads").header("accept", BETA);
            then.status(406).json_body(json!({"errors": [{"code": "NotAcceptableException", "message": "Not acceptable"}]}));
        })
        .await;
    let page = |offset: u64, n: u64| json!({"threads": (0..n).map(|i| json!({"id": format!("v1-{}", offset + i), "read": true})).collect::<Vec<_>>(), "offset": offset, "limit": 20});
    let p1 = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/messaging/threads")
                .header("accept", V1)
                .query_param("offset", "0")
                .query_param("limit", "20");
            then.status(200).json_body(page(0, 20));
        })
        .await;
    let p2 = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/messaging/threads")
                .header("accept", V1)
                .query_param("offset", "20")
                .query_param("limit", "20");
            then.status(200).json_body(page(20, 20));
        })
        .await;
    let p3 = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/messaging/threads")
                .header("accept", V1)
                .query_param("offset", "40")
                .query_param("limit", "20");
            then.status(200).json_body(page(40, 3));
        })
        .await;
    let items = collect(allegro(&server).conversations(ConversationQuery::new())).await;
    let got = ids(&items, |c: &Conversation| c.reference.id.clone());
    assert_eq!(got.len(), 43);
    assert_eq!(got[0], "v1-0");
    assert_eq!(got[42], "v1-42");
    assert_eq!(items[0].as_ref().unwrap().unread, Some(Unread::Flag(false)));
    refused.assert_calls_async(1).await;
    p1.assert_async().await;
    p2.assert_async().await;
    p3.assert_async().await;
}

fn meli_message(id: &str, from: &str) -> Value {
    json!({"id": id, "site_id": "MLB", "from": {"user_id": from}, "to": {"user_id": "415458330"}, "text": format!("oi {id}"),
           "status": "available", "message_date": {"created": "2026-11-01T10:00:00.000-03:00", "read": null},
           "message_moderation": {"status": "clean"}, "message_attachments": null})
}

#[tokio::test]
async fn mercadolibre_walks_three_pages_without_marking_read() {
    let server = MockServer::start_async().await;
    let mut mocks = Vec::new();
    for (offset, n) in [(0u64, 10u64), (10, 10), (20, 5)] {
        let body = json!({"paging": {"limit": 10, "offset": offset, "total": 25},
                          "conversation_status": {"status": "active"},
                          "messages": (offset..offset + n).map(|i| meli_message(&format!("m{i}"), "1977056109")).collect::<Vec<_>>()});
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(GET)
                        .path("/messages/packs/2000000089077943/sellers/415458330")
                        .header("authorization", "Bearer tok-m")
                        .query_param("tag", "post_sale")
                        .query_param("mark_as_read", "false")
                        .query_param("limit", "10")
                        .query_param("offset", offset.to_string());
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let items = collect(meli(&server).messages(
        &"mercadolibre@br:2000000089077943".parse().unwrap(),
        MessageQuery::new(),
    ))
    .await;
    let got = ids(&items, |m: &Message| m.id.clone());
    assert_eq!(got, (0..25).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let m = items[0].as_ref().unwrap();
    assert_eq!(m.author.role, Role::Buyer);
    assert_eq!(m.read, Some(false));
    assert_eq!(m.status.as_deref(), Some("clean"));
    assert_eq!(m.created_at.to_rfc3339(), "2026-11-01T13:00:00+00:00");
    for m in &mocks {
        m.assert_async().await;
    }
}

#[tokio::test]
async fn mercadolibre_unread_packs_come_in_every_resource_shape() {
    let server = MockServer::start_async().await;
    let mock = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/messages/unread")
                .query_param("role", "seller")
                .query_param("tag", "post_sale");
            then.status(200)
                .json_body(json!({"user_id": 415458330, "results": [
                    {"resource": "/packs/2000000089077943/sellers/415458330", "count": 2},
                    {"resource": "/messages/orders/9", "count": 1},
                    {"resource": "the pack of the day", "count": 1},
                    {"resource": "/packs/1977056109/sellers/415458330", "count": 1}
                ]}));
        })
        .await;
    let items =
        collect(meli(&server).conversations(ConversationQuery::new().unread_only(true))).await;
    mock.assert_async().await;
    assert_eq!(items.len(), 4);
    let first = items[0].as_ref().unwrap();
    assert_eq!(
        first.reference.to_string(),
        "mercadolibre@br:2000000089077943"
    );
    assert_eq!(first.unread, Some(Unread::Count(2)));
    // The older order form names the conversation by its order.
    assert_eq!(items[1].as_ref().unwrap().reference.id, "9");
    // An unrecognised form costs only itself.
    match &items[2] {
        Err(Error::Decode {
            marketplace: Marketplace::MercadoLibre,
            raw: Some(raw),
            ..
        }) => assert_eq!(raw["resource"], "the pack of the day"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(items[3].as_ref().unwrap().reference.id, "1977056109");
}

#[tokio::test]
async fn magalu_follows_links_next_over_three_pages() {
    let server = MockServer::start_async().await;
    let mut mocks = Vec::new();
    for (offset, next, ids_) in [
        (0, Some("?_offset=2&_limit=100"), ["c1", "c2"]),
        (2, Some("?_offset=4&_limit=100"), ["c3", "c4"]),
        (4, None, ["c5", "c6"]),
    ] {
        let body = json!({"meta": {"page": {"limit": 100, "offset": offset, "max_limit": 100}, "links": {"next": next, "previous": null}},
                          "results": ids_.iter().map(|i| json!({"id": i, "status": "OPENED", "unread_to_count": 1,
                              "last_interaction_at": {"$date": "2024-04-24T09:57:56.851Z"},
                              "from_user": {"id": "u", "full_name": "John Doe", "type": "CUSTOMER"}})).collect::<Vec<_>>()});
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(GET)
                        .path("/v0/conversations")
                        .header("authorization", "Bearer tok-g")
                        .query_param("_limit", "100")
                        .query_param("_offset", offset.to_string());
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let items = collect(magalu(&server, true).conversations(ConversationQuery::new())).await;
    assert_eq!(
        ids(&items, |c: &Conversation| c.reference.id.clone()),
        ["c1", "c2", "c3", "c4", "c5", "c6"]
    );
    let c = items[0].as_ref().unwrap();
    assert_eq!(c.unread, Some(Unread::Count(1)));
    assert_eq!(
        c.last_activity_at.unwrap().to_rfc3339(),
        "2024-04-24T09:57:56.851+00:00"
    );
    assert_eq!(c.other_party.as_ref().unwrap().role, Role::Buyer);
    for m in &mocks {
        m.assert_async().await;
    }

    let mut mocks = Vec::new();
    for (offset, next, ids_) in [
        (0, Some("?_offset=2&_limit=100"), ["a", "b"]),
        (2, Some("?_offset=4&_limit=100"), ["c", "d"]),
        (4, None, ["e", "f"]),
    ] {
        let body = json!({"meta": {"links": {"next": next}}, "results": ids_.iter().map(|i| json!({"id": i, "content": i, "when_at": "2024-04-24T09:57:56.851Z",
            "from_user": {"type": "SELLER"}, "attachments": ["https://docs.com/doc.pdf"]})).collect::<Vec<_>>()});
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(GET)
                        .path("/v0/conversations/c1/messages")
                        .query_param("_limit", "100")
                        .query_param("_offset", offset.to_string());
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let items = collect(
        magalu(&server, true).messages(&"magalu@mg:c1".parse().unwrap(), MessageQuery::new()),
    )
    .await;
    assert_eq!(
        ids(&items, |m: &Message| m.text.clone()),
        ["a", "b", "c", "d", "e", "f"]
    );
    let m = items[0].as_ref().unwrap();
    assert_eq!(m.author.role, Role::Seller);
    assert_eq!(m.attachments[0].name.as_deref(), Some("doc.pdf"));
    for m in &mocks {
        m.assert_async().await;
    }
}

#[tokio::test]
async fn a_server_that_repeats_a_page_ends_the_stream_with_an_error() {
    let server = MockServer::start_async().await;
    let same = json!({"meta": {"links": {"next": "?_offset=2&_limit=100"}}, "results": [{"id": "x1"}, {"id": "x2"}]});
    let mock = server
        .mock_async(|when, then| {
            when.method(GET).path("/v0/conversations");
            then.status(200).json_body(same);
        })
        .await;
    let items = collect(magalu(&server, true).conversations(ConversationQuery::new())).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert!(matches!(
        items[2],
        Err(Error::Pagination {
            marketplace: Marketplace::Magalu,
            ..
        })
    ));
    mock.assert_calls_async(2).await;
}

fn ozon_message(id: u64) -> Value {
    json!({"message_id": id.to_string(), "created_at": "2026-11-01T10:00:00Z", "data": [format!("msg {id}")], "is_read": false,
           "user": {"id": "115568", "type": "Customer"}, "context": {"order_number": "123456789", "sku": "987654321"}})
}

#[tokio::test]
async fn ozon_walks_three_pages_of_chats_and_history() {
    let server = MockServer::start_async().await;
    let mut mocks = Vec::new();
    for (cursor, next, ids_) in [
        (None, Some("c2"), ["a", "b"]),
        (Some("c2"), Some("c3"), ["c", "d"]),
        (Some("c3"), None, ["e", "f"]),
    ] {
        let request = match cursor {
            Some(c) => json!({"limit": 100, "cursor": c}),
            None => json!({"limit": 100}),
        };
        let body = json!({"chats": ids_.iter().map(|i| json!({"chat": {"chat_id": i, "chat_status": "OPENED", "chat_type": "BUYER_SELLER"}, "unread_count": 3})).collect::<Vec<_>>(),
                          "has_next": next.is_some(), "cursor": next.unwrap_or("")});
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(POST)
                        .path("/v3/chat/list")
                        .header("client-id", "123")
                        .header("api-key", "key-o")
                        .json_body(request);
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let account = ozon(&server);
    let items = collect(account.conversations(ConversationQuery::new())).await;
    assert_eq!(
        ids(&items, |c: &Conversation| c.reference.id.clone()),
        ["a", "b", "c", "d", "e", "f"]
    );
    assert_eq!(items[0].as_ref().unwrap().kind, ConversationKind::BuyerChat);
    assert_eq!(items[0].as_ref().unwrap().unread, Some(Unread::Count(3)));
    for m in &mocks {
        m.assert_async().await;
    }

    let mut mocks = Vec::new();
    for (from, has_next, ids_) in [
        (None, true, vec![9u64, 8, 7]),
        (Some(7u64), true, vec![7, 6, 5]),
        (Some(5), false, vec![5, 4]),
    ] {
        let mut request = json!({"chat_id": "chat-1", "direction": "Backward", "limit": 1000});
        if let Some(f) = from {
            request["from_message_id"] = json!(f);
        }
        let body = json!({"has_next": has_next, "messages": ids_.iter().map(|i| ozon_message(*i)).collect::<Vec<_>>()});
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(POST)
                        .path("/v3/chat/history")
                        .json_body(request);
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let items =
        collect(account.messages(&"ozon@ru:chat-1".parse().unwrap(), MessageQuery::new())).await;
    assert_eq!(
        ids(&items, |m: &Message| m.id.clone()),
        ["9", "8", "7", "6", "5", "4"]
    );
    let m = items[0].as_ref().unwrap();
    assert_eq!(m.text, "msg 9");
    assert_eq!(m.author.role, Role::Buyer);
    assert_eq!(m.references.orders, ["123456789"]);
    for m in &mocks {
        m.assert_async().await;
    }
}

#[tokio::test]
async fn a_bad_element_costs_only_that_element_and_unknown_values_are_kept() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/history");
            then.status(200).json_body(json!({"has_next": false, "messages": [
                ozon_message(3),
                {"message_id": "2", "created_at": "garbage", "data": ["x"]},
                {"message_id": "1", "created_at": "2026-11-01T09:00:00Z", "data": ["hi"], "user": {"id": "7", "type": "Сustomer"}}
            ]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/list");
            then.status(200).json_body(json!({"chats": [{"chat": {"chat_id": "n1", "chat_type": "BUYER_SELLER_RETURNS", "chat_status": "ARCHIVED"}}], "has_next": false}));
        })
        .await;
    let account = ozon(&server);
    let items = collect(account.messages(&"ozon@ru:c".parse().unwrap(), MessageQuery::new())).await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().id, "3");
    match &items[1] {
        Err(Error::Decode {
            marketplace: Marketplace::Ozon,
            raw: Some(raw),
            error,
            ..
        }) => {
            assert_eq!(raw["message_id"], "2");
            assert!(error.contains("unrecognised timestamp"), "{error}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The vendor's own example spells it with a Cyrillic С: still the customer.
    assert_eq!(items[2].as_ref().unwrap().author.role, Role::Buyer);
    let chats = collect(account.conversations(ConversationQuery::new())).await;
    let chat = chats[0].as_ref().unwrap();
    assert_eq!(
        chat.kind,
        ConversationKind::Unknown("BUYER_SELLER_RETURNS".into())
    );
    assert_eq!(
        chat.status,
        Some(ConversationStatus::Unknown("ARCHIVED".into()))
    );
}

#[tokio::test]
async fn nothing_is_requested_before_the_first_poll() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|_, then| {
            then.status(500);
        })
        .await;
    let _streams = [
        allegro(&server).conversations(ConversationQuery::new()),
        meli(&server).conversations(ConversationQuery::new()),
        magalu(&server, true).conversations(ConversationQuery::new()),
        ozon(&server).conversations(ConversationQuery::new()),
    ];
    tokio::task::yield_now().await;
    any.assert_calls_async(0).await;
}
