//! The facade's overhead: exporting one Ozon account (1,000 chats × 100 messages, zero
//! latency, limits lifted, one conversation at a time) through `Account::all_messages`,
//! against a minimal `reqwest` + `serde_json` loop over the same pages (the same
//! requests, checked). Runs alternate; the median of each pair's ratio is printed (aim
//! ≤ 1.05×).
//!
//! `cargo bench -p marketplace-inbox --bench overhead`

use std::time::Instant;

use futures::StreamExt;
use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::{Account, ConversationQuery};
use serde_json::{json, Value};

async fn facade(account: &Account) -> u64 {
    let mut n = 0;
    let mut all = account.all_messages(ConversationQuery::new());
    while let Some(m) = all.next().await {
        n += u64::from(m.is_ok());
    }
    n
}

async fn raw(http: &reqwest::Client, base: &str, id: &str, key: &str) -> u64 {
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("client-id", id)
            .header("api-key", key)
            .json(&body)
    };
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"limit": 100});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let page: Value = post("/v3/chat/list", body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for chat in page["chats"].as_array().into_iter().flatten() {
            let chat_id = chat["chat"]["chat_id"].as_str().unwrap_or_default();
            let history: Value = post(
                "/v3/chat/history",
                json!({"chat_id": chat_id, "direction": "Backward", "limit": 1000}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
            n += history["messages"].as_array().map_or(0, |m| m.len() as u64);
        }
        match (page["has_next"].as_bool(), page["cursor"].as_str()) {
            (Some(true), Some(c)) => cursor = Some(c.to_string()),
            _ => break,
        }
    }
    n
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

mod common;

/// Runs of each, alternated.
const RUNS: usize = 9;

#[tokio::main]
async fn main() {
    let smoke = common::smoke();
    let sandbox = Sandbox::start(Config {
        conversations: if smoke { 10 } else { 1_000 },
        messages_per_conversation: if smoke { 10 } else { 100 },
        ..Config::default()
    })
    .await
    .expect("sandbox");
    let account = common::account(&sandbox, Vendor::Ozon);
    let account =
        Account::from_config(&account.limit("all", 0, 1.0).concurrency(1)).expect("account");
    let http = reqwest::Client::new();
    let c = sandbox.credentials();
    let base = sandbox.url(Vendor::Ozon);
    let (mut f, mut r) = (Vec::new(), Vec::new());
    let runs = if smoke { 1 } else { RUNS };
    for _ in 0..runs {
        let t = Instant::now();
        let before = sandbox.requests();
        let a = facade(&account).await;
        f.push(t.elapsed().as_secs_f64());
        let facade_requests = sandbox.requests() - before;
        let t = Instant::now();
        let b = raw(&http, &base, &c.ozon_client_id, &c.ozon_api_key).await;
        r.push(t.elapsed().as_secs_f64());
        let raw_requests = sandbox.requests() - before - facade_requests;
        assert_eq!(facade_requests, raw_requests, "the same pages");
        assert_eq!(a, b, "the same messages");
    }
    let ratios = f.iter().zip(&r).map(|(f, r)| f / r).collect();
    let (f, r, ratio) = (median(f), median(r), median(ratios));
    println!("facade {f:.3} s, raw loop {r:.3} s (medians of {runs}); median ratio of the pairs {ratio:.3}x");
}
