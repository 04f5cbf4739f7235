//! The vendors' rules end to end through `inbox`, against a sandbox that applies them:
//! blocked Mercado Libre packs, Ozon's reply window, Allegro's attachment safety.

use inbox_sandbox::{Config, Vendor};

mod common;
use common::{inbox, start};

#[test]
fn blocked_packs_closed_chats_and_unsafe_files_are_told_as_such() {
    // Conversation 21 is unread (n % 3) and closed (n % 7) on every marketplace.
    let env = start(
        Config {
            conversations: 21,
            ..Config::default()
        },
        "rules",
    );
    let path = env.write_config(&env.sandbox.accounts_config());

    // Mercado Libre: the pack is listed blocked, with why; a send is refused before it
    // is made, naming the reason.
    let listed = common::printed(inbox(
        &path,
        &["--json", "conversations", "--marketplace", "mercadolibre"],
    ));
    let pack = listed
        .iter()
        .find(|c| c["id"] == "2000000100000021")
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(pack["status"], "blocked");
    assert_eq!(pack["blocked_reason"], "blocked_by_time");
    let sends = |env: &common::Env| {
        env.sandbox
            .received()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    };
    let before = sends(&env);
    let out = inbox(
        &path,
        &["send", "mercadolibre:2000000100000021", "--text", "Olá"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("blocked_by_time"), "{err}");
    assert_eq!(sends(&env), before, "nothing was sent");

    // Ozon: the closed chat's reply window: the vendor's own words, not "credentials".
    let out = inbox(
        &path,
        &[
            "send",
            "ozon:00000015-a474-469f-95d5-000000000015",
            "--text",
            "Здравствуйте",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HTTP 403") && err.contains("access period has expired"),
        "{err}"
    );
    assert!(!err.contains("credentials"), "{err}");

    // Allegro: a file the marketplace flags is listed as not downloadable and refused.
    let dir = &env.dir;
    let flagged = dir.join("eicar-test.pdf");
    std::fs::write(&flagged, b"%PDF-1.4 flagged").unwrap();
    let thread = "allegro:dpYCg9auts9xpSojwC6DWPvyVKHraqDCZCiT70j6pcf";
    common::printed(inbox(
        &path,
        &[
            "--json",
            "send",
            thread,
            "--text",
            "Proszę",
            "--attach",
            flagged.to_str().unwrap(),
        ],
    ));
    let messages = common::printed(inbox(&path, &["--json", "messages", thread]));
    let file = messages
        .iter()
        .flat_map(|m| m["attachments"].as_array().cloned().unwrap_or_default())
        .find(|a| a["name"] == "eicar-test.pdf")
        .unwrap_or_else(|| panic!("{messages:?}"));
    assert_eq!(file["status"], "UNSAFE");
    assert_eq!(file["downloadable"], false);
    let out = inbox(
        &path,
        &[
            "download",
            thread,
            "eicar-test.pdf",
            "--out",
            dir.join("got.pdf").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNSAFE"));
    assert!(!dir.join("got.pdf").exists());
    assert!(env
        .sandbox
        .received()
        .iter()
        .all(|r| r.vendor != Vendor::Allegro
            || !r.path.starts_with("/messaging/message-attachments/")
            || r.method != "GET"));
}
