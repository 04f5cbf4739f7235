//! The `inbox-sandbox` binary: `--write-config` writes accounts an `inbox --config` can
//! use, pointing at the port it really listens on; bad options are usage errors.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the binary with `args` and `--write-config`; the config it wrote, the answer of
/// `GET /_sandbox/stats` and the child.
fn started(
    dir: &std::path::Path,
    args: &[&str],
) -> (serde_json::Value, String, std::process::Child) {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("accounts.json");
    let child = Command::new(env!("CARGO_BIN_EXE_inbox-sandbox"))
        .args(["--port", "0"])
        .args(args)
        .arg("--write-config")
        .arg(&file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        match std::fs::read_to_string(&file) {
            Ok(t) if t.ends_with('\n') => break t,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => panic!("no config written"),
        }
    };
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    let base = config["accounts"][0]["base_url"]
        .as_str()
        .unwrap()
        .to_string();
    let host = base
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!("GET /_sandbox/stats HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    (config, answer, child)
}

/// `--accounts 3 --oauth-every 3`: twelve accounts in the config, every one in the stats
/// under its config name, the third account's with OAuth credentials.
#[test]
fn accounts_are_written_and_counted_by_name() {
    let dir = std::env::temp_dir().join(format!("sandbox-fleet-{}", std::process::id()));
    let (config, answer, mut child) = started(
        &dir,
        &[
            "--accounts",
            "3",
            "--oauth-every",
            "3",
            "--conversations",
            "1",
        ],
    );
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    let accounts = config["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 12);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let stats: serde_json::Value = serde_json::from_str(body).unwrap();
    let rows = stats["accounts"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    for a in accounts {
        let name = a["name"].as_str().unwrap();
        let row = rows.iter().find(|r| r["account"] == name).unwrap();
        assert_eq!(row["marketplace"], a["marketplace"]);
        // The first account holds the vendor's example besides its one conversation.
        let want = if name.contains('-') { 1 } else { 2 };
        assert_eq!(row["conversations"], want, "{name}");
        let oauth = name.ends_with("-3") && a["marketplace"] != "ozon";
        assert_eq!(a.get("refresh_token").is_some(), oauth, "{name}");
    }
}

#[test]
fn write_config_names_every_account_at_the_running_sandbox() {
    let dir = std::env::temp_dir().join(format!("sandbox-bin-{}", std::process::id()));
    let (config, answer, mut child) = started(&dir, &["--conversations", "2"]);
    let accounts = config["accounts"].as_array().unwrap();
    let names: Vec<&str> = accounts.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["allegro", "mercadolibre", "magalu", "ozon"]);
    // The stats route answers on the address the config names.
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"conversations\":3"), "{answer}");
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();

    let bad = Command::new(env!("CARGO_BIN_EXE_inbox-sandbox"))
        .args(["--rate-429", "2"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
