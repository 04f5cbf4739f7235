//! Path parameters that stay one path segment, whatever they hold.

use std::fmt::Write;

/// `value` as exactly one URL path segment: every byte but the unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`) percent-encoded, so `/`, `\`, `?`, `#`, `%`, spaces and
/// non-ASCII stay data. `""`, `.` and `..` are refused: a URL parser would drop or
/// collapse them and the request would reach another route (no vendor issues such ids).
///
/// The generated clients call this for every path parameter (the xtask's
/// `strict_path_segments` fix-up puts it in place of progenitor's `encode_path`).
pub fn path_segment(value: &str) -> Result<String, String> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(format!(
            "{value:?} cannot be an id in a URL path (it would change the request's route)"
        ));
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_stay_one_segment_and_dot_segments_are_refused() {
        for (value, want) in [
            ("4lN1A6WTKM8Acf", "4lN1A6WTKM8Acf"),
            ("a/b", "a%2Fb"),
            ("a\\b", "a%5Cb"),
            ("%2e%2e", "%252e%252e"),
            ("?x=1#y", "%3Fx%3D1%23y"),
            ("a b", "a%20b"),
            ("żółw", "%C5%BC%C3%B3%C5%82w"),
            ("...", "..."),
            ("a.b", "a.b"),
        ] {
            assert_eq!(path_segment(value).as_deref(), Ok(want), "{value}");
        }
        for refused in ["", ".", ".."] {
            assert!(path_segment(refused).is_err(), "{refused:?}");
        }
    }
}
