//! `inbox worker` processes sharing one PostgreSQL database: every message of the
//! sandbox stored exactly once, new ones picked up at each account's interval, a worker
//! killed with SIGKILL costs nothing, and SIGTERM stops a worker cleanly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inbox_sandbox::Config;
use serde_json::json;

mod common;
use common::{start, EXAMPLES};
#[path = "../../inbox/tests/support/postgres.rs"]
mod pg;

fn worker(config: &std::path::Path, url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_inbox"))
        .arg("--config")
        .arg(config)
        .args(["--json", "worker", "--db", url, "--concurrency", "4"])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Messages stored, and distinct (account, conversation, id) among them.
fn stored(runtime: &tokio::runtime::Runtime, url: &str) -> (i64, i64) {
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let counted: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT (account, conversation, id)) FROM messages",
        )
        .fetch_one(&mut conn)
        .await;
        conn.close().await.ok();
        counted.unwrap_or((0, 0))
    })
}

fn wait_for(runtime: &tokio::runtime::Runtime, url: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (n, distinct) = stored(runtime, url);
        assert_eq!(n, distinct, "no message stored twice");
        assert!(n <= want, "more than the sandbox holds: {n} > {want}");
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {want} messages after 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(mut child: Child) -> std::process::Output {
    // SIGTERM: graceful shutdown.
    let pid = i32::try_from(child.id()).unwrap();
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "a worker did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn workers_share_accounts_and_store_every_message_once_through_a_kill() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(pg::database("worker")) else {
        return;
    };
    let env = start(
        Config {
            conversations: 3,
            messages_per_conversation: 2,
            ..Config::default()
        },
        "worker",
    );
    let mut config = env.sandbox.accounts_config();
    for a in config["accounts"].as_array_mut().unwrap() {
        a["poll_interval_secs"] = json!(0.5);
    }
    let path = env.write_config(&config);
    let generated = 4 * 3 * 2 + 2 + 2 + 1 + 1;

    let a = worker(&path, &db.url);
    let b = worker(&path, &db.url);
    wait_for(&runtime, &db.url, generated);

    for (vendor, id) in EXAMPLES {
        assert!(env.sandbox.buyer_writes(vendor, id, "first round"));
    }
    wait_for(&runtime, &db.url, generated + 4);

    // One worker dies without a word; another starts on the same config.
    let mut a = a;
    a.kill().unwrap();
    a.wait().unwrap();
    for (vendor, id) in EXAMPLES {
        assert!(env.sandbox.buyer_writes(vendor, id, "after the kill"));
    }
    let c = worker(&path, &db.url);
    wait_for(&runtime, &db.url, generated + 8);

    for survivor in [b, c] {
        let out = stop(survivor);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each account has exactly one job left, for its next run.
    let jobs: i64 = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM graphile_worker.jobs")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        n
    });
    assert_eq!(jobs, 4);
    runtime.block_on(db.drop_now());
}
