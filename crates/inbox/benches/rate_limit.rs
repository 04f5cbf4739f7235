//! How close to a vendor's published limit an account runs: many concurrent reads on
//! one account against a sandbox that enforces the limit (429 past it). Prints the
//! sustained rate as a share of the limit and the 429s received (want: ≥ 95 %, 0).
//!
//! `cargo bench -p marketplace-inbox --bench rate_limit`

use std::time::{Duration, Instant};

use futures::StreamExt;
use inbox_sandbox::{Config, Limit, Sandbox, Vendor};
use marketplace_inbox::{Account, ConversationQuery, Marketplace};

mod common;

struct Case {
    vendor: Vendor,
    /// The published limit, per second.
    limit: f64,
    requests: usize,
}

#[tokio::main]
async fn main() {
    let cases = [
        Case {
            vendor: Vendor::Ozon,
            limit: 50.0,
            requests: 750,
        },
        Case {
            vendor: Vendor::Allegro,
            limit: 150.0,
            requests: 2_250,
        },
    ];
    println!(
        "{:<10} {:>9} {:>9} {:>10} {:>8} {:>6}",
        "vendor", "requests", "seconds", "rate/s", "share", "429s"
    );
    for mut case in cases {
        if common::smoke() {
            case.requests = 20;
        }
        let sandbox = Sandbox::start(Config {
            limits: Limit::published(),
            ..Config::default()
        })
        .await
        .expect("sandbox");
        let account =
            Account::from_config(&common::account(&sandbox, case.vendor)).expect("account");
        assert!(matches!(
            account.marketplace(),
            Marketplace::Ozon | Marketplace::Allegro
        ));
        // One warm-up request, then the burst.
        let _ = account
            .conversations(ConversationQuery::new().page_size(1))
            .next()
            .await;
        let started = Instant::now();
        let reads = (0..case.requests).map(|_| {
            let account = account.clone();
            async move {
                account
                    .conversations(ConversationQuery::new().page_size(1))
                    .next()
                    .await
            }
        });
        let done: Vec<_> = futures::stream::iter(reads)
            .buffer_unordered(32)
            .collect()
            .await;
        let elapsed = started.elapsed().max(Duration::from_millis(1));
        let ok = done.iter().filter(|r| matches!(r, Some(Ok(_)))).count();
        let rate = ok as f64 / elapsed.as_secs_f64();
        println!(
            "{:<10} {:>9} {:>9.2} {:>10.1} {:>7.1}% {:>6}",
            case.vendor.prefix(),
            ok,
            elapsed.as_secs_f64(),
            rate,
            100.0 * rate / case.limit,
            sandbox.rate_limited()
        );
    }
}
