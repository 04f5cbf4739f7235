use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON value kept as the text it arrived in: holding it costs one copy of the text, not
/// a parse, and it is written back out exactly as received. [`RawJson::to_value`] and
/// [`RawJson::parse`] read it when a field is wanted.
///
/// Text spanning several lines is kept on one (line breaks between tokens dropped), so
/// that it can always go into a JSON-lines record.
///
/// Whether JSON data can hold the text (see [`RawJson::is_data`]) is decided once, when
/// it is taken in.
#[derive(Clone)]
pub struct RawJson {
    raw: Box<RawValue>,
    data: bool,
}

impl RawJson {
    /// Takes over well-formed JSON text, as a deserializer hands it out.
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        let text = raw.get();
        let bytes = text.as_bytes();
        let raw = if !bytes.contains(&b'\n') && !bytes.contains(&b'\r') {
            raw
        } else {
            // Line breaks can only stand between tokens (inside strings they are escaped).
            let one_line: String = text.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
            RawValue::from_string(one_line).unwrap_or(raw)
        };
        Self::new(raw)
    }

    fn new(raw: Box<RawValue>) -> Self {
        let data = holds_as_data(raw.get());
        RawJson { raw, data }
    }

    /// Whether the text reads as JSON data (`serde_json::Value`): false for a number
    /// beyond `f64`, a lone UTF-16 surrogate escape, or nesting past 128 levels, which
    /// only a string of the text can carry on.
    pub fn is_data(&self) -> bool {
        self.data
    }

    /// `value` written out as JSON text (`null` when it cannot be: a map with keys that
    /// are not strings).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => Self::new(raw),
            Err(_) => RawJson::default(),
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.raw.get()
    }

    /// The value as JSON data. Text that JSON data cannot hold (a number beyond `f64`,
    /// nesting past 128 levels) comes back as a string of the text.
    pub fn to_value(&self) -> Value {
        let text = Value::String(self.as_str().into());
        match self.data {
            true => serde_json::from_str(self.as_str()).unwrap_or(text),
            false => text,
        }
    }

    /// Reads the value (or the part of it that `T` names) as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.as_str())
    }
}

impl Default for RawJson {
    /// `null`.
    fn default() -> Self {
        RawJson {
            raw: RawValue::NULL.to_owned(),
            data: true,
        }
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> Self {
        RawJson::of(&value)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Equal when they hold the same JSON data, however it was spaced.
impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl PartialEq<Value> for RawJson {
    fn eq(&self, other: &Value) -> bool {
        self.to_value() == *other
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

/// From any format: the value is read as JSON data and written out as text.
impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(RawJson::from)
    }
}

/// Whether `text` (well-formed JSON) reads as `serde_json::Value`. One pass over the
/// bytes settles it for all but text that may not (a number with an exponent or of many
/// digits, a surrogate escape, deep nesting), which is then parsed once.
fn holds_as_data(text: &str) -> bool {
    if plainly_data(text.as_bytes()) {
        return true;
    }
    serde_json::from_str::<Value>(text).is_ok()
}

/// True when nothing in `bytes` can keep it from reading as JSON data.
fn plainly_data(bytes: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'"' => {
                // A string: only a surrogate escape (\uD800 to \uDFFF) can be in doubt.
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'"' => break,
                        b'\\' => {
                            if bytes.get(i + 1) == Some(&b'u')
                                && matches!(bytes.get(i + 2), Some(b'd' | b'D'))
                                && matches!(
                                    bytes.get(i + 3),
                                    Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                                )
                            {
                                return false;
                            }
                            i += 2;
                            continue;
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > 100 {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while matches!(
                    bytes.get(i + 1),
                    Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                ) {
                    i += 1;
                }
                let number = bytes.get(start..=i).unwrap_or_default();
                if number.len() > 17 || number.iter().any(|b| matches!(b, b'e' | b'E')) {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_json_data_holds_is_decided_once_and_right() {
        for (text, data) in [
            (
                r#"{"a": [1, -2.5, 1e3, 12345678901234567890], "b": "x\u00e9"}"#,
                true,
            ),
            (r#"{"n": 1e400}"#, false),
            (r#"{"n": -1E+400}"#, false),
            (r#"{"s": "\ud83d\ude00"}"#, true),
            (r#"{"s": "\ud83d"}"#, false),
            (r#"{"s": "\\ud83d"}"#, true),
            (r#"[true, false, null, "e", "E"]"#, true),
        ] {
            let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
            let kept = RawJson::from_raw(raw);
            assert_eq!(kept.is_data(), data, "{text}");
            assert_eq!(
                kept.is_data(),
                serde_json::from_str::<Value>(text).is_ok(),
                "{text}"
            );
        }
        // Deep nesting is settled by a parse.
        let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
        let raw: Box<RawValue> = serde_json::from_str(&deep).unwrap();
        assert!(RawJson::from_raw(raw).is_data());
    }

    #[test]
    fn text_is_kept_as_received_on_one_line() {
        let raw: Box<RawValue> =
            serde_json::from_str("{\"a\": 1,\n  \"b\": \"x\\ny\", \"n\": 1e400}").unwrap();
        let kept = RawJson::from_raw(raw);
        assert_eq!(kept.as_str(), r#"{"a": 1,  "b": "x\ny", "n": 1e400}"#);
        assert_eq!(
            serde_json::to_string(&vec![&kept]).unwrap(),
            format!("[{kept}]")
        );
        #[derive(Deserialize)]
        struct B {
            b: String,
        }
        assert_eq!(kept.parse::<B>().unwrap().b, "x\ny");
        assert_eq!(
            kept.to_value(),
            Value::String(kept.as_str().into()),
            "1e400 is no f64"
        );
        let plain = RawJson::from(json!({"a": [1, 2]}));
        assert_eq!(plain, json!({"a": [1, 2]}));
        assert_eq!(
            plain,
            serde_json::from_str::<RawJson>(r#"{ "a" : [1,2] }"#).unwrap()
        );
        assert_eq!(RawJson::default().as_str(), "null");
    }
}
