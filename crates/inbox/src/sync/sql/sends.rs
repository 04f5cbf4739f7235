//! The HTTP API's sends (table `sends`): one row per idempotency key of an API key,
//! claimed before the vendor is written to, so that the same key never writes twice —
//! across retries, concurrent requests and every process of a fleet. A row is `pending`
//! while its runner holds it (`running_until`), then `sent`, `failed` or `unknown`, with
//! the answer given, which a retry receives again.

use chrono::{DateTime, Utc};

use super::backend::{args, Dialect, Row};
use super::SqlStore;
use crate::sync::{StoreError, StoreErrorKind};

/// A send as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRecord {
    /// Its id (`snd_…`).
    pub id: String,
    /// The API key that made it.
    pub api_key: String,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// A digest of what was asked (conversation, text, attachments).
    pub body_hash: String,
    /// The account written through.
    pub account: String,
    /// The conversation, in full.
    pub reference: String,
    /// `pending`, `sent`, `failed` or `unknown`.
    pub state: String,
    /// The new message's id, when known.
    pub message_id: Option<String>,
    /// Why it failed or is unknown.
    pub error: Option<String>,
    /// The answer given (its JSON text), for a retry.
    pub answer: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// Until when its runner holds it, while pending.
    pub running_until: Option<DateTime<Utc>>,
}

/// What claiming an idempotency key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was new: the caller runs the send.
    New(SendRecord),
    /// The key was used before: its send as it stands.
    Existing(SendRecord),
}

const COLUMNS: &str = "id, api_key, idempotency_key, body_hash, account, ref, state,
  message_id, error, answer, created_at, running_until";

fn record<R: Row>(row: &R) -> Result<SendRecord, StoreError> {
    Ok(SendRecord {
        id: row.text(0)?.unwrap_or_default(),
        api_key: row.text(1)?.unwrap_or_default(),
        idempotency_key: row.text(2)?.unwrap_or_default(),
        body_hash: row.text(3)?.unwrap_or_default(),
        account: row.text(4)?.unwrap_or_default(),
        reference: row.text(5)?.unwrap_or_default(),
        state: row.text(6)?.unwrap_or_default(),
        message_id: row.text(7)?,
        error: row.text(8)?,
        answer: row.text(9)?,
        created_at: row.time(10)?.unwrap_or_default(),
        running_until: row.time(11)?,
    })
}

impl<B: Dialect> SqlStore<B> {
    /// Claims `new`'s idempotency key for it (pending, held until its
    /// `running_until`), or finds the send that holds the key already.
    pub async fn claim_send(&self, new: &SendRecord) -> Result<Claim, StoreError> {
        let mut conn = self.conn().await?;
        let now = Utc::now();
        let added = B::execute(
            &mut conn,
            format!(
                "INSERT INTO sends ({COLUMNS}, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', NULL, NULL, NULL, $7, $8, $9)
                 ON CONFLICT (api_key, idempotency_key) DO NOTHING"
            ),
            args![
                new.id.as_str(),
                new.api_key.as_str(),
                new.idempotency_key.as_str(),
                new.body_hash.as_str(),
                new.account.as_str(),
                new.reference.as_str(),
                now,
                new.running_until,
                now
            ],
        )
        .await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {COLUMNS} FROM sends WHERE api_key = $1 AND idempotency_key = $2"),
            args![new.api_key.as_str(), new.idempotency_key.as_str()],
        )
        .await?;
        let found = rows
            .first()
            .map(record)
            .transpose()?
            .ok_or_else(|| StoreError::new(StoreErrorKind::Other, "the send was not stored"))?;
        Ok(match added {
            1 => Claim::New(found),
            _ => Claim::Existing(found),
        })
    }

    /// Takes over a pending send whose runner's hold lapsed (its process died), holding
    /// it until `until`; false when it is not pending or still held.
    pub async fn take_over_send(&self, id: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let now = Utc::now();
        let n = B::execute(
            &mut conn,
            "UPDATE sends SET running_until = $2, updated_at = $3
             WHERE id = $1 AND state = 'pending' AND running_until < $4"
                .into(),
            args![id, until, now, now],
        )
        .await?;
        Ok(n == 1)
    }

    /// Records how a send ended and the answer given.
    pub async fn finish_send(
        &self,
        id: &str,
        state: &str,
        message_id: Option<&str>,
        error: Option<&str>,
        answer: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        B::execute(
            &mut conn,
            "UPDATE sends SET state = $2, message_id = $3, error = $4, answer = $5,
               running_until = NULL, updated_at = $6 WHERE id = $1"
                .into(),
            args![id, state, message_id, error, answer, Utc::now()],
        )
        .await?;
        Ok(())
    }

    /// Forgets a send that certainly reached no vendor, so that its idempotency key may
    /// be used again.
    pub async fn forget_send(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        B::execute(
            &mut conn,
            "DELETE FROM sends WHERE id = $1 AND state = 'pending'".into(),
            args![id],
        )
        .await?;
        Ok(())
    }

    /// The send `id`.
    pub async fn send_record(&self, id: &str) -> Result<Option<SendRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {COLUMNS} FROM sends WHERE id = $1"),
            args![id],
        )
        .await?;
        rows.first().map(record).transpose()
    }
}
