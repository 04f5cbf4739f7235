//! Lines for operators: errors described on one bounded line of escaped text, with what
//! to do about them; and text made safe for the service's HTML pages.

use marketplace_inbox::{Error, Marketplace};

/// The longest line written, in characters.
pub const MAX_LINE: usize = 500;

/// One line: which marketplace, what failed, what to do. Vendor text quoted in it is
/// data: control characters are escaped and the line is cut at [`MAX_LINE`] characters.
pub fn describe(e: &anyhow::Error) -> String {
    let hint = match e.downcast_ref::<Error>() {
        // A 403 says why (blocked conversation, subscription, reply window, key): the
        // vendor's words are the message. Without any, like a 401, it is the credentials.
        Some(
            Error::Api {
                status: 401,
                marketplace,
                ..
            }
            | Error::Api {
                status: 403,
                marketplace,
                code: None,
                message: None,
                ..
            },
        ) => format!(
            "check the {} credentials ({})",
            marketplace,
            credentials_hint(*marketplace)
        ),
        Some(Error::Api { status: 404, .. }) => "check the conversation reference".into(),
        Some(Error::RateLimited { .. }) => "wait a little and try again".into(),
        Some(Error::Transport { marketplace, .. }) => format!(
            "check the network, or INBOX_{}_URL",
            marketplace.as_str().to_uppercase()
        ),
        Some(Error::Unsupported {
            not_built: false, ..
        }) => "send the text without attachments".into(),
        _ => String::new(),
    };
    let line = if hint.is_empty() {
        format!("{e:#}")
    } else {
        format!("{e:#} — {hint}")
    };
    one_line(&line, MAX_LINE)
}

/// The line for a failure of one account's work: `inbox: ACCOUNT: …`.
pub fn account_failure(account: &str, e: Error) -> String {
    let line = describe(&e.into());
    if line.starts_with(&format!("{account}:")) {
        format!("inbox: {line}")
    } else {
        format!("inbox: {account}: {line}")
    }
}

/// `text` on one line: control characters escaped, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0usize;
    for c in text.chars() {
        let piece = match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        };
        count = count.saturating_add(piece.chars().count());
        if count > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

fn credentials_hint(m: Marketplace) -> &'static str {
    match m {
        Marketplace::Allegro => "ALLEGRO_TOKEN",
        Marketplace::MercadoLibre => "MERCADOLIBRE_TOKEN, MERCADOLIBRE_SELLER_ID",
        Marketplace::Magalu => "MAGALU_TOKEN",
        Marketplace::Ozon => "OZON_CLIENT_ID, OZON_API_KEY",
    }
}

/// `text` with HTML's special characters escaped, for the service's pages (connect
/// pages, `/docs`): names and vendor text stay text.
pub fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_one_bounded_line_of_escaped_text() {
        let hostile = format!("evil\nsecond line\r\x1b[31mred\x07{}", "x".repeat(10_000));
        let line = one_line(&hostile, MAX_LINE);
        assert!(!line.chars().any(char::is_control), "{line}");
        assert!(
            line.starts_with("evil\\nsecond line\\r\\u{1b}[31mred\\u{7}"),
            "{line}"
        );
        assert!(line.chars().count() <= MAX_LINE + 1);
        assert!(line.ends_with('…'));
    }
}
