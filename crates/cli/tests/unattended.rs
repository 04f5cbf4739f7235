//! The `inbox` binary running unattended against a sandbox in this process: rotated
//! OAuth tokens written back to the config file, logs on request, and an export that
//! survives faults with every message exactly once.

use std::collections::HashSet;
use std::path::Path;

use inbox_sandbox::{Config, Faults, Vendor};
use serde_json::{json, Value};

mod common;
use common::{inbox, start};

#[test]
fn rotated_tokens_are_written_back_to_the_config_file() {
    let env = start(Config::default(), "oauth");
    let mut config = env.sandbox.oauth_accounts_config();
    let first = env.sandbox.refresh_token(Vendor::Allegro);
    config["accounts"][0]["access_token"] = json!("stale-access-token");
    let path = env.write_config(&config);

    let out = inbox(&path, &["--json", "--account", "allegro", "conversations"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.sandbox.refreshes(Vendor::Allegro), 1);

    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let allegro = &saved["accounts"][0];
    assert_eq!(
        allegro["refresh_token"],
        env.sandbox.refresh_token(Vendor::Allegro)
    );
    assert_ne!(allegro["refresh_token"], first.as_str());
    assert_eq!(allegro["access_token"], "allegro-access-1");
    assert!(allegro["expires_at"].is_string());
    // Everything else is kept as it was.
    for i in 1..4 {
        assert_eq!(saved["accounts"][i], config["accounts"][i], "account {i}");
    }
    assert_eq!(
        allegro["client_secret"],
        config["accounts"][0]["client_secret"]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The file, and the lock its refreshes take (empty, mode 0600): no temporary file.
    let mut left: Vec<String> = std::fs::read_dir(&env.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        left,
        [format!(".{name}.lock"), name.clone()],
        "no temporary file is left behind"
    );
    assert_eq!(
        std::fs::metadata(env.dir.join(format!(".{name}.lock")))
            .unwrap()
            .len(),
        0
    );

    // The next run starts from the saved tokens: no refresh needed.
    let out = inbox(&path, &["--json", "--account", "allegro", "unread"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.sandbox.refreshes(Vendor::Allegro), 1);

    // A spent refresh token: one line saying to authorise again, exit 1.
    config["accounts"][1]["access_token"] = json!("stale-access-token");
    config["accounts"][1]["refresh_token"] = json!("spent-refresh-token");
    let path = env.write_config(&config);
    let out = inbox(&path, &["--account", "mercadolibre", "unread"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("authorise the app again"), "{err}");
    assert!(
        !err.contains("spent-refresh-token") && !err.contains("sandbox-app-secret"),
        "{err}"
    );
}

#[test]
fn verbose_runs_log_requests_on_stderr_without_secrets() {
    let env = start(Config::default(), "verbose");
    let mut config = env.sandbox.oauth_accounts_config();
    config["accounts"][2]["access_token"] = json!("stale-access-token");
    let path = env.write_config(&config);
    let out = inbox(&path, &["-vvv", "--json", "conversations"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("operation="), "{log}");
    assert!(log.contains("access token refreshed"), "{log}");
    let c = env.sandbox.credentials();
    for secret in [
        "stale-access-token",
        "sandbox-app-secret",
        "sandbox-refresh-0",
        "magalu-access-1",
        c.ozon_api_key.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(!log.contains(&env.sandbox.refresh_token(Vendor::Magalu)));
}

/// Every (marketplace, conversation, message id) an export wrote, and how many lines.
fn exported(path: &Path) -> (HashSet<(String, String, String)>, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = 0;
    let set = text
        .lines()
        .map(|l| {
            lines += 1;
            let v: Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (s("marketplace"), s("conversation"), s("id"))
        })
        .collect();
    (set, lines)
}

/// Limits lifted and short waits, so the soak is bounded by its faults.
fn quick(config: &mut Value) {
    for a in config["accounts"].as_array_mut().unwrap() {
        let lifted = match a["marketplace"].as_str() {
            Some("allegro") => json!({"all": {"requests": 0, "per_secs": 1}}),
            Some("ozon") => json!({"all": {"requests": 0, "per_secs": 1}}),
            _ => {
                json!({"reads": {"requests": 0, "per_secs": 1}, "writes": {"requests": 0, "per_secs": 1}})
            }
        };
        a["limits"] = lifted;
        a["retry"] = json!({"base_delay_secs": 0.005, "max_attempts": 10});
        a["timeouts"] = json!({"request_secs": 2, "stall_secs": 0.3});
    }
}

#[test]
fn an_export_under_faults_writes_every_message_exactly_once() {
    let size = |faults| Config {
        conversations: 40,
        messages_per_conversation: 80,
        faults,
        ..Config::default()
    };
    let clean = start(size(Faults::default()), "export-clean");
    let faulty = start(
        size(Faults {
            rate_429: 0.03,
            retry_after_secs: 0,
            rate_500: 0.03,
            rate_reset: 0.02,
            rate_stall: 0.02,
            stall: std::time::Duration::from_secs(2),
            rate_slow: 0.01,
            slow_delay: std::time::Duration::from_secs(3),
            ..Faults::default()
        }),
        "export-faults",
    );
    let mut results = Vec::new();
    for env in [&clean, &faulty] {
        let mut config = env.sandbox.accounts_config();
        quick(&mut config);
        let path = env.write_config(&config);
        let out_file = env.dir.join("export.jsonl");
        let out = inbox(&path, &["export", "--out", out_file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        results.push(exported(&out_file));
    }
    let (want, want_lines) = &results[0];
    let (got, got_lines) = &results[1];
    assert!(*want_lines >= 10_000, "{want_lines} messages");
    assert_eq!(want_lines, got_lines, "every message once");
    assert_eq!(got.len(), *got_lines, "no duplicates");
    assert_eq!(want, got, "the same messages");
    let (base, requests) = (clean.sandbox.requests(), faulty.sandbox.requests());
    assert!(requests > base, "the faults were met and retried");
    eprintln!(
        "exported {got_lines} messages: {base} requests without faults, {requests} with 11% faults"
    );
}

/// A config file that is not a JSON object where the tokens go back (its accounts as
/// a bare list, or the file replaced meanwhile): the command fails with one line naming
/// the file, never a panic, and the file is left as it was.
#[test]
fn tokens_that_cannot_be_written_back_fail_the_command_in_one_line() {
    let env = start(Config::default(), "oauth-list");
    let mut config = env.sandbox.oauth_accounts_config();
    config["accounts"][0]["access_token"] = json!("stale-access-token");
    let listed = json!([config["accounts"].clone()]);
    let path = env.write_config(&listed);
    let before = std::fs::read_to_string(&path).unwrap();

    let out = inbox(&path, &["--json", "--account", "allegro", "conversations"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("inbox: could not save the new tokens of allegro to "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("allegro-access-1"),
        "no token in the error"
    );
    assert_eq!(env.sandbox.refreshes(Vendor::Allegro), 1);
    // What was listed was still printed; the file is untouched.
    assert!(!out.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}
