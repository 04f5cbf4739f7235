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
    let store = SqliteStore::in_memory().unwrap();
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
            let results = sync::sync(&inbox, &store).await;
            let mut all_ok = true;
            for (account, result) in results {
                match result {
                    Ok(changes) => {
                        for change in changes {
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
    assert_eq!(store.message_count(None).unwrap(), expected as u64);
}
