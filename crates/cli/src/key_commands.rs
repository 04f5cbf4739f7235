//! `inbox keys …`: the HTTP API's keys — made (shown once), listed, revoked. The
//! database keeps only their hashes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Subcommand;
use inbox_server::Directory;
use marketplace_inbox::sync::ApiKey;
use serde_json::json;

use crate::account_commands::DbArg;

/// `inbox keys` subcommands.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a key; it is printed once (`ik_…`).
    Create {
        /// Its scopes, comma-separated: read, write, events, admin. `--account NAME`
        /// (repeatable) limits it to those accounts; without, it sees every account.
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<String>,
        /// A label for people.
        #[arg(long)]
        label: Option<String>,
        /// Requests it may make a minute (default 600); more are answered 429.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        per_minute: Option<u32>,
        #[command(flatten)]
        db: DbArg,
    },
    /// List the keys (never the keys themselves).
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke a key by its id: it is refused from now on.
    Revoke {
        /// The key's id (`key_…`, as `list` shows it).
        id: String,
        #[command(flatten)]
        db: DbArg,
    },
}

fn object(k: &ApiKey) -> serde_json::Value {
    json!({"id": k.id, "label": k.label, "scopes": k.scopes, "accounts": k.accounts,
           "created_at": k.created_at, "revoked_at": k.revoked_at, "per_minute": k.per_minute})
}

/// Runs a `keys` subcommand; `accounts` are the `--account` names given.
pub async fn run(command: KeysCommand, json: bool, accounts: &[String]) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::Create {
            scope,
            label,
            per_minute,
            db,
        } => {
            let directory = Directory::open(db.db).await?;
            let scopes: Vec<String> = scope.iter().map(|s| s.trim().to_string()).collect();
            let limited = (!accounts.is_empty()).then_some(accounts);
            let (text, key) = inbox_server::api::auth::create_key(
                &directory,
                &scopes,
                limited,
                label.as_deref(),
                per_minute,
            )
            .await?;
            if json {
                let mut v = object(&key);
                if let Some(map) = v.as_object_mut() {
                    map.insert("key".into(), text.into());
                }
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "{text}")?;
                writeln!(
                    out,
                    "(shown once; id {}, scopes {})",
                    key.id,
                    key.scopes.join(",")
                )?;
            }
        }
        KeysCommand::List { db } => {
            let directory = Directory::open(db.db).await?;
            for k in directory.keys().await? {
                if json {
                    writeln!(out, "{}", object(&k))?;
                } else {
                    writeln!(
                        out,
                        "{:<22} {:<24} {:<28} {:<24} {}",
                        k.id,
                        k.scopes.join(","),
                        k.accounts
                            .as_ref()
                            .map_or("(all)".to_string(), |a| a.join(",")),
                        k.label.as_deref().unwrap_or("-"),
                        if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                    )?;
                }
            }
        }
        KeysCommand::Revoke { id, db } => {
            let directory = Directory::open(db.db).await?;
            if !directory.revoke_key(&id).await? {
                return Err(anyhow!("no active key has the id {id:?}"));
            }
            if json {
                writeln!(out, "{}", json!({"id": id, "revoked": true}))?;
            } else {
                writeln!(out, "revoked {id}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
