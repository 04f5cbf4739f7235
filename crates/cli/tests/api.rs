//! The HTTP API on `inbox serve`, driven through the client generated from its spec
//! (every answer decoded by the spec's types): keys and scopes, a key limited to one
//! account, cursor walks and a tampered cursor, RFC 9457 problems, and `/openapi.yaml`.

use std::time::Duration;

use inbox_api_client::InboxApi;
use inbox_sandbox::Config;
use serde_json::{json, Value};

mod common;
use common::{api_key, ok, serve_store, start, stop, within};

const KEY: &str = "4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e";

fn inbox(args: &[&str]) -> std::process::Output {
    common::inbox_keyed(KEY, args)
}

/// A new key's text and id.
fn key(db: &str, extra: &[&str]) -> (String, String) {
    api_key(KEY, db, extra)
}

#[test]
fn the_api_answers_by_its_spec_with_keys_scopes_and_cursors() {
    let env = start(Config::default(), "api");
    let db = env.dir.join("inbox.db").to_str().unwrap().to_string();
    let config = env.write_config(&env.sandbox.accounts_config());
    ok(inbox(&[
        "accounts",
        "import",
        config.to_str().unwrap(),
        "--db",
        &db,
    ]));
    let (reader, _) = key(&db, &["--scope", "read,write", "--label", "helpdesk"]);
    let (ozon_only, _) = key(&db, &["--scope", "read", "--account", "ozon"]);
    let (writer, _) = key(&db, &["--scope", "write"]);
    let (revoked, revoked_id) = key(&db, &["--scope", "read"]);
    ok(inbox(&["keys", "revoke", &revoked_id, "--db", &db]));
    let listed = ok(inbox(&["keys", "list", "--db", &db]));
    assert!(
        !listed.contains(&reader) && listed.contains("helpdesk"),
        "{listed}"
    );

    let (serve, base) = serve_store(KEY, &db, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _ = inbox_core::http_client();
    let raw = reqwest::Client::new();
    let get = |path: &str, key: Option<&str>| -> (u16, String, String) {
        runtime.block_on(async {
            let mut r = raw.get(format!("{base}{path}"));
            if let Some(k) = key {
                r = r.bearer_auth(k);
            }
            let Ok(answer) = r.send().await else {
                return (0, String::new(), String::new());
            };
            let status = answer.status().as_u16();
            let kind = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (status, kind, answer.text().await.unwrap_or_default())
        })
    };
    assert!(
        within(Duration::from_secs(20), || get("/healthz", None).0 == 200),
        "serve did not start"
    );

    // The contract, served.
    let (status, _, spec) = get("/openapi.yaml", None);
    assert_eq!(status, 200);
    assert_eq!(spec, inbox_api_client::SPEC);

    // Every account, by the spec's types, never a credential.
    let api = InboxApi::with_base_url(&base, reader.as_str()).unwrap();
    let all = runtime
        .block_on(api.list_accounts().send())
        .unwrap()
        .into_inner();
    let names: Vec<&str> = all.data.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["allegro", "magalu", "mercadolibre", "ozon"]);
    assert!(all.next_cursor.is_none());
    let (_, _, body) = get("/v1/accounts", Some(&reader));
    let credentials = env.sandbox.credentials();
    for secret in [&credentials.ozon_api_key, &credentials.allegro_token] {
        assert!(!body.contains(secret.as_str()), "{body}");
    }

    // A walk one by one: each account once, then the end.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = api
            .list_accounts()
            .limit(std::num::NonZeroU32::new(1).unwrap());
        if let Some(c) = &cursor {
            request = request.cursor(c.clone());
        }
        let page = runtime.block_on(request.send()).unwrap().into_inner();
        walked.extend(page.data.iter().map(|a| a.name.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(walked, names);
    // A tampered cursor: 400, a problem.
    let first = runtime
        .block_on(
            api.list_accounts()
                .limit(std::num::NonZeroU32::new(1).unwrap())
                .send(),
        )
        .unwrap()
        .into_inner()
        .next_cursor
        .unwrap();
    let tampered = format!("{}A{}", &first[..5], &first[6..]);
    let err = runtime
        .block_on(api.list_accounts().cursor(tampered).send())
        .unwrap_err();
    let inbox_api_client::Error::ErrorResponse(problem) = err else {
        panic!("{err:?}")
    };
    assert_eq!(problem.status().as_u16(), 400);
    assert_eq!(problem.status, 400);

    // A key limited to one account sees nothing else: the others are 404.
    let limited = InboxApi::with_base_url(&base, ozon_only.as_str()).unwrap();
    let only = runtime
        .block_on(limited.list_accounts().send())
        .unwrap()
        .into_inner();
    assert_eq!(only.data.len(), 1);
    assert_eq!(only.data[0].name, "ozon");
    assert_eq!(
        only.data[0].state,
        inbox_api_client::enums::AccountState::Active
    );
    let err = runtime
        .block_on(limited.get_account().name("allegro").send())
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404));
    let (status, kind, body) = get("/v1/accounts/allegro", Some(&ozon_only));
    assert_eq!(status, 404);
    assert_eq!(kind, "application/problem+json");
    let problem: Value = serde_json::from_str(&body).unwrap();
    for field in ["type", "title", "status", "detail"] {
        assert!(problem.get(field).is_some(), "{problem}");
    }
    assert_eq!(problem["status"], json!(404));
    assert_eq!(
        runtime
            .block_on(limited.get_account().name("ozon").send())
            .unwrap()
            .into_inner()
            .marketplace,
        "ozon"
    );

    // No key, an unknown one, a revoked one: 401; a key without `read`: 403.
    assert_eq!(get("/v1/accounts", None).0, 401);
    assert_eq!(get("/v1/accounts", Some("ik_unknown")).0, 401);
    assert_eq!(get("/v1/accounts", Some(&revoked)).0, 401);
    assert_eq!(get("/v1/accounts", Some(&writer)).0, 403);
    // A hostile name stays data.
    assert_eq!(get("/v1/accounts/..%2Fozon", Some(&reader)).0, 404);

    let out = stop(serve);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(&reader));
}

#[test]
fn accounts_are_managed_through_the_api_within_limits() {
    let env = start(
        Config {
            accounts: 2,
            conversations: 1,
            messages_per_conversation: 1,
            ..Config::default()
        },
        "api-admin",
    );
    let db = env.dir.join("inbox.db").to_str().unwrap().to_string();
    let all = env.sandbox.accounts_config();
    let entries = all["accounts"].as_array().unwrap().clone();
    let (firsts, seconds): (Vec<Value>, Vec<Value>) = entries
        .into_iter()
        .partition(|a| !a["name"].as_str().unwrap().ends_with("-2"));
    let config = env.write_config(&json!({ "accounts": firsts }));
    ok(inbox(&[
        "accounts",
        "import",
        config.to_str().unwrap(),
        "--db",
        &db,
    ]));
    let (admin, _) = key(&db, &["--scope", "read,admin,events"]);
    let (reader, _) = key(&db, &["--scope", "read"]);
    let (slow, _) = key(&db, &["--scope", "read", "--per-minute", "3"]);
    let (serve, base) = serve_store(KEY, &db, &["--public-url", "https://inbox.example"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = inbox_core::http_client().unwrap();
    let call = |method: &str, path: &str, key: &str, body: Option<Value>| -> (u16, Value) {
        runtime.block_on(async {
            let mut r = http
                .request(method.parse().unwrap(), format!("{base}{path}"))
                .bearer_auth(key);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let answer = r.send().await.unwrap();
            let status = answer.status().as_u16();
            if status >= 400 {
                assert_eq!(answer.headers()["content-type"], "application/problem+json");
            }
            let text = answer.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    };

    // Added from a config entry: 201, then the name is taken (409), a bad entry is 422,
    // and a key without `admin` is 403.
    let entry = seconds
        .iter()
        .find(|a| a["marketplace"] == "ozon")
        .unwrap()
        .clone();
    assert_eq!(
        call("POST", "/v1/accounts", &reader, Some(entry.clone())).0,
        403
    );
    let (status, added) = call("POST", "/v1/accounts", &admin, Some(entry.clone()));
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["name"], "ozon-2");
    assert_eq!(added["state"], "active");
    assert!(!added
        .to_string()
        .contains(entry["api_key"].as_str().unwrap()));
    assert_eq!(
        call("POST", "/v1/accounts", &admin, Some(entry.clone())).0,
        409
    );
    // Connected: an event of the log, never with its credentials.
    let (_, events) = call(
        "GET",
        "/v1/events?types=account.connected&limit=1000",
        &admin,
        None,
    );
    let connected = events["data"].as_array().unwrap();
    assert!(
        connected
            .iter()
            .any(|e| e["data"]["name"] == "ozon-2" && e["account"] == "ozon-2"),
        "{events}"
    );
    assert!(!events
        .to_string()
        .contains(entry["api_key"].as_str().unwrap()));
    let mut bad = entry.clone();
    bad["name"] = json!("ozon-3");
    bad["marketplace"] = json!("amazon");
    let (status, problem) = call("POST", "/v1/accounts", &admin, Some(bad));
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("amazon"),
        "{problem}"
    );

    // Renamed, disabled and enabled, a setting changed; credentials are not changed here.
    let (status, renamed) = call(
        "PATCH",
        "/v1/accounts/ozon-2",
        &admin,
        Some(json!({"name": "ozon-b"})),
    );
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "ozon-b");
    assert_eq!(call("GET", "/v1/accounts/ozon-2", &admin, None).0, 404);
    let (_, off) = call(
        "PATCH",
        "/v1/accounts/ozon-b",
        &admin,
        Some(json!({"state": "disabled"})),
    );
    assert_eq!(off["state"], "disabled");
    let (_, on) = call(
        "PATCH",
        "/v1/accounts/ozon-b",
        &admin,
        Some(json!({"state": "active", "poll_interval_secs": 5.0})),
    );
    assert_eq!(on["state"], "active");
    assert_eq!(
        call(
            "PATCH",
            "/v1/accounts/ozon-b",
            &admin,
            Some(json!({"api_key": "x"}))
        )
        .0,
        422
    );
    assert_eq!(
        call(
            "PATCH",
            "/v1/accounts/ozon-b",
            &admin,
            Some(json!({"state": "gone"}))
        )
        .0,
        422
    );
    // Removed with its mirror.
    assert_eq!(
        call("DELETE", "/v1/accounts/ozon-b?purge=true", &admin, None).0,
        204
    );
    assert_eq!(call("GET", "/v1/accounts/ozon-b", &admin, None).0, 404);
    assert_eq!(call("DELETE", "/v1/accounts/ozon-b", &admin, None).0, 404);

    // Removed: an event of the log (its events before were purged with its mirror).
    let (_, events) = call(
        "GET",
        "/v1/events?types=account.removed&limit=1000",
        &admin,
        None,
    );
    let removed = events["data"].as_array().unwrap();
    assert!(
        removed.iter().any(|e| e["data"]["name"] == "ozon-b"),
        "{events}"
    );
    // A connect link under the public URL; a taken name is 409.
    let (status, link) = call(
        "POST",
        "/v1/connect-links",
        &admin,
        Some(json!({"marketplace": "allegro", "name": "allegro-new"})),
    );
    assert_eq!(status, 201, "{link}");
    assert!(link["url"]
        .as_str()
        .unwrap()
        .starts_with("https://inbox.example/connect/"));
    assert!(link["expires_at"].is_string());
    assert_eq!(
        call(
            "POST",
            "/v1/connect-links",
            &admin,
            Some(json!({"marketplace": "allegro", "name": "allegro"}))
        )
        .0,
        409
    );

    // A key over its limit: 429 with when to come back; other keys go on.
    for _ in 0..3 {
        assert_eq!(call("GET", "/v1/accounts", &slow, None).0, 200);
    }
    let (status, problem) = call("GET", "/v1/accounts", &slow, None);
    assert_eq!(status, 429);
    assert!(problem["retry_after"].as_u64().unwrap() >= 1);
    assert_eq!(call("GET", "/v1/accounts", &reader, None).0, 200);

    // The documentation page, self-contained.
    let page = runtime.block_on(async {
        http.get(format!("{base}/docs"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(page.contains("list_conversations") && page.contains("send_message"));
    assert!(!page.contains("<script"));

    // A body over 25 MiB: 413, a problem (last: the server closes that connection).
    let huge = runtime.block_on(async {
        http.post(format!("{base}/v1/accounts"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(vec![b' '; 26 * 1024 * 1024])
            .send()
            .await
            .unwrap()
    });
    assert_eq!(huge.status().as_u16(), 413);

    let out = stop(serve);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
