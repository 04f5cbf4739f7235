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
    writing: Mutex<()>,
}

impl ConfigFile {
    pub fn new(path: PathBuf) -> Self {
        ConfigFile {
            path,
            writing: Mutex::new(()),
        }
    }

    fn write(&self, account: &str, tokens: &Tokens) -> std::io::Result<()> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let text = std::fs::read_to_string(&self.path)?;
        let mut config: Value = serde_json::from_str(&text).map_err(|e| invalid(&e.to_string()))?;
        let entry = config["accounts"]
            .as_array_mut()
            .and_then(|all| all.iter_mut().find(|a| a["name"] == account))
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
        let _one = self
            .writing
            .lock()
            .map_err(|_| "a writer panicked".to_string())?;
        self.write(account, tokens).map_err(|e| {
            format!(
                "could not save the new tokens of {account} to {}: {e}",
                self.path.display()
            )
        })
    }
}
