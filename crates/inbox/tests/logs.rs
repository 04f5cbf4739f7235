//! Logs at TRACE level over a run with auth failures, token refreshes and sends never
//! show a token, key, secret or refresh token. (A test binary of its own: tracing caches
//! each call site's interest per process, so a subscriber set for one test thread must
//! not share the process with tests that reach the same call sites first.)

use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::*;

mod common;
use common::sandbox_account as account;
use serde_json::json;

const OAUTH: [Vendor; 3] = [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu];

/// Captures every tracing event, at every level, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut all) = self.0.lock() {
            all.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_at_trace_never_show_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let oauth = sandbox.oauth_accounts_config();
    let plain = sandbox.accounts_config();
    let mut secrets = vec![sandbox.refresh_token(Vendor::Allegro)];
    for vendor in Vendor::ALL {
        let a = account(&plain, vendor, |_| {});
        // Refresh after a rejected token, then send.
        if vendor != Vendor::Ozon {
            let refreshing = account(&oauth, vendor, |a| a["access_token"] = json!("stale-token"));
            let account = Account::from_config(&refreshing).unwrap();
            let reference = account
                .conversations(ConversationQuery::new())
                .try_next()
                .await
                .unwrap()
                .unwrap()
                .reference;
            account.send(&reference, "logged send", &[]).await.unwrap();
        }
        // An authentication failure.
        let mut wrong = a.clone();
        wrong.credentials = match &a.credentials {
            Credentials::ApiKey { client_id, .. } => Credentials::ApiKey {
                client_id: client_id.clone(),
                api_key: "wrong-api-key-value".into(),
            },
            _ => Credentials::Token("wrong-token-value".into()),
        };
        let failed = Account::from_config(&wrong)
            .unwrap()
            .conversations(ConversationQuery::new())
            .next()
            .await;
        assert!(matches!(failed, Some(Err(_))));
    }
    let c = sandbox.credentials();
    secrets.extend([
        c.allegro_token.clone(),
        c.mercadolibre_token.clone(),
        c.magalu_token.clone(),
        c.ozon_api_key.clone(),
        "sandbox-app-secret".into(),
        "wrong-api-key-value".into(),
        "wrong-token-value".into(),
        "stale-token".into(),
    ]);
    for vendor in OAUTH {
        secrets.push(sandbox.refresh_token(vendor));
        secrets.push(format!("{}-access-1", vendor.prefix()));
    }
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("access token refreshed"), "{text}");
    assert!(text.contains("operation="), "spans name the operation");
    for secret in secrets {
        assert!(!text.contains(&secret), "{secret} appears in the logs");
    }
}
