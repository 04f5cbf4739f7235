//! `inbox webhooks …`: the webhook endpoints a database delivers to, as the admin routes
//! manage them — added (the secret printed once), listed, removed, replayed. Every
//! answer is a JSON line.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use clap::Subcommand;
use inbox_server::webhooks::target::check_url;
use inbox_server::Directory;
use marketplace_inbox::sync::{check_event_types, EventFilter, Replay};
use serde_json::json;

use crate::account_commands::DbArg;

/// `inbox webhooks` subcommands.
#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Add an endpoint: it receives the events committed from now on; its secret
    /// (`whsec_…`) is printed once. `--account NAME` (repeatable) limits it to those
    /// accounts' events.
    Add {
        /// Where events are posted (https; http and private addresses only with
        /// `--allow-private`, for a service started with `--webhooks-allow-private`).
        url: String,
        /// Only these event types, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// A note for people.
        #[arg(long)]
        description: Option<String>,
        /// Allow a plain http URL or a private address.
        #[arg(long)]
        allow_private: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// List the endpoints (never their secrets).
    List {
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove an endpoint and what it is still owed.
    Remove {
        /// The endpoint's id (`wh_…`).
        id: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// Deliver events again, with their own ids: those after a seq, or those named.
    Replay {
        /// The endpoint's id (`wh_…`).
        id: String,
        /// Every event after this seq.
        #[arg(long, conflicts_with = "event", required_unless_present = "event")]
        after: Option<u64>,
        /// An event id (`evt_…`; repeatable).
        #[arg(long)]
        event: Vec<String>,
        #[command(flatten)]
        db: DbArg,
    },
}

/// Runs a `webhooks` subcommand; `accounts` are the `--account` names given.
pub async fn run(command: WebhooksCommand, accounts: &[String]) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        WebhooksCommand::Add {
            url,
            types,
            description,
            allow_private,
            db,
        } => {
            check_url(&url, allow_private).map_err(|why| anyhow!("{why}"))?;
            check_event_types(&types).map_err(|why| anyhow!("{why}"))?;
            let filter = EventFilter {
                types: (!types.is_empty()).then_some(types),
                accounts: (!accounts.is_empty()).then(|| accounts.to_vec()),
            };
            let directory = Directory::open(db.db).await?;
            let (hook, secret) = directory
                .create_webhook(&url, &filter, description.as_deref())
                .await?;
            let v = hook.to_json_with(&secret);
            writeln!(out, "{v}")?;
        }
        WebhooksCommand::List { db } => {
            let directory = Directory::open(db.db).await?;
            for hook in directory.webhooks().await? {
                writeln!(out, "{}", hook.to_json())?;
            }
        }
        WebhooksCommand::Remove { id, db } => {
            let directory = Directory::open(db.db).await?;
            if !directory.delete_webhook(&id).await? {
                return Err(anyhow!("no webhook has the id {id:?}"));
            }
            writeln!(out, "{}", json!({"id": id, "removed": true}))?;
        }
        WebhooksCommand::Replay {
            id,
            after,
            event,
            db,
        } => {
            let replay = match after {
                Some(after) => Replay::After(after),
                None => Replay::Events(
                    event
                        .iter()
                        .map(|e| {
                            e.strip_prefix("evt_")
                                .unwrap_or(e)
                                .parse::<u64>()
                                .map_err(|_| anyhow!("{e:?} is not an event id"))
                        })
                        .collect::<Result<_>>()?,
                ),
            };
            let directory = Directory::open(db.db).await?;
            let Some(hook) = directory.webhook(&id).await? else {
                return Err(anyhow!("no webhook has the id {id:?}"));
            };
            let queued = directory.replay_webhook(&hook, &replay).await?;
            writeln!(out, "{}", json!({"id": id, "queued": queued}))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
