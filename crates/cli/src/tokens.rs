//! Rotated OAuth tokens written back to the `--config` file, so the next run (or the
//! same one after a crash) starts from the only refresh token that is still valid.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use marketplace_inbox::{TokenStore, Tokens};
use serde_json::Value;

/// Saves an account's new tokens into its object of the config file: the file is read
/// again, only that account's `refresh_token`, `access_token` and `expires_at` change,
/// and the result replaces the file atomically (a temporary file beside it, mode 0600,
/// synced, then renamed over it).
pub struct ConfigFile {
    path: PathBuf,
    /// Held while writing; holds the first save that failed.
    writing: Mutex<Option<String>>,
}

impl ConfigFile {
    pub fn new(path: PathBuf) -> Self {
        ConfigFile {
            path,
            writing: Mutex::new(None),
        }
    }

    /// The first save that failed, if one did.
    pub fn failure(&self) -> Option<String> {
        self.writing.lock().ok()?.clone()
    }

    fn write(&self, account: &str, tokens: &Tokens) -> std::io::Result<()> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let text = std::fs::read_to_string(&self.path)?;
        let mut config: Value = serde_json::from_str(&text).map_err(|e| invalid(&e.to_string()))?;
        let entry = config
            .get_mut("accounts")
            .and_then(Value::as_array_mut)
            .and_then(|all| {
                all.iter_mut()
                    .find(|a| a.get("name").and_then(Value::as_str) == Some(account))
            })
            .and_then(Value::as_object_mut)
            .ok_or_else(|| invalid("the account is no longer in the file"))?;
        entry.insert("refresh_token".into(), tokens.refresh_token.expose().into());
        match &tokens.access_token {
            Some(t) => entry.insert("access_token".into(), t.expose().into()),
            None => entry.remove("access_token"),
        };
        match tokens.expires_at {
            Some(at) => entry.insert("expires_at".into(), at.to_rfc3339().into()),
            None => entry.remove("expires_at"),
        };
        let body = serde_json::to_string_pretty(&config).map_err(|e| invalid(&e.to_string()))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "accounts".into());
        let temporary = self
            .path
            .with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(body.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &self.path)
    }
}

impl TokenStore for ConfigFile {
    fn save(&self, account: &str, tokens: &Tokens) -> Result<(), String> {
        let mut failed = self
            .writing
            .lock()
            .map_err(|_| "a writer panicked".to_string())?;
        self.write(account, tokens).map_err(|e| {
            let message = format!(
                "could not save the new tokens of {account} to {}: {e}",
                self.path.display()
            );
            failed.get_or_insert_with(|| message.clone());
            message
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketplace_inbox::Secret;

    #[test]
    fn a_file_that_stopped_being_an_object_is_an_error_kept_for_the_exit_code() {
        let dir = std::env::temp_dir().join(format!("inbox-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accounts.json");
        let file = ConfigFile::new(path.clone());
        let tokens = Tokens {
            access_token: Some(Secret::new("new-access".to_string())),
            refresh_token: Secret::new("new-refresh".to_string()),
            expires_at: None,
        };
        for replaced in [
            "[1, 2]",
            "\"accounts\"",
            "{\"accounts\": {\"name\": \"pl\"}}",
            "null",
        ] {
            std::fs::write(&path, replaced).unwrap();
            let err = file.save("pl", &tokens).unwrap_err();
            assert!(
                err.starts_with("could not save the new tokens of pl"),
                "{err}"
            );
            assert!(!err.contains("new-refresh"), "{err}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), replaced);
        }
        assert!(file.failure().unwrap().contains("no longer in the file"));
        std::fs::write(
            &path,
            r#"{"accounts": [{"name": "pl", "refresh_token": "old"}]}"#,
        )
        .unwrap();
        file.save("pl", &tokens).unwrap();
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            saved.pointer("/accounts/0/refresh_token"),
            Some(&Value::from("new-refresh"))
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
