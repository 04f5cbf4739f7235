//! `inbox accounts …` and processes that follow the database's accounts: an account
//! added, renamed and removed while `inbox serve` (SQLite) or two `inbox worker`s
//! (PostgreSQL) run is picked up, keeps its tokens through the rename (no import again,
//! no `invalid_grant`), and is no longer synced within 5 s of its removal (the sandbox's
//! request counts, by the Ozon account's `Client-Id`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use inbox_sandbox::{Config, OAuthConfig, Vendor};
use serde_json::{json, Value};

mod common;
use common::{inbox_command, json_lines, ok, start, stop, within, Env};
#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

const KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

fn inbox(args: &[&str]) -> std::process::Output {
    common::inbox_keyed(KEY, args)
}

/// The accounts `inbox accounts list --json` prints, by name.
fn listed(db: &str) -> std::collections::BTreeMap<String, Value> {
    json_lines(&ok(inbox(&["accounts", "list", "--json", "--db", db])))
        .into_iter()
        .map(|a| (a["name"].as_str().unwrap().to_string(), a))
        .collect()
}

/// A sandbox of two accounts per marketplace, every second one on OAuth with access
/// tokens that live 2 s, each polled every half second.
fn sandbox(name: &str) -> (Env, Vec<Value>) {
    let env = start(
        Config {
            conversations: 2,
            messages_per_conversation: 2,
            accounts: 2,
            oauth_every: 2,
            oauth: OAuthConfig {
                access_ttl: Duration::from_secs(2),
                ..OAuthConfig::default()
            },
            ..Config::default()
        },
        name,
    );
    let mut config = env.sandbox.accounts_config();
    let accounts = config["accounts"].as_array_mut().unwrap();
    for a in accounts.iter_mut() {
        a["poll_interval_secs"] = json!(0.5);
    }
    let all = accounts.clone();
    (env, all)
}

fn entry<'a>(all: &'a [Value], name: &str) -> &'a Value {
    all.iter().find(|a| a["name"] == name).unwrap()
}

/// Requests the sandbox's Ozon API received with `client_id`.
fn ozon_requests(env: &Env, client_id: &str) -> usize {
    env.sandbox
        .received()
        .iter()
        .filter(|r| r.vendor == Vendor::Ozon && r.credential.as_deref() == Some(client_id))
        .count()
}

/// The scenario, with `db` the database and the processes already running: the first
/// accounts imported first, then `ozon-2` added, renamed and removed, and the OAuth
/// `allegro-2` imported and renamed while it refreshes.
fn scenario(env: &Env, all: &[Value], db: &str) {
    let first: Vec<Value> = ["allegro", "mercadolibre", "magalu", "ozon"]
        .iter()
        .map(|n| entry(all, n).clone())
        .collect();
    let file = env.dir.join("first.json");
    std::fs::write(&file, json!({ "accounts": first }).to_string()).unwrap();
    let imported = ok(inbox(&[
        "accounts",
        "import",
        file.to_str().unwrap(),
        "--db",
        db,
    ]));
    assert_eq!(imported.matches("added").count(), 4, "{imported}");
    // Importing again changes nothing.
    let again = ok(inbox(&[
        "accounts",
        "import",
        file.to_str().unwrap(),
        "--db",
        db,
    ]));
    assert_eq!(again.matches("unchanged").count(), 4, "{again}");
    assert!(
        within(Duration::from_secs(30), || listed(db)
            .values()
            .all(|a| !a["last_sync"].is_null())),
        "the imported accounts were not synced: {:?}",
        listed(db)
    );

    // Disabled: not synced (no request with its Client-Id), kept; enabled: synced again.
    let first_ozon = entry(all, "ozon")["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = ok(inbox(&["accounts", "disable", "ozon", "--db", db]));
    assert!(out.contains("disabled"), "{out}");
    assert_eq!(listed(db)["ozon"]["state"], "disabled");
    std::thread::sleep(Duration::from_secs(5));
    let quiet = ozon_requests(env, &first_ozon);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        ozon_requests(env, &first_ozon),
        quiet,
        "a disabled account was synced"
    );
    ok(inbox(&["accounts", "enable", "ozon", "--db", db]));
    assert!(
        within(Duration::from_secs(5), || ozon_requests(env, &first_ozon)
            > quiet),
        "the enabled account is not synced again"
    );

    // Added from flags while running: synced within seconds.
    let ozon2 = entry(all, "ozon-2");
    let client_id = ozon2["client_id"].as_str().unwrap();
    let out = ok(inbox(&[
        "accounts",
        "add",
        "--db",
        db,
        "--json",
        "--name",
        "ozon-2",
        "--marketplace",
        "ozon",
        "--client-id",
        client_id,
        "--api-key",
        ozon2["api_key"].as_str().unwrap(),
        "--base-url",
        ozon2["base_url"].as_str().unwrap(),
        "--poll-interval",
        "0.5",
    ]));
    let added: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(added["state"], "active");
    assert_eq!(added["seller_id"], client_id);
    assert!(!out.contains(ozon2["api_key"].as_str().unwrap()), "{out}");
    assert!(
        within(Duration::from_secs(5), || !listed(db)["ozon-2"]
            ["last_sync"]
            .is_null()),
        "ozon-2 not synced within 5 s of being added"
    );

    // The OAuth account, imported, then renamed while its tokens rotate every 2 s.
    let oauth = env.dir.join("oauth.json");
    std::fs::write(
        &oauth,
        json!({ "accounts": [entry(all, "allegro-2")] }).to_string(),
    )
    .unwrap();
    ok(inbox(&[
        "accounts",
        "import",
        oauth.to_str().unwrap(),
        "--db",
        db,
    ]));
    assert!(within(Duration::from_secs(5), || !listed(db)["allegro-2"]
        ["last_sync"]
        .is_null()));
    let refreshes = env.sandbox.refreshes(Vendor::Allegro);
    let renamed: Value = serde_json::from_str(
        ok(inbox(&[
            "accounts",
            "rename",
            "allegro-2",
            "pl-oauth",
            "--db",
            db,
            "--json",
        ]))
        .trim(),
    )
    .unwrap();
    assert_eq!(renamed["name"], "pl-oauth");
    let before = listed(db)["pl-oauth"]["last_sync"].clone();
    // A buyer writes to it: the renamed account stores it (a commit, so a new last sync).
    let conversations = env.sandbox.conversations_of(Vendor::Allegro, "allegro-2");
    let conversation = conversations.first().unwrap();
    assert!(env
        .sandbox
        .buyer_writes_to(
            Vendor::Allegro,
            "allegro-2",
            conversation,
            "after the rename"
        )
        .is_some());
    assert!(
        within(Duration::from_secs(10), || {
            let now = &listed(db)["pl-oauth"]["last_sync"];
            now != &before && env.sandbox.refreshes(Vendor::Allegro) > refreshes + 1
        }),
        "the renamed OAuth account did not sync on with its tokens: {:?} {} → {}",
        listed(db)["pl-oauth"],
        refreshes,
        env.sandbox.refreshes(Vendor::Allegro)
    );
    assert_eq!(
        env.sandbox.invalid_grants(),
        0,
        "a spent refresh token was sent"
    );

    // The Ozon account renamed, then removed: no request with its Client-Id after 5 s.
    ok(inbox(&["accounts", "rename", "ozon-2", "ru-2", "--db", db]));
    let before = listed(db)["ru-2"]["last_sync"].clone();
    let conversations = env.sandbox.conversations_of(Vendor::Ozon, "ozon-2");
    assert!(env
        .sandbox
        .buyer_writes_to(
            Vendor::Ozon,
            "ozon-2",
            conversations.first().unwrap(),
            "renamed"
        )
        .is_some());
    assert!(
        within(Duration::from_secs(5), || listed(db)["ru-2"]["last_sync"]
            != before),
        "the renamed account is not synced"
    );
    ok(inbox(&["accounts", "remove", "ru-2", "--db", db]));
    let removed_at = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let after_five = ozon_requests(env, client_id);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        ozon_requests(env, client_id),
        after_five,
        "ru-2 still synced {:?} after its removal",
        removed_at.elapsed()
    );
    assert!(!listed(db).contains_key("ru-2"));
    let names: Vec<String> = listed(db).into_keys().collect();
    assert_eq!(
        names,
        ["allegro", "magalu", "mercadolibre", "ozon", "pl-oauth"]
    );
}

#[test]
fn serve_on_sqlite_follows_accounts_added_renamed_and_removed() {
    let (env, all) = sandbox("accounts-serve");
    let db = env.dir.join("inbox.db");
    let db = db.to_str().unwrap().to_string();
    // An empty database: serve waits for accounts.
    ok(inbox(&["accounts", "list", "--db", &db]));
    let serve = inbox_command()
        .args([
            "--json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-no-secret",
            "--poll-interval",
            "0.5",
            "--db",
            &db,
        ])
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    scenario(&env, &all, &db);
    let out = stop(serve);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("ru-2: no longer synced here"), "{stderr}");
    // Nothing imported twice: every message printed once, whatever the renames.
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    let mut seen = std::collections::HashSet::new();
    for l in lines.iter().filter(|l| l["event"] == "new_message") {
        let key = (
            l["ref"]
                .as_str()
                .unwrap_or_default()
                .rsplit(':')
                .next()
                .map(str::to_string),
            l["id"].clone().to_string(),
        );
        assert!(seen.insert(key.clone()), "printed twice: {l}");
    }
    assert!(!seen.is_empty());
    assert!(!stderr.contains(KEY));
}

#[test]
fn two_workers_on_postgres_follow_accounts_added_renamed_and_removed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("accounts")) else {
        return;
    };
    let (env, all) = sandbox("accounts-workers");
    // The schema first, so that both workers start on it.
    ok(inbox(&["accounts", "list", "--db", &db.url]));
    let spawn = || {
        inbox_command()
            .args(["--json", "worker", "--db", &db.url, "--concurrency", "4"])
            .env_clear()
            .env("INBOX_TOKEN_KEY", KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    scenario(&env, &all, &db.url);
    // A disabled account's job ends without a next run (none left to churn).
    ok(inbox(&["accounts", "disable", "magalu", "--db", &db.url]));
    let jobs = |key: &'static str| -> i64 {
        let rows: Vec<(i64,)> = runtime.block_on(pg::rows(&db.url, key)).unwrap_or_default();
        rows.first().map_or(-1, |r| r.0)
    };
    assert!(
        within(Duration::from_secs(10), || jobs(
            "SELECT COUNT(*) FROM graphile_worker.jobs WHERE key = 'inbox-sync:magalu'"
        ) == 0),
        "the disabled account's job is still scheduled"
    );
    assert_eq!(
        jobs("SELECT COUNT(*) FROM graphile_worker.jobs WHERE key = 'inbox-sync:ru-2'"),
        0,
        "the removed account's job is still scheduled"
    );
    for w in [a, b] {
        let out = stop(w);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("invalid_grant"), "{stderr}");
    }
    // Every message of the accounts there are, stored once.
    let counts: Vec<(String, i64, i64)> = runtime
        .block_on(pg::rows(
            &db.url,
            "SELECT account, COUNT(*), COUNT(DISTINCT (conversation, id)) FROM messages GROUP BY account ORDER BY account",
        ))
        .unwrap();
    for (account, n, distinct) in &counts {
        assert_eq!(n, distinct, "{account}: a message stored twice");
    }
    let names: Vec<&str> = counts.iter().map(|c| c.0.as_str()).collect();
    assert!(
        names.contains(&"pl-oauth") && !names.contains(&"allegro-2"),
        "{names:?}"
    );
    runtime.block_on(db.drop_now());
}

/// A seller revokes the app's grant while `inbox serve` syncs their account: it turns
/// `reauthorize` (said once), the token endpoint is called no more over many intervals;
/// imported again with the new grant, it is `active`, and its sync resumes where it
/// stopped (the new message printed, nothing imported again).
#[test]
fn a_revoked_grant_turns_reauthorize_and_a_new_grant_resumes_the_sync() {
    let env = start(
        Config {
            conversations: 2,
            messages_per_conversation: 2,
            ..Config::default()
        },
        "accounts-revoked",
    );
    let config = env.sandbox.oauth_accounts_config();
    let mut allegro = config["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["marketplace"] == "allegro")
        .unwrap()
        .clone();
    allegro["poll_interval_secs"] = json!(0.5);
    let file = env.dir.join("allegro.json");
    std::fs::write(&file, json!({ "accounts": [allegro] }).to_string()).unwrap();
    let db = env.dir.join("inbox.db");
    let db = db.to_str().unwrap().to_string();
    ok(inbox(&[
        "accounts",
        "import",
        file.to_str().unwrap(),
        "--db",
        &db,
    ]));
    let serve = inbox_command()
        .args([
            "--json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-no-secret",
        ])
        .args(["--poll-interval", "0.5", "--db", &db])
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(within(Duration::from_secs(20), || !listed(&db)["allegro"]
        ["last_sync"]
        .is_null()));

    assert!(env.sandbox.revoke(Vendor::Allegro, "allegro"));
    assert!(
        within(Duration::from_secs(10), || listed(&db)["allegro"]["state"]
            == "reauthorize"),
        "not marked reauthorize: {:?}",
        listed(&db)
    );
    let refused = env.sandbox.invalid_grants();
    assert!(refused >= 1);
    // The log says so, once.
    let events = ok(inbox(&["events", "--db", &db]));
    let marked = json_lines(&events)
        .into_iter()
        .filter(|e| e["type"] == "account.reauthorize" && e["account"] == "allegro")
        .count();
    assert_eq!(marked, 1, "{events}");
    // Eight intervals: no further token call.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        env.sandbox.invalid_grants(),
        refused,
        "the token endpoint was called again"
    );

    // Connected again: the new grant imported; it is active and syncs on.
    let refresh = env
        .sandbox
        .authorize_again(Vendor::Allegro, "allegro")
        .unwrap();
    let mut again = allegro.clone();
    again["refresh_token"] = json!(refresh);
    if let Some(entry) = again.as_object_mut() {
        entry.remove("access_token");
        entry.remove("expires_at");
    }
    std::fs::write(&file, json!({ "accounts": [again] }).to_string()).unwrap();
    let out = ok(inbox(&[
        "accounts",
        "import",
        file.to_str().unwrap(),
        "--db",
        &db,
        "--json",
    ]));
    assert!(out.contains("\"status\":\"updated\""), "{out}");
    assert_eq!(listed(&db)["allegro"]["state"], "active");
    let conversations = env.sandbox.conversations_of(Vendor::Allegro, "allegro");
    assert!(env
        .sandbox
        .buyer_writes_to(
            Vendor::Allegro,
            "allegro",
            conversations.first().unwrap(),
            "back again"
        )
        .is_some());
    let before = listed(&db)["allegro"]["last_sync"].clone();
    assert!(
        within(Duration::from_secs(10), || listed(&db)["allegro"]
            ["last_sync"]
            != before),
        "the account did not sync on"
    );
    let out = stop(serve);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("marked reauthorize").count(), 1, "{stderr}");
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    let messages: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "new_message")
        .collect();
    let held = env
        .sandbox
        .stats()
        .into_iter()
        .find(|s| s.account == "allegro" && s.marketplace == "allegro")
        .unwrap()
        .messages;
    assert_eq!(
        messages.len() as u64,
        held,
        "every message printed once, none again"
    );
    assert!(messages.iter().any(|m| m["text"] == "back again"));
}

/// Ozon's API keys expire: `serve` reads each key's expiry (`/v1/roles`) when the
/// account is loaded, stores it (`accounts list` shows it), says when one expires
/// within two weeks, and turns an expired one `reauthorize` (no longer synced).
#[test]
fn ozon_keys_that_expire_are_reported_and_expired_ones_turn_reauthorize() {
    let (env, all) = sandbox("accounts-expiry");
    let soon = chrono::Utc::now() + chrono::Duration::days(3);
    let past = chrono::Utc::now() - chrono::Duration::days(1);
    assert!(env.sandbox.set_key_expiry("ozon", soon));
    assert!(env.sandbox.set_key_expiry("ozon-2", past));
    let db = env.dir.join("inbox.db").to_str().unwrap().to_string();
    ok(inbox(&["accounts", "list", "--db", &db]));
    let serve = inbox_command()
        .args([
            "--json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--insecure-no-secret",
        ])
        .args(["--poll-interval", "0.5", "--db", &db])
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let file = env.dir.join("ozon.json");
    let both = json!({"accounts": [entry(&all, "ozon"), entry(&all, "ozon-2")]});
    std::fs::write(&file, both.to_string()).unwrap();
    ok(inbox(&[
        "accounts",
        "import",
        file.to_str().unwrap(),
        "--db",
        &db,
    ]));
    assert!(
        within(Duration::from_secs(10), || {
            let l = listed(&db);
            l["ozon-2"]["state"] == "reauthorize" && !l["ozon"]["credentials_expire_at"].is_null()
        }),
        "{:?}",
        listed(&db)
    );
    let l = listed(&db);
    assert_eq!(l["ozon"]["state"], "active");
    let stored: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(l["ozon"]["credentials_expire_at"].clone()).unwrap();
    assert!(
        (stored - soon).num_seconds().abs() <= 1,
        "{stored} vs {soon}"
    );
    let out = stop(serve);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("inbox: ozon: its API key expires on"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("ozon-2: its API key expired").count(),
        1,
        "{stderr}"
    );
}
