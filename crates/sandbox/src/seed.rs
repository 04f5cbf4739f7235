//! Each marketplace's seed: the conversation from the vendor's own documentation first,
//! then generated ones.

use chrono::{DateTime, Utc};

use crate::store::{self, Author, Conv, Market, Msg, Vendor};
use crate::Config;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid example date")
        .with_timezone(&Utc)
}

fn msg(id: &str, author: Author, text: &str, when: &str) -> Msg {
    Msg {
        id: id.into(),
        author,
        text: text.into(),
        created_at: at(when),
        attachments: Vec::new(),
    }
}

/// The seeded state of one account on one marketplace: its generated conversations
/// numbered from `first + 1`, after the vendor's example when `example`.
pub(crate) fn market(vendor: Vendor, config: &Config, first: u64, example: bool) -> Market {
    let generated = store::seed(
        vendor,
        first,
        config.conversations,
        config.messages_per_conversation,
    );
    if !example {
        return generated;
    }
    let mut market = Market::default();
    let (id, buyer, kind, extra, order) = match vendor {
        Vendor::Allegro => (
            "dpYCg9auts9xpSojwC6DWPvyVKHraqDCZCiT70j6pcf",
            ("43544040", "allegrofan"),
            "COMMON",
            vec![
                msg("12fe4125-fca9-400a-8363-1739e86fe787", Author::Buyer, "Czy telefon jest nowy?", "2021-07-13T19:37:52.571Z"),
                msg("3793aee2-7fd5-48b0-9de1-cfc804fbf002", Author::Buyer, "Jaki jest rok wydania?", "2021-07-13T19:49:48.899Z"),
            ],
            "7680560734",
        ),
        Vendor::MercadoLibre => (
            "2000000089077943",
            ("1977056109", "Juan Pablo Robledo"),
            "BUYER_CHAT",
            vec![
                msg("2c92808469fea23a0169febdb0570000", Author::Buyer, "Test message ToUserId", "2019-04-08T20:57:18.000Z"),
                msg("2c92808469fea23a0169febf14580001", Author::Buyer, "Test message ToUserId", "2019-04-08T20:58:49.000Z"),
            ],
            "2000000089077943",
        ),
        Vendor::Magalu => (
            "6628d7a3c01daebde56f5600",
            ("e8528120-fc36-43e9-bd01-fd453d938da7", "John Doe"),
            "BUYER_CHAT",
            vec![msg("630e3bbc950b052e8724491a", Author::Buyer, "Como faz para montar ? Onde encontramos montador?", "2024-04-24T09:57:56.851Z")],
            "237497000",
        ),
        Vendor::Ozon => (
            "99feb3fc-a474-469f-95d5-268b470cc607",
            ("115568", "Сustomer"),
            "BUYER_SELLER",
            vec![msg(
                "3000000000817031942",
                Author::Buyer,
                "Здравствуйте, у меня вопрос по вашему товару \"Стекло защитное для смартфонов\", артикул 11223. Подойдет ли он на данную [ модель ](https://www.ozon.ru/product/smartfon-samsung-galaxy-a03s-4-64-gb-chernyy) телефона?",
                "2019-08-24T14:15:22Z",
            )],
            "123456789",
        ),
    };
    let unread = extra.len() as u64;
    market.push(Conv {
        id: id.into(),
        n: 0,
        buyer: (buyer.0.into(), buyer.1.into()),
        kind,
        open: true,
        created_at: extra[0].created_at,
        generated: 0,
        extra,
        pending: Vec::new(),
        unread,
        order: order.into(),
    });
    for c in generated.convs {
        market.push(c);
    }
    market
}
