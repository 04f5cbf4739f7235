//! `inbox events`: the store's event log as JSON lines, from any process — after a seq,
//! and with `--follow` on as new events commit (until SIGTERM or SIGINT).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use inbox_server::Directory;
use marketplace_inbox::sync::EventFilter;

use crate::account_commands::DbArg;

/// How often `--follow` looks for new events.
const POLL: Duration = Duration::from_millis(250);

/// Prints the events after `after` (default: from the first), then with `follow` the new
/// ones as they commit.
pub async fn run(after: u64, follow: bool, db: DbArg) -> Result<ExitCode> {
    let directory = Directory::open(db.db).await?;
    let filter = EventFilter::default();
    let mut after = after;
    let stopped = inbox_server::shutdown_signal();
    tokio::pin!(stopped);
    loop {
        let page = directory.events_after(after, &filter, 1000).await?;
        {
            let mut out = std::io::stdout().lock();
            for event in &page {
                writeln!(out, "{event}")?;
                after = event
                    .get("seq")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(after)
                    .max(after);
            }
            out.flush()?;
        }
        if page.len() == 1000 {
            continue;
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut stopped => return Ok(ExitCode::SUCCESS),
        }
    }
}
