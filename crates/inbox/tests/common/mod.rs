//! Accounts pointed at a mock server, shared by the facade tests.

use httpmock::MockServer;
use marketplace_inbox::vendors::{
    allegro::AllegroAccount, magalu::MagaluAccount, magalu::MagaluOwner,
    mercadolibre::MercadoLibreAccount, ozon::OzonAccount,
};
use marketplace_inbox::Account;

pub fn allegro(server: &MockServer) -> Account {
    AllegroAccount::new(inbox_allegro::Allegro::with_base_url(&server.base_url(), "tok-a").unwrap())
        .into()
}

pub fn meli(server: &MockServer) -> Account {
    MercadoLibreAccount::new(
        inbox_mercadolibre::MercadoLibre::with_base_url(&server.base_url(), "tok-m").unwrap(),
        "415458330",
    )
    .into()
}

pub fn magalu(server: &MockServer, owner: bool) -> Account {
    let owner = owner.then(|| MagaluOwner {
        name: "Joseph Climber".into(),
        external_id: "j.climber".into(),
    });
    MagaluAccount::new(
        inbox_magalu::Magalu::with_base_url(&server.base_url(), "tok-g").unwrap(),
        owner,
    )
    .into()
}

pub fn ozon(server: &MockServer) -> Account {
    OzonAccount::new(inbox_ozon::Ozon::with_base_url(&server.base_url(), "123", "key-o").unwrap())
        .into()
}
