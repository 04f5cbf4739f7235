//! Opaque, tamper-evident cursors: the position a list walk stopped at, with a MAC
//! (HMAC-SHA256 under a key derived from the operator's key), so that a modified,
//! forged or foreign cursor is a 400, never another position.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::problem::Problem;

/// Seals and opens cursors.
pub struct Cursors {
    key: [u8; 32],
}

impl Cursors {
    /// Cursors under `key`.
    pub fn new(key: [u8; 32]) -> Cursors {
        Cursors { key }
    }

    fn mac(&self, payload: &str) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(payload.as_bytes());
        Some(mac)
    }

    /// A cursor for list `list` after `position`.
    pub fn seal(&self, list: &str, position: &str) -> String {
        let payload = serde_json::json!({"v": 1, "l": list, "p": position}).to_string();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let tag = self
            .mac(&payload)
            .map(|m| m.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        format!("{}.{}", b64.encode(payload), b64.encode(tag))
    }

    /// The position of a cursor of list `list`; a 400 for anything else.
    pub fn open(&self, list: &str, cursor: &str) -> Result<String, Problem> {
        let bad = || Problem::bad_request("the cursor is not one this service gave for this list");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, tag) = cursor.split_once('.').ok_or_else(bad)?;
        let payload = b64.decode(payload).map_err(|_| bad())?;
        let tag = b64.decode(tag).map_err(|_| bad())?;
        let payload = String::from_utf8(payload).map_err(|_| bad())?;
        self.mac(&payload)
            .ok_or_else(bad)?
            .verify_slice(&tag)
            .map_err(|_| bad())?;
        let value: serde_json::Value = serde_json::from_str(&payload).map_err(|_| bad())?;
        if value["v"] != 1 || value["l"] != list {
            return Err(bad());
        }
        value["p"].as_str().map(str::to_string).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_unchanged_for_its_list_and_key() {
        let cursors = Cursors::new([7; 32]);
        let c = cursors.seal("accounts", "pl-main");
        assert_eq!(cursors.open("accounts", &c).unwrap(), "pl-main");
        assert!(cursors.open("conversations", &c).is_err(), "another list");
        assert!(
            Cursors::new([8; 32]).open("accounts", &c).is_err(),
            "another key"
        );
        let (payload, tag) = c.split_once('.').unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = b64.encode(
            String::from_utf8(b64.decode(payload).unwrap())
                .unwrap()
                .replace("pl-main", "zz"),
        );
        assert!(cursors
            .open("accounts", &format!("{forged}.{tag}"))
            .is_err());
        for junk in ["", ".", "x.y", "not a cursor", &c.replace('.', "")] {
            assert!(cursors.open("accounts", junk).is_err(), "{junk}");
        }
    }
}
