//! Peak memory while streaming 10⁴, 10⁵ and 10⁶ messages through `Account::all_messages`
//! (Ozon, 100 messages a chat, limits lifted: memory, not pace, is measured). The sandbox
//! runs in this process; each export runs in a child process of its own that holds only
//! the facade, so each peak (`VmHWM`) is the facade's alone.
//!
//! `cargo bench -p marketplace-inbox --bench memory`

use futures::StreamExt;
use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::{Account, ConversationQuery, InboxConfig};

mod common;

/// Set in the child: the sandbox's accounts, as JSON.
const CHILD: &str = "INBOX_MEMORY_BENCH_ACCOUNT";

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The child's part: streams every message and prints how many and its peak.
async fn child(config: &str) {
    let config: InboxConfig = serde_json::from_str(config).expect("accounts");
    let ozon = config
        .accounts
        .into_iter()
        .find(|a| a.marketplace.as_str() == Vendor::Ozon.prefix())
        .expect("account");
    let account = Account::from_config(&ozon.limit("all", 0, 1.0)).expect("account");
    let mut seen = 0u64;
    let mut all = account.all_messages(ConversationQuery::new());
    while let Some(m) = all.next().await {
        seen += u64::from(m.is_ok());
    }
    println!("{seen} {}", peak_kib());
}

#[tokio::main]
async fn main() {
    if let Ok(config) = std::env::var(CHILD) {
        return child(&config).await;
    }
    println!("{:>10} {:>16}", "messages", "facade peak MiB");
    let sizes: &[u64] = if common::smoke() {
        &[1_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    for &n in sizes {
        let sandbox = Sandbox::start(Config {
            conversations: n / 100,
            messages_per_conversation: 100,
            ..Config::default()
        })
        .await
        .expect("sandbox");
        // The runtime's workers serve the sandbox while this thread waits.
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env(CHILD, sandbox.accounts_config().to_string())
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let seen: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let peak: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(seen >= n, "{seen} of {n} messages");
        println!("{seen:>10} {:>16.1}", peak as f64 / 1024.0);
    }
}
