//! The facade end to end against the sandbox, for all four marketplaces: list, read,
//! send, mark read, and the vendors' auth errors.

use futures::{StreamExt, TryStreamExt};
use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::*;

/// The sandbox's accounts, built the way users build theirs: from configuration.
fn config(s: &Sandbox) -> InboxConfig {
    serde_json::from_value(s.accounts_config()).unwrap()
}

fn accounts(s: &Sandbox) -> Vec<Account> {
    config(s)
        .accounts
        .iter()
        .map(|a| Account::from_config(a).unwrap())
        .collect()
}

/// The sandbox's accounts, sending each request at most twice, with short backoff.
fn twice(s: &Sandbox) -> Vec<Account> {
    let retry = RetrySettings {
        max_attempts: Some(2),
        base_delay_secs: Some(0.01),
        ..RetrySettings::default()
    };
    config(s)
        .accounts
        .into_iter()
        .map(|a| Account::from_config(&a.retry(retry.clone())).unwrap())
        .collect()
}

const EXAMPLES: [&str; 4] = [
    "allegro:dpYCg9auts9xpSojwC6DWPvyVKHraqDCZCiT70j6pcf",
    "mercadolibre:2000000089077943",
    "magalu:6628d7a3c01daebde56f5600",
    "ozon:99feb3fc-a474-469f-95d5-268b470cc607",
];

#[tokio::test]
async fn every_marketplace_lists_sends_and_marks_read() {
    let sandbox = Sandbox::start(Config {
        page_cap: Some(5),
        messages_per_conversation: 12,
        ..Config::default()
    })
    .await
    .unwrap();
    for (account, example) in accounts(&sandbox).into_iter().zip(EXAMPLES) {
        let m = account.marketplace();
        let conversations: Vec<Conversation> = account
            .conversations(ConversationQuery::new())
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{m}: {e}"));
        // Every conversation, read ones included (Mercado Libre's through the seller's
        // orders: the example pack holds two), over every page under a page cap of 5.
        assert_eq!(conversations.len(), 13, "{m}");
        if m == Marketplace::MercadoLibre {
            let unread: Vec<Conversation> = account
                .conversations(ConversationQuery::new().unread_only(true))
                .try_collect()
                .await
                .unwrap();
            // The unread packs: the example pack and every third generated one.
            assert_eq!(unread.len(), 5, "{m}");
        }
        let mut refs: Vec<String> = conversations.iter().map(|c| c.reference.plain()).collect();
        assert!(conversations
            .iter()
            .all(|c| c.reference.account.as_deref() == Some(m.as_str())));
        refs.sort();
        refs.dedup();
        assert_eq!(refs.len(), conversations.len(), "{m}: no duplicates");
        assert!(refs.contains(&example.to_string()), "{m}: {refs:?}");

        let reference: ConversationRef = example.parse().unwrap();
        let before: Vec<Message> = account
            .messages(&reference, MessageQuery::new())
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{m}: {e}"));
        assert!(!before.is_empty(), "{m}");
        let unread_before = account.unread().await.unwrap();
        assert!(unread_before.conversations >= 1, "{m}: {unread_before:?}");

        let text = format!("Reply from the sandbox test ({m})");
        account
            .send(&reference, &text, &[])
            .await
            .unwrap_or_else(|e| panic!("{m}: {e}"));
        let after: Vec<Message> = account
            .messages(&reference, MessageQuery::new())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(after.len(), before.len() + 1, "{m}");
        let sent = after
            .iter()
            .find(|msg| msg.text == text)
            .unwrap_or_else(|| panic!("{m}: sent message missing"));
        assert_eq!(sent.author.role, Role::Seller, "{m}");

        account
            .mark_read(&reference)
            .await
            .unwrap_or_else(|e| panic!("{m}: {e}"));
        let unread_after = account.unread().await.unwrap();
        assert_eq!(
            unread_after.conversations,
            unread_before.conversations - 1,
            "{m}"
        );
    }
}

#[tokio::test]
async fn mercadolibre_listing_never_marks_read() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let account = accounts(&sandbox).remove(1);
    let reference: ConversationRef = EXAMPLES[1].parse().unwrap();
    let before = account.unread().await.unwrap();
    let _: Vec<Message> = account
        .messages(&reference, MessageQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(account.unread().await.unwrap(), before);
}

#[tokio::test]
async fn over_long_text_is_refused_by_the_sandbox_too() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let client = inbox_ozon::Ozon::with_base_url(
        &sandbox.url(Vendor::Ozon),
        "123456",
        "sandbox-ozon-api-key",
    )
    .unwrap();
    let err = client
        .chat_api_chat_send_message()
        .body(inbox_ozon::types::ChatChatSendMessageRequest {
            chat_id: EXAMPLES[3].trim_start_matches("ozon:").into(),
            text: "x".repeat(1001),
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
}

#[tokio::test]
async fn wrong_credentials_get_the_vendors_auth_errors() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let mut wrong = sandbox.accounts_config();
    for account in wrong["accounts"].as_array_mut().unwrap() {
        for key in ["token", "api_key"] {
            if account.get(key).is_some() {
                account[key] = "wrong".into();
            }
        }
    }
    let wrong: InboxConfig = serde_json::from_value(wrong).unwrap();
    let bad: Vec<Account> = wrong
        .accounts
        .iter()
        .map(|a| Account::from_config(a).unwrap())
        .collect();
    for (account, status) in bad.into_iter().zip([401u16, 401, 401, 403]) {
        let first = account
            .conversations(ConversationQuery::new())
            .next()
            .await
            .unwrap();
        match first {
            Err(Error::Api {
                status: s,
                marketplace,
                ..
            }) => {
                assert_eq!(s, status, "{marketplace}");
                assert_eq!(marketplace, account.marketplace());
            }
            other => panic!("{}: {other:?}", account.marketplace()),
        }
    }
}

#[tokio::test]
async fn allegro_without_beta_falls_back_against_the_sandbox() {
    let sandbox = Sandbox::start(Config {
        allegro_beta: false,
        ..Config::default()
    })
    .await
    .unwrap();
    let account = accounts(&sandbox).remove(0);
    let conversations: Vec<Conversation> = account
        .conversations(ConversationQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(conversations.len(), 13);
}

#[tokio::test]
async fn rate_limits_reach_the_caller_after_the_last_attempt_with_retry_after() {
    let faults = inbox_sandbox::Faults {
        rate_429: 1.0,
        ..Default::default()
    };
    let sandbox = Sandbox::start(Config {
        faults,
        ..Config::default()
    })
    .await
    .unwrap();
    let firsts = futures::future::join_all(twice(&sandbox).into_iter().map(|account| async move {
        let first = account.conversations(ConversationQuery::new()).next().await;
        (account.marketplace(), first)
    }))
    .await;
    for (m, first) in firsts {
        match first {
            Some(Err(Error::RateLimited {
                marketplace,
                retry_after,
                message,
                attempts,
                operation,
            })) => {
                assert_eq!(marketplace, m);
                assert_eq!(operation, Some("list conversations"));
                assert_eq!(retry_after, Some(std::time::Duration::from_secs(1)));
                assert_eq!(attempts, 2, "{m}: sent twice, waiting Retry-After between");
                assert!(message.is_some(), "{m}: the vendor's message is kept");
            }
            other => panic!("{m}: {other:?}"),
        }
    }
    assert_eq!(sandbox.requests(), 8);
}

#[tokio::test]
async fn the_retry_quota_bounds_how_far_retries_multiply_an_outage() {
    let faults = inbox_sandbox::Faults {
        rate_500: 1.0,
        ..Default::default()
    };
    let sandbox = Sandbox::start(Config {
        faults,
        ..Config::default()
    })
    .await
    .unwrap();
    let retry = RetrySettings {
        max_attempts: Some(5),
        base_delay_secs: Some(0.0001),
        ..RetrySettings::default()
    };
    let ozon = config(&sandbox)
        .accounts
        .into_iter()
        .find(|a| a.marketplace == Marketplace::Ozon)
        .unwrap();
    let account = Account::from_config(&ozon.retry(retry)).unwrap();
    let mut attempts = Vec::new();
    for _ in 0..200 {
        match account.conversations(ConversationQuery::new()).next().await {
            Some(Err(Error::Api { attempts: n, .. })) => attempts.push(n),
            other => panic!("{other:?}"),
        }
    }
    // The quota (500, a retry costs 5) pays for 100 retries: the first 25 reads are
    // sent five times, the other 175 once — 300 requests, not 1,000.
    assert_eq!(attempts[..25], [5; 25]);
    assert!(attempts[25..].iter().all(|&a| a == 1), "{attempts:?}");
    assert_eq!(sandbox.requests(), 300);
}

#[tokio::test]
async fn injected_server_errors_name_the_marketplace() {
    let faults = inbox_sandbox::Faults {
        rate_500: 1.0,
        ..Default::default()
    };
    let sandbox = Sandbox::start(Config {
        faults,
        ..Config::default()
    })
    .await
    .unwrap();
    for account in twice(&sandbox) {
        match account
            .conversations(ConversationQuery::new())
            .next()
            .await
            .unwrap()
        {
            Err(
                e @ Error::Api {
                    status: 500,
                    attempts: 2,
                    ..
                },
            ) => {
                assert_eq!(e.marketplace(), Some(account.marketplace()));
                assert!(e.is_retryable());
            }
            other => panic!("{}: {other:?}", account.marketplace()),
        }
    }
    assert_eq!(sandbox.requests(), 8, "each read sent twice");
}

#[tokio::test]
async fn mercadolibre_lists_every_pack_through_the_sellers_orders() {
    let sandbox = Sandbox::start(Config {
        conversations: 120,
        ..Config::default()
    })
    .await
    .unwrap();
    let meli = accounts(&sandbox).remove(1);
    let listed: Vec<Conversation> = meli
        .conversations(ConversationQuery::new().with_state(true))
        .try_collect()
        .await
        .unwrap();
    // 122 orders (the example pack holds two) are 121 conversations, each once.
    let mut ids: Vec<&str> = listed.iter().map(|c| c.reference.id.as_str()).collect();
    assert_eq!(ids.len(), 121);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 121, "no conversation twice");
    assert!(ids.contains(&"2000000089077943"), "the example pack");
    assert!(
        ids.contains(&"2000000100000001"),
        "the order without a pack names itself"
    );
    let unread = listed
        .iter()
        .filter(|c| c.unread.is_some_and(|u| u.is_unread()))
        .count();
    assert_eq!(unread, 41, "the example and every third generated pack");
    // Three pages of orders, one unread listing for the whole listing, and the state of
    // each unread pack; nothing else.
    let received = sandbox.received();
    let count = |p: &str| received.iter().filter(|r| r.path.starts_with(p)).count();
    assert_eq!(count("/orders/search"), 3);
    assert_eq!(count("/messages/unread"), 1);
    assert_eq!(count("/messages/packs/"), 41);
}

/// `GET /_sandbox/stats` says what each account holds: exactly what the facade lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_stats_count_what_each_account_lists() {
    let sandbox = Sandbox::start(Config {
        conversations: 3,
        messages_per_conversation: 4,
        ..Config::default()
    })
    .await
    .unwrap();
    let stats = |sandbox: &Sandbox| {
        let url = format!("http://{}/_sandbox/stats", sandbox.addr());
        async move {
            inbox_core::http_client()
                .unwrap()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let before = stats(&sandbox).await;
    let rows = before["accounts"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for account in accounts(&sandbox) {
        let row = rows
            .iter()
            .find(|r| r["account"] == account.name())
            .unwrap_or_else(|| panic!("{} in {before}", account.name()));
        assert_eq!(row["marketplace"], account.marketplace().as_str());
        let listed: Vec<Conversation> = account
            .conversations(ConversationQuery::new())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(row["conversations"], listed.len(), "{}", account.name());
        let mut messages = 0;
        for c in &listed {
            let read: Vec<Message> = account
                .messages(&c.reference, MessageQuery::new())
                .try_collect()
                .await
                .unwrap();
            messages += read.len();
        }
        assert_eq!(row["messages"], messages, "{}", account.name());
    }
    assert!(sandbox.buyer_writes(Vendor::Ozon, "99feb3fc-a474-469f-95d5-268b470cc607", "ещё"));
    let after = stats(&sandbox).await;
    let ozon = |v: &serde_json::Value| {
        v["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["account"] == "ozon")
            .unwrap()["messages"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(ozon(&after), ozon(&before) + 1);
}

/// `GET` `path` of `vendor` on the sandbox as the holder of `bearer` (or Ozon's
/// `client_id`/`api_key`); the status.
async fn raw(sandbox: &Sandbox, vendor: Vendor, path: &str, creds: (&str, &str)) -> u16 {
    let client = inbox_core::http_client().unwrap();
    let url = format!("{}{path}", sandbox.url(vendor));
    let request = match vendor {
        Vendor::Ozon => client
            .post(url)
            .header("Client-Id", creds.0)
            .header("Api-Key", creds.1)
            .header("Content-Type", "application/json")
            .body(r#"{"filter": {}, "limit": 10}"#),
        Vendor::Allegro => client
            .get(url)
            .bearer_auth(creds.0)
            .header("Accept", "application/vnd.allegro.public.v1+json"),
        _ => client.get(url).bearer_auth(creds.0),
    };
    request.send().await.unwrap().status().as_u16()
}

/// `--accounts N`: every account has its own credentials and data, a message written in
/// one is seen by it alone, an account's credentials never read another's data, the
/// OAuth accounts refresh with their own single-use tokens, per-account limits count
/// each account and Allegro's per-application limit counts them together.
#[tokio::test]
async fn a_sandbox_of_many_accounts_keeps_each_ones_data_credentials_and_limits_apart() {
    use inbox_sandbox::{account_name, Limit};
    use std::collections::HashSet;
    use std::time::Duration;
    let minute = Duration::from_secs(60);
    let sandbox = Sandbox::start(Config {
        conversations: 2,
        messages_per_conversation: 2,
        accounts: 3,
        oauth_every: 3,
        limits: vec![
            Limit {
                vendor: Vendor::Allegro,
                writes: None,
                requests: 40,
                per: minute,
                per_application: true,
            },
            Limit {
                vendor: Vendor::Ozon,
                writes: None,
                requests: 12,
                per: minute,
                per_application: false,
            },
        ],
        ..Config::default()
    })
    .await
    .unwrap();
    let config = sandbox.accounts_config();
    let entries = config["accounts"].as_array().unwrap();
    let names: Vec<&str> = entries.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "allegro",
            "mercadolibre",
            "magalu",
            "ozon",
            "allegro-2",
            "mercadolibre-2",
            "magalu-2",
            "ozon-2",
            "allegro-3",
            "mercadolibre-3",
            "magalu-3",
            "ozon-3",
        ]
    );
    assert_eq!(account_name(Vendor::Magalu, 2), "magalu-2");
    // The third account's are OAuth (Ozon keeps its key); the others hold tokens.
    for a in entries {
        let oauth = a["name"].as_str().unwrap().ends_with("-3") && a["marketplace"] != "ozon";
        assert_eq!(a.get("refresh_token").is_some(), oauth, "{a}");
        assert_eq!(
            a.get("token").is_some(),
            oauth == (a["marketplace"] == "ozon"),
            "{a}"
        );
    }
    let inbox = Inbox::from_config(&serde_json::from_value(config.clone()).unwrap()).unwrap();

    let stats = sandbox.stats();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for account in inbox.accounts() {
        let listed: Vec<Conversation> = account
            .conversations(ConversationQuery::new())
            .try_collect()
            .await
            .unwrap();
        let row = stats.iter().find(|s| s.account == account.name()).unwrap();
        assert_eq!(row.conversations, listed.len() as u64, "{}", account.name());
        // The vendor's example lives in the first account only.
        let first = !account.name().contains('-');
        assert_eq!(
            listed.len(),
            if first { 3 } else { 2 },
            "{}",
            account.name()
        );
        for c in listed {
            let key = (account.marketplace().as_str().to_string(), c.reference.id);
            assert!(seen.insert(key.clone()), "{key:?} in two accounts");
        }
    }
    for vendor in [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu] {
        assert_eq!(
            sandbox.refreshes(vendor),
            1,
            "{vendor:?}: the OAuth account's"
        );
    }
    assert_eq!(sandbox.invalid_grants(), 0);

    // A buyer writes to ozon-2: only ozon-2 sees it.
    let ozon2 = inbox.account("ozon-2").unwrap();
    let chats: Vec<Conversation> = ozon2
        .conversations(ConversationQuery::new())
        .try_collect()
        .await
        .unwrap();
    let chat = &chats[0].reference;
    let id = sandbox
        .buyer_writes_to(Vendor::Ozon, "ozon-2", &chat.id, "only for ozon-2")
        .unwrap();
    let read: Vec<Message> = ozon2
        .messages(chat, MessageQuery::new())
        .try_collect()
        .await
        .unwrap();
    assert!(read
        .iter()
        .any(|m| m.id == id && m.text == "only for ozon-2"));
    let elsewhere: Vec<Result<Message, Error>> = inbox
        .account("ozon")
        .unwrap()
        .messages(
            &ConversationRef::new(Marketplace::Ozon, chat.id.clone()),
            MessageQuery::new(),
        )
        .collect()
        .await;
    // Another account's chat is not found there.
    assert!(
        matches!(
            elsewhere.as_slice(),
            [Err(Error::Api {
                marketplace: Marketplace::Ozon,
                status: 404,
                ..
            })]
        ),
        "{elsewhere:?}"
    );
    assert_eq!(
        sandbox.buyer_writes_to(Vendor::Ozon, "ozon-9", &chat.id, "no such account"),
        None
    );

    // The first account's token cannot read the second seller's orders.
    let c1 = sandbox.credentials().clone();
    let c2 = c1.of_account(2);
    assert_ne!(c1.mercadolibre_seller_id, c2.mercadolibre_seller_id);
    let orders = |seller: &str| format!("/orders/search?seller={seller}&limit=10");
    let own = raw(
        &sandbox,
        Vendor::MercadoLibre,
        &orders(&c2.mercadolibre_seller_id),
        (&c2.mercadolibre_token, ""),
    )
    .await;
    let other = raw(
        &sandbox,
        Vendor::MercadoLibre,
        &orders(&c2.mercadolibre_seller_id),
        (&c1.mercadolibre_token, ""),
    )
    .await;
    assert_eq!((own, other), (200, 403));

    // Ozon's limit is per account: ozon spends its own, ozon-2 still has room.
    let ozon_keys =
        |c: &inbox_sandbox::Credentials| (c.ozon_client_id.clone(), c.ozon_api_key.clone());
    let (k1, k2) = (ozon_keys(&c1), ozon_keys(&c2));
    let mut first = Vec::new();
    for _ in 0..12 {
        first.push(raw(&sandbox, Vendor::Ozon, "/v3/chat/list", (&k1.0, &k1.1)).await);
    }
    assert!(first.contains(&429), "{first:?}");
    assert_eq!(
        raw(&sandbox, Vendor::Ozon, "/v3/chat/list", (&k2.0, &k2.1)).await,
        200
    );
    // Allegro's is per application: the accounts together exhaust it.
    let threads = "/messaging/threads?limit=20";
    let mut statuses = Vec::new();
    for i in 0..40 {
        let token = if i % 2 == 0 {
            &c1.allegro_token
        } else {
            &c2.allegro_token
        };
        statuses.push(raw(&sandbox, Vendor::Allegro, threads, (token, "")).await);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused > 0, "{statuses:?}");
    assert_eq!(
        raw(
            &sandbox,
            Vendor::Allegro,
            threads,
            (&c1.of_account(3).allegro_token, "")
        )
        .await,
        429
    );
    let ozon_refused = first.iter().filter(|s| **s == 429).count();
    assert_eq!(sandbox.rate_limited() as usize, ozon_refused + refused + 1);
}
