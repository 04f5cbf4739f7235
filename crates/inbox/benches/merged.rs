//! A merged inbox of 4 marketplaces × 5 accounts, exported at 50 ms a request (20
//! conversations × 40 messages each), against the slowest single account alone, side by
//! side in one run (aim ≤ 1.25×). Each account runs under its own published limits.
//!
//! `cargo bench -p marketplace-inbox --bench merged`

use std::time::{Duration, Instant};

use futures::StreamExt;
use inbox_sandbox::{Config, Faults, Sandbox, Vendor};
use marketplace_inbox::{Account, ConversationQuery, Inbox};

mod common;

#[tokio::main]
async fn main() {
    let (conversations, messages, latency) = match common::smoke() {
        true => (2, 4, 5),
        false => (20, 40, 50),
    };
    let sandbox = Sandbox::start(Config {
        conversations,
        messages_per_conversation: messages,
        faults: Faults {
            latency: Duration::from_millis(latency),
            ..Faults::default()
        },
        ..Config::default()
    })
    .await
    .expect("sandbox");
    // Each marketplace alone, one account: the slowest sets the bar.
    let mut slowest = (Vendor::Allegro, 0.0);
    for vendor in Vendor::ALL {
        let account = Account::from_config(&common::account(&sandbox, vendor)).expect("account");
        let started = Instant::now();
        let n = account
            .all_messages(ConversationQuery::new())
            .filter(|m| futures::future::ready(m.is_ok()))
            .count()
            .await;
        let took = started.elapsed().as_secs_f64();
        println!("{:<13} alone: {n} messages in {took:.2} s", vendor.prefix());
        if took > slowest.1 {
            slowest = (vendor, took);
        }
    }
    // Five accounts of each, merged.
    let mut inbox = Inbox::new();
    for vendor in Vendor::ALL {
        for i in 0..5 {
            let mut config = common::account(&sandbox, vendor);
            config.name = format!("{}-{i}", vendor.prefix());
            inbox
                .add(Account::from_config(&config).expect("account"))
                .expect("unique");
        }
    }
    let started = Instant::now();
    let n = inbox
        .all_messages(ConversationQuery::new())
        .filter(|t| futures::future::ready(t.item.is_ok()))
        .count()
        .await;
    let took = started.elapsed().as_secs_f64();
    println!(
        "merged 4 × 5 accounts: {n} messages in {took:.2} s; slowest alone ({}) {:.2} s; ratio {:.2}x",
        slowest.0.prefix(),
        slowest.1,
        took / slowest.1
    );
}
