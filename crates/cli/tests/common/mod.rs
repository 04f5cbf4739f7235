//! A sandbox in the test's process, a scratch directory, and the `inbox` binary run
//! with a config file and nothing else from the environment.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use inbox_sandbox::{Config, Sandbox};
use serde_json::Value;

/// The `inbox` binary as a command whose process is killed (SIGKILL) when the thread
/// that starts it ends: a test that passes or panics leaves no process behind.
pub fn inbox_command() -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_inbox"));
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

pub struct Env {
    pub sandbox: Sandbox,
    pub dir: PathBuf,
    _runtime: tokio::runtime::Runtime,
}

/// Each marketplace's example conversation (the sandbox seeds it from the vendor docs).
pub const EXAMPLES: [(inbox_sandbox::Vendor, &str); 4] = [
    (
        inbox_sandbox::Vendor::Allegro,
        "dpYCg9auts9xpSojwC6DWPvyVKHraqDCZCiT70j6pcf",
    ),
    (inbox_sandbox::Vendor::MercadoLibre, "2000000089077943"),
    (inbox_sandbox::Vendor::Magalu, "6628d7a3c01daebde56f5600"),
    (
        inbox_sandbox::Vendor::Ozon,
        "99feb3fc-a474-469f-95d5-268b470cc607",
    ),
];

pub fn start(config: Config, name: &str) -> Env {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = runtime.block_on(Sandbox::start(config)).unwrap();
    let dir = std::env::temp_dir().join(format!("inbox-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Env {
        sandbox,
        dir,
        _runtime: runtime,
    }
}

impl Env {
    pub fn write_config(&self, config: &Value) -> PathBuf {
        let path = self.dir.join("accounts.json");
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

pub fn inbox(config: &Path, args: &[&str]) -> Output {
    inbox_command()
        .arg("--config")
        .arg(config)
        .args(args)
        .env_clear()
        .output()
        .unwrap()
}

/// The JSON values of `text`, one a line.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// The JSON lines a run printed, after checking it succeeded (its stderr shown if not).
pub fn printed(out: Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&String::from_utf8(out.stdout).unwrap())
}

/// A run's stdout, after checking it succeeded (its stderr shown if not).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits until `done` holds, for up to `limit` (a bound against hanging, not a timing
/// claim); whether it held.
pub fn within(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    done()
}

/// Stops a process with SIGTERM (waiting up to a minute); its output.
pub fn stop(mut child: std::process::Child) -> Output {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: a plain signal to a child of this process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    assert!(
        within(std::time::Duration::from_secs(60), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "no stop on SIGTERM"
    );
    child.wait_with_output().unwrap()
}

/// `inbox ARGS` with only `INBOX_TOKEN_KEY=key` from the environment.
pub fn inbox_keyed(key: &str, args: &[&str]) -> Output {
    inbox_command()
        .args(args)
        .env_clear()
        .env("INBOX_TOKEN_KEY", key)
        .output()
        .unwrap()
}

/// A port free on loopback now (for a process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `inbox --json keys create --db DB ARGS` with `INBOX_TOKEN_KEY=token_key`: the new
/// key's text and id.
pub fn api_key(token_key: &str, db: &str, args: &[&str]) -> (String, String) {
    let out = ok(inbox_keyed(
        token_key,
        &[&["--json", "keys", "create", "--db", db][..], args].concat(),
    ));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let text = v["key"].as_str().unwrap().to_string();
    assert!(text.starts_with("ik_") && text.len() >= 3 + 64, "{text}");
    (text, v["id"].as_str().unwrap().to_string())
}

/// `inbox serve` on the store `db` (its own accounts) on a free loopback port, with
/// `INBOX_TOKEN_KEY=token_key` and `extra` arguments: the process and its base URL, once
/// it listens.
pub fn serve_store(token_key: &str, db: &str, extra: &[&str]) -> (std::process::Child, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = inbox_command()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--insecure-no-secret", "--db", db])
        .args(extra)
        .env_clear()
        .env("INBOX_TOKEN_KEY", token_key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let up = within(std::time::Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "serve did not start on {base}");
    (child, base)
}
