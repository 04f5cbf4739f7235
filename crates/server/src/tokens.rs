//! Where rotated OAuth tokens are kept: the accounts' config file ([`ConfigFile`]) for
//! one machine, PostgreSQL ([`fleet_inbox`]) for a fleet. Either way every path of a
//! process that can refresh (syncs, sends, missed feeds) refreshes through the one store,
//! one refresh at a time.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use futures::future::BoxFuture;
use marketplace_inbox::sync::PostgresStore;
use marketplace_inbox::{
    Credentials, Grant, Inbox, InboxConfig, PostgresTokens, Refused, Secret, TokenKey, TokenStore,
    Tokens, TOKEN_KEY_ENV,
};
use serde_json::Value;

/// The fleet's inbox: `config`'s accounts, their OAuth tokens in the database
/// (`inbox_tokens`, encrypted with [`TOKEN_KEY_ENV`]), shared with every process of the
/// fleet — workers and `serve` alike refresh through it, never behind each other's back.
pub async fn fleet_inbox(config: &InboxConfig, store: &PostgresStore) -> Result<Inbox> {
    let oauth = config
        .accounts
        .iter()
        .any(|a| matches!(a.credentials, Credentials::OAuth(_)));
    let key = TokenKey::from_env()?;
    if oauth && key.is_none() {
        anyhow::bail!(
            "the OAuth accounts of a fleet need {TOKEN_KEY_ENV} (64 hex digits): their rotated tokens are shared, encrypted, in the database"
        );
    }
    Ok(match key {
        Some(key) => {
            let tokens = PostgresTokens::new(store.pool().clone(), key).await?;
            Inbox::from_config_with_store(config, Arc::new(tokens))?
        }
        None => Inbox::from_config(config)?,
    })
}

/// Takes an exclusive lock on `.NAME.lock` beside the file `path` (created, mode 0600,
/// when missing), waiting while another process holds it; given up when the file
/// returned is dropped.
pub(crate) async fn lock_beside(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "inbox".into());
    let lock = path.with_file_name(format!(".{name}.lock"));
    tokio::task::spawn_blocking(move || {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&lock)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Saves an account's new tokens into its object of the config file: the file is read
/// again, only that account's `refresh_token`, `access_token` and `expires_at` change,
/// and the result replaces the file atomically (a temporary file beside it, mode 0600,
/// synced, then renamed over it).
///
/// Refreshes are exclusive among the processes using one file (`inbox watch` and `inbox
/// send` side by side): a refresh holds an exclusive lock on `.NAME.lock` beside the
/// file, reads the file again, and when another process rotated the account's tokens
/// meanwhile uses those instead of spending a refresh token that is no longer valid.
pub struct ConfigFile {
    path: PathBuf,
    /// Held while writing; holds the first save that failed.
    writing: Mutex<Option<String>>,
}

impl ConfigFile {
    /// The store of the config file at `path`.
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

    /// Takes the exclusive refresh lock (waiting for another process holding it); it is
    /// given up when the file returned is dropped.
    async fn lock(&self) -> std::io::Result<std::fs::File> {
        lock_beside(&self.path).await
    }

    /// The tokens the file holds now for `account`, when it holds a refresh token.
    fn stored(&self, account: &str) -> Option<Tokens> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let config: Value = serde_json::from_str(&text).ok()?;
        let entry = config
            .get("accounts")?
            .as_array()?
            .iter()
            .find(|a| a.get("name").and_then(Value::as_str) == Some(account))?;
        let text = |key: &str| entry.get(key).and_then(Value::as_str);
        Some(Tokens {
            refresh_token: Secret::new(text("refresh_token")?.to_string()),
            access_token: text("access_token").map(|t| Secret::new(t.to_string())),
            expires_at: text("expires_at")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc)),
        })
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

    fn refresh_exclusively<'a>(
        &'a self,
        account: &'a str,
        held: Tokens,
        grant: Grant<'a>,
    ) -> BoxFuture<'a, Result<Tokens, Refused>> {
        Box::pin(async move {
            let lock = match self.lock().await {
                Ok(lock) => Some(lock),
                Err(e) => {
                    tracing::warn!(account, error = %e, "the refresh lock could not be taken; refreshing without it");
                    None
                }
            };
            // Another process rotated the tokens since this one read them: the held
            // refresh token is spent, the file's is the valid one.
            if lock.is_some() {
                if let Some(stored) = self.stored(account) {
                    if stored.refresh_token.expose() != held.refresh_token.expose() {
                        return Ok(stored);
                    }
                }
            }
            let tokens = grant(held.refresh_token).await?;
            if let Err(e) = self.save(account, &tokens) {
                tracing::error!(account, error = %e, "rotated tokens could not be saved");
            }
            drop(lock);
            Ok(tokens)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

#[cfg(test)]
mod exclusive {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn tokens(refresh: &str) -> Tokens {
        Tokens {
            access_token: Some(Secret::new(format!("access-{refresh}"))),
            refresh_token: Secret::new(refresh.to_string()),
            expires_at: None,
        }
    }

    /// A token endpoint that rotates `r1` into `r2` once, slowly, and refuses anything
    /// else (a single-use refresh token spent twice is `invalid_grant`).
    fn grant<'a>(calls: &'a AtomicU32) -> Grant<'a> {
        Box::new(move |refresh: Secret| {
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                assert_eq!(refresh.expose(), "r1", "a spent refresh token was sent");
                Ok(tokens("r2"))
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_on_one_file_refresh_once_and_both_get_the_new_pair() {
        let dir = std::env::temp_dir().join(format!("inbox-refresh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accounts.json");
        std::fs::write(
            &path,
            r#"{"accounts": [{"name": "pl", "marketplace": "allegro", "refresh_token": "r1"}]}"#,
        )
        .unwrap();
        // Two stores on one file, as `inbox watch` and `inbox send` side by side, both
        // holding the pair they read at start.
        let (watch, send) = (ConfigFile::new(path.clone()), ConfigFile::new(path.clone()));
        let calls = AtomicU32::new(0);
        let (a, b) = tokio::join!(
            watch.refresh_exclusively("pl", tokens("r1"), grant(&calls)),
            send.refresh_exclusively("pl", tokens("r1"), grant(&calls)),
        );
        let (a, b) = (a.ok().unwrap(), b.ok().unwrap());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one call to the token endpoint"
        );
        assert_eq!(a.refresh_token.expose(), "r2");
        assert_eq!(b.refresh_token.expose(), "r2");
        assert_eq!(
            b.access_token.as_ref().map(|t| t.expose().to_string()),
            Some("access-r2".to_string())
        );
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            saved.pointer("/accounts/0/refresh_token"),
            Some(&Value::from("r2"))
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
