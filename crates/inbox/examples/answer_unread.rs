//! Answers every unread conversation of every account, then marks it read.
//!
//! `cargo run -p marketplace-inbox --example answer_unread [-- accounts.json]`: the
//! accounts of an `inbox --config` file, else the environment's, else the local sandbox.
//! A conversation that cannot be answered (blocked, a closed reply window) is reported and
//! left unread; the others go on.

#[allow(dead_code)]
mod support;

use futures::StreamExt;
use marketplace_inbox::{ConversationQuery, ConversationRef, Error, Inbox};

/// What [`answer_unread`] did.
#[derive(Debug, Default)]
pub struct Answered {
    /// Conversations answered and marked read.
    pub answered: Vec<ConversationRef>,
    /// Conversations left unread, with why.
    pub failed: Vec<(ConversationRef, Error)>,
}

/// Replies `text` to every unread conversation of `inbox` and marks it read.
pub async fn answer_unread(inbox: &Inbox, text: &str) -> Result<Answered, Error> {
    let unread: Vec<_> = inbox
        .conversations(ConversationQuery::new().unread_only(true))
        .collect()
        .await;
    let mut done = Answered::default();
    for tagged in unread {
        let conversation = tagged.item?;
        let reference = conversation.reference;
        // Send first: a conversation is marked read only once it was answered.
        let answered = match inbox.send(&reference, text, &[]).await {
            Ok(_) => inbox.mark_read(&reference).await,
            Err(e) => Err(e),
        };
        match answered {
            Ok(()) => done.answered.push(reference),
            Err(e) => done.failed.push((reference, e)),
        }
    }
    Ok(done)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (config, _sandbox) = support::accounts(std::env::args_os().nth(1)).await?;
    let inbox = Inbox::from_config(&config)?;
    let done = answer_unread(
        &inbox,
        "Thank you for your message, we will answer shortly.",
    )
    .await?;
    for r in &done.answered {
        println!("answered {r}");
    }
    for (r, e) in &done.failed {
        println!("left     {r}: {e}");
    }
    Ok(())
}
