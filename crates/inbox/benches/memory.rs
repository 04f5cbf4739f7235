//! Peak memory while streaming 10⁴, 10⁵ and 10⁶ messages through `Account::all_messages`
//! (Ozon, 100 messages a chat, limits lifted: memory, not pace, is measured). Each size
//! runs in a process of its own, so each peak (`VmHWM`) is its own; the sandbox runs in
//! that process too and its share is in the figure.
//!
//! `cargo bench -p marketplace-inbox --bench memory`

use futures::StreamExt;
use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::{Account, ConversationQuery};

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

async fn stream(messages: u64) -> (u64, u64) {
    let sandbox = Sandbox::start(Config {
        conversations: messages / 100,
        messages_per_conversation: 100,
        ..Config::default()
    })
    .await
    .expect("sandbox");
    let account = common::account(&sandbox, Vendor::Ozon);
    let account = Account::from_config(&account.limit("all", 0, 1.0)).expect("account");
    let mut seen = 0u64;
    let mut all = account.all_messages(ConversationQuery::new());
    while let Some(m) = all.next().await {
        if m.is_ok() {
            seen += 1;
        }
    }
    (seen, peak_kib())
}

mod common;

#[tokio::main]
async fn main() {
    if let Some(n) = std::env::args().nth(1).and_then(|a| a.parse::<u64>().ok()) {
        let (seen, peak) = stream(n).await;
        println!("{seen} {peak}");
        return;
    }
    println!("{:>10} {:>12}", "messages", "peak MiB");
    for n in [10_000u64, 100_000, 1_000_000] {
        let exe = std::env::current_exe().expect("exe");
        let out = std::process::Command::new(exe)
            .arg(n.to_string())
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let seen: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let peak: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        println!("{seen:>10} {:>12.1}", peak as f64 / 1024.0);
    }
}
