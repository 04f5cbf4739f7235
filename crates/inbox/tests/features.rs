//! Runs in every feature combination (CI runs it with each marketplace alone): the
//! marketplaces built in work against the sandbox, the ones left out say so.

use futures::TryStreamExt;
use inbox_sandbox::{Config, Sandbox};
use marketplace_inbox::*;

fn built(m: Marketplace) -> bool {
    match m {
        Marketplace::Allegro => cfg!(feature = "allegro"),
        Marketplace::MercadoLibre => cfg!(feature = "mercadolibre"),
        Marketplace::Magalu => cfg!(feature = "magalu"),
        Marketplace::Ozon => cfg!(feature = "ozon"),
    }
}

#[tokio::test]
async fn built_marketplaces_work_and_the_others_are_unsupported() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let config: InboxConfig = serde_json::from_value(sandbox.accounts_config()).unwrap();
    for account in &config.accounts {
        let m = account.marketplace;
        match Account::from_config(account) {
            Ok(account) => {
                assert!(built(m), "{m} is not built in");
                let listed: Vec<Conversation> = account
                    .conversations(ConversationQuery::new())
                    .try_collect()
                    .await
                    .unwrap();
                assert!(!listed.is_empty(), "{m}");
                assert!(listed
                    .iter()
                    .all(|c| c.reference.account.as_deref() == Some(m.as_str())));
            }
            Err(Error::Unsupported {
                marketplace,
                not_built: true,
                ..
            }) => {
                assert!(!built(m), "{m} is built in");
                assert_eq!(marketplace, m);
            }
            Err(e) => panic!("{m}: {e}"),
        }
    }
}
