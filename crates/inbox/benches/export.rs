//! Exporting one account at 50 ms a request: the sequential walk (one conversation at a
//! time) against the default concurrency, side by side in one run, and against the
//! vendor's rate-limit floor (requests ÷ allowed rate). 200 conversations × 40 messages.
//!
//! `cargo bench -p marketplace-inbox --bench export`

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use inbox_sandbox::{Config, Faults, Sandbox, Vendor};
use marketplace_inbox::{Account, ConversationQuery, Message};

mod common;

#[tokio::main]
async fn main() {
    println!(
        "{:<8} {:>9} {:>12} {:>12} {:>10} {:>12} {:>14}",
        "vendor",
        "requests",
        "sequential s",
        "concurrent s",
        "floor s",
        "vs floor",
        "vs sequential"
    );
    // Published limits per second.
    // Published limits per second; the example conversation's own messages.
    for (vendor, limit, example) in [(Vendor::Allegro, 150.0, 2), (Vendor::Ozon, 50.0, 1)] {
        let mut times = Vec::new();
        let mut requests = 0;
        for concurrency in [1, 0] {
            let sandbox = Sandbox::start(Config {
                conversations: 200,
                messages_per_conversation: 40,
                faults: Faults {
                    latency: Duration::from_millis(50),
                    ..Faults::default()
                },
                ..Config::default()
            })
            .await
            .expect("sandbox");
            let mut account = common::account(&sandbox, vendor);
            if concurrency > 0 {
                account = account.concurrency(concurrency);
            }
            let account = Account::from_config(&account).expect("account");
            let started = Instant::now();
            let all: Vec<Message> = account
                .all_messages(ConversationQuery::new())
                .try_collect()
                .await
                .expect("export");
            times.push(started.elapsed().as_secs_f64());
            requests = sandbox.requests();
            assert_eq!(all.len(), 200 * 40 + example);
        }
        let floor = requests as f64 / limit;
        println!(
            "{:<8} {:>9} {:>12.2} {:>12.2} {:>10.2} {:>11.2}x {:>13.2}x",
            vendor.prefix(),
            requests,
            times[0],
            times[1],
            floor,
            times[1] / floor,
            times[0] / times[1]
        );
    }
}
