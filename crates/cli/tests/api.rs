//! The HTTP API on `inbox serve`, driven through the client generated from its spec
//! (every answer decoded by the spec's types): keys and scopes, a key limited to one
//! account, cursor walks and a tampered cursor, RFC 9457 problems, and `/openapi.yaml`.

use std::process::Stdio;
use std::time::Duration;

use inbox_api_client::InboxApi;
use inbox_sandbox::Config;
use serde_json::{json, Value};

mod common;
use common::{inbox_command, ok, start, stop, within};

const KEY: &str = "4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e";

fn inbox(args: &[&str]) -> std::process::Output {
    common::inbox_keyed(KEY, args)
}

/// A new key's text.
fn key(db: &str, extra: &[&str]) -> (String, String) {
    let out = ok(inbox(
        &[&["--json", "keys", "create", "--db", db][..], extra].concat(),
    ));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let text = v["key"].as_str().unwrap().to_string();
    assert!(text.starts_with("ik_") && text.len() >= 3 + 64, "{text}");
    (text, v["id"].as_str().unwrap().to_string())
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

    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let serve = inbox_command()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--insecure-no-secret",
        ])
        .args(["--db", &db])
        .env_clear()
        .env("INBOX_TOKEN_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
