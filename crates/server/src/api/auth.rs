//! Who calls: `Authorization: Bearer ik_…`, looked up by its hash (compared again in
//! constant time), its scopes and the accounts it may see. Keys are made by `inbox keys
//! create` ([`create_key`]) and shown once.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use marketplace_inbox::sync::ApiKey;
use marketplace_inbox::{random_hex, sha256_hex};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use super::ApiState;
use crate::Directory;

/// The scopes a key may hold.
pub const SCOPES: [&str; 4] = ["read", "write", "events", "admin"];

/// The caller of a request: its key (never the key's text).
#[derive(Clone, Debug)]
pub struct Caller {
    key: ApiKey,
}

impl Caller {
    /// Refuses (403) unless the key holds `scope`.
    pub fn require(&self, scope: &str) -> Result<(), Problem> {
        match self.key.scopes.iter().any(|s| s == scope) {
            true => Ok(()),
            false => Err(Problem::forbidden(scope)),
        }
    }

    /// The key's id (`key_…`).
    pub fn id(&self) -> &str {
        &self.key.id
    }

    /// The account names the key is limited to; `None`: every account.
    pub fn accounts(&self) -> Option<&[String]> {
        self.key.accounts.as_deref()
    }

    /// The accounts a list filtered by `account` covers for this key (`None`: every
    /// account): a filter naming an account the key cannot see names none.
    pub fn accounts_named(&self, account: Option<&str>) -> Option<Vec<String>> {
        match (account, self.accounts()) {
            (Some(a), _) if !self.sees(a) => Some(Vec::new()),
            (Some(a), _) => Some(vec![a.to_string()]),
            (None, Some(limited)) => Some(limited.to_vec()),
            (None, None) => None,
        }
    }

    /// Requests the key may make a minute.
    pub fn per_minute(&self) -> u32 {
        self.key.per_minute.unwrap_or(super::limits::PER_MINUTE)
    }

    /// Whether the key may see the account named `name`.
    pub fn sees(&self, name: &str) -> bool {
        self.key
            .accounts
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, Problem> {
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| k.starts_with("ik_") && k.len() <= 200)
            .ok_or_else(Problem::unauthorized)?;
        let wanted = sha256_hex(given);
        let found = state
            .directory
            .key_by_hash(&wanted)
            .await
            .map_err(|e| Problem::store(&e))?;
        match found {
            Some((key, stored)) if bool::from(stored.as_bytes().ct_eq(wanted.as_bytes())) => {
                let caller = Caller { key };
                state.limits.check(caller.id(), caller.per_minute())?;
                Ok(caller)
            }
            _ => Err(Problem::unauthorized()),
        }
    }
}

/// Makes a key with `scopes` (each of [`SCOPES`]), limited to `accounts` when given and
/// to `per_minute` requests a minute (else [`super::limits::PER_MINUTE`]): the
/// key's text (shown once; `ik_` and 64 hex digits) and its record.
pub async fn create_key(
    directory: &Directory,
    scopes: &[String],
    accounts: Option<&[String]>,
    label: Option<&str>,
    per_minute: Option<u32>,
) -> anyhow::Result<(String, ApiKey)> {
    if scopes.is_empty() {
        anyhow::bail!("a key needs at least one scope: {}", SCOPES.join(", "));
    }
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        anyhow::bail!(
            "unknown scope {bad:?}: the scopes are {}",
            SCOPES.join(", ")
        );
    }
    let text = format!("ik_{}", random_hex(32));
    let id = format!("key_{}", random_hex(8));
    let key = directory
        .add_key(&id, &sha256_hex(&text), label, scopes, accounts, per_minute)
        .await?;
    Ok((text, key))
}
