//! The sync engine: every message reaches the store exactly once across steps, also when
//! steps fail part-way (nothing of a failed step is stored; the next one fetches again).

use inbox_sandbox::{Config, Faults, Sandbox, Vendor};
use marketplace_inbox::sync::{self, Change, Event, SqliteStore};
use marketplace_inbox::*;

mod common;

#[tokio::test]
async fn every_message_is_stored_once_across_failing_steps() {
    // One request in eight fails with a 500, never repeated: steps fail part-way.
    let sandbox = Sandbox::start(Config {
        conversations: 6,
        messages_per_conversation: 5,
        faults: Faults {
            rate_500: 0.125,
            ..Faults::default()
        },
        ..Config::default()
    })
    .await
    .unwrap();
    let config = sandbox.accounts_config();
    let mut inbox = Inbox::new();
    for vendor in Vendor::ALL {
        let mut account =
            common::sandbox_account(&config, vendor, |_| {}).retry(RetrySettings::never());
        // Limits are not under test here.
        let names: &[&str] = match vendor {
            Vendor::Allegro => &["all", "messages"],
            Vendor::Ozon => &["all"],
            _ => &["reads", "writes"],
        };
        for name in names {
            account = account.limit(*name, 0, 1.0);
        }
        inbox.add(Account::from_config(&account).unwrap()).unwrap();
    }
    let store = SqliteStore::in_memory().await.unwrap();
    let examples = [
        (
            Vendor::Allegro,
            "dpYCg9auts9xpSojwC6DWPvyVKHraqDCZCiT70j6pcf",
        ),
        (Vendor::MercadoLibre, "2000000089077943"),
        (Vendor::Magalu, "6628d7a3c01daebde56f5600"),
        (Vendor::Ozon, "99feb3fc-a474-469f-95d5-268b470cc607"),
    ];
    let mut printed = std::collections::HashSet::new();
    let mut failures = 0;
    for round in 0..6 {
        for (vendor, id) in examples {
            assert!(sandbox.buyer_writes(vendor, id, &format!("round {round} in {id}")));
        }
        // Steps until every account has synced this round.
        for _ in 0..40 {
            let results = pass(&inbox, &store).await;
            let mut all_ok = true;
            for (account, result) in results {
                match result {
                    Ok(synced) => {
                        // A conversation that could not be read is left for the next step.
                        if !synced.skipped.is_empty() {
                            failures += 1;
                            all_ok = false;
                        }
                        for change in synced.changes {
                            if let Change::Message(Event::NewMessage, m) = change {
                                let key =
                                    (account.clone(), m.conversation.id.clone(), m.id.clone());
                                assert!(printed.insert(key), "a message reported new twice");
                            }
                        }
                    }
                    Err(_) => {
                        failures += 1;
                        all_ok = false;
                    }
                }
            }
            if all_ok {
                break;
            }
        }
    }
    assert!(failures > 0, "the faults made some steps fail");
    // Each marketplace: 6 generated conversations of 5 messages, the example's own, and 6
    // rounds of one buyer message.
    let expected = 4 * (6 * 5 + 6) + (2 + 2 + 1 + 1);
    assert_eq!(printed.len(), expected);
    assert_eq!(store.message_count(None).await.unwrap(), expected as u64);
}

/// One stored step of every account, as (account, result) pairs.
async fn pass(inbox: &Inbox, store: &SqliteStore) -> Vec<(String, Result<sync::Synced, Error>)> {
    sync::sync(inbox, store, sync::ACCOUNTS_AT_ONCE)
        .await
        .into_iter()
        .map(|t| (t.account, t.item))
        .collect()
}

/// The sandbox's accounts with their limits lifted (limits are not under test).
fn unlimited(sandbox: &Sandbox) -> Inbox {
    let config = sandbox.accounts_config();
    let mut inbox = Inbox::new();
    for vendor in Vendor::ALL {
        let mut account = common::sandbox_account(&config, vendor, |_| {});
        let names: &[&str] = match vendor {
            Vendor::Allegro => &["all", "messages"],
            Vendor::Ozon => &["all"],
            _ => &["reads", "writes"],
        };
        for name in names {
            account = account.limit(*name, 0, 1.0);
        }
        inbox.add(Account::from_config(&account).unwrap()).unwrap();
    }
    inbox
}

/// Requests per marketplace the sandbox received since its request count was `from`
/// (the newest ones of its log, which keeps the last 10,000).
fn cost(sandbox: &Sandbox, from: u64) -> [usize; 4] {
    let received = sandbox.received();
    let n = usize::try_from(sandbox.requests() - from).unwrap();
    assert!(n <= received.len(), "more requests than the log keeps");
    let tail = &received[received.len() - n..];
    Vendor::ALL.map(|v| tail.iter().filter(|r| r.vendor == v).count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_pass_costs_the_same_at_any_size_and_k_messages_cost_o_of_k() {
    // `INBOX_SYNC_SIZES=20000` measures other sizes (the README's figures).
    let sizes: Vec<u64> = std::env::var("INBOX_SYNC_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000]);
    let mut quiet = Vec::new();
    for size in sizes {
        let sandbox = Sandbox::start(Config {
            conversations: size,
            messages_per_conversation: 2,
            ..Config::default()
        })
        .await
        .unwrap();
        let inbox = unlimited(&sandbox);
        let store = SqliteStore::in_memory().await.unwrap();
        for (_, r) in pass(&inbox, &store).await {
            r.unwrap();
        }
        let imported = store.message_count(None).await.unwrap();
        assert_eq!(imported, 4 * 2 * size + 2 + 2 + 1 + 1);
        let from = sandbox.requests();
        for (_, r) in pass(&inbox, &store).await {
            let changes = r.unwrap().changes;
            assert!(
                changes.is_empty(),
                "a quiet pass finds nothing: {:?}",
                changes.first()
            );
        }
        quiet.push((size, cost(&sandbox, from)));

        // k buyer messages in k conversations of each marketplace.
        let k = 5;
        for vendor in Vendor::ALL {
            for n in 1..=k {
                let id = match vendor {
                    Vendor::Allegro => format!("sbx{n:040}"),
                    Vendor::MercadoLibre => (2_000_000_100_000_000u64 + n).to_string(),
                    Vendor::Magalu => format!("6628d7a3{n:016x}"),
                    Vendor::Ozon => format!("{n:08x}-a474-469f-95d5-{n:012x}"),
                };
                assert!(
                    sandbox.buyer_writes(vendor, &id, "one more"),
                    "{vendor:?} {id}"
                );
            }
        }
        let from = sandbox.requests();
        let mut new = 0;
        for (_, r) in pass(&inbox, &store).await {
            new += r
                .unwrap()
                .changes
                .iter()
                .filter(|c| matches!(c, Change::Message(Event::NewMessage, _)))
                .count();
        }
        assert_eq!(new, 4 * k as usize);
        let busy = cost(&sandbox, from);
        eprintln!(
            "size {size}: quiet pass {:?}, pass after {k} messages each {busy:?}",
            quiet.last().map(|q| q.1)
        );
        // O(k): what k messages add to a quiet pass.
        let base = quiet.last().map(|q| q.1).unwrap_or_default();
        for ((v, n), q) in Vendor::ALL.iter().zip(busy).zip(base) {
            assert!(
                n - q <= 2 * k as usize,
                "{v:?}: {n} requests ({q} quiet) for {k} messages"
            );
        }
    }
    // Allegro, Mercado Libre and Magalu: 1, 3 and 1 requests at every size. Ozon reads
    // its unread chats, 100 a request: one in three sandbox chats stays unread (plus the
    // example), so the cost follows the unread backlog, not the number of chats.
    for (size, [a, m, g, o]) in quiet {
        assert_eq!((a, m, g), (1, 3, 1), "size {size}");
        let unread = size / 3 + 1;
        assert_eq!(o as u64, unread.div_ceil(100), "size {size}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_appears_late_with_an_earlier_time_is_still_stored() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let inbox = unlimited(&sandbox);
    let store = SqliteStore::in_memory().await.unwrap();
    for (_, r) in pass(&inbox, &store).await {
        r.unwrap();
    }
    // Through the control endpoint, as another process would: one message at once, one
    // held by moderation for a second.
    let control = format!("http://{}/_sandbox", sandbox.addr());
    let http = reqwest::Client::new();
    for (marketplace, conversation, text, delay) in [
        (
            "ozon",
            "99feb3fc-a474-469f-95d5-268b470cc607",
            "at once",
            0.0,
        ),
        (
            "mercadolibre",
            "2000000089077943",
            "held by moderation",
            1.0,
        ),
    ] {
        let answer = http
            .post(format!("{control}/messages"))
            .json(
                &serde_json::json!({"marketplace": marketplace, "conversation": conversation,
                                      "text": text, "visible_after_secs": delay}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
    }
    let texts = |results: Vec<(String, Result<sync::Synced, Error>)>| -> Vec<String> {
        results
            .into_iter()
            .flat_map(|(_, r)| r.unwrap().changes)
            .filter_map(|c| match c {
                Change::Message(Event::NewMessage, m) => Some(m.text),
                _ => None,
            })
            .collect()
    };
    assert_eq!(texts(pass(&inbox, &store).await), ["at once"]);
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(texts(pass(&inbox, &store).await), ["held by moderation"]);
    assert!(texts(pass(&inbox, &store).await).is_empty());

    let counts: serde_json::Value = http
        .get(format!("{control}/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(counts["total"].as_u64().unwrap() > 0);
    assert!(
        counts["routes"]["GET /mercadolibre/messages/unread"]
            .as_u64()
            .unwrap()
            >= 3,
        "{counts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_step_reads_conversations_at_once_and_keeps_the_one_by_one_order() {
    // Every marketplace, 20 ms a request, its read limit scaled to 100 a second and
    // enforced: the step with the default concurrency finds exactly what the one-by-one
    // step finds, in the same order, with several requests in flight and no 429.
    for vendor in Vendor::ALL {
        let mut found = Vec::new();
        for concurrency in [1, 8] {
            let (sandbox, config) = common::paced_sandbox(
                vendor,
                100,
                Config {
                    conversations: 30,
                    messages_per_conversation: 3,
                    ..Config::default()
                },
            )
            .await;
            let config = config.concurrency(concurrency);
            let account = Account::from_config(&config).unwrap();
            let store = SqliteStore::in_memory().await.unwrap();
            let changes = sync::sync_account(&account, &store).await.unwrap().changes;
            let seen: Vec<String> = changes
                .iter()
                .map(|c| match c {
                    Change::Conversation(e, c) => format!("{e:?} {}", c.reference.id),
                    Change::Message(e, m) => format!("{e:?} {} {}", m.conversation.id, m.id),
                    Change::Malformed(bad) => format!("malformed {}", bad.raw),
                })
                .collect();
            let stored = store.message_count(None).await.unwrap();
            assert_eq!(stored, 30 * 3 + sandbox_examples(vendor), "{vendor:?}");
            assert_eq!(sandbox.rate_limited(), 0, "{vendor:?}: no 429");
            if concurrency > 1 {
                assert!(sandbox.max_in_flight() > 1, "{vendor:?}: reads at once");
            } else {
                assert_eq!(sandbox.max_in_flight(), 1, "{vendor:?}");
            }
            found.push(seen);
        }
        assert_eq!(
            found[0], found[1],
            "{vendor:?}: the same changes in the same order"
        );
    }
}

/// Messages of the vendors' own example conversations the sandbox adds.
fn sandbox_examples(vendor: Vendor) -> u64 {
    match vendor {
        Vendor::Allegro => 2,
        Vendor::MercadoLibre => 2,
        Vendor::Magalu => 1,
        Vendor::Ozon => 1,
    }
}
