//! A conversation id never changes a request's route: every hostile shape reaches the
//! vendor as exactly one path segment holding exactly that id, and the dot segments no
//! vendor issues are refused before any request.

use futures::StreamExt;
use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::*;

mod common;
use common::sandbox_account;

const HOSTILE: [(&str, &str); 11] = [
    ("a\\b", "a%5Cb"),
    ("a/b", "a%2Fb"),
    ("../x", "..%2Fx"),
    ("?x=1", "%3Fx%3D1"),
    ("#top", "%23top"),
    ("100%", "100%25"),
    ("%2e%2e", "%252e%252e"),
    ("%2F", "%252F"),
    ("a b", "a%20b"),
    ("żółw", "%C5%BC%C3%B3%C5%82w"),
    ("...", "..."),
];

/// The path (without query) each marketplace's message listing requests for `segment`.
fn listing_path(vendor: Vendor, segment: &str) -> String {
    match vendor {
        Vendor::Allegro => format!("/messaging/threads/{segment}/messages"),
        Vendor::MercadoLibre => format!("/messages/packs/{segment}/sellers/415458330"),
        Vendor::Magalu => format!("/v0/conversations/{segment}/messages"),
        Vendor::Ozon => "/v3/chat/history".into(),
    }
}

#[tokio::test]
async fn every_hostile_id_is_one_segment_on_every_marketplace() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let config = sandbox.accounts_config();
    for vendor in Vendor::ALL {
        let account = Account::from_config(&sandbox_account(&config, vendor, |_| {})).unwrap();
        for (id, segment) in HOSTILE {
            let before = sandbox.received().len();
            let reference = account.reference(id);
            let first = account
                .messages(&reference, MessageQuery::new())
                .next()
                .await;
            assert!(
                matches!(first, Some(Err(Error::Api { status: 404, .. }))),
                "{vendor:?} {id:?}: {first:?}"
            );
            let received = sandbox.received();
            let sent: Vec<&str> = received[before..]
                .iter()
                .map(|r| r.path.split('?').next().unwrap_or_default())
                .collect();
            assert_eq!(sent, [listing_path(vendor, segment)], "{vendor:?} {id:?}");
        }
    }
}

#[tokio::test]
async fn dot_segments_are_refused_before_any_request() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let config = sandbox.accounts_config();
    for vendor in [Vendor::Allegro, Vendor::MercadoLibre, Vendor::Magalu] {
        let account = Account::from_config(&sandbox_account(&config, vendor, |_| {})).unwrap();
        for id in [".", ".."] {
            let reference = account.reference(id);
            let listed = account
                .messages(&reference, MessageQuery::new())
                .next()
                .await;
            assert!(
                matches!(listed, Some(Err(Error::InvalidInput { .. }))),
                "{vendor:?} {id}: {listed:?}"
            );
            let sent = account.send(&reference, "hi", &[]).await;
            assert!(
                matches!(sent, Err(Error::InvalidInput { .. })),
                "{vendor:?} {id}: {sent:?}"
            );
            let read = account.mark_read(&reference).await;
            assert!(
                matches!(read, Err(Error::InvalidInput { .. })),
                "{vendor:?} {id}: {read:?}"
            );
        }
    }
    assert_eq!(sandbox.requests(), 0);
}
