//! What a store migrated from an earlier schema must do next, on any backend.

use inbox_sandbox::{Config, Sandbox, Vendor};
use marketplace_inbox::sync::{self, Change, Event, Store};
use marketplace_inbox::Inbox;

use crate::common;

fn new_messages(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Message(Event::NewMessage, m) => Some(m.id.clone()),
            _ => None,
        })
        .collect()
}

/// Syncs `store` (holding the sandbox's seeded data, as the earlier code stored it)
/// against a fresh sandbox: the first pass stores no message again and reports no
/// update; then one buyer message on each marketplace is found once.
pub async fn syncs_on_with_nothing_twice(store: &dyn Store) {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let mut inbox = Inbox::new();
    for vendor in Vendor::ALL {
        inbox
            .add(common::unpaced_account(&sandbox, vendor))
            .unwrap();
    }
    let mut changes = Vec::new();
    for synced in sync::sync(&inbox, store, 4).await {
        changes.extend(synced.item.unwrap().changes);
    }
    assert!(
        new_messages(&changes).is_empty(),
        "nothing stored twice: {changes:?}"
    );
    assert!(
        !changes.iter().any(|c| c.event() == Event::UpdatedMessage),
        "an earlier state is no update: {changes:?}"
    );
    for vendor in Vendor::ALL {
        assert!(sandbox.buyer_writes(vendor, common::example(vendor), "after the migration"));
    }
    let mut new = Vec::new();
    for synced in sync::sync(&inbox, store, 4).await {
        new.extend(new_messages(&synced.item.unwrap().changes));
    }
    assert_eq!(new.len(), 4, "{new:?}");
}
