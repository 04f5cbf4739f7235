//! The `inbox` binary end to end against the sandbox, for every subcommand and every
//! marketplace, asserting on its JSON output.

use std::process::Output;

use inbox_sandbox::{Config, Sandbox, Vendor};
use serde_json::Value;

mod common;

const EXAMPLES: [&str; 4] = [
    "allegro:dpYCg9auts9xpSojwC6DWPvyVKHraqDCZCiT70j6pcf",
    "mercadolibre:2000000089077943",
    "magalu:6628d7a3c01daebde56f5600",
    "ozon:99feb3fc-a474-469f-95d5-268b470cc607",
];

struct Env {
    sandbox: Sandbox,
    _runtime: tokio::runtime::Runtime,
}

fn start() -> Env {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = runtime.block_on(Sandbox::start(Config::default())).unwrap();
    Env {
        sandbox,
        _runtime: runtime,
    }
}

impl Env {
    fn inbox(&self, args: &[&str]) -> Output {
        let c = self.sandbox.credentials();
        let mut cmd = common::inbox_command();
        cmd.args(args)
            .env_clear()
            .env("INBOX_ALLEGRO_URL", self.sandbox.url(Vendor::Allegro))
            .env(
                "INBOX_MERCADOLIBRE_URL",
                self.sandbox.url(Vendor::MercadoLibre),
            )
            .env("INBOX_MAGALU_URL", self.sandbox.url(Vendor::Magalu))
            .env("INBOX_OZON_URL", self.sandbox.url(Vendor::Ozon))
            .env("ALLEGRO_TOKEN", &c.allegro_token)
            .env("MERCADOLIBRE_TOKEN", &c.mercadolibre_token)
            .env("MERCADOLIBRE_SELLER_ID", &c.mercadolibre_seller_id)
            .env("MAGALU_TOKEN", &c.magalu_token)
            .env("MAGALU_OWNER_NAME", "Joseph Climber")
            .env("MAGALU_OWNER_ID", "j.climber")
            .env("OZON_CLIENT_ID", &c.ozon_client_id)
            .env("OZON_API_KEY", &c.ozon_api_key);
        cmd.output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.inbox(&full);
        assert!(
            out.status.success(),
            "inbox {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        common::json_lines(&String::from_utf8(out.stdout).unwrap())
    }
}

#[test]
fn conversations_of_every_marketplace_follow_the_json_contract() {
    let env = start();
    let all = env.json(&["conversations"]);
    for m in ["allegro", "mercadolibre", "magalu", "ozon"] {
        assert!(all.iter().any(|c| c["marketplace"] == m), "{m} missing");
    }
    for c in &all {
        for key in [
            "marketplace",
            "ref",
            "id",
            "kind",
            "status",
            "unread",
            "last_activity_at",
        ] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
        assert_eq!(
            c["ref"],
            format!(
                "{}:{}",
                c["marketplace"].as_str().unwrap(),
                c["id"].as_str().unwrap()
            )
        );
    }
    assert!(
        all.iter().any(|c| c["kind"] == "post_purchase_issue"),
        "Allegro beta post-purchase issues are listed"
    );
    let ozon_only = env.json(&["conversations", "--marketplace", "ozon"]);
    assert!(!ozon_only.is_empty() && ozon_only.iter().all(|c| c["marketplace"] == "ozon"));
    let unread = env.json(&["conversations", "--unread"]);
    assert!(!unread.is_empty() && unread.iter().all(|c| c["unread"] == true));
}

#[test]
fn a_sent_message_appears_in_messages_for_every_marketplace() {
    let env = start();
    for reference in EXAMPLES {
        let before = env.json(&["messages", reference]);
        assert!(!before.is_empty(), "{reference}");
        for m in &before {
            for key in [
                "marketplace",
                "conversation",
                "id",
                "author_role",
                "author",
                "text",
                "created_at",
                "attachments",
            ] {
                assert!(m.get(key).is_some(), "{key} missing in {m}");
            }
            assert!(m["created_at"].as_str().unwrap().ends_with('Z'), "UTC: {m}");
            assert_eq!(m["conversation"], reference);
        }
        let text = format!("Sandbox reply to {reference}");
        let sent = env.json(&["send", reference, "--text", &text]);
        assert_eq!(sent[0]["sent"], true);
        let after = env.json(&["messages", reference]);
        assert_eq!(after.len(), before.len() + 1, "{reference}");
        let mine = after
            .iter()
            .find(|m| m["text"] == text.as_str())
            .unwrap_or_else(|| panic!("{reference}: not found"));
        assert_eq!(mine["author_role"], "seller");
    }
}

#[test]
fn read_makes_unread_drop_for_every_marketplace() {
    let env = start();
    for reference in EXAMPLES {
        let marketplace = reference.split(':').next().unwrap();
        let count = |env: &Env| {
            env.json(&["unread"])
                .into_iter()
                .find(|s| s["marketplace"] == marketplace)
                .unwrap()["conversations"]
                .as_u64()
                .unwrap()
        };
        let before = count(&env);
        let read = env.json(&["read", reference]);
        assert_eq!(read[0]["read"], true);
        assert_eq!(count(&env), before - 1, "{reference}");
    }
}

#[test]
fn over_long_text_gives_a_clear_error_and_nothing_is_sent() {
    let env = start();
    for (reference, limit) in [(EXAMPLES[0], 2000), (EXAMPLES[1], 350), (EXAMPLES[3], 1000)] {
        let before = env.json(&["messages", reference]).len();
        let requests = env.sandbox.requests();
        let text = "x".repeat(limit + 1);
        let out = env.inbox(&["send", reference, "--text", &text]);
        assert!(!out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("at most {limit}"))
                || stderr.contains(&format!("1 to {limit}")),
            "{stderr}"
        );
        assert!(
            stderr.contains(reference.split(':').next().unwrap()),
            "names the marketplace: {stderr}"
        );
        assert_eq!(env.sandbox.requests(), requests, "no request was made");
        assert_eq!(env.json(&["messages", reference]).len(), before);
    }
}

#[test]
fn attachments_are_uploaded_the_vendors_way() {
    let env = start();
    let dir = std::env::temp_dir().join(format!("inbox-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pdf = dir.join("nota.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 sandbox").unwrap();
    for reference in [EXAMPLES[0], EXAMPLES[1], EXAMPLES[3]] {
        env.json(&[
            "send",
            reference,
            "--text",
            "Segue o documento",
            "--attach",
            pdf.to_str().unwrap(),
        ]);
        let after = env.json(&["messages", reference]);
        let with_file = after
            .iter()
            .find(|m| m["attachments"].as_array().is_some_and(|a| !a.is_empty()));
        let marketplace = reference.split(':').next().unwrap();
        if marketplace != "ozon" {
            let a = &with_file.unwrap_or_else(|| panic!("{reference}: no attachment"))
                ["attachments"][0];
            assert_eq!(a["name"], "nota.pdf", "{reference}: {a}");
            assert_eq!(a["downloadable"], true, "{reference}: {a}");
            // Downloaded back by the id `messages` printed, byte for byte.
            let saved = dir.join(format!("{marketplace}.pdf"));
            let id = a["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{reference}: no id: {a}"));
            let done = env.json(&["download", reference, id, "--out", saved.to_str().unwrap()]);
            assert_eq!(done[0]["bytes"], 16, "{done:?}");
            assert_eq!(std::fs::read(&saved).unwrap(), b"%PDF-1.4 sandbox");
        }
    }
    let missing = env.inbox(&["download", EXAMPLES[0], "no-such-file", "--out", "x.pdf"]);
    assert!(!missing.status.success());
    let out = env.inbox(&[
        "send",
        EXAMPLES[2],
        "--text",
        "doc",
        "--attach",
        pdf.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("magalu"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn export_writes_every_message_as_json_lines() {
    let env = start();
    let out = std::env::temp_dir().join(format!("inbox-export-{}.jsonl", std::process::id()));
    let run = env.inbox(&["export", "--out", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let lines: Vec<Value> = common::json_lines(&std::fs::read_to_string(&out).unwrap());
    // Every conversation of every marketplace, read ones included: 12 generated
    // conversations of 6 messages plus the example (Mercado Libre's packs enumerated
    // through the seller's orders).
    let count = |m: &str| lines.iter().filter(|l| l["marketplace"] == m).count();
    assert_eq!(count("allegro"), 12 * 6 + 2);
    assert_eq!(count("magalu"), 12 * 6 + 1);
    assert_eq!(count("ozon"), 12 * 6 + 1);
    assert_eq!(count("mercadolibre"), 12 * 6 + 2);
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| format!("{}/{}", l["conversation"], l["id"]))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), lines.len(), "no message twice");
    assert!(String::from_utf8_lossy(&run.stderr)
        .contains(&format!("exported {} messages", lines.len())));
    std::fs::remove_file(&out).ok();
}

#[test]
fn watch_prints_messages_that_arrive_between_polls() {
    let env = start();
    let c = env.sandbox.credentials().clone();
    let db = std::env::temp_dir().join(format!("inbox-watch-{}.db", std::process::id()));
    // The first pass prints everything: more than a pipe holds while nobody reads it.
    let printed_to = std::env::temp_dir().join(format!("inbox-watch-{}.jsonl", std::process::id()));
    let mut cmd = common::inbox_command();
    cmd.args(["--json", "watch", "--interval", "2", "--polls", "2", "--db"])
        .arg(&db)
        .env_clear()
        .env("INBOX_ALLEGRO_URL", env.sandbox.url(Vendor::Allegro))
        .env(
            "INBOX_MERCADOLIBRE_URL",
            env.sandbox.url(Vendor::MercadoLibre),
        )
        .env("INBOX_MAGALU_URL", env.sandbox.url(Vendor::Magalu))
        .env("INBOX_OZON_URL", env.sandbox.url(Vendor::Ozon))
        .env("ALLEGRO_TOKEN", &c.allegro_token)
        .env("MERCADOLIBRE_TOKEN", &c.mercadolibre_token)
        .env("MERCADOLIBRE_SELLER_ID", &c.mercadolibre_seller_id)
        .env("MAGALU_TOKEN", &c.magalu_token)
        .env("OZON_CLIENT_ID", &c.ozon_client_id)
        .env("OZON_API_KEY", &c.ozon_api_key)
        .stdout(std::fs::File::create(&printed_to).unwrap())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Wait until the first pass has imported (and printed) what is already there.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stderr.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("watching"), "{line}");
    let vendors = [
        Vendor::Allegro,
        Vendor::MercadoLibre,
        Vendor::Magalu,
        Vendor::Ozon,
    ];
    for (vendor, reference) in vendors.into_iter().zip(EXAMPLES) {
        let id = reference.split_once(':').unwrap().1;
        assert!(env.sandbox.buyer_writes(
            vendor,
            id,
            &format!("new from the buyer in {reference}")
        ));
    }
    assert!(child.wait().unwrap().success());
    let all: Vec<Value> = common::json_lines(&std::fs::read_to_string(&printed_to).unwrap());
    let mut ids: Vec<String> = all
        .iter()
        .filter(|l| l["event"] == "new_message")
        .map(|l| format!("{}/{}", l["conversation"], l["id"]))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "no message printed twice");
    let printed: Vec<&Value> = all
        .iter()
        .filter(|l| {
            l["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("new from the buyer"))
        })
        .collect();
    assert_eq!(printed.len(), 4, "{printed:?}");
    std::fs::remove_file(&db).ok();
    std::fs::remove_file(&printed_to).ok();
    for reference in EXAMPLES {
        let m = printed
            .iter()
            .find(|m| m["conversation"] == reference)
            .unwrap_or_else(|| panic!("{reference} missing: {printed:?}"));
        assert_eq!(m["text"], format!("new from the buyer in {reference}"));
        assert_eq!(m["event"], "new_message");
        assert_ne!(m["author_role"], "seller");
    }
}

#[test]
fn errors_are_one_line_name_the_marketplace_and_never_show_secrets() {
    let env = start();
    let out = common::inbox_command()
        .args(["conversations"])
        .env_clear()
        .env("INBOX_ALLEGRO_URL", env.sandbox.url(Vendor::Allegro))
        .env("ALLEGRO_TOKEN", "wrong-secret-token")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("allegro") && stderr.contains("401") && stderr.contains("ALLEGRO_TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-secret-token"), "{stderr}");
    let none = common::inbox_command()
        .args(["unread"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--sandbox"));
    let bad_ref = env.inbox(&["messages", "ebay:1"]);
    assert!(!bad_ref.status.success());
}

#[test]
fn sandbox_flag_works_with_nothing_configured() {
    let out = common::inbox_command()
        .args(["--sandbox", "--json", "conversations"])
        .env_clear()
        .output()
        .unwrap();
    let lines = common::printed(out);
    for m in ["allegro", "mercadolibre", "magalu", "ozon"] {
        assert!(lines.iter().any(|c| c["marketplace"] == m), "{m}");
    }
}

#[test]
fn a_closed_stdout_ends_quietly_instead_of_panicking() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = common::inbox_command()
        .args(["--sandbox", "conversations"])
        .env_clear()
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}

/// Two sandboxes stand for two sellers on each of Allegro and Ozon: different
/// credentials, and B has conversations A does not.
#[test]
fn with_two_accounts_of_a_marketplace_printed_references_reach_their_owner() {
    use inbox_sandbox::Credentials;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = |allegro: &str, ozon: &str, conversations| {
        let credentials = Credentials {
            allegro_token: allegro.into(),
            ozon_client_id: ozon.into(),
            ..Credentials::default()
        };
        runtime
            .block_on(Sandbox::start(Config {
                conversations,
                credentials,
                ..Config::default()
            }))
            .unwrap()
    };
    let a = start("tok-a", "111", 2);
    let b = start("tok-b", "222", 12);
    let mut accounts = Vec::new();
    for (sandbox, suffix) in [(&a, "a"), (&b, "b")] {
        for account in sandbox.accounts_config()["accounts"].as_array().unwrap() {
            let mut account = account.clone();
            match account["marketplace"].as_str() {
                Some("allegro") => account["name"] = format!("shop-{suffix}").into(),
                Some("ozon") => account["name"] = format!("ru-{suffix}").into(),
                _ => continue,
            }
            accounts.push(account);
        }
    }
    let dir = std::env::temp_dir().join(format!("inbox-two-accounts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("accounts.json");
    std::fs::write(
        &config,
        serde_json::json!({ "accounts": accounts }).to_string(),
    )
    .unwrap();
    let run = |args: &[&str]| -> Output {
        common::inbox_command()
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };

    let listed = common::printed(run(&["--json", "conversations"]));
    let refs: Vec<&str> = listed.iter().filter_map(|c| c["ref"].as_str()).collect();
    for c in &listed {
        let (r, account) = (c["ref"].as_str().unwrap(), c["account"].as_str().unwrap());
        assert!(r.contains(&format!("@{account}:")), "{r} names {account}");
    }
    // The example conversation plus the generated ones, per seller.
    let count = |prefix: &str| refs.iter().filter(|r| r.starts_with(prefix)).count();
    assert_eq!(count("allegro@shop-a:"), 3, "{refs:?}");
    assert_eq!(count("allegro@shop-b:"), 13, "{refs:?}");
    assert_eq!(count("ozon@ru-a:"), 3, "{refs:?}");
    assert_eq!(count("ozon@ru-b:"), 13, "{refs:?}");

    // Conversations only B has, used exactly as printed.
    let allegro_b = "allegro@shop-b:sbx0000000000000000000000000000000000000010";
    let ozon_b = "ozon@ru-b:0000000a-a474-469f-95d5-00000000000a";
    for r in [allegro_b, ozon_b] {
        assert!(refs.contains(&r), "{r} listed");
        let messages = common::printed(run(&["--json", "messages", r]));
        assert!(!messages.is_empty());
        assert!(
            messages.iter().all(|m| m["conversation"] == r),
            "{messages:?}"
        );
        let sent = common::printed(run(&["--json", "send", r, "--text", "Dziękujemy"]));
        assert_eq!(sent[0]["ref"], r);
        let read = common::printed(run(&["--json", "read", r]));
        assert_eq!(read[0]["ref"], r);
    }

    // Every request each sandbox received carried that seller's own credentials, and the
    // conversations of B were never asked of A.
    for (sandbox, allegro, ozon) in [(&a, "tok-a", "111"), (&b, "tok-b", "222")] {
        for r in sandbox.received() {
            let want = match r.vendor {
                inbox_sandbox::Vendor::Allegro => allegro,
                _ => ozon,
            };
            assert_eq!(r.credential.as_deref(), Some(want), "{r:?}");
        }
    }
    let asked = |sandbox: &Sandbox, id: &str| {
        sandbox
            .received()
            .into_iter()
            .filter(|r| r.path.contains(id))
            .count()
    };
    assert_eq!(asked(&a, "sbx0000000000000000000000000000000000000010"), 0);
    assert!(asked(&b, "sbx0000000000000000000000000000000000000010") >= 3);
    let b_sent = b
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/chat/send/message")
        .count();
    let a_sent = a
        .received()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/chat/send/message")
        .count();
    assert_eq!((a_sent, b_sent), (0, 1));

    // A plain reference is ambiguous here: one clear line naming the accounts; --account
    // picks one.
    let plain = "allegro:sbx0000000000000000000000000000000000000010";
    let out = run(&["messages", plain]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("shop-a, shop-b"), "{err}");
    let picked = common::printed(run(&["--json", "--account", "shop-b", "messages", plain]));
    assert!(!picked.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_dot_segment_reference_is_refused_before_any_request() {
    let env = start();
    for args in [
        vec!["send", "allegro:..", "--text", "hi"],
        vec!["messages", "magalu:."],
        vec!["read", "mercadolibre:.."],
    ] {
        let out = env.inbox(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("route"), "{err}");
    }
    assert_eq!(env.sandbox.requests(), 0);
}

#[test]
fn start_opens_an_allegro_thread_and_an_ozon_chat_and_is_refused_elsewhere() {
    let env = start();
    // Buyer 3 of the sandbox, about their order.
    let allegro = env.json(&[
        "start",
        "--marketplace",
        "allegro",
        "--to",
        "buyer-3",
        "--order",
        "9000003",
        "--text",
        "Dzień dobry, paczka wysłana",
    ]);
    assert_eq!(allegro[0]["started"], true);
    let thread = allegro[0]["ref"].as_str().unwrap().to_string();
    assert!(thread.starts_with("allegro:"), "{thread}");
    let messages = env.json(&["messages", &thread]);
    assert!(messages
        .iter()
        .any(|m| m["text"] == "Dzień dobry, paczka wysłana" && m["author_role"] == "seller"));

    let ozon = env.json(&[
        "start",
        "--marketplace",
        "ozon",
        "--posting",
        "87654321-0001-1",
    ]);
    let chat = ozon[0]["ref"].as_str().unwrap().to_string();
    assert!(chat.starts_with("ozon:"), "{chat}");
    let again = env.json(&[
        "start",
        "--marketplace",
        "ozon",
        "--posting",
        "87654321-0001-1",
    ]);
    assert_eq!(
        again[0]["ref"],
        chat.as_str(),
        "the posting's chat, not a second one"
    );

    let before = env.sandbox.requests();
    for args in [
        vec!["start", "--marketplace", "magalu", "--text", "x"],
        vec!["start", "--marketplace", "allegro", "--to", "buyer-3"],
    ] {
        let out = env.inbox(&args);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .trim_end()
                .lines()
                .count(),
            1
        );
    }
    assert_eq!(env.sandbox.requests(), before, "refused before any request");
}

/// What a user types or writes in a config never panics: a bad `--interval` is a usage
/// error (exit 2), a period no limiter can hold is a config error (exit 1), each one
/// line; `watch` whose passes failed exits 1 when it stops.
#[test]
fn command_line_and_config_input_never_panic() {
    let env = start();
    for bad in ["inf", "nan", "-1", "1e20", "0", "soon"] {
        let out = env.inbox(&["watch", "--interval", bad, "--polls", "1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(!stderr.contains("panicked"), "{bad}: {stderr}");
        assert!(stderr.contains("--interval"), "{bad}: {stderr}");
    }
    let dir = std::env::temp_dir().join(format!("inbox-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("accounts.json");
    let url = env.sandbox.url(Vendor::Ozon);
    let c = env.sandbox.credentials();
    for per_secs in ["1e300", "1e19", "-1", "40000000"] {
        let config = format!(
            r#"{{"accounts": [{{"name": "ru", "marketplace": "ozon", "client_id": "{}", "api_key": "{}", "base_url": "{url}",
                "limits": {{"all": {{"requests": 1, "per_secs": {per_secs}}}}}}}]}}"#,
            c.ozon_client_id, c.ozon_api_key
        );
        std::fs::write(&path, config).unwrap();
        let out = env.inbox(&["--config", path.to_str().unwrap(), "unread"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{per_secs}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{per_secs}: {stderr}");
        assert!(stderr.contains("per_secs"), "{per_secs}: {stderr}");
        assert!(!stderr.contains(&c.ozon_api_key), "no secret in the error");
    }
    // A limit lifted with `{"requests": 0}` needs no period.
    let config = format!(
        r#"{{"accounts": [{{"name": "ru", "marketplace": "ozon", "client_id": "{}", "api_key": "{}", "base_url": "{url}",
            "limits": {{"all": {{"requests": 0}}}}}}]}}"#,
        c.ozon_client_id, c.ozon_api_key
    );
    std::fs::write(&path, config).unwrap();
    let out = env.inbox(&["--config", path.to_str().unwrap(), "unread"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every pass failing (nothing listens there): watch says so and exits 1.
    let config = r#"{"accounts": [{"name": "ru", "marketplace": "ozon", "client_id": "1", "api_key": "k", "base_url": "http://127.0.0.1:9", "retry": {"max_attempts": 1}}]}"#;
    std::fs::write(&path, config).unwrap();
    let out = env.inbox(&[
        "--config",
        path.to_str().unwrap(),
        "watch",
        "--interval",
        "0.05",
        "--polls",
        "2",
        "--db",
        dir.join("w.db").to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn printed_lines_read_back_into_the_facades_own_values() {
    use futures::StreamExt;
    use marketplace_inbox::sync::{Change, Event};
    use marketplace_inbox::{Conversation, ConversationQuery, Inbox, InboxConfig, Message};

    let env = start();
    let inbox = Inbox::from_config(
        &InboxConfig::from_value(env.sandbox.accounts_config()).expect("config"),
    )
    .expect("inbox");
    let (listed, all_messages) = env._runtime.block_on(async {
        let listed: Vec<Conversation> = inbox
            .conversations(ConversationQuery::new().with_state(true))
            .map(|t| t.item.expect("conversation"))
            .collect()
            .await;
        let messages: Vec<Message> = inbox
            .all_messages(ConversationQuery::new())
            .map(|t| t.item.expect("message"))
            .collect()
            .await;
        (listed, messages)
    });

    // `conversations`: every line is the facade's conversation, field for field.
    let printed = env.json(&["conversations"]);
    assert_eq!(printed.len(), listed.len());
    for line in &printed {
        let read: Conversation = serde_json::from_value(line.clone()).expect("a conversation");
        let own = listed
            .iter()
            .find(|c| c.reference == read.reference)
            .unwrap_or_else(|| panic!("{line} is not listed in-process"));
        assert_eq!(&read, own, "{line}");
        assert_eq!(line["vendor"], own.vendor.to_value());
    }
    for m in ["allegro", "mercadolibre", "magalu", "ozon"] {
        assert!(printed.iter().any(|c| c["marketplace"] == m), "{m}");
    }

    // `export` and `messages`: every line is the facade's message.
    let out = std::env::temp_dir().join(format!("inbox-roundtrip-{}.jsonl", std::process::id()));
    let run = env.inbox(&["--json", "export", "--out", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let exported = common::json_lines(&std::fs::read_to_string(&out).unwrap());
    std::fs::remove_file(&out).ok();
    assert_eq!(exported.len(), all_messages.len());
    let find = |m: &Message| {
        all_messages
            .iter()
            .find(|own| own.conversation == m.conversation && own.id == m.id)
            .cloned()
    };
    for line in &exported {
        let read: Message = serde_json::from_value(line.clone()).expect("a message");
        assert_eq!(
            Some(read),
            find(&serde_json::from_value(line.clone()).unwrap()),
            "{line}"
        );
    }
    for example in EXAMPLES {
        for line in env.json(&["messages", example]) {
            let read: Message = serde_json::from_value(line.clone()).expect("a message");
            assert_eq!(read.conversation.plain(), example);
            assert_eq!(find(&read).as_ref(), Some(&read), "{line}");
        }
    }

    // `sync`: every line is a change; its conversations and messages are the facade's.
    let db = std::env::temp_dir().join(format!("inbox-roundtrip-{}.db", std::process::id()));
    let changes = env.json(&["sync", "--db", db.to_str().unwrap()]);
    std::fs::remove_file(&db).ok();
    let mut new_messages = 0;
    for line in &changes {
        match serde_json::from_value::<Change>(line.clone()).expect("a change") {
            Change::Message(event, m) => {
                assert_eq!(event, Event::NewMessage);
                assert_eq!(find(&m).as_ref(), Some(&m), "{line}");
                new_messages += 1;
            }
            Change::Conversation(_, c) => {
                assert!(
                    listed.iter().any(|own| own.reference == c.reference),
                    "{line}"
                )
            }
            Change::Malformed(bad) => panic!("the sandbox serves no malformed element: {bad:?}"),
        }
    }
    assert_eq!(new_messages, all_messages.len());
}
