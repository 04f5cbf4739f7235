use futures::future::join_all;
use futures::stream::{select_all, BoxStream, StreamExt};

use crate::model::*;
use crate::{Account, Error};

/// An item of a merged stream, tagged with the account it came from.
#[derive(Debug)]
pub struct Tagged<T> {
    /// The account's name in the [`Inbox`].
    pub account: String,
    /// The item, or the error that account's stream produced.
    pub item: Result<T, Error>,
}

/// Several marketplace accounts behind one set of streams.
#[derive(Clone, Debug, Default)]
pub struct Inbox {
    accounts: Vec<(String, Account)>,
}

impl Inbox {
    /// An empty inbox.
    pub fn new() -> Self {
        Inbox::default()
    }

    /// Adds an account under a name (used to tag its items).
    pub fn add(&mut self, name: impl Into<String>, account: impl Into<Account>) -> &mut Self {
        self.accounts.push((name.into(), account.into()));
        self
    }

    /// The accounts, in the order they were added.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.accounts.iter().map(|(n, a)| (n.as_str(), a))
    }

    /// The account with this name.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }

    /// The first account of the conversation's marketplace (by name, when there are several).
    pub fn account_for(&self, conversation: &ConversationRef) -> Option<(&str, &Account)> {
        self.accounts()
            .find(|(_, a)| a.marketplace() == conversation.marketplace)
    }

    /// Every account's conversations, polled concurrently and merged as they arrive.
    /// Each account's own order is kept; an error of one account ends only its stream.
    pub fn conversations(&self) -> BoxStream<'static, Tagged<Conversation>> {
        select_all(self.accounts.iter().map(|(name, account)| {
            let name = name.clone();
            account
                .conversations()
                .map(move |item| Tagged {
                    account: name.clone(),
                    item,
                })
                .boxed()
        }))
        .boxed()
    }

    /// Every message of every conversation of every account: accounts concurrently,
    /// each account's conversations one after another.
    pub fn all_messages(&self) -> BoxStream<'static, Tagged<Message>> {
        select_all(self.accounts.iter().map(|(name, account)| {
            let (name, account) = (name.clone(), account.clone());
            let tag = name.clone();
            account
                .conversations()
                .flat_map(move |c| match c {
                    Ok(c) => account.messages(&c.reference),
                    Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                })
                .map(move |item| Tagged {
                    account: tag.clone(),
                    item,
                })
                .boxed()
        }))
        .boxed()
    }

    /// Unread summaries of every account, fetched concurrently.
    pub async fn unread(&self) -> Vec<Tagged<UnreadSummary>> {
        join_all(self.accounts.iter().map(|(name, account)| async move {
            Tagged {
                account: name.clone(),
                item: account.unread().await,
            }
        }))
        .await
    }
}
