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
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Takes over well-formed JSON text, as a deserializer hands it out.
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        let text = raw.get();
        let bytes = text.as_bytes();
        if !bytes.contains(&b'\n') && !bytes.contains(&b'\r') {
            return RawJson(raw);
        }
        // Line breaks can only stand between tokens (inside strings they are escaped).
        let one_line: String = text.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
        RawJson(RawValue::from_string(one_line).unwrap_or(raw))
    }

    /// `value` written out as JSON text (`null` when it cannot be: a map with keys that
    /// are not strings).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => RawJson(raw),
            Err(_) => RawJson::default(),
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The value as JSON data. Text that JSON data cannot hold (a number beyond `f64`,
    /// nesting past 128 levels) comes back as a string of the text.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.as_str()).unwrap_or_else(|_| Value::String(self.as_str().into()))
    }

    /// Reads the value (or the part of it that `T` names) as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.as_str())
    }
}

impl Default for RawJson {
    /// `null`.
    fn default() -> Self {
        RawJson(RawValue::NULL.to_owned())
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
        self.0.serialize(serializer)
    }
}

/// From any format: the value is read as JSON data and written out as text.
impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(RawJson::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
