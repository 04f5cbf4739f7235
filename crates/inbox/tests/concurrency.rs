//! Several conversations at once within an account: every message once, each
//! conversation's order kept, and the rate limiter still deciding the pace (no 429).

use std::collections::HashMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use inbox_sandbox::{Config, Faults, Limit, Sandbox, Vendor};
use marketplace_inbox::*;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_fetches_conversations_at_once_in_order_exactly_once_and_within_limits() {
    // Ozon's per-second window, scaled to 100 a second, enforced; 20 ms a request.
    let sandbox = Sandbox::start(Config {
        conversations: 24,
        messages_per_conversation: 30,
        page_cap: Some(10),
        faults: Faults {
            latency: Duration::from_millis(20),
            ..Faults::default()
        },
        limits: vec![Limit {
            vendor: Vendor::Ozon,
            writes: None,
            requests: 100,
            per: Duration::from_secs(1),
        }],
        ..Config::default()
    })
    .await
    .unwrap();
    let config = common::sandbox_account(&sandbox.accounts_config(), Vendor::Ozon, |_| {})
        .limit("all", 100, 1.0);
    let account = Account::from_config(&config).unwrap();
    assert_eq!(account.concurrency(), 8);

    let exported: Vec<Message> = account
        .all_messages(ConversationQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(exported.len(), 24 * 30 + 1);
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
        assert_eq!(ids, &alone, "{conversation}");
    }
    assert!(
        sandbox.max_in_flight() > 1,
        "conversations were fetched at once"
    );
    assert_eq!(sandbox.rate_limited(), 0, "the limiter kept the pace");
}
