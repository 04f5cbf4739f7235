//! Steady-state sync: after a first sync of every marketplace (zero latency, limits
//! lifted), passes at 50 ms a request under the published limits — a quiet one, then one
//! after 5 new buyer messages — with the requests and time each costs, at two sizes.
//!
//! `cargo bench -p marketplace-inbox --bench sync`

use std::time::{Duration, Instant};

use inbox_sandbox::{Config, Sandbox, Vendor};
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
    let changes = sync::sync_account(account, store).await.expect("sync");
    (
        sandbox.requests() - from,
        started.elapsed().as_secs_f64(),
        changes.len(),
    )
}

#[tokio::main]
async fn main() {
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
    for size in [1_000, 10_000] {
        let sandbox = Sandbox::start(Config {
            conversations: size,
            messages_per_conversation: 2,
            ..Config::default()
        })
        .await
        .expect("sandbox");
        let store = SqliteStore::in_memory().expect("store");
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
