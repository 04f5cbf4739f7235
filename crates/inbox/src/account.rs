use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use crate::model::*;
use crate::vendors::{
    allegro::AllegroAccount, magalu::MagaluAccount, mercadolibre::MercadoLibreAccount,
    ozon::OzonAccount,
};
use crate::{Error, Marketplace};

/// One marketplace account of any of the four marketplaces.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Account {
    /// An Allegro account.
    Allegro(AllegroAccount),
    /// A Mercado Libre seller.
    MercadoLibre(MercadoLibreAccount),
    /// A Magalu seller.
    Magalu(MagaluAccount),
    /// An Ozon seller.
    Ozon(OzonAccount),
}

impl Account {
    /// Which marketplace.
    pub fn marketplace(&self) -> Marketplace {
        match self {
            Account::Allegro(_) => Marketplace::Allegro,
            Account::MercadoLibre(_) => Marketplace::MercadoLibre,
            Account::Magalu(_) => Marketplace::Magalu,
            Account::Ozon(_) => Marketplace::Ozon,
        }
    }

    /// The account's conversations, lazily, page by page (see each marketplace's order
    /// in [`crate::vendors`]). For Mercado Libre: the packs with unread messages.
    pub fn conversations(&self) -> BoxStream<'static, Result<Conversation, Error>> {
        match self {
            Account::Allegro(a) => a.conversations(),
            Account::MercadoLibre(a) => a.conversations(),
            Account::Magalu(a) => a.conversations(),
            Account::Ozon(a) => a.conversations(),
        }
    }

    /// The messages of one conversation, lazily, page by page. Never marks anything read.
    pub fn messages(
        &self,
        conversation: &ConversationRef,
    ) -> BoxStream<'static, Result<Message, Error>> {
        if let Err(e) = self.check(conversation) {
            return stream::once(async move { Err(e) }).boxed();
        }
        let id = conversation.id.as_str();
        match self {
            Account::Allegro(a) => a.messages(id),
            Account::MercadoLibre(a) => a.messages(id),
            Account::Magalu(a) => a.messages(id),
            Account::Ozon(a) => a.messages(id),
        }
    }

    /// Sends a message, with attachments uploaded the marketplace's way. The
    /// marketplace's rules (length, character set, required fields, file types) are
    /// checked before any request is made.
    pub async fn send(
        &self,
        conversation: &ConversationRef,
        text: &str,
        attachments: &[OutgoingAttachment],
    ) -> Result<Sent, Error> {
        self.check(conversation)?;
        let id = conversation.id.as_str();
        match self {
            Account::Allegro(a) => a.send(id, text, attachments).await,
            Account::MercadoLibre(a) => a.send(id, text, attachments).await,
            Account::Magalu(a) => a.send(id, text, attachments).await,
            Account::Ozon(a) => a.send(id, text, attachments).await,
        }
    }

    /// Marks a conversation read.
    pub async fn mark_read(&self, conversation: &ConversationRef) -> Result<(), Error> {
        self.check(conversation)?;
        let id = conversation.id.as_str();
        match self {
            Account::Allegro(a) => a.mark_read(id).await,
            Account::MercadoLibre(a) => a.mark_read(id).await,
            Account::Magalu(a) => a.mark_read(id).await,
            Account::Ozon(a) => a.mark_read(id).await,
        }
    }

    /// How many conversations (and, where the marketplace counts them, messages) are
    /// unread. Walks the conversation listing; the first error ends it.
    pub async fn unread(&self) -> Result<UnreadSummary, Error> {
        let marketplace = self.marketplace();
        let init = UnreadSummary {
            marketplace,
            conversations: 0,
            messages: (marketplace != Marketplace::Allegro).then_some(0),
        };
        self.conversations()
            .try_fold(init, |mut acc, c| async move {
                match c.unread {
                    Some(Unread::Count(n)) if n > 0 => {
                        acc.conversations += 1;
                        acc.messages = Some(acc.messages.unwrap_or(0) + n);
                    }
                    Some(Unread::Flag(true)) => acc.conversations += 1,
                    _ => {}
                }
                Ok(acc)
            })
            .await
    }

    fn check(&self, conversation: &ConversationRef) -> Result<(), Error> {
        if conversation.marketplace != self.marketplace() {
            return Err(Error::InvalidInput {
                marketplace: Some(self.marketplace()),
                message: format!(
                    "{conversation} is not a conversation of this {} account",
                    self.marketplace()
                ),
            });
        }
        Ok(())
    }
}

impl From<AllegroAccount> for Account {
    fn from(a: AllegroAccount) -> Self {
        Account::Allegro(a)
    }
}

impl From<MercadoLibreAccount> for Account {
    fn from(a: MercadoLibreAccount) -> Self {
        Account::MercadoLibre(a)
    }
}

impl From<MagaluAccount> for Account {
    fn from(a: MagaluAccount) -> Self {
        Account::Magalu(a)
    }
}

impl From<OzonAccount> for Account {
    fn from(a: OzonAccount) -> Self {
        Account::Ozon(a)
    }
}
