//! Magalu conversations. Conversations and messages come in the order Magalu returns
//! them; paging follows `meta.links.next`. Pushed to the vendor: the page size (≤ 100),
//! `status` and `since` (as `last_interaction_at_start`).

use std::num::NonZeroU64;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use inbox_core::{ClientAuth, PersistTokens};
use inbox_magalu::{enums, types, ClientInfo as _, Magalu};
use serde_json::Value;

use crate::adapter::{page_size, Adapter, Listed};
use crate::config::{AccountConfig, MagaluOwner};
use crate::listing::{ConversationQuery, MessageQuery, StatusFilter};
use crate::model::*;
use crate::paginate::{Cursor, Fetched};
use crate::vendor_error::call;
use crate::{Error, Marketplace};

const M: Marketplace = Marketplace::Magalu;
/// Magalu's `max_limit`.
const PAGE: u32 = 100;

/// A Magalu seller account's side of the facade.
#[derive(Debug)]
pub(crate) struct MagaluAdapter {
    client: Magalu,
    owner: Option<MagaluOwner>,
}

impl MagaluAdapter {
    pub(crate) fn from_config(
        config: &AccountConfig,
        persist: Option<Arc<dyn PersistTokens>>,
    ) -> Result<Self, Error> {
        let defaults = super::Defaults {
            production: inbox_magalu::PRODUCTION_URL,
            token_url: inbox_magalu::TOKEN_URL,
            client_auth: ClientAuth::Form,
            policy: inbox_magalu::policy,
        };
        let w = super::wiring(config, &defaults, persist)?;
        let client = Magalu::with_policy(&w.url, w.http, w.auth, w.policy);
        Ok(MagaluAdapter {
            client,
            owner: config.owner.clone(),
        })
    }
}

impl Adapter for MagaluAdapter {
    fn marketplace(&self) -> Marketplace {
        M
    }

    /// Magalu's 200 a minute takes 2.
    fn default_concurrency(&self) -> usize {
        2
    }

    fn sync_walks(
        &self,
        before: &crate::sync::Checkpoint,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::sync::Walk> {
        crate::sync::by_activity(before, now)
    }

    fn sync_summary(&self, c: &Conversation) -> String {
        crate::sync::summary(c, &[crate::sync::vendor_field(c, "/last_message/id")])
    }

    fn newest_first(&self, _: Listed) -> bool {
        false
    }

    fn conversations_page(
        self: Arc<Self>,
        query: ConversationQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Conversation>, Error>> {
        async move {
            let offset = cursor.offset();
            let mut request = self
                .client
                .list_conversations()
                .limit(limit(query.page_size))
                .offset(offset);
            if let Some(status) = query.status {
                request = request.status(match status {
                    StatusFilter::Open => "OPENED",
                    StatusFilter::Closed => "CLOSED",
                });
            }
            if let Some(since) = query.since {
                request = request.last_interaction_at_start(since);
            }
            let page = call(M, request.send()).await?;
            let results = results(page.results)?;
            let next = next_offset(page.meta.as_ref(), offset, results.len());
            let total = total(page.meta.as_ref());
            Ok(Fetched::convert(
                M,
                "conversation",
                results,
                |c| c.id.as_ref().map(|i| i.as_str()),
                next,
                conversation,
            )
            .with_total(total))
        }
        .boxed()
    }

    fn messages_page(
        self: Arc<Self>,
        conversation_id: String,
        query: MessageQuery,
        cursor: Cursor,
    ) -> BoxFuture<'static, Result<Fetched<Message>, Error>> {
        async move {
            let offset = cursor.offset();
            let request = self
                .client
                .list_messages()
                .conversation_id(&conversation_id)
                .limit(limit(query.page_size))
                .offset(offset);
            let page = call(M, request.send()).await?;
            let results = results(page.results)?;
            let next = next_offset(page.meta.as_ref(), offset, results.len());
            let total = total(page.meta.as_ref());
            Ok(Fetched::convert(
                M,
                "message",
                results,
                |m| m.id.as_ref().map(|i| i.as_str()),
                next,
                |m, raw| message(&conversation_id, m, raw),
            )
            .with_total(total))
        }
        .boxed()
    }

    /// Replies in a conversation, signed by the account's owner. Magalu has no upload API.
    fn send<'a>(
        &'a self,
        conversation_id: &'a str,
        text: &'a str,
        attachments: &'a [OutgoingAttachment],
    ) -> BoxFuture<'a, Result<Sent, Error>> {
        async move {
            if !attachments.is_empty() {
                return Err(Error::Unsupported {
                    marketplace: M,
                    operation: "sending attachments",
                    not_built: false,
                });
            }
            validate(text)?;
            let owner = self.owner.as_ref().ok_or_else(|| {
                Error::invalid(M, "Magalu requires an owner (attendant name and external id) on every reply: set owner_name and owner_id in the account config, or MAGALU_OWNER_NAME and MAGALU_OWNER_ID")
            })?;
            let body = types::NewMessage {
                content: text.to_string(),
                external_id: None,
                owner: types::NewMessageOwner {
                    name: owner.name.clone(),
                    external_id: owner.external_id.clone(),
                },
            };
            let request = self
                .client
                .send_message()
                .conversation_id(conversation_id)
                .body(body);
            super::deliver(M, conversation_id, request.send(), |m| {
                m.id.as_ref().map(|i| i.to_string())
            })
            .await
        }
        .boxed()
    }

    /// Downloads an attachment from the address Magalu gives (without credentials).
    fn download<'a>(
        &'a self,
        _conversation: &'a str,
        attachment: &'a Attachment,
    ) -> BoxFuture<'a, Result<Download, Error>> {
        super::fetch_url(self.client.baseurl(), M, attachment).boxed()
    }

    /// Marks a conversation read (`PATCH …/read_by`).
    fn mark_read<'a>(&'a self, conversation_id: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let request = self
                .client
                .mark_conversation_read()
                .conversation_id(conversation_id);
            call(M, request.send()).await.map(|_| ())
        }
        .boxed()
    }
}

/// Longest reply Magalu accepts.
pub const MAX_TEXT: usize = 2200;

/// Magalu's rules for a reply, checked before any request: 1 to 2200 characters, and
/// none of what its moderation blocks in replies — an e-mail address or a CPF (which is
/// also a PIX key).
pub(crate) fn validate(text: &str) -> Result<(), Error> {
    super::check_text(M, text, MAX_TEXT)?;
    let email = text.split_whitespace().any(|word| {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        matches!(word.split_once('@'), Some((user, host)) if !user.is_empty() && host.contains('.') && !host.starts_with('.') && !host.ends_with('.'))
    });
    if email {
        return Err(Error::invalid(
            M,
            "the reply contains an e-mail address, which Magalu's moderation blocks",
        ));
    }
    if has_cpf(text) {
        return Err(Error::invalid(
            M,
            "the reply contains a CPF (or a PIX key in its form), which Magalu's moderation blocks",
        ));
    }
    Ok(())
}

/// Whether `text` holds 11 digits in a row, allowing the CPF's `.` and `-` between them.
fn has_cpf(text: &str) -> bool {
    let mut digits = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits == 11 && !chars.peek().is_some_and(|n| n.is_ascii_digit()) {
                return true;
            }
        } else if !(matches!(c, '.' | '-')
            && digits > 0
            && chars.peek().is_some_and(|n| n.is_ascii_digit()))
        {
            digits = 0;
        }
    }
    false
}

/// The page's `results`; a missing or null list is an error, not an empty page.
fn results<T>(results: Option<Vec<T>>) -> Result<Vec<T>, Error> {
    results.ok_or_else(|| Error::decode(M, "response", "the page has no `results` list"))
}

fn limit(asked: Option<u32>) -> NonZeroU64 {
    NonZeroU64::new(u64::from(page_size(asked, PAGE))).unwrap_or(NonZeroU64::MIN)
}

/// How many items the listing holds (`meta.page.total`), when given and not negative.
fn total(meta: Option<&types::Meta>) -> Option<u64> {
    let total = meta?.page.as_ref()?.total?;
    u64::try_from(total.get()).ok()
}

/// The next `_offset`: from `meta.links.next` when present, else none (the last page).
fn next_offset(meta: Option<&types::Meta>, offset: u64, n: usize) -> Option<Cursor> {
    let next = meta?.links.as_ref()?.next.as_deref()?;
    let parsed = next
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("_offset="))
        .and_then(|v| v.parse::<u64>().ok());
    let after = offset.checked_add(u64::try_from(n).ok()?);
    parsed.or(after).map(Cursor::Offset)
}

fn user_role(t: Option<&enums::UserType>) -> Role {
    match t {
        Some(enums::UserType::Customer) => Role::Buyer,
        Some(enums::UserType::Seller) => Role::Seller,
        Some(enums::UserType::Unknown(v)) => Role::Unknown(v.clone()),
        None => Role::Unknown("unknown".into()),
    }
}

fn participant(u: types::User) -> Participant {
    Participant {
        id: u
            .external_id
            .map(|i| i.to_string())
            .or(u.ref_key)
            .or(u.id.map(|i| i.to_string())),
        name: u.full_name,
        role: user_role(u.type_.as_ref()),
    }
}

fn conversation(c: types::Conversation, _raw: &RawJson) -> Result<Conversation, String> {
    let tags = c.tags.unwrap_or_default();
    let tag = |names: &[&str]| -> Vec<String> {
        tags.iter()
            .filter(|t| t.name.as_deref().is_some_and(|n| names.contains(&n)))
            .filter_map(|t| t.value.clone())
            .collect()
    };
    Ok(Conversation {
        reference: ConversationRef::new(M, c.id.ok_or("missing `id`")?.to_string()),
        other_party: c.from_user.map(participant),
        kind: ConversationKind::BuyerChat,
        status: c.status.map(|s| match s {
            enums::ConversationStatus::Opened => ConversationStatus::Open,
            enums::ConversationStatus::Closed => ConversationStatus::Closed,
            enums::ConversationStatus::Unknown(v) => ConversationStatus::Unknown(v),
        }),
        unread: c
            .unread_to_count
            .map(|n| Unread::Count(n.get().max(0) as u64)),
        created_at: c.created_at.map(|d| d.utc()),
        last_activity_at: c.last_interaction_at.map(|d| d.utc()),
        references: References {
            orders: tag(&["order_code", "orderCode"]),
            offers: tag(&["productId"]),
            pack: None,
            posting: None,
        },
        reply_deadline: None,
        vendor: RawJson::default(),
    })
}

/// The rules a moderated message broke, as one line (`block_rules` holds strings or
/// objects naming the rule).
fn block_rules(rules: Vec<Value>) -> Option<String> {
    let names: Vec<String> = rules
        .iter()
        .filter_map(|r| match r {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => ["name", "rule", "code", "description"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str).map(str::to_owned)),
            _ => None,
        })
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

fn message(conv: &str, m: types::Message, _raw: &RawJson) -> Result<Message, String> {
    let to_id = m
        .to_user
        .as_ref()
        .and_then(|u| u.id.as_ref())
        .map(|i| i.to_string());
    let read = match (&m.read_by, to_id) {
        (Some(by), Some(to)) => Some(by.contains(&to)),
        _ => None,
    };
    Ok(Message {
        id: m.id.ok_or("missing `id`")?.into_string(),
        conversation: ConversationRef::new(M, conv),
        author: m.from_user.map(participant).unwrap_or(Participant {
            id: None,
            name: None,
            role: Role::Unknown("unknown".into()),
        }),
        text: m.content.unwrap_or_default(),
        subject: None,
        created_at: m.when_at.ok_or("missing `when_at`")?.utc(),
        attachments: m
            .attachments
            .unwrap_or_default()
            .into_iter()
            .map(|a| match a {
                types::Attachment::String(url) => Attachment {
                    name: url
                        .rsplit('/')
                        .next()
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                    url: Some(url),
                    ..Attachment::default()
                },
                types::Attachment::AttachmentObject(o) => Attachment {
                    name: o.name,
                    mime: o.mime_type,
                    size: o.size.map(|s| s.get().max(0).unsigned_abs()),
                    url: o.url,
                    id: None,
                    status: None,
                },
            })
            .collect(),
        read,
        status: m
            .moderation
            .as_ref()
            .and_then(|mo| mo.status.as_ref())
            .map(|s| s.to_string()),
        moderation_reason: m.moderation.and_then(|mo| block_rules(mo.block_rules?)),
        kind: None,
        more_attachments: None,
        references: References::default(),
        vendor: RawJson::default(),
    })
}
