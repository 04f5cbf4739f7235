//! The sandbox's state: conversations and messages per marketplace, in memory.
//!
//! Generated messages are computed from their index, not stored, so a seed of millions of
//! messages costs a few bytes per conversation; only messages sent through the API, seeded
//! examples and read state are kept.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

/// The four marketplaces the sandbox speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// Allegro.
    Allegro,
    /// Mercado Libre.
    MercadoLibre,
    /// Magalu.
    Magalu,
    /// Ozon.
    Ozon,
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// The buyer.
    Buyer,
    /// The seller (the sandbox account).
    Seller,
}

/// A file attached to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// Vendor id of the file.
    pub id: String,
    /// File name.
    pub name: String,
    /// Media type.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
}

/// One message.
#[derive(Clone, Debug, PartialEq)]
pub struct Msg {
    /// Vendor-shaped id.
    pub id: String,
    /// Who wrote it.
    pub author: Author,
    /// Text.
    pub text: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Attached files.
    pub attachments: Vec<Attachment>,
}

/// One conversation (thread, pack, conversation, chat).
#[derive(Clone, Debug)]
pub struct Conv {
    /// Vendor-shaped id.
    pub id: String,
    /// Sequence number (drives generated ids).
    pub n: u64,
    /// Buyer's id and name.
    pub buyer: (String, String),
    /// Vendor kind (`COMMON`, `POST_PURCHASE_ISSUE`, `BUYER_SELLER`, …).
    pub kind: &'static str,
    /// Open (false = closed).
    pub open: bool,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Number of generated messages (computed on demand).
    pub generated: u64,
    /// Messages sent through the API or seeded from vendor examples, oldest first.
    pub extra: Vec<Msg>,
    /// Unread buyer messages.
    pub unread: u64,
    /// Related order id.
    pub order: String,
    /// Buyer messages written but not yet visible (held by moderation), with the instant
    /// they appear; they keep their earlier creation time.
    pub pending: Vec<(DateTime<Utc>, Msg)>,
}

impl Conv {
    /// Number of messages.
    pub fn len(&self) -> u64 {
        self.generated + self.extra.len() as u64
    }

    /// The message at `index`, oldest first.
    pub fn message(&self, vendor: Vendor, index: u64) -> Option<Msg> {
        if index < self.generated {
            Some(generated_message(vendor, self, index))
        } else {
            self.extra.get((index - self.generated) as usize).cloned()
        }
    }

    /// The index of the message with this id: decoded from the id when it is one the
    /// sandbox made (checked against the message there), else looked up among the
    /// seeded and sent messages.
    pub fn index_of(&self, vendor: Vendor, id: &str) -> Option<u64> {
        if let Some((n, index)) = parse_message_id(vendor, id) {
            if n == self.n && self.message(vendor, index).is_some_and(|m| m.id == id) {
                return Some(index);
            }
        }
        self.extra
            .iter()
            .position(|m| m.id == id)
            .map(|p| self.generated + p as u64)
    }

    /// Time of the newest message.
    pub fn last_activity(&self, vendor: Vendor) -> DateTime<Utc> {
        self.len()
            .checked_sub(1)
            .and_then(|i| self.message(vendor, i))
            .map_or(self.created_at, |m| m.created_at)
    }
}

/// Sandbox base time: generated data is dated from here.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 8, 0, 0)
        .single()
        .expect("valid date")
}

const BUYER_LINES: [&str; 4] = [
    "Dzień dobry, kiedy wysyłka?",
    "Olá, o produto tem garantia?",
    "Здравствуйте, подойдёт ли чехол?",
    "Hola, ¿tienen factura?",
];
const SELLER_LINES: [&str; 3] = [
    "Thank you, it ships today.",
    "Yes, it does.",
    "We will check and answer shortly.",
];

/// Message id in the vendor's shape.
pub fn message_id(vendor: Vendor, conv: u64, index: u64) -> String {
    match vendor {
        Vendor::Allegro => format!("{:08x}-7fd5-48b0-9de1-{:012x}", conv, index),
        Vendor::MercadoLibre => format!("{:016x}{:016x}", conv + 0x2c92_8084_0000_0000, index),
        Vendor::Magalu => format!("{:012x}{:012x}", conv + 0x630e_3bbc_0000, index),
        Vendor::Ozon => (3_000_000_000_000_000_000u64 + conv * 10_000_000 + index).to_string(),
    }
}

/// The conversation number and index a [`message_id`] encodes (the inverse of it).
fn parse_message_id(vendor: Vendor, id: &str) -> Option<(u64, u64)> {
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    match vendor {
        Vendor::Allegro => {
            let parts: Vec<&str> = id.split('-').collect();
            match parts.as_slice() {
                [conv, "7fd5", "48b0", "9de1", index] => Some((hex(conv)?, hex(index)?)),
                _ => None,
            }
        }
        Vendor::MercadoLibre if id.len() == 32 => Some((
            hex(&id[..16])?.checked_sub(0x2c92_8084_0000_0000)?,
            hex(&id[16..])?,
        )),
        Vendor::Magalu if id.len() == 24 => Some((
            hex(&id[..12])?.checked_sub(0x630e_3bbc_0000)?,
            hex(&id[12..])?,
        )),
        Vendor::Ozon => {
            let x = id
                .parse::<u64>()
                .ok()?
                .checked_sub(3_000_000_000_000_000_000)?;
            Some((x / 10_000_000, x % 10_000_000))
        }
        _ => None,
    }
}

fn generated_message(vendor: Vendor, conv: &Conv, index: u64) -> Msg {
    let buyer = index.is_multiple_of(2);
    let text = if buyer {
        BUYER_LINES[(conv.n + index) as usize % BUYER_LINES.len()]
    } else {
        SELLER_LINES[(conv.n + index) as usize % SELLER_LINES.len()]
    };
    Msg {
        id: message_id(vendor, conv.n, index),
        author: if buyer { Author::Buyer } else { Author::Seller },
        text: format!("{text} (#{index})"),
        created_at: conv.created_at + Duration::minutes(index as i64 * 7),
        attachments: Vec::new(),
    }
}

/// Conversation id in the vendor's shape.
pub fn conversation_id(vendor: Vendor, n: u64) -> String {
    match vendor {
        Vendor::Allegro => format!("sbx{:040}", n),
        Vendor::MercadoLibre => (2_000_000_100_000_000u64 + n).to_string(),
        Vendor::Magalu => format!("6628d7a3{:016x}", n),
        Vendor::Ozon => format!("{:08x}-a474-469f-95d5-{:012x}", n & 0xffff_ffff, n),
    }
}

/// All conversations of one marketplace, newest first by creation.
#[derive(Debug, Default)]
pub struct Market {
    /// Conversations, in listing order.
    pub convs: Vec<Conv>,
    index: HashMap<String, usize>,
    /// Declared or uploaded attachments by id: (name, mime, bytes).
    pub files: HashMap<String, (String, String, Vec<u8>)>,
    next_file: u64,
    next_late: u64,
}

impl Market {
    /// Adds a conversation.
    pub fn push(&mut self, conv: Conv) {
        self.index.insert(conv.id.clone(), self.convs.len());
        self.convs.push(conv);
    }

    /// A conversation by id.
    pub fn get(&self, id: &str) -> Option<&Conv> {
        self.index.get(id).map(|&i| &self.convs[i])
    }

    /// A conversation by id, mutable.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Conv> {
        self.index.get(id).map(|&i| &mut self.convs[i])
    }

    /// Stores a file and returns its new id, `prefix` + a counter + `suffix`.
    pub fn store_file(
        &mut self,
        prefix: &str,
        suffix: &str,
        name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> String {
        self.next_file += 1;
        let id = format!("{prefix}{:012x}{suffix}", self.next_file);
        self.files
            .insert(id.clone(), (name.to_string(), mime.to_string(), bytes));
        id
    }

    /// Finds a message anywhere by id.
    pub fn find_message(&self, vendor: Vendor, id: &str) -> Option<(&Conv, Msg)> {
        self.convs
            .iter()
            .find_map(|c| Some((c, c.message(vendor, c.index_of(vendor, id)?)?)))
    }

    /// A buyer message written now that becomes visible only at `visible_at` (as after
    /// moderation), keeping its creation time.
    pub fn append_later(
        &mut self,
        vendor: Vendor,
        conv_id: &str,
        text: &str,
        visible_at: DateTime<Utc>,
    ) -> Option<Msg> {
        self.next_late += 1;
        let late = 900_000 + self.next_late;
        let conv = self.get_mut(conv_id)?;
        let msg = Msg {
            id: message_id(vendor, conv.n, late),
            author: Author::Buyer,
            text: text.to_string(),
            created_at: Utc::now().max(conv.last_activity(vendor) + Duration::seconds(1)),
            attachments: Vec::new(),
        };
        conv.pending.push((visible_at, msg.clone()));
        Some(msg)
    }

    /// Makes visible the held messages whose time has come.
    pub fn promote(&mut self, now: DateTime<Utc>) {
        for conv in &mut self.convs {
            if conv.pending.is_empty() {
                continue;
            }
            let (due, held): (Vec<_>, Vec<_>) = std::mem::take(&mut conv.pending)
                .into_iter()
                .partition(|(at, _)| *at <= now);
            conv.pending = held;
            for (_, msg) in due {
                conv.extra.push(msg);
                conv.unread += 1;
            }
        }
    }

    /// Appends a message written now.
    pub fn append(
        &mut self,
        vendor: Vendor,
        conv_id: &str,
        author: Author,
        text: &str,
        attachments: Vec<Attachment>,
    ) -> Option<Msg> {
        let conv = self.get_mut(conv_id)?;
        let index = conv.len();
        let now = Utc::now().max(conv.last_activity(vendor) + Duration::seconds(1));
        let msg = Msg {
            id: message_id(vendor, conv.n, index),
            author,
            text: text.to_string(),
            created_at: now,
            attachments,
        };
        conv.extra.push(msg.clone());
        if author == Author::Buyer {
            conv.unread += 1;
        }
        Some(msg)
    }
}

/// Builds a marketplace's seed: `count` generated conversations of `messages` messages
/// each, numbered from `first + 1`.
pub fn seed(vendor: Vendor, first: u64, count: u64, messages: u64) -> Market {
    let mut market = Market::default();
    for k in 1..=count {
        let n = first.saturating_add(k);
        let kind = match (vendor, n % 5) {
            (Vendor::Allegro, 0) => "POST_PURCHASE_ISSUE",
            (Vendor::Allegro, _) => "COMMON",
            (Vendor::Ozon, 0) => "SELLER_SUPPORT",
            (Vendor::Ozon, _) => "BUYER_SELLER",
            _ => "BUYER_CHAT",
        };
        market.push(Conv {
            id: conversation_id(vendor, n),
            n,
            buyer: (format!("{}", 100_000 + n), format!("buyer-{n}")),
            kind,
            open: !n.is_multiple_of(7),
            // An hour apart, the newest at the epoch: a history that ends in the past at
            // any size.
            created_at: epoch() - Duration::hours(i64::try_from(count - k).unwrap_or(0)),
            generated: messages,
            extra: Vec::new(),
            pending: Vec::new(),
            unread: if n.is_multiple_of(3) { 1 } else { 0 },
            order: format!("{}", 9_000_000 + n),
        });
    }
    market
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_decode_back_to_their_message() {
        for vendor in [
            Vendor::Allegro,
            Vendor::MercadoLibre,
            Vendor::Magalu,
            Vendor::Ozon,
        ] {
            let mut market = seed(vendor, 0, 3, 20_000);
            let conv = &market.convs[2];
            let id = message_id(vendor, conv.n, 15_000);
            assert_eq!(conv.index_of(vendor, &id), Some(15_000), "{vendor:?}");
            assert_eq!(
                market.find_message(vendor, &id).map(|(c, m)| (c.n, m.id)),
                Some((conv.n, id.clone()))
            );
            let conv_id = conv.id.clone();
            let sent = market
                .append(vendor, &conv_id, Author::Seller, "hi", Vec::new())
                .unwrap();
            assert_eq!(market.find_message(vendor, &sent.id).unwrap().1.text, "hi");
            assert!(market.find_message(vendor, "no-such-id").is_none());
        }
    }
}
