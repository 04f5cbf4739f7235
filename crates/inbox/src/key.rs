//! The operator's key ([`TOKEN_KEY_ENV`]): what encrypts sellers' credentials and tokens
//! at rest (ChaCha20-Poly1305, a random nonce per seal). Every seal is bound to what it
//! belongs to (associated data: an account's id), so that a sealed value moved to
//! another row does not open.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::Error;

/// The environment variable holding the key: 64 hex digits.
pub const TOKEN_KEY_ENV: &str = "INBOX_TOKEN_KEY";

/// The key tokens are encrypted with. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct TokenKey(Key);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

impl TokenKey {
    /// A key from 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let bad = || Error::config(format!("{TOKEN_KEY_ENV} must be 64 hex digits (32 bytes)"));
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(TokenKey(Key::from(key)))
    }

    /// The key in [`TOKEN_KEY_ENV`], if it is set.
    pub fn from_env() -> Result<Option<Self>, Error> {
        match std::env::var(TOKEN_KEY_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::from_hex(&v).map(Some),
            _ => Ok(None),
        }
    }
}

impl TokenKey {
    /// `plain` encrypted and bound to `owner`: the nonce, then the ciphertext.
    pub(crate) fn seal(&self, owner: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let cipher = ChaCha20Poly1305::new(&self.0);
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| "the secret could not be encrypted".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// What [`TokenKey::seal`] sealed for `owner`; none when another key sealed it, or
    /// for another owner, or it was altered.
    pub(crate) fn open(&self, owner: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, body) = sealed.split_at_checked(12)?;
        ChaCha20Poly1305::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: owner.as_bytes(),
                },
            )
            .ok()
    }
}

impl TokenKey {
    /// A key for `purpose` derived from this one (SHA-256 of the purpose and the key):
    /// what authenticates the HTTP API's cursors, say, without ever using the key itself.
    pub fn derived(&self, purpose: &str) -> [u8; 32] {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(purpose.as_bytes());
        hasher.update([0u8]);
        hasher.update(self.0.as_slice());
        hasher.finalize().into()
    }
}

/// `bytes` random bytes from the operating system, as lowercase hex (ids, link secrets,
/// OAuth `state` values, PKCE verifiers).
pub fn random_hex(bytes: usize) -> String {
    hex(&random_bytes(bytes))
}

/// `bytes` random bytes from the operating system (webhook signing secrets).
pub fn random_bytes(bytes: usize) -> Vec<u8> {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut raw = vec![0u8; bytes];
    OsRng.fill_bytes(&mut raw);
    raw
}

/// The SHA-256 of `text` as lowercase hex: what a store keeps of a secret it must
/// recognise but never hold (API keys, connect links, OAuth `state` values).
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase or uppercase hex back to bytes; none when it is not hex.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_opens_only_for_its_owner_and_its_key() {
        let key = TokenKey::from_hex(&"11".repeat(32)).unwrap();
        let other = TokenKey::from_hex(&"22".repeat(32)).unwrap();
        let sealed = key.seal("acc_1", b"refresh-token").unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("refresh-token"));
        assert_eq!(key.open("acc_1", &sealed).unwrap(), b"refresh-token");
        assert_eq!(key.open("acc_2", &sealed), None);
        assert_eq!(other.open("acc_1", &sealed), None);
        assert_eq!(key.open("acc_1", &sealed[..5]), None);
        assert_ne!(
            key.seal("acc_1", b"x").unwrap(),
            key.seal("acc_1", b"x").unwrap()
        );
        assert_eq!(unhex(&hex(&sealed)).unwrap(), sealed);
        assert_eq!(unhex("zz"), None);
        assert_eq!(format!("{key:?}"), "TokenKey(…)");
        assert!(TokenKey::from_hex("abc").is_err());
    }
}
