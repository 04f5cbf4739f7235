//! The server and its contract agree: every operation of `specs/inbox-api.yaml` is
//! routed (answered without a key as the spec says: 401, or 200 where it needs none),
//! every route the API answers is an operation of the spec, and a method the spec does
//! not name on a path is a 405 problem.

use std::collections::BTreeSet;
use std::sync::Arc;

use inbox_server::api::{api_router, ApiState, ROUTES};
use inbox_server::{Db, Directory, Discard, Engine};
use marketplace_inbox::{Inbox, TokenKey};
use serde_yaml::Value;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The spec's operations: (method, path, needs a key).
fn operations() -> Vec<(String, String, bool)> {
    let spec: Value = serde_yaml::from_str(inbox_api_client::SPEC).unwrap();
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap().to_uppercase();
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let public = op
                .get("security")
                .and_then(Value::as_sequence)
                .is_some_and(|s| s.is_empty());
            out.push((method, path.as_str().unwrap().to_string(), !public));
        }
    }
    out
}

/// `path` with each `{parameter}` filled in.
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => inside = true,
            '}' => {
                inside = false;
                out.push('x');
            }
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_routed_and_every_route_is_an_operation() {
    let ops = operations();
    let in_spec: BTreeSet<(String, String)> =
        ops.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        in_spec, routed,
        "the spec's operations and the API's routes"
    );

    let dir = std::env::temp_dir().join(format!("inbox-api-spec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let directory = Directory::open(Some(Db::Sqlite(dir.join("inbox.db"))))
        .await
        .unwrap();
    let engine = Arc::new(Engine::new(
        Arc::new(Inbox::new()),
        directory.store(),
        Arc::new(Discard),
    ));
    let key = TokenKey::from_hex(&"ab".repeat(32)).unwrap();
    let router = api_router(ApiState::new(directory, engine, &key, None))
        .fallback(inbox_server::api::no_route);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = inbox_core::http_client().unwrap();

    for (method, path, needs_key) in &ops {
        let answer = http
            .request(method.parse().unwrap(), format!("{base}{}", filled(path)))
            .send()
            .await
            .unwrap();
        let want = if *needs_key { 401 } else { 200 };
        assert_eq!(answer.status().as_u16(), want, "{method} {path}");
        if *needs_key {
            assert_eq!(
                answer.headers()["content-type"],
                "application/problem+json",
                "{method} {path}"
            );
        }
    }
    // A method the spec does not name on one of its paths: 405, a problem.
    let paths: BTreeSet<&String> = ops.iter().map(|(_, p, _)| p).collect();
    for path in paths {
        for method in METHODS {
            if in_spec.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let answer = http
                .request(method.parse().unwrap(), format!("{base}{}", filled(path)))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 405, "{method} {path}");
            assert_eq!(answer.headers()["content-type"], "application/problem+json");
        }
    }
    // A path outside the spec: 404, a problem.
    let answer = http.get(format!("{base}/v1/nothing")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let _ = std::fs::remove_dir_all(&dir);
}
