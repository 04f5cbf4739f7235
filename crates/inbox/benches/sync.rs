//! Sync at 50 ms a request under the published limits (enforced by the sandbox too):
//!
//! - a first sync of each marketplace, one conversation at a time and at the default
//!   concurrency, side by side, against the rate-limit floor (requests ÷ published rate);
//! - the steady state: after a first sync (zero latency, limits lifted) of 10³ and 10⁴
//!   conversations, a quiet pass, then one after 5 new buyer messages, with the requests
//!   and time each costs.
//!
//! `cargo bench -p marketplace-inbox --bench sync`

use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Limit, Sandbox, Vendor};
use marketplace_inbox::sync::{self, SqliteStore};
use marketplace_inbox::{Account, AccountConfig};

mod common;

/// The limits of each marketplace's account by name, lifted.
fn unlimited(config: AccountConfig, vendor: Vendor) -> AccountConfig {
    let names: &[&str] = match vendor {
        Vendor::Allegro => &["all", "messages"],
        Vendor::Ozon => &["all"],
        _ => &["reads", "writes"],
    };
    names.iter().fold(config, |c, name| c.limit(*name, 0, 1.0))
}

/// A conversation of the sandbox's generated ones, by number.
fn conversation(vendor: Vendor, n: u64) -> String {
    match vendor {
        Vendor::Allegro => format!("sbx{n:040}"),
        Vendor::MercadoLibre => (2_000_000_100_000_000u64 + n).to_string(),
        Vendor::Magalu => format!("6628d7a3{n:016x}"),
        Vendor::Ozon => format!("{n:08x}-a474-469f-95d5-{n:012x}"),
    }
}

/// One step of `account`, stored: its requests, seconds and changes.
async fn pass(sandbox: &Sandbox, account: &Account, store: &SqliteStore) -> (u64, f64, usize) {
    let from = sandbox.requests();
    let started = Instant::now();
    let changes = sync::sync_account(account, store)
        .await
        .expect("sync")
        .changes;
    (
        sandbox.requests() - from,
        started.elapsed().as_secs_f64(),
        changes.len(),
    )
}

/// A first sync of `n` conversations × 40 messages at 50 ms: requests, seconds, changes.
async fn first_sync(vendor: Vendor, n: u64, concurrency: Option<u32>) -> (u64, f64, usize) {
    let sandbox = Sandbox::start(Config::paced(n, 40, Duration::from_millis(50)))
        .await
        .expect("sandbox");
    let mut config = common::account(&sandbox, vendor);
    if let Some(c) = concurrency {
        config = config.concurrency(c);
    }
    let account = Account::from_config(&config).expect("account");
    let store = SqliteStore::in_memory().await.expect("store");
    let first = pass(&sandbox, &account, &store).await;
    assert_eq!(sandbox.rate_limited(), 0, "{vendor:?}: no 429");
    first
}

#[tokio::main]
async fn main() {
    println!(
        "{:<13} {:>6} {:>8} {:>9} {:>13} {:>12} {:>9} {:>13}",
        "first sync",
        "conv.",
        "changes",
        "requests",
        "one by one s",
        "concurrent s",
        "floor s",
        "conc. × floor"
    );
    let smoke = common::smoke();
    // A smoke run (under `cargo test`): a conversation or two each.
    let scale = |n: u64| if smoke { n.min(2) } else { n };
    for (vendor, n) in [
        (Vendor::Allegro, 200),
        (Vendor::MercadoLibre, 15),
        (Vendor::Magalu, 20),
        (Vendor::Ozon, 200),
    ] {
        let n = scale(n);
        let one = first_sync(vendor, n, Some(1)).await;
        let all = first_sync(vendor, n, None).await;
        assert_eq!(one.2, all.2, "{vendor:?}: the same changes");
        let floor = all.0 as f64 / Limit::published_read_rate(vendor);
        println!(
            "{:<13} {:>6} {:>8} {:>9} {:>13.2} {:>12.2} {:>9.2} {:>12.2}x",
            vendor.prefix(),
            n,
            all.2,
            all.0,
            one.1,
            all.1,
            floor,
            all.1 / floor
        );
    }
    println!();
    println!(
        "{:>6} {:<13} {:>14} {:>10} {:>14} {:>8} {:>16} {:>10}",
        "conv.",
        "marketplace",
        "first requests",
        "first s",
        "quiet requests",
        "quiet s",
        "5 new: requests",
        "5 new: s"
    );
    let sizes: &[u64] = if smoke { &[10] } else { &[1_000, 10_000] };
    for &size in sizes {
        let sandbox = Sandbox::start(Config {
            conversations: size,
            messages_per_conversation: 2,
            ..Config::default()
        })
        .await
        .expect("sandbox");
        let store = SqliteStore::in_memory().await.expect("store");
        let mut first = Vec::new();
        for vendor in Vendor::ALL {
            let account = unlimited(common::account(&sandbox, vendor), vendor);
            let account = Account::from_config(&account).expect("account");
            first.push(pass(&sandbox, &account, &store).await);
        }
        sandbox.set_latency(Duration::from_millis(50));
        for (vendor, first) in Vendor::ALL.into_iter().zip(first) {
            let account =
                Account::from_config(&common::account(&sandbox, vendor)).expect("account");
            let quiet = pass(&sandbox, &account, &store).await;
            assert_eq!(quiet.2, 0, "{vendor:?}: a quiet pass finds nothing");
            for n in 1..=5 {
                assert!(sandbox.buyer_writes(vendor, &conversation(vendor, n), "one more"));
            }
            let busy = pass(&sandbox, &account, &store).await;
            assert!(busy.2 >= 5, "{vendor:?}: the new messages were found");
            println!(
                "{:>6} {:<13} {:>14} {:>10.2} {:>14} {:>8.2} {:>16} {:>10.2}",
                size,
                vendor.prefix(),
                first.0,
                first.1,
                quiet.0,
                quiet.1,
                busy.0,
                busy.1
            );
        }
    }
}
