//! Several conversations at once within an account: every message once, each
//! conversation's order kept, and the rate limiter still deciding the pace (no 429).

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use inbox_sandbox::{Config, Vendor};
use marketplace_inbox::*;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_fetches_conversations_at_once_in_order_exactly_once_and_within_limits() {
    // Every marketplace: its read limit scaled to 100 a second and enforced; 20 ms a
    // request; pages of at most 10.
    for vendor in Vendor::ALL {
        let (sandbox, config) = common::paced_sandbox(
            vendor,
            100,
            Config {
                conversations: 24,
                messages_per_conversation: 30,
                page_cap: Some(10),
                ..Config::default()
            },
        )
        .await;
        let config = config.concurrency(8);
        let account = Account::from_config(&config).unwrap();

        let exported: Vec<Message> = account
            .all_messages(ConversationQuery::new())
            .try_collect()
            .await
            .unwrap();
        let examples = match vendor {
            Vendor::Allegro | Vendor::MercadoLibre => 2,
            Vendor::Magalu | Vendor::Ozon => 1,
        };
        assert_eq!(exported.len(), 24 * 30 + examples, "{vendor:?}");
        assert!(
            sandbox.max_in_flight() > 1,
            "{vendor:?}: conversations were fetched at once"
        );
        let mut by_conversation: HashMap<String, Vec<String>> = HashMap::new();
        for m in &exported {
            by_conversation
                .entry(m.conversation.id.clone())
                .or_default()
                .push(m.id.clone());
        }
        // Each conversation: its messages once, in the order a listing of it alone gives.
        for (conversation, ids) in &by_conversation {
            let alone: Vec<String> = account
                .messages(
                    &account.reference(conversation.as_str()),
                    MessageQuery::new(),
                )
                .map(|m| m.unwrap().id)
                .collect()
                .await;
            assert_eq!(ids, &alone, "{vendor:?} {conversation}");
        }
        assert_eq!(
            sandbox.rate_limited(),
            0,
            "{vendor:?}: the limiter kept the pace"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_pages_with_a_known_total_are_fetched_at_once_in_order_without_waste() {
    // Mercado Libre and Magalu give `paging.total` / `meta.page.total`: past the first
    // page, the rest of a listing is requested at once. Their read windows, scaled to
    // 60 a second, are enforced; 20 ms a request; pages of 4.
    for vendor in [Vendor::MercadoLibre, Vendor::Magalu] {
        let (sandbox, config) = common::paced_sandbox(
            vendor,
            60,
            Config {
                conversations: 3,
                messages_per_conversation: 37,
                page_cap: Some(4),
                ..Config::default()
            },
        )
        .await;
        let sequential = Account::from_config(&config.clone().concurrency(1)).unwrap();
        let ahead = Account::from_config(&config.concurrency(6)).unwrap();
        let conversations: Vec<Conversation> = sequential
            .conversations(ConversationQuery::new())
            .try_collect()
            .await
            .unwrap();
        let mut one_by_one = Vec::new();
        for c in &conversations {
            let all: Vec<Message> = sequential
                .messages(&c.reference, MessageQuery::new())
                .try_collect()
                .await
                .unwrap();
            one_by_one.push(all);
        }
        assert_eq!(
            sandbox.max_in_flight(),
            1,
            "{vendor:?}: one request at a time"
        );
        let mut checked = 0;
        for (c, one_by_one) in conversations.iter().zip(&one_by_one) {
            let before = sandbox.requests();
            let at_once: Vec<Message> = ahead
                .messages(&c.reference, MessageQuery::new())
                .try_collect()
                .await
                .unwrap();
            let requests = sandbox.requests() - before;
            let ids = |all: &[Message]| all.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
            assert_eq!(ids(&at_once), ids(one_by_one), "{vendor:?} {}", c.reference);
            let unique: std::collections::HashSet<_> = at_once.iter().map(|m| &m.id).collect();
            assert_eq!(unique.len(), at_once.len(), "each message once");
            let pages = at_once.len().div_ceil(4).max(1) as u64;
            assert_eq!(
                requests, pages,
                "{vendor:?}: one request a page, none wasted"
            );
            checked += usize::from(at_once.len() >= 37);
        }
        assert!(
            sandbox.max_in_flight() > 1,
            "{vendor:?}: pages were fetched at once"
        );
        assert!(checked >= 3, "{vendor:?}: {checked} long conversations");
        assert_eq!(
            sandbox.rate_limited(),
            0,
            "{vendor:?}: the limiter kept the pace"
        );
    }
}
