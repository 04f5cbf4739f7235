//! A conversation marked read through this service: the mirror shows it read at once
//! (its columns and its JSON form), without waiting for the next step to list it. The
//! next step finds the vendor agreeing and reports nothing.

use chrono::Utc;
use serde_json::Value;

use super::backend::{args, Dialect, Row};
use super::SqlStore;
use crate::sync::StoreError;

impl<B: Dialect> SqlStore<B> {
    /// Marks `account`'s conversation `id` read in the mirror: no unread count (where it
    /// had one), not unread; false when the mirror has no such conversation.
    pub async fn mark_read_in_mirror(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = B::begin(&self.pool).await?;
        let rows = B::fetch(
            &mut tx,
            "SELECT json FROM conversations WHERE account = $1 AND id = $2".into(),
            args![account, id],
        )
        .await?;
        let Some(row) = rows.first() else {
            return Ok(false);
        };
        let json = row.text(0)?.and_then(|text| {
            let mut form: Value = serde_json::from_str(&text).ok()?;
            let object = form.as_object_mut()?;
            if object.get("unread").is_some_and(|u| !u.is_null()) {
                object.insert("unread".into(), Value::Bool(false));
            }
            if object.get("unread_count").is_some_and(|u| !u.is_null()) {
                object.insert("unread_count".into(), Value::from(0));
            }
            Some(form.to_string())
        });
        B::execute(
            &mut tx,
            "UPDATE conversations SET
               unread = CASE WHEN unread IS NULL THEN NULL ELSE 0 END,
               unread_count = CASE WHEN unread_count IS NULL THEN NULL ELSE 0 END,
               json = $3, updated_at = $4
             WHERE account = $1 AND id = $2"
                .into(),
            args![account, id, json, Utc::now()],
        )
        .await?;
        B::commit(tx).await?;
        Ok(true)
    }
}
