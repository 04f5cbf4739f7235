use futures::future::join_all;
use futures::stream::{select_all, BoxStream, StreamExt};

use crate::config::InboxConfig;
use crate::listing::{ConversationQuery, Listing, MessageQuery};
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

/// Several marketplace accounts, each under a unique name, behind one set of streams.
///
/// A [`ConversationRef`] reaches the account it names; a plain `marketplace:id` one
/// reaches the only account of that marketplace, and is refused, with the candidates
/// listed, when there are several.
#[derive(Clone, Debug, Default)]
pub struct Inbox {
    accounts: Vec<Account>,
}

impl Inbox {
    /// An empty inbox.
    pub fn new() -> Self {
        Inbox::default()
    }

    /// Every account a configuration describes; the first bad one is the error.
    pub fn from_config(config: &InboxConfig) -> Result<Inbox, Error> {
        let mut inbox = Inbox::new();
        for account in &config.accounts {
            inbox.add(Account::from_config(account)?)?;
        }
        Ok(inbox)
    }

    /// Every account a configuration describes, with rotated OAuth tokens saved to
    /// `store` (see [`Account::from_config_with_store`]).
    pub fn from_config_with_store(
        config: &InboxConfig,
        store: std::sync::Arc<dyn crate::config::TokenStore>,
    ) -> Result<Inbox, Error> {
        let mut inbox = Inbox::new();
        for account in &config.accounts {
            inbox.add(Account::from_config_with_store(account, store.clone())?)?;
        }
        Ok(inbox)
    }

    /// Adds an account; its name must not be taken.
    pub fn add(&mut self, account: Account) -> Result<&mut Self, Error> {
        if self.account(account.name()).is_some() {
            return Err(Error::config(format!(
                "two accounts are named {:?}; account names must be unique",
                account.name()
            )));
        }
        self.accounts.push(account);
        Ok(self)
    }

    /// Keeps only the accounts `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&Account) -> bool) {
        self.accounts.retain(keep);
    }

    /// The accounts, in the order they were added.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter()
    }

    /// The account with this name.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name() == name)
    }

    /// The account a reference belongs to: the one it names, else the only account of
    /// its marketplace. Fails when no account fits, or when several do (the error lists
    /// them, to be named as `marketplace@account:id`).
    pub fn resolve(&self, conversation: &ConversationRef) -> Result<&Account, Error> {
        let marketplace = conversation.marketplace;
        if let Some(name) = &conversation.account {
            return match self.account(name) {
                Some(a) if a.marketplace() == marketplace => Ok(a),
                Some(a) => Err(Error::invalid(
                    marketplace,
                    format!("the account {name} is a {} account", a.marketplace()),
                )),
                None => Err(Error::invalid(
                    marketplace,
                    format!("no account is named {name}"),
                )),
            };
        }
        self.only(marketplace).map_err(|e| match e {
            Error::InvalidInput { message, .. } if message.starts_with("several") => Error::invalid(
                marketplace,
                format!(
                    "{message} could own {} (name it as {marketplace}@ACCOUNT:{} or with --account ACCOUNT)",
                    crate::error::clip(&conversation.plain(), 120),
                    crate::error::clip(&conversation.id, 80),
                ),
            ),
            other => other,
        })
    }

    /// The only account of `marketplace`; fails when there is none or several (naming
    /// them).
    pub fn only(&self, marketplace: crate::Marketplace) -> Result<&Account, Error> {
        let names: Vec<&str> = self
            .accounts
            .iter()
            .filter(|a| a.marketplace() == marketplace)
            .map(Account::name)
            .collect();
        match names.as_slice() {
            [only] => self
                .account(only)
                .ok_or_else(|| Error::invalid(marketplace, "no such account")),
            [] => Err(Error::invalid(
                marketplace,
                format!("no {marketplace} account is configured"),
            )),
            several => Err(Error::invalid(
                marketplace,
                format!("several {marketplace} accounts ({})", several.join(", ")),
            )),
        }
    }

    /// The shortest form of `conversation` that [`Inbox::resolve`] maps back to the same
    /// account: `marketplace:id` when the inbox has one account of that marketplace,
    /// `marketplace@account:id` otherwise.
    pub fn display_ref(&self, conversation: &ConversationRef) -> String {
        let several = self
            .accounts
            .iter()
            .filter(|a| a.marketplace() == conversation.marketplace)
            .nth(1)
            .is_some();
        if several {
            conversation.to_string()
        } else {
            conversation.plain()
        }
    }

    /// The messages of a conversation, from the account it belongs to.
    pub fn messages(
        &self,
        conversation: &ConversationRef,
        query: MessageQuery,
    ) -> Listing<Message> {
        match self.resolve(conversation) {
            Ok(account) => account.messages(conversation, query),
            Err(e) => Listing::failed(e),
        }
    }

    /// Sends a message through the account the conversation belongs to.
    pub async fn send(
        &self,
        conversation: &ConversationRef,
        text: &str,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sent, Error> {
        let account = self.resolve(conversation)?;
        account.send(conversation, text, attachments).await
    }

    /// Downloads an attachment of one of the conversation's messages, through the
    /// account it belongs to.
    pub async fn download(
        &self,
        conversation: &ConversationRef,
        attachment: &Attachment,
    ) -> Result<Download, Error> {
        self.resolve(conversation)?
            .download(conversation, attachment)
            .await
    }

    /// Marks a conversation read through the account it belongs to.
    pub async fn mark_read(&self, conversation: &ConversationRef) -> Result<(), Error> {
        self.resolve(conversation)?.mark_read(conversation).await
    }

    /// Every account's conversations, polled concurrently and merged as they arrive.
    /// Each account's own order is kept; an error of one account ends only its stream.
    pub fn conversations(
        &self,
        query: ConversationQuery,
    ) -> BoxStream<'static, Tagged<Conversation>> {
        select_all(self.accounts.iter().map(|account| {
            let name = account.name().to_string();
            account
                .conversations(query.clone())
                .map(move |item| Tagged {
                    account: name.clone(),
                    item,
                })
                .boxed()
        }))
        .boxed()
    }

    /// Every message of every listed conversation of every account: accounts
    /// concurrently, and within each several conversations at once
    /// ([`Account::all_messages`]).
    pub fn all_messages(&self, query: ConversationQuery) -> BoxStream<'static, Tagged<Message>> {
        select_all(self.accounts.iter().map(|account| {
            let name = account.name().to_string();
            account
                .all_messages(query.clone())
                .map(move |item| Tagged {
                    account: name.clone(),
                    item,
                })
                .boxed()
        }))
        .boxed()
    }

    /// Unread summaries of every account, fetched concurrently.
    pub async fn unread(&self) -> Vec<Tagged<UnreadSummary>> {
        join_all(self.accounts.iter().map(|account| async move {
            Tagged {
                account: account.name().to_string(),
                item: account.unread().await,
            }
        }))
        .await
    }
}
