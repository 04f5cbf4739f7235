//! Listings that lose nothing quietly: an empty page that says there is more, envelopes
//! with repeated keys, Ozon's flat chat elements, Mercado Libre's unread entries and
//! pack states, paging totals that cannot be true, and message times RFC 3339 cannot
//! write — against mock servers answering in the vendors' shapes.

use futures::{Stream, StreamExt};
use httpmock::prelude::*;
use serde_json::{json, Value};

mod common;

use marketplace_inbox::*;

async fn collect<T>(s: impl Stream<Item = Result<T, Error>>) -> Vec<Result<T, Error>> {
    s.collect().await
}

fn account(config: AccountConfig) -> Account {
    Account::from_config(&config.retry(RetrySettings::never())).unwrap()
}

fn beta_thread(id: &str) -> Value {
    json!({"id": id, "read": false, "type": "COMMON", "status": "OPEN", "createdAt": "2026-11-01T10:00:00Z",
           "lastMessageDateTime": "2026-11-02T10:00:00Z", "participants": [{"role": "BUYER", "login": "kupujacy"}]})
}

fn beta_message(id: &str, at: &str) -> Value {
    json!({"id": id, "status": "DELIVERED", "type": "MESSAGE_CENTER", "createdAt": at,
           "author": {"role": "BUYER", "login": "kupujacy"}, "text": "Dzień dobry", "subject": null,
           "relatesTo": {"offer": null, "order": null}, "hasAdditionalAttachments": false, "attachments": [],
           "additionalInformation": null})
}

fn meli_message(id: &str, at: &str) -> Value {
    json!({"id": id, "site_id": "MLB", "from": {"user_id": "77"}, "to": {"user_id": "415458330"}, "text": "oi",
           "status": "available", "message_date": {"created": at, "read": null},
           "message_moderation": {"status": "clean"}, "message_attachments": null})
}

fn magalu_conversation(id: &str) -> Value {
    json!({"id": id, "status": "OPENED", "unread_to_count": 1,
           "last_interaction_at": {"$date": "2024-04-24T09:57:56.851Z"},
           "from_user": {"id": "u", "full_name": "John Doe", "type": "CUSTOMER"}})
}

fn magalu_message(id: &str, at: Value) -> Value {
    json!({"id": id, "content": "Olá", "when_at": at, "from_user": {"id": "u", "type": "CUSTOMER"}})
}

fn ozon_message(id: u64, at: Value) -> Value {
    json!({"message_id": id.to_string(), "created_at": at, "data": ["Здравствуйте"], "is_read": false,
           "user": {"id": "115568", "type": "Customer"}})
}

fn order(id: u64) -> Value {
    json!({"id": id, "pack_id": null, "date_created": "2026-11-01T10:00:00.000-03:00",
           "buyer": {"id": 77, "nickname": "COMPRADOR"}})
}

fn is_pagination<T: std::fmt::Debug>(item: Option<&Result<T, Error>>, m: Marketplace) -> bool {
    matches!(item, Some(Err(Error::Pagination { marketplace, .. })) if *marketplace == m)
}

/// Every listing whose vendor can say "there is more" refuses an empty page that says
/// it (Allegro's public.v1 pages say it only by being full, so an empty one is the end).
#[tokio::test]
async fn every_listing_refuses_an_empty_page_that_says_there_is_more() {
    let server = MockServer::start_async().await;
    let route = |method: httpmock::Method, path: &'static str, body: Value| {
        let server = &server;
        async move {
            server
                .mock_async(move |when, then| {
                    when.method(method).path(path);
                    then.status(200).json_body(body);
                })
                .await
        }
    };
    route(
        GET,
        "/messaging/threads",
        json!({"threads": [], "nextPage": {"id": "p2"}}),
    )
    .await;
    route(
        GET,
        "/messaging/threads/t1/messages",
        json!({"messages": [], "nextPage": {"id": "p2"}}),
    )
    .await;
    route(
        GET,
        "/orders/search",
        json!({"results": [], "paging": {"total": 5, "offset": 0, "limit": 50}}),
    )
    .await;
    route(GET, "/messages/unread", json!({"results": []})).await;
    route(
        GET,
        "/messages/packs/5/sellers/415458330",
        json!({"messages": [], "paging": {"total": 3, "offset": 0, "limit": 10}}),
    )
    .await;
    route(
        GET,
        "/v0/conversations",
        json!({"meta": {"links": {"next": "?_offset=20&_limit=100"}}, "results": []}),
    )
    .await;
    route(
        GET,
        "/v0/conversations/c1/messages",
        json!({"meta": {"links": {"next": "?_offset=20&_limit=100"}}, "results": []}),
    )
    .await;
    route(
        POST,
        "/v3/chat/list",
        json!({"chats": [], "has_next": true, "cursor": "c2"}),
    )
    .await;
    route(
        POST,
        "/v3/chat/history",
        json!({"messages": [], "has_next": true}),
    )
    .await;

    let accounts = [
        (account(common::allegro_config(&server)), "t1"),
        (account(common::meli_config(&server)), "5"),
        (account(common::magalu_config(&server)), "c1"),
        (account(common::ozon_config(&server)), "c1"),
    ];
    for (account, conversation) in &accounts {
        let m = account.marketplace();
        let listed = collect(account.conversations(ConversationQuery::new())).await;
        assert_eq!(listed.len(), 1, "{m}: {listed:?}");
        assert!(is_pagination(listed.first(), m), "{m}: {listed:?}");
        let read =
            collect(account.messages(&account.reference(*conversation), MessageQuery::new())).await;
        assert_eq!(read.len(), 1, "{m}: {read:?}");
        assert!(is_pagination(read.first(), m), "{m}: {read:?}");
    }
}

/// Ozon says there is more but gives no cursor (chats) or no message to go on from
/// (history, every message malformed): what came is delivered, then the listing fails.
#[tokio::test]
async fn ozon_more_without_a_way_to_read_it_ends_in_an_error_after_the_page() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/list");
            then.status(200).json_body(json!({"chats": [{"chat": {"chat_id": "a", "chat_type": "BUYER_SELLER", "chat_status": "OPENED"}, "unread_count": 1}], "has_next": true}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/history");
            then.status(200).json_body(
                json!({"messages": [{"message_id": "x", "created_at": "nunca"}], "has_next": true}),
            );
        })
        .await;
    let ozon = account(common::ozon_config(&server));
    let chats = collect(ozon.conversations(ConversationQuery::new())).await;
    assert_eq!(chats.len(), 2, "{chats:?}");
    assert_eq!(chats[0].as_ref().unwrap().reference.id, "a");
    assert!(is_pagination(chats.get(1), Marketplace::Ozon), "{chats:?}");
    let history = collect(ozon.messages(&ozon.reference("a"), MessageQuery::new())).await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(
        matches!(&history[0], Err(Error::Decode { raw: Some(raw), .. }) if raw["message_id"] == "x")
    );
    assert!(
        is_pagination(history.get(1), Marketplace::Ozon),
        "{history:?}"
    );
}

/// `{"threads": [...], "threads": [...]}`: the last value wins, as in the common
/// parsers, on every marketplace's envelope.
#[tokio::test]
async fn envelopes_that_repeat_a_key_are_read_with_the_last_value() {
    let server = MockServer::start_async().await;
    let raw = |path: &'static str, method: httpmock::Method, body: String| {
        let server = &server;
        async move {
            server
                .mock_async(move |when, then| {
                    when.method(method).path(path);
                    then.status(200)
                        .header("content-type", "application/json")
                        .body(body);
                })
                .await
        }
    };
    raw(
        "/messaging/threads",
        GET,
        format!(
            r#"{{"threads": [{}], "nextPage": null, "threads": [{}, {}]}}"#,
            beta_thread("old"),
            beta_thread("t1"),
            beta_thread("t2")
        ),
    )
    .await;
    raw(
        "/messages/packs/5/sellers/415458330",
        GET,
        format!(
            r#"{{"messages": [], "paging": {{"total": 2, "offset": 0, "limit": 10}}, "messages": [{}, {}]}}"#,
            meli_message("m1", "2026-11-01T10:00:00.000-03:00"),
            meli_message("m2", "2026-11-01T11:00:00.000-03:00")
        ),
    )
    .await;
    raw(
        "/v0/conversations",
        GET,
        format!(
            r#"{{"meta": {{"links": {{"next": "?_offset=1&_limit=100"}}}}, "results": [{}], "meta": {{"links": {{"next": null}}}}}}"#,
            magalu_conversation("c1")
        ),
    )
    .await;
    raw(
        "/v3/chat/list",
        POST,
        r#"{"chats": [], "has_next": false, "chats": [{"chat": {"chat_id": "z", "chat_type": "BUYER_SELLER", "chat_status": "OPENED"}}]}"#.to_string(),
    )
    .await;

    let allegro = account(common::allegro_config(&server));
    let threads: Vec<Conversation> = collect(allegro.conversations(ConversationQuery::new()))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let ids: Vec<&str> = threads.iter().map(|c| c.reference.id.as_str()).collect();
    assert_eq!(ids, ["t1", "t2"]);

    let meli = account(common::meli_config(&server));
    let messages: Vec<Message> = collect(meli.messages(&meli.reference("5"), MessageQuery::new()))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(messages.len(), 2);

    // Magalu's last `meta` has no next link: one page, no request for a second.
    let magalu = account(common::magalu_config(&server));
    let listed = collect(magalu.conversations(ConversationQuery::new())).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].as_ref().unwrap().reference.id, "c1");

    let ozon = account(common::ozon_config(&server));
    let chats = collect(ozon.conversations(ConversationQuery::new())).await;
    assert_eq!(chats.len(), 1, "{chats:?}");
    assert_eq!(chats[0].as_ref().unwrap().reference.id, "z");
}

/// Ozon chat elements with the chat's fields at the top level read like nested ones.
#[tokio::test]
async fn ozon_flat_chat_elements_read_like_nested_ones() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/list");
            then.status(200).json_body(json!({"has_next": false, "chats": [
                {"chat": {"chat_id": "nested", "chat_type": "BUYER_SELLER", "chat_status": "OPENED", "created_at": "2026-11-01T10:00:00Z"}, "unread_count": 2},
                {"chat_id": "flat", "chat_type": "SELLER_SUPPORT", "chat_status": "CLOSED", "created_at": "2026-11-02T10:00:00Z", "unread_count": 3, "last_message_id": "9"},
                {"unread_count": 1}]}));
        })
        .await;
    let ozon = account(common::ozon_config(&server));
    let chats = collect(ozon.conversations(ConversationQuery::new())).await;
    assert_eq!(chats.len(), 3, "{chats:?}");
    let flat = chats[1].as_ref().unwrap();
    assert_eq!(flat.reference.id, "flat");
    assert_eq!(flat.kind, ConversationKind::Support);
    assert_eq!(flat.status, Some(ConversationStatus::Closed));
    assert_eq!(flat.unread, Some(Unread::Count(3)));
    assert_eq!(
        flat.created_at.unwrap().to_rfc3339(),
        "2026-11-02T10:00:00+00:00"
    );
    assert_eq!(
        flat.vendor.to_value()["last_message_id"],
        "9",
        "raw kept as sent"
    );
    assert_eq!(chats[0].as_ref().unwrap().reference.id, "nested");
    // An element that is neither form is still an error with its data.
    assert!(
        matches!(&chats[2], Err(Error::Decode { raw: Some(raw), .. }) if raw["unread_count"] == 1)
    );
}

/// `/messages/unread` entries that cannot be read are reported with the listing (once,
/// not once a page), and the listing reads `/messages/unread` once.
#[tokio::test]
async fn mercadolibre_unread_entries_that_cannot_be_read_are_reported_once() {
    let server = MockServer::start_async().await;
    let unread = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/messages/unread")
                .query_param("role", "seller");
            then.status(200)
                .json_body(json!({"userId": 415458330, "results": [
                {"resource": "/packs/100/sellers/415458330", "count": 2},
                {"resource": {"pack": 101}, "count": 1},
                {"resource": "/questions/5", "count": 4}]}));
        })
        .await;
    for (offset, ids) in [(0u64, 100u64..150), (50, 150..160)] {
        let results: Vec<Value> = ids.map(order).collect();
        server
            .mock_async(move |when, then| {
                when.method(GET)
                    .path("/orders/search")
                    .query_param("offset", offset.to_string());
                then.status(200).json_body(json!({"results": results, "paging": {"total": 60, "offset": offset, "limit": 50}}));
            })
            .await;
    }
    let meli = account(common::meli_config(&server));
    let listed = collect(meli.conversations(ConversationQuery::new())).await;
    let (ok, bad): (Vec<_>, Vec<_>) = listed.iter().partition(|r| r.is_ok());
    assert_eq!(ok.len(), 60);
    assert_eq!(bad.len(), 2, "{bad:?}");
    let raws: Vec<Value> = bad
        .iter()
        .map(|r| match r {
            Err(Error::Decode {
                marketplace: Marketplace::MercadoLibre,
                raw: Some(raw),
                ..
            }) => raw.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(raws[0]["resource"]["pack"], 101);
    assert_eq!(raws[1]["resource"], "/questions/5");
    let pack_100 = ok
        .iter()
        .copied()
        .flatten()
        .find(|c| c.reference.id == "100")
        .unwrap();
    assert_eq!(pack_100.unread, Some(Unread::Count(2)));
    assert_eq!(
        unread.calls_async().await,
        1,
        "one unread read for two pages"
    );

    // The unread listing alone reports them the same way.
    let only = collect(meli.conversations(ConversationQuery::new().unread_only(true))).await;
    assert_eq!(only.len(), 3);
    assert_eq!(only.iter().filter(|r| r.is_err()).count(), 2);
}

/// A pack whose state cannot be read is that error, never a pack shown as open.
#[tokio::test]
async fn mercadolibre_a_pack_state_that_cannot_be_read_is_an_error() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/unread");
            then.status(200).json_body(json!({"results": [
                {"resource": "/packs/1/sellers/415458330", "count": 1},
                {"resource": "/packs/2/sellers/415458330", "count": 1}]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/1/sellers/415458330");
            then.status(429).json_body(json!({"message": "too many requests", "error": "local_rate_limited", "status": 429}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/2/sellers/415458330");
            then.status(200).json_body(json!({"paging": {"total": 1}, "conversation_status": {"status": "blocked", "substatus": "blocked_by_time"}, "messages": []}));
        })
        .await;
    let meli = account(common::meli_config(&server));
    let listed =
        collect(meli.conversations(ConversationQuery::new().unread_only(true).with_state(true)))
            .await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        matches!(
            &listed[0],
            Err(Error::RateLimited {
                marketplace: Marketplace::MercadoLibre,
                ..
            })
        ),
        "{listed:?}"
    );
    let blocked = listed[1].as_ref().unwrap();
    assert!(
        matches!(blocked.status, Some(ConversationStatus::Blocked { .. })),
        "{blocked:?}"
    );
}

/// A negative total, or one below what was already listed, is no total: the listing
/// goes on while pages come full. One beyond belief is no total either.
#[tokio::test]
async fn mercadolibre_totals_that_cannot_be_true_are_unknown() {
    let server = MockServer::start_async().await;
    for (offset, n, total) in [
        (0u64, 10u64, json!(-1)),
        (10, 10, json!(3)),
        (20, 4, json!(-1)),
    ] {
        let messages: Vec<Value> = (0..n)
            .map(|i| meli_message(&format!("m{}", offset + i), "2026-11-01T10:00:00.000-03:00"))
            .collect();
        server
            .mock_async(move |when, then| {
                when.method(GET)
                    .path("/messages/packs/5/sellers/415458330")
                    .query_param("offset", offset.to_string());
                then.status(200).json_body(json!({"messages": messages, "paging": {"total": total, "offset": offset, "limit": 10}}));
            })
            .await;
    }
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/unread");
            then.status(200).json_body(json!({"results": []}));
        })
        .await;
    let orders = server
        .mock_async(|when, then| {
            when.method(GET).path("/orders/search");
            then.status(200).json_body(json!({"results": [order(1), order(2)], "paging": {"total": 1_000_000_000_000_i64, "offset": 0, "limit": 50}}));
        })
        .await;
    let meli = account(common::meli_config(&server));
    let read = collect(meli.messages(&meli.reference("5"), MessageQuery::new())).await;
    assert_eq!(read.len(), 24, "{read:?}");
    assert!(read.iter().all(|r| r.is_ok()));
    let listed = collect(meli.conversations(ConversationQuery::new())).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|r| r.is_ok()));
    assert_eq!(orders.calls_async().await, 1, "a short page ends it");
}

/// A message created at an instant RFC 3339 cannot write is malformed — its raw JSON
/// kept, every other message delivered — on every marketplace.
#[tokio::test]
async fn message_times_rfc3339_cannot_write_are_malformed_elements() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messaging/threads/t1/messages");
            then.status(200).json_body(json!({"messages": [
                beta_message("good", "2026-11-02T10:00:00Z"), beta_message("zero", "0000-06-01T00:00:00Z")], "nextPage": null}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/packs/5/sellers/415458330");
            then.status(200).json_body(json!({"paging": {"total": 2}, "messages": [
                meli_message("good", "2026-11-01T10:00:00.000-03:00"), meli_message("far", "9999-12-31T23:00:00.000-05:00")]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/v0/conversations/c1/messages");
            then.status(200)
                .json_body(json!({"meta": {"links": {"next": null}}, "results": [
                magalu_message("good", json!({"$date": "2024-04-24T09:57:56.851Z"})),
                magalu_message("epoch", json!({"$date": 400_000_000_000_000_i64}))]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/history");
            then.status(200).json_body(json!({"has_next": false, "messages": [
                ozon_message(2, json!("2026-11-01T10:00:00Z")), ozon_message(1, json!(300_000_000_000_000_i64))]}));
        })
        .await;
    for (account, conversation) in [
        (account(common::allegro_config(&server)), "t1"),
        (account(common::meli_config(&server)), "5"),
        (account(common::magalu_config(&server)), "c1"),
        (account(common::ozon_config(&server)), "c1"),
    ] {
        let m = account.marketplace();
        let read =
            collect(account.messages(&account.reference(conversation), MessageQuery::new())).await;
        assert_eq!(read.len(), 2, "{m}: {read:?}");
        let good: Vec<&Message> = read.iter().flatten().collect();
        assert_eq!(good.len(), 1, "{m}: {read:?}");
        assert!(rfc3339(good[0].created_at).is_some());
        let bad = read.iter().find_map(|r| r.as_ref().err()).unwrap();
        match bad {
            Error::Decode {
                marketplace,
                raw: Some(raw),
                error,
                ..
            } => {
                assert_eq!(*marketplace, m);
                assert!(error.contains("RFC 3339"), "{m}: {error}");
                assert!(raw.is_object(), "{m}: {raw}");
            }
            other => panic!("{m}: {other:?}"),
        }
    }
}
