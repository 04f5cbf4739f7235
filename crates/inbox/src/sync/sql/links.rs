//! Connect links (table `connect_links`): single-use, expiring links an operator hands
//! to a seller to connect an account. The store keeps only hashes of the link's secret
//! and of the `state` it sends to the vendor (the caller hashes them); a link is opened
//! once and finished once, each a compare-and-set, so a replayed callback finds nothing.

use chrono::{DateTime, Utc};

use super::backend::{args, Dialect, Row};
use super::SqlStore;
use crate::sync::{StoreError, StoreErrorKind};
use crate::Marketplace;

/// A connect link as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectLink {
    /// The hash of the link's secret (its key).
    pub id: String,
    /// The marketplace to connect.
    pub marketplace: Marketplace,
    /// The account's name.
    pub name: String,
    /// Where the seller is sent back, if anywhere.
    pub return_to: Option<String>,
    /// Whether it connects an existing account again (new credentials, same account).
    pub reconnect: bool,
    /// The PKCE verifier sent with the exchange, once opened.
    pub verifier: Option<String>,
    /// The redirect URI given to the vendor, once opened (the exchange repeats it).
    pub redirect_uri: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was opened.
    pub opened_at: Option<DateTime<Utc>>,
    /// When it was finished.
    pub done_at: Option<DateTime<Utc>>,
    /// The hash of the `state` it sent to the vendor, once opened.
    pub state_hash: Option<String>,
    /// How it ended (`connected`, or the error's reason), once finished.
    pub outcome: Option<String>,
}

/// How a link to finish is found.
#[derive(Clone, Copy, Debug)]
pub enum LinkKey<'a> {
    /// By the hash of the `state` it sent to the vendor (an OAuth callback).
    State(&'a str),
    /// By its own hash (a form posted to the link, as Ozon's).
    Id(&'a str),
}

const COLUMNS: &str = "id, marketplace, name, return_to, reconnect, verifier, redirect_uri,
  expires_at, opened_at, done_at, state_hash, outcome";

fn link<R: Row>(row: &R) -> Result<ConnectLink, StoreError> {
    let text = |i| -> Result<String, StoreError> { Ok(row.text(i)?.unwrap_or_default()) };
    Ok(ConnectLink {
        id: text(0)?,
        marketplace: text(1)?.parse().map_err(|_| {
            StoreError::new(StoreErrorKind::Corrupt, "a link's marketplace is unknown")
        })?,
        name: text(2)?,
        return_to: row.text(3)?,
        reconnect: row.int(4)?.unwrap_or(0) != 0,
        verifier: row.text(5)?,
        redirect_uri: row.text(6)?,
        expires_at: row.time(7)?.unwrap_or_default(),
        opened_at: row.time(8)?,
        done_at: row.time(9)?,
        state_hash: row.text(10)?,
        outcome: row.text(11)?,
    })
}

impl<B: Dialect> SqlStore<B> {
    /// Adds a link (`id`: the hash of its secret), valid until `expires_at`; links that
    /// expired a day ago or more are pruned.
    pub async fn add_link(
        &self,
        id: &str,
        marketplace: Marketplace,
        name: &str,
        return_to: Option<&str>,
        reconnect: bool,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = B::begin(&self.pool).await?;
        let now = Utc::now();
        B::execute(
            &mut tx,
            "DELETE FROM connect_links WHERE expires_at < $1".into(),
            args![now - chrono::Duration::days(1)],
        )
        .await?;
        B::execute(
            &mut tx,
            "INSERT INTO connect_links (id, marketplace, name, return_to, reconnect, created_at,
               expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                .into(),
            args![
                id,
                marketplace.as_str(),
                name,
                return_to,
                i64::from(reconnect),
                now,
                expires_at
            ],
        )
        .await?;
        B::commit(tx).await
    }

    /// The link whose secret hashes to `id`.
    pub async fn link(&self, id: &str) -> Result<Option<ConnectLink>, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {COLUMNS} FROM connect_links WHERE id = $1"),
            args![id],
        )
        .await?;
        rows.first().map(link).transpose()
    }

    /// The link that sent the `state` hashing to `state_hash`.
    pub async fn link_by_state(&self, state_hash: &str) -> Result<Option<ConnectLink>, StoreError> {
        let mut conn = self.conn().await?;
        let rows = B::fetch(
            &mut conn,
            format!("SELECT {COLUMNS} FROM connect_links WHERE state_hash = $1"),
            args![state_hash],
        )
        .await?;
        rows.first().map(link).transpose()
    }

    /// Opens the link `id` once, unexpired: records the hash of the `state` sent to the
    /// vendor, the PKCE verifier and the redirect URI. `None` when it was opened before,
    /// has expired, or does not exist.
    pub async fn open_link(
        &self,
        id: &str,
        state_hash: Option<&str>,
        verifier: Option<&str>,
        redirect_uri: Option<&str>,
    ) -> Result<Option<ConnectLink>, StoreError> {
        let mut tx = B::begin(&self.pool).await?;
        let now = Utc::now();
        let opened = B::execute(
            &mut tx,
            "UPDATE connect_links SET opened_at = $2, state_hash = $3, verifier = $4,
               redirect_uri = $5
             WHERE id = $1 AND opened_at IS NULL AND expires_at > $2"
                .into(),
            args![id, now, state_hash, verifier, redirect_uri],
        )
        .await?;
        if opened != 1 {
            return Ok(None);
        }
        let rows = B::fetch(
            &mut tx,
            format!("SELECT {COLUMNS} FROM connect_links WHERE id = $1"),
            args![id],
        )
        .await?;
        let found = rows.first().map(link).transpose()?;
        B::commit(tx).await?;
        Ok(found)
    }

    /// Finishes the opened, unexpired link `key` names, once: `None` when there is no
    /// such link, or it was finished before (a replayed callback), or it expired.
    pub async fn finish_link(&self, key: LinkKey<'_>) -> Result<Option<ConnectLink>, StoreError> {
        let (column, value) = match key {
            LinkKey::State(hash) => ("state_hash", hash),
            LinkKey::Id(id) => ("id", id),
        };
        let mut tx = B::begin(&self.pool).await?;
        let now = Utc::now();
        let rows = B::fetch(
            &mut tx,
            format!(
                "SELECT {COLUMNS} FROM connect_links WHERE {column} = $1 AND opened_at IS NOT NULL
                   AND done_at IS NULL AND expires_at > $2"
            ),
            args![value, now],
        )
        .await?;
        let Some(found) = rows.first().map(link).transpose()? else {
            return Ok(None);
        };
        let taken = B::execute(
            &mut tx,
            "UPDATE connect_links SET done_at = $2 WHERE id = $1 AND done_at IS NULL".into(),
            args![&found.id, now],
        )
        .await?;
        if taken != 1 {
            return Ok(None);
        }
        B::commit(tx).await?;
        Ok(Some(ConnectLink {
            done_at: Some(now),
            ..found
        }))
    }

    /// Records how a finished link ended (`connected`, or the error's reason).
    pub async fn settle_link(&self, id: &str, outcome: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        B::execute(
            &mut conn,
            "UPDATE connect_links SET outcome = $2 WHERE id = $1".into(),
            args![id, outcome],
        )
        .await?;
        Ok(())
    }
}
