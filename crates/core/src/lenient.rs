use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// One element of a vendor list: decoded, or kept raw with the reason it did not decode.
///
/// Page envelopes in the generated clients hold `Vec<Lenient<T>>`, so a single malformed
/// element never fails the whole page: every other element still decodes, and the bad
/// one keeps its JSON for the caller to report or repair. A decoded element keeps its
/// JSON too, exactly as received ([`Lenient::raw`]), so fields the schema does not know
/// are not lost.
#[derive(Clone, Debug)]
pub enum Lenient<T> {
    /// The element matched its schema; the JSON it came from, when it was received.
    Valid(T, Option<Value>),
    /// The element did not match; its raw JSON and the decode error are kept.
    Invalid(InvalidElement),
}

/// A list element that did not match its schema.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidElement {
    /// The element exactly as received.
    pub raw: Value,
    /// Why it did not decode (serde's message, e.g. ``missing field `id` ``).
    pub error: String,
}

impl fmt::Display for InvalidElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)
    }
}

impl<T> Lenient<T> {
    /// The decoded element, or the invalid one.
    pub fn into_result(self) -> Result<T, InvalidElement> {
        match self {
            Lenient::Valid(t, _) => Ok(t),
            Lenient::Invalid(e) => Err(e),
        }
    }

    /// The element's JSON as received (`None` for one built in code).
    pub fn raw(&self) -> Option<&Value> {
        match self {
            Lenient::Valid(_, raw) => raw.as_ref(),
            Lenient::Invalid(e) => Some(&e.raw),
        }
    }

    /// Borrowing form of [`Lenient::into_result`].
    pub fn as_result(&self) -> Result<&T, &InvalidElement> {
        match self {
            Lenient::Valid(t, _) => Ok(t),
            Lenient::Invalid(e) => Err(e),
        }
    }

    /// The decoded element, if it decoded.
    pub fn valid(&self) -> Option<&T> {
        self.as_result().ok()
    }
}

impl<T> From<T> for Lenient<T> {
    fn from(value: T) -> Self {
        Lenient::Valid(value, None)
    }
}

impl<T: Serialize> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Lenient::Valid(_, Some(raw)) => raw.serialize(serializer),
            Lenient::Valid(t, None) => t.serialize(serializer),
            Lenient::Invalid(e) => e.raw.serialize(serializer),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        Ok(match T::deserialize(&raw) {
            Ok(t) => Lenient::Valid(t, Some(raw)),
            Err(e) => Lenient::Invalid(InvalidElement {
                error: e.to_string(),
                raw,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Item {
        id: String,
    }

    #[test]
    fn one_bad_element_costs_only_itself() {
        let items: Vec<Lenient<Item>> =
            serde_json::from_str(r#"[{"id":"a"},{"nope":1},{"id":"c"}]"#).unwrap();
        assert_eq!(items[0].valid(), Some(&Item { id: "a".into() }));
        assert_eq!(items[0].raw(), Some(&serde_json::json!({"id": "a"})));
        let bad = items[1].as_result().unwrap_err();
        assert_eq!(bad.raw, serde_json::json!({"nope": 1}));
        assert!(bad.error.contains("missing field `id`"), "{}", bad.error);
        assert_eq!(items[2].valid().unwrap().id, "c");
        assert_eq!(
            serde_json::to_string(&items).unwrap(),
            r#"[{"id":"a"},{"nope":1},{"id":"c"}]"#
        );
    }
}
