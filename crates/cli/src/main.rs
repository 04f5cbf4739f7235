//! `inbox`: read and answer buyer messages on Allegro, Mercado Libre, Magalu and Ozon.
//!
//! `inbox --sandbox conversations` works with nothing configured: it starts the local
//! sandbox in-process and points every marketplace at it.

mod account_commands;
mod accounts;
mod event_commands;
mod key_commands;
mod output;
mod sync;
mod webhook_commands;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use inbox_server::text::{account_failure, describe, one_line, MAX_LINE};
use inbox_server::Db;
use marketplace_inbox::{
    ConversationQuery, ConversationRef, Inbox, JsonLine, Marketplace, MessageQuery,
    NewConversation, OutgoingAttachment,
};

/// Writes one line to stdout; a closed pipe (`inbox … | head`) ends the command quietly
/// instead of panicking, as `println!` would.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

#[derive(Parser, Debug)]
#[command(
    name = "inbox",
    version,
    about = "One inbox over Allegro, Mercado Libre, Magalu and Ozon"
)]
struct Cli {
    /// Start the local sandbox in-process and use it for every marketplace.
    #[arg(long, global = true)]
    sandbox: bool,
    /// Print one JSON object per line instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// A JSON file naming several accounts (instead of the environment).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only this account (by its name); also picks the account of a plain
    /// `marketplace:id` reference when several could own it. `keys create` takes it
    /// several times (the accounts a key is limited to).
    #[arg(long, global = true, value_name = "NAME")]
    account: Vec<String>,
    /// Log requests, retries and token refreshes on stderr (-v info, -vv debug, -vvv
    /// trace); `RUST_LOG` sets the filter instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List conversations of every account.
    Conversations {
        /// Only this marketplace (allegro, mercadolibre, magalu, ozon).
        #[arg(long)]
        marketplace: Option<Marketplace>,
        /// Only conversations with unread messages.
        #[arg(long)]
        unread: bool,
    },
    /// List the messages of a conversation (never marks them read).
    Messages {
        /// The conversation, as marketplace:id or marketplace@account:id.
        reference: ConversationRef,
    },
    /// Send a message in a conversation.
    Send {
        /// The conversation, as marketplace:id or marketplace@account:id.
        reference: ConversationRef,
        /// The text.
        #[arg(long)]
        text: String,
        /// A file to attach (repeatable).
        #[arg(long = "attach", value_name = "FILE")]
        attach: Vec<PathBuf>,
    },
    /// Mark a conversation read.
    Read {
        /// The conversation, as marketplace:id or marketplace@account:id.
        reference: ConversationRef,
    },
    /// Unread conversations and messages per account.
    Unread,
    /// One sync pass: print what changed since the previous pass on the same database
    /// (the first pass imports and prints everything).
    Sync {
        /// The database: a SQLite file (default: $XDG_DATA_HOME/inbox/inbox.db) or a
        /// `postgres://` URL.
        #[arg(long, value_name = "FILE|URL", value_parser = db)]
        db: Option<Db>,
        /// How many accounts are synced at once.
        #[arg(long, value_name = "N", default_value_t = marketplace_inbox::sync::ACCOUNTS_AT_ONCE, value_parser = clap::value_parser!(usize))]
        concurrency: usize,
    },
    /// Sync in a loop: print changes as they arrive, until interrupted.
    Watch {
        /// Seconds between passes (0.05 to 31536000).
        #[arg(long, value_name = "SECS", default_value = "30", value_parser = sync::interval, allow_negative_numbers = true)]
        interval: Duration,
        /// The database: a SQLite file (default: $XDG_DATA_HOME/inbox/inbox.db) or a
        /// `postgres://` URL.
        #[arg(long, value_name = "FILE|URL", value_parser = db)]
        db: Option<Db>,
        /// How many accounts are synced at once.
        #[arg(long, value_name = "N", default_value_t = marketplace_inbox::sync::ACCOUNTS_AT_ONCE)]
        concurrency: usize,
        /// Stop after this many passes (default: never).
        #[arg(long, hide = true)]
        polls: Option<u64>,
    },
    /// Start a conversation: on Allegro with a buyer about their order (--to, --order,
    /// --text), on Ozon for a posting (--posting).
    Start {
        /// The marketplace (allegro or ozon).
        #[arg(long)]
        marketplace: Marketplace,
        /// Allegro: the buyer's login.
        #[arg(long, value_name = "LOGIN")]
        to: Option<String>,
        /// Allegro: the buyer's order the thread is about.
        #[arg(long, value_name = "ORDER_ID")]
        order: Option<String>,
        /// Allegro: the first message.
        #[arg(long)]
        text: Option<String>,
        /// Ozon: the posting number.
        #[arg(long, value_name = "NUMBER")]
        posting: Option<String>,
    },
    /// Download an attachment of a message in a conversation, streamed to a file.
    Download {
        /// The conversation, as marketplace:id or marketplace@account:id.
        reference: ConversationRef,
        /// The attachment: its id, its file name, or its URL, as `messages` prints them.
        attachment: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write every message of every account to a file as JSON lines.
    Export {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sync every account as jobs on PostgreSQL (graphile_worker), sharing the work with
    /// every other worker on the same database, until SIGTERM or SIGINT.
    Worker {
        /// The database: a `postgres://` URL (the mirror, the jobs and the leases).
        #[arg(long, value_name = "URL", value_parser = db)]
        db: Db,
        /// How many accounts this worker syncs at once.
        #[arg(long, value_name = "N", default_value_t = 16)]
        concurrency: usize,
        #[command(flatten)]
        webhooks: WebhookArgs,
    },
    /// The store's event log as JSON lines (`{"id", "seq", "type", "created_at",
    /// "account", "marketplace", "data"}`), oldest first; `--follow` waits for new ones.
    Events {
        /// Only the events after this seq.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Keep printing new events as they commit, until SIGTERM or SIGINT.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        db: account_commands::DbArg,
    },
    /// Webhook endpoints: add, list, remove, replay (as the admin routes do).
    Webhooks {
        #[command(subcommand)]
        command: webhook_commands::WebhooksCommand,
    },
    /// The HTTP API's keys: create, list, revoke.
    Keys {
        #[command(subcommand)]
        command: key_commands::KeysCommand,
    },
    /// The accounts a database holds: add, list, rename, remove, import.
    Accounts {
        #[command(subcommand)]
        command: account_commands::AccountsCommand,
    },
    /// Receive Mercado Libre's and Ozon's push notifications and keep every account
    /// synced, printing every change as `watch` does, until SIGTERM or SIGINT.
    Serve {
        /// Where to listen, as HOST:PORT (port 0 picks a free one, printed on stderr).
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// The database: a SQLite file (default: $XDG_DATA_HOME/inbox/inbox.db) or a
        /// `postgres://` URL.
        #[arg(long, value_name = "FILE|URL", value_parser = db)]
        db: Option<Db>,
        /// A secret path segment: the routes become /notifications/S/mercadolibre and
        /// /notifications/S/ozon (register those URLs with the vendors).
        #[arg(long, value_name = "S", env = "INBOX_NOTIFY_SECRET", hide_env_values = true, value_parser = secret)]
        notify_secret: Option<String>,
        /// Serve the notification routes without a secret (/notifications/mercadolibre
        /// and /notifications/ozon): anyone who can reach the listener can post.
        #[arg(long, conflicts_with = "notify_secret")]
        insecure_no_secret: bool,
        /// Seconds between the safety-net polls of accounts that push (Mercado Libre,
        /// Ozon); the others are polled at their own interval.
        #[arg(long, value_name = "SECS", default_value = "300", value_parser = sync::interval, allow_negative_numbers = true)]
        poll_interval: Duration,
        /// The service's public base URL: with the database's accounts, sellers connect
        /// theirs at PUBLIC/connect/… (links from `inbox accounts link`), the vendors
        /// sending them back to PUBLIC/connect/callback/{marketplace}.
        #[arg(long, value_name = "URL", env = "INBOX_PUBLIC_URL")]
        public_url: Option<String>,
        #[command(flatten)]
        webhooks: WebhookArgs,
    },
}

/// How `serve` and `worker` deliver webhooks and keep the event log.
#[derive(clap::Args, Debug, Clone)]
struct WebhookArgs {
    /// Let webhook URLs use plain http and reach loopback, private and link-local
    /// addresses (tests, a private network); otherwise only https to public addresses.
    #[arg(long)]
    webhooks_allow_private: bool,
    /// Days the event log (and webhook attempts) are kept.
    #[arg(long, value_name = "DAYS", env = "INBOX_EVENTS_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    events_retention_days: u32,
}

impl WebhookArgs {
    fn options(&self) -> inbox_server::webhooks::WebhookOptions {
        inbox_server::webhooks::WebhookOptions {
            allow_private: self.webhooks_allow_private,
            retention: Duration::from_secs(u64::from(self.events_retention_days) * 86_400),
            metrics: None,
        }
    }
}

/// A `--notify-secret`: 8 to 200 letters, digits, `-`, `_` or `.` (a URL path segment).
fn secret(text: &str) -> std::result::Result<String, String> {
    let ok = (8..=200).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    match ok {
        true => Ok(text.to_string()),
        false => Err("the secret must be 8 to 200 letters, digits, '-', '_' or '.'".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging(cli.verbose);
    match run(cli).await {
        Ok(code) => code,
        // The reader went away (`inbox … | head`): nothing left to say.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("inbox: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// Tracing on stderr when asked for with `-v` or `RUST_LOG`; silent otherwise.
fn logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match (
        std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()),
        verbose,
    ) {
        (Some(spec), _) => EnvFilter::new(spec),
        (None, 0) => return,
        (None, 1) => EnvFilter::new("info"),
        (None, 2) => EnvFilter::new("debug"),
        (None, _) => EnvFilter::new("trace"),
    };
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Reads `--db`: a PostgreSQL URL, else a path.
fn db(text: &str) -> std::result::Result<Db, String> {
    text.parse()
}

/// Runs the command; rotated tokens that could not be written back (the next run would
/// start from a spent refresh token) make it fail, whatever the command did.
async fn run(mut cli: Cli) -> Result<ExitCode> {
    match std::mem::replace(&mut cli.command, Command::Unread) {
        Command::Keys { command } => {
            return key_commands::run(command, cli.json, &cli.account).await
        }
        Command::Webhooks { command } => return webhook_commands::run(command, &cli.account).await,
        Command::Events { after, follow, db } => {
            return event_commands::run(after, follow, db).await
        }
        Command::Accounts { command } => {
            let applications = match &cli.config {
                Some(path) => marketplace_inbox::InboxConfig::from_file(path)?,
                None => marketplace_inbox::InboxConfig::default(),
            };
            return account_commands::run(command, cli.json, applications).await;
        }
        other => cli.command = other,
    }
    if let Some(following) = accounts::from_store(&cli_choice(&cli)).await? {
        let inbox = following.loaded.inbox();
        return command(cli, inbox, Some(following)).await;
    }
    let loaded = accounts::load(cli.sandbox, cli.config.as_deref()).await?;
    let tokens = loaded.tokens.clone();
    let outcome = command(cli, loaded.inbox, None).await;
    match tokens.and_then(|t| t.failure()) {
        Some(failure) => match outcome {
            Ok(_) => Err(anyhow!(failure)),
            Err(e) => {
                eprintln!("inbox: {}", one_line(&failure, MAX_LINE));
                Err(e)
            }
        },
        None => outcome,
    }
}

/// What decides whether a command runs on the database's own accounts.
fn cli_choice(cli: &Cli) -> accounts::Choice {
    let (db, runs) = match &cli.command {
        Command::Sync { db, .. } => (db.clone(), accounts::Runs::Once),
        Command::Watch { db, .. } => (db.clone(), accounts::Runs::Following),
        // Sellers connecting accounts: the database's accounts, whatever the environment.
        Command::Serve {
            db,
            public_url: Some(_),
            ..
        } => (db.clone(), accounts::Runs::Connecting),
        Command::Serve { db, .. } => (db.clone(), accounts::Runs::Serving),
        Command::Worker { db, .. } => (Some(db.clone()), accounts::Runs::Serving),
        _ => (None, accounts::Runs::NotAtAll),
    };
    // A config file of applications alone leaves the accounts to the database.
    let config = cli.config.as_ref().is_some_and(|path| {
        marketplace_inbox::InboxConfig::from_file(path).map_or(true, |c| !c.accounts.is_empty())
    });
    accounts::Choice {
        sandbox: cli.sandbox,
        config,
        db,
        runs,
    }
}

/// How long a service may take to end after SIGTERM or SIGINT: its running steps get
/// 30 s, and whatever still holds it after this is cut short.
const STOP_LIMIT: Duration = Duration::from_secs(50);

/// Listens for SIGTERM and SIGINT from now on (a signal that comes while the service is
/// still starting is not lost), and ends the process should a graceful stop hang.
fn listen_for_stop() {
    let stopped = inbox_server::shutdown_signal();
    tokio::spawn(async move {
        stopped.await;
        tokio::time::sleep(STOP_LIMIT).await;
        eprintln!(
            "inbox: still running {} s after the signal to stop; ending now",
            STOP_LIMIT.as_secs()
        );
        std::process::exit(1);
    });
}

async fn command(
    mut cli: Cli,
    inbox: Inbox,
    following: Option<accounts::Following>,
) -> Result<ExitCode> {
    let mut inbox = inbox;
    if cli.account.len() > 1 {
        return Err(anyhow!("--account names one account here"));
    }
    let account = cli.account.pop();
    let config_file = cli.config.clone();
    if let Some(name) = &account {
        if inbox.account(name).is_none() {
            let names: Vec<&str> = inbox.accounts().map(|a| a.name()).collect();
            return Err(anyhow!(
                "no account is named {name:?}; the accounts are: {}",
                names.join(", ")
            ));
        }
        inbox.retain(|a| a.name() == name);
    }
    if matches!(cli.command, Command::Serve { .. } | Command::Worker { .. }) {
        listen_for_stop();
    }
    let serving = matches!(cli.command, Command::Serve { .. } | Command::Worker { .. })
        || (matches!(cli.command, Command::Watch { .. }) && following.is_some());
    if inbox.accounts().next().is_none() && !serving {
        return Err(anyhow!(
            "no marketplace account configured — set ALLEGRO_TOKEN, MERCADOLIBRE_TOKEN and MERCADOLIBRE_SELLER_ID, MAGALU_TOKEN, or OZON_CLIENT_ID and OZON_API_KEY; pass --config FILE; or try --sandbox"
        ));
    }
    // A plain `marketplace:id` takes the account named by --account.
    let named = |mut r: ConversationRef| {
        if r.account.is_none() {
            r.account = account.clone();
        }
        r
    };
    let json = cli.json;
    match cli.command {
        Command::Conversations {
            marketplace,
            unread,
        } => {
            if let Some(m) = marketplace {
                inbox.retain(|a| a.marketplace() == m);
            }
            conversations(&inbox, json, unread).await
        }
        Command::Messages { reference } => messages(&inbox, json, &named(reference)).await,
        Command::Send {
            reference,
            text,
            attach,
        } => send(&inbox, json, &named(reference), &text, &attach).await,
        Command::Read { reference } => {
            let reference = named(reference);
            inbox.mark_read(&reference).await?;
            let shown = inbox.display_ref(&reference);
            if json {
                out!("{}", serde_json::json!({"ref": shown, "read": true}));
            } else {
                out!("marked {shown} read");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Unread => unread(&inbox, json).await,
        Command::Sync { db, concurrency } => {
            let store = inbox_server::open_store(db).await?;
            let printer = sync::Printer { json };
            let pass =
                inbox_server::pass::pass(&inbox, store.as_ref(), &printer, concurrency).await;
            if !json {
                eprintln!("{}", pass.summary());
            }
            Ok(exit(pass.failed > 0))
        }
        Command::Watch {
            interval,
            db,
            polls,
            concurrency,
        } => {
            let store = inbox_server::open_store(db).await?;
            let printer = sync::Printer { json };
            let mut done = 0u64;
            let mut failed = false;
            let mut following = following;
            loop {
                if let Some(f) = &mut following {
                    if let Some(next) = f.reload().await {
                        inbox = next;
                    }
                }
                let pass =
                    inbox_server::pass::pass(&inbox, store.as_ref(), &printer, concurrency).await;
                failed |= pass.failed > 0;
                if done == 0 {
                    eprintln!(
                        "inbox: watching; changes appear below as they arrive (Ctrl-C stops)"
                    );
                }
                done = done.saturating_add(1);
                if polls.is_some_and(|n| done >= n) {
                    return Ok(exit(failed));
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(exit(failed)),
                }
            }
        }
        Command::Export { out } => export(&inbox, &out).await,
        Command::Serve {
            listen,
            db,
            notify_secret,
            insecure_no_secret,
            poll_interval,
            public_url,
            webhooks,
        } => {
            if notify_secret.is_none() && !insecure_no_secret {
                anyhow::bail!(
                    "inbox serve needs --notify-secret S (or INBOX_NOTIFY_SECRET): the notification routes would take posts from anyone; --insecure-no-secret serves them without one"
                );
            }
            let applications = match &config_file {
                Some(path) => marketplace_inbox::InboxConfig::from_file(path)?,
                None => marketplace_inbox::InboxConfig::default(),
            };
            let options = inbox_server::ServeOptions {
                listen,
                db,
                secret: notify_secret,
                poll_interval,
                public_url,
                applications,
                webhooks: webhooks.options(),
            };
            let accounts = match following {
                Some(f) => inbox_server::Accounts::Store(f.key),
                None => inbox_server::Accounts::Fixed {
                    inbox,
                    config: match &config_file {
                        Some(path) => Some(marketplace_inbox::InboxConfig::from_file(path)?),
                        None => None,
                    },
                },
            };
            inbox_server::serve(accounts, options, Arc::new(sync::Printer { json })).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worker {
            db,
            concurrency,
            webhooks,
        } => {
            let Db::Postgres(url) = db else {
                return Err(anyhow!("inbox worker needs a postgres:// database (--db)"));
            };
            let printer = Arc::new(sync::Printer { json });
            let config = match (config_file, following) {
                (Some(path), None) => {
                    let mut config = marketplace_inbox::InboxConfig::from_file(&path)?;
                    if let Some(name) = &account {
                        config.accounts.retain(|a| &a.name == name);
                    }
                    Some(config)
                }
                _ => None,
            };
            let key = marketplace_inbox::TokenKey::from_env()?;
            inbox_server::schedule::jobs::worker(
                config,
                key,
                &url,
                concurrency,
                printer,
                &webhooks.options(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Start {
            marketplace,
            to,
            order,
            text,
            posting,
        } => {
            let new = match (marketplace, to, order, text, posting) {
                (Marketplace::Allegro, Some(login), Some(order_id), Some(text), None) => {
                    NewConversation::Allegro {
                        login,
                        order_id,
                        text,
                    }
                }
                (Marketplace::Ozon, None, None, None, Some(posting_number)) => {
                    NewConversation::Ozon { posting_number }
                }
                (Marketplace::Allegro | Marketplace::Ozon, ..) => {
                    return Err(anyhow!(
                        "inbox start: Allegro takes --to, --order and --text; Ozon takes --posting"
                    ))
                }
                (other, ..) => {
                    return Err(anyhow!(
                        "{other}: sellers cannot start conversations there (buyers do)"
                    ))
                }
            };
            let account = inbox.only(marketplace)?;
            let started = account.start(&new).await?;
            let shown = inbox.display_ref(&started.conversation);
            if json {
                out!(
                    "{}",
                    serde_json::json!({"ref": shown, "started": true, "message_id": started.message_id})
                );
            } else {
                out!("started {shown}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Download {
            reference,
            attachment,
            out,
        } => download(&inbox, json, &named(reference), &attachment, &out).await,
        // Run before any account is loaded (`run`).
        Command::Keys { command } => key_commands::run(command, json, &[]).await,
        Command::Webhooks { command } => webhook_commands::run(command, &[]).await,
        Command::Events { after, follow, db } => event_commands::run(after, follow, db).await,
        Command::Accounts { command } => {
            account_commands::run(command, json, marketplace_inbox::InboxConfig::default()).await
        }
    }
}

/// Finds the attachment among the conversation's messages and streams it to `out`
/// (a temporary file beside it, renamed when complete).
async fn download(
    inbox: &Inbox,
    json: bool,
    reference: &ConversationRef,
    wanted: &str,
    out: &std::path::Path,
) -> Result<ExitCode> {
    let mut messages = inbox.messages(reference, MessageQuery::new());
    let mut found = None;
    while let Some(m) = messages.next().await {
        let m = m?;
        found = m.attachments.into_iter().find(|a| {
            [&a.id, &a.name, &a.url]
                .iter()
                .any(|v| v.as_deref() == Some(wanted))
        });
        if found.is_some() {
            break;
        }
    }
    let attachment = found.ok_or_else(|| {
        anyhow!(
            "no attachment {wanted:?} in {} — `inbox messages` lists them",
            inbox.display_ref(reference)
        )
    })?;
    let mut download = inbox.download(reference, &attachment).await?;
    let partial = out.with_extension("part");
    let mut file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut written: u64 = 0;
    while let Some(chunk) = download.body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                drop(file);
                std::fs::remove_file(&partial).ok();
                return Err(e.into());
            }
        };
        file.write_all(&chunk)?;
        written = written.saturating_add(chunk.len() as u64);
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
    if json {
        out!(
            "{}",
            serde_json::json!({"ref": inbox.display_ref(reference), "attachment": wanted, "out": out.display().to_string(), "bytes": written})
        );
    } else {
        out!("saved {} ({written} bytes)", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one failure of one account's stream on stderr.
fn report(account: &str, e: marketplace_inbox::Error) {
    eprintln!("{}", account_failure(account, e));
}

async fn conversations(inbox: &Inbox, json: bool, unread: bool) -> Result<ExitCode> {
    let query = ConversationQuery::new()
        .unread_only(unread)
        .with_state(true);
    let mut stream = inbox.conversations(query);
    let mut failed = false;
    if !json {
        out!("{}", output::CONVERSATION_HEADER);
    }
    while let Some(t) = stream.next().await {
        match t.item {
            Ok(c) if json => out!("{}", c.json_line(inbox)?),
            Ok(c) => out!("{}", output::conversation_row(inbox, &c)),
            Err(e) => {
                failed = true;
                report(&t.account, e);
            }
        }
    }
    Ok(exit(failed))
}

async fn messages(inbox: &Inbox, json: bool, reference: &ConversationRef) -> Result<ExitCode> {
    let account = inbox.resolve(reference)?;
    let mut stream = account.messages(reference, MessageQuery::new());
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(m) if json => out!("{}", m.json_line(inbox)?),
            Ok(m) => out!("{}", output::message_row(&m)),
            Err(e) => {
                failed = true;
                report(account.name(), e);
            }
        }
    }
    Ok(exit(failed))
}

async fn send(
    inbox: &Inbox,
    json: bool,
    reference: &ConversationRef,
    text: &str,
    files: &[PathBuf],
) -> Result<ExitCode> {
    let mut attachments = Vec::new();
    for path in files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file")
            .to_string();
        attachments.push(OutgoingAttachment {
            name,
            mime: marketplace_inbox::media_type_of(
                &path.file_name().unwrap_or_default().to_string_lossy(),
            )
            .into(),
            bytes,
        });
    }
    let sent = inbox.send(reference, text, &attachments).await?;
    let shown = inbox.display_ref(&sent.conversation);
    if json {
        out!(
            "{}",
            serde_json::json!({"ref": shown, "sent": true, "message_id": sent.message_id})
        );
    } else {
        out!(
            "sent to {}{}",
            shown,
            sent.message_id
                .map(|id| format!(" (message {id})"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn unread(inbox: &Inbox, json: bool) -> Result<ExitCode> {
    let mut failed = false;
    if !json {
        out!(
            "{:<16} {:<13} {:>13} {:>9}",
            "ACCOUNT",
            "MARKETPLACE",
            "CONVERSATIONS",
            "MESSAGES"
        );
    }
    for t in inbox.unread().await {
        match t.item {
            Ok(s) if json => out!(
                "{}",
                serde_json::json!({"account": t.account, "marketplace": s.marketplace.as_str(), "conversations": s.conversations, "messages": s.messages})
            ),
            Ok(s) => out!(
                "{:<16} {:<13} {:>13} {:>9}",
                t.account,
                s.marketplace.as_str(),
                s.conversations,
                s.messages.map_or("-".into(), |m| m.to_string())
            ),
            Err(e) => {
                failed = true;
                report(&t.account, e);
            }
        }
    }
    Ok(exit(failed))
}

/// Success, or failure when anything failed.
fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn export(inbox: &Inbox, out: &std::path::Path) -> Result<ExitCode> {
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos} messages exported ({elapsed}) {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut stream = inbox.all_messages(ConversationQuery::new());
    let (mut count, mut failed) = (0u64, 0u64);
    while let Some(t) = stream.next().await {
        match t.item {
            Ok(m) => {
                writer.write_all(m.json_line(inbox)?.as_bytes())?;
                writer.write_all(b"\n")?;
                count += 1;
                bar.inc(1);
            }
            Err(e) => {
                failed += 1;
                bar.suspend(|| report(&t.account, e));
            }
        }
    }
    writer.flush()?;
    bar.finish_and_clear();
    eprintln!(
        "exported {count} messages to {}{}",
        out.display(),
        if failed > 0 {
            format!(" ({failed} errors)")
        } else {
            String::new()
        }
    );
    Ok(exit(failed > 0))
}
