//! What a push receiver does with one notification: read it leniently, find the account
//! it names, and read that conversation again from the vendor's API into the mirror (a
//! notification is a hint, never the data). `inbox serve` is the full receiver; this is
//! its core for a program of your own.
//!
//! `cargo run -p marketplace-inbox --example push_receiver`: against the local sandbox, a
//! buyer writes on Ozon, the vendor's notification is played, and the message is stored.

use marketplace_inbox::push::{self, Hint};
use marketplace_inbox::sync::{self, Event, SqliteStore};
use marketplace_inbox::{Inbox, InboxConfig};

/// Handles an Ozon notification body: the texts of the new messages it led to.
pub async fn on_ozon_notification(
    inbox: &Inbox,
    store: &SqliteStore,
    body: &[u8],
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let notice = push::read_ozon(body)?;
    let Hint::Message {
        conversation: Some(chat),
        ..
    } = &notice.hint
    else {
        return Ok(Vec::new());
    };
    // Only the account the notification names is asked anything.
    let Ok(account) = inbox.addressee(&notice) else {
        return Ok(Vec::new());
    };
    let synced = sync::sync_conversation(account, store, &account.reference(chat.as_str())).await?;
    Ok(synced
        .changes
        .iter()
        .filter(|c| c.event() == Event::NewMessage)
        .filter_map(|c| match c {
            sync::Change::Message(_, m) => Some(m.text.clone()),
            _ => None,
        })
        .collect())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sandbox = inbox_sandbox::Sandbox::start(inbox_sandbox::Config::default()).await?;
    let inbox = Inbox::from_config(&InboxConfig::from_value(sandbox.accounts_config())?)?;
    let store = SqliteStore::in_memory().await?;
    let chat = "99feb3fc-a474-469f-95d5-268b470cc607";
    let id = sandbox
        .buyer_writes_to(inbox_sandbox::Vendor::Ozon, "ozon", chat, "Is it in stock?")
        .ok_or("no such chat")?;
    let body = serde_json::json!({"message_type": "TYPE_NEW_MESSAGE", "chat_id": chat,
        "message_id": id, "seller_id": sandbox.credentials().ozon_client_id,
        "user": {"id": "115568", "type": "Сustomer"}});
    for text in on_ozon_notification(&inbox, &store, body.to_string().as_bytes()).await? {
        println!("stored: {text}");
    }
    Ok(())
}
