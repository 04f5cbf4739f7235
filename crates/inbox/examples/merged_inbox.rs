//! Prints a merged inbox over all configured accounts.
//!
//! With credentials in the environment (`ALLEGRO_TOKEN`; `MERCADOLIBRE_TOKEN` and
//! `MERCADOLIBRE_SELLER_ID`; `MAGALU_TOKEN`; `OZON_CLIENT_ID` and `OZON_API_KEY`) it reads
//! the real marketplaces. Without any, it starts a local mock of the four APIs on
//! loopback, so `cargo run -p marketplace-inbox --example merged_inbox` always shows
//! something.

use futures::StreamExt;
use marketplace_inbox::vendors::{
    allegro::AllegroAccount, magalu::MagaluAccount, mercadolibre::MercadoLibreAccount,
    ozon::OzonAccount,
};
use marketplace_inbox::Inbox;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut inbox = Inbox::new();
    if let Some(t) = env("ALLEGRO_TOKEN") {
        inbox.add(
            "allegro",
            AllegroAccount::new(inbox_allegro::Allegro::new(t)?),
        );
    }
    if let (Some(t), Some(seller)) = (env("MERCADOLIBRE_TOKEN"), env("MERCADOLIBRE_SELLER_ID")) {
        inbox.add(
            "mercadolibre",
            MercadoLibreAccount::new(inbox_mercadolibre::MercadoLibre::new(t)?, seller),
        );
    }
    if let Some(t) = env("MAGALU_TOKEN") {
        inbox.add(
            "magalu",
            MagaluAccount::new(inbox_magalu::Magalu::new(t)?, None),
        );
    }
    if let (Some(id), Some(key)) = (env("OZON_CLIENT_ID"), env("OZON_API_KEY")) {
        inbox.add("ozon", OzonAccount::new(inbox_ozon::Ozon::new(id, key)?));
    }
    let _mock;
    if inbox.accounts().next().is_none() {
        let server = demo_server().await;
        let url = server.base_url();
        inbox
            .add(
                "allegro-demo",
                AllegroAccount::new(inbox_allegro::Allegro::with_base_url(&url, "demo")?),
            )
            .add(
                "mercadolibre-demo",
                MercadoLibreAccount::new(
                    inbox_mercadolibre::MercadoLibre::with_base_url(&url, "demo")?,
                    "415458330",
                ),
            )
            .add(
                "magalu-demo",
                MagaluAccount::new(inbox_magalu::Magalu::with_base_url(&url, "demo")?, None),
            )
            .add(
                "ozon-demo",
                OzonAccount::new(inbox_ozon::Ozon::with_base_url(&url, "1", "demo")?),
            );
        _mock = server;
        println!("(no credentials in the environment: reading a local demo server)");
    }
    let mut conversations = inbox.conversations();
    while let Some(tagged) = conversations.next().await {
        match tagged.item {
            Ok(c) => println!(
                "{:<18} {:<56} {:<16} unread={:<5} last={}",
                tagged.account,
                c.reference.to_string(),
                format!("{:?}", c.kind),
                c.unread.map_or("?".into(), |u| u.is_unread().to_string()),
                c.last_activity_at.map_or("-".into(), |t| t.to_rfc3339())
            ),
            Err(e) => eprintln!("{:<18} error: {e}", tagged.account),
        }
    }
    Ok(())
}

async fn demo_server() -> httpmock::MockServer {
    use httpmock::prelude::*;
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messaging/threads");
            then.status(200).json_body(json!({"threads": [{"id": "4lN1A6WTKM8AcfP1bLiumXuJ14Es1fiCguyqRvj3qDf", "read": false, "type": "POST_PURCHASE_ISSUE", "status": "OPEN",
                "lastMessageDateTime": "2026-11-20T19:53:05.051Z", "participants": [{"role": "BUYER", "login": "client:44300444"}]}], "nextPage": null}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/messages/unread");
            then.status(200).json_body(json!({"results": [{"resource": "/packs/2000000089077943/sellers/415458330", "count": 1}]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/v0/conversations");
            then.status(200).json_body(json!({"meta": {"links": {"next": null}}, "results": [{"id": "630e3bbc950b052e8724491a", "status": "OPENED", "unread_to_count": 0,
                "last_interaction_at": {"$date": "2026-11-19T09:57:56.851Z"}}]}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/v3/chat/list");
            then.status(200).json_body(json!({"chats": [{"chat": {"chat_id": "99feb3fc-a474-469f-95d5-268b470cc607", "chat_type": "BUYER_SELLER", "chat_status": "OPENED",
                "created_at": "2026-11-18T08:07:19.581Z"}, "unread_count": 2}], "has_next": false}));
        })
        .await;
    server
}
