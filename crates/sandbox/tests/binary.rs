//! The `inbox-sandbox` binary: `--write-config` writes accounts an `inbox --config` can
//! use, pointing at the port it really listens on; bad options are usage errors.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn write_config_names_every_account_at_the_running_sandbox() {
    let dir = std::env::temp_dir().join(format!("sandbox-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("accounts.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_inbox-sandbox"))
        .args(["--port", "0", "--conversations", "2", "--write-config"])
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
    let accounts = config["accounts"].as_array().unwrap();
    let names: Vec<&str> = accounts.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["allegro", "mercadolibre", "magalu", "ozon"]);
    let base = accounts[0]["base_url"].as_str().unwrap();
    let host = base
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap();
    // The stats route answers on that address.
    let mut stream = TcpStream::connect(host).unwrap();
    std::io::Write::write_all(
        &mut stream,
        format!("GET /_sandbox/stats HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
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
