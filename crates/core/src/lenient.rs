use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::RawJson;

/// One element of a vendor list: decoded, or kept raw with the reason it did not decode.
///
/// Page envelopes in the generated clients hold `Vec<Lenient<T>>`, so a single malformed
/// element never fails the whole page: every other element still decodes, and the bad
/// one keeps its JSON for the caller to report or repair. A decoded element keeps its
/// JSON text too, as received ([`Lenient::raw`]), so fields the schema does not know are
/// not lost; it is decoded once, straight from that text.
#[derive(Clone, Debug)]
pub enum Lenient<T> {
    /// The element matched its schema; the JSON it came from, when it was received.
    Valid(T, Option<RawJson>),
    /// The element did not match; its raw JSON and the decode error are kept.
    Invalid(InvalidElement),
}

/// A list element that did not match its schema.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidElement {
    /// The element exactly as received; when it cannot be held as JSON data (a number
    /// beyond `f64`, a lone UTF-16 surrogate escape, nesting past 128 levels), its exact
    /// text, as a JSON string.
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

    /// The element's JSON as received, as data (`None` for one built in code).
    pub fn raw(&self) -> Option<Value> {
        match self {
            Lenient::Valid(_, raw) => raw.as_ref().map(RawJson::to_value),
            Lenient::Invalid(e) => Some(e.raw.clone()),
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

/// Each element is first taken as its raw text (which skips over anything well-formed,
/// however deep, however large its numbers), then decoded on its own from that text:
/// whatever is wrong with one element stays in that element. An element the text decoder
/// refuses for a repeated key is decoded from its data (the last value of the key wins).
impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        let error = match serde_json::from_str::<T>(text.get()) {
            Ok(t) => return Ok(Lenient::Valid(t, Some(RawJson::from_raw(text)))),
            Err(e) => e,
        };
        let raw = match serde_json::from_str::<Value>(text.get()) {
            Ok(raw) => raw,
            Err(e) => {
                return Ok(Lenient::Invalid(InvalidElement {
                    error: e.to_string(),
                    raw: Value::String(text.get().to_string()),
                }))
            }
        };
        Ok(match T::deserialize(&raw) {
            Ok(t) => Lenient::Valid(t, Some(RawJson::from_raw(text))),
            Err(_) => Lenient::Invalid(InvalidElement {
                error: error.to_string(),
                raw,
            }),
        })
    }
}

/// Deserializes an optional field that paging does not need: anything that does not
/// decode as `T` (a wrong type, a duplicated key, a number beyond `f64`, nesting past 128
/// levels) costs only that field, which becomes `None`; the rest of the object decodes.
///
/// The generated page envelopes use it (`#[serde(default, deserialize_with = …)]`, put
/// there by the xtask's `tolerant_envelope_fields` fix-up) on every optional field except
/// those paging reads: lists, cursors, next links, `has_next`.
pub fn or_none<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let text = Option::<Box<serde_json::value::RawValue>>::deserialize(d)?;
    Ok(text.and_then(|t| serde_json::from_str(t.get()).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Item {
        id: String,
    }

    #[test]
    fn json_that_cannot_be_data_costs_at_most_its_element() {
        // Beyond what JSON data holds but outside the schema's fields: the element
        // decodes and keeps its exact text. A broken field of the schema costs the element.
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let text = format!(
            r#"[{{"id":"a"}},{{"id":"b","x":{deep}}},{{"id":"\ud800"}},{{"id":"c","n":1e400}},{{"id":"d"}}]"#
        );
        let items: Vec<Lenient<Item>> = serde_json::from_str(&text).unwrap();
        let ids: Vec<Option<&str>> = items
            .iter()
            .map(|i| i.valid().map(|i| i.id.as_str()))
            .collect();
        assert_eq!(ids, [Some("a"), Some("b"), None, Some("c"), Some("d")]);
        let kept = items[3].raw().unwrap();
        assert_eq!(kept, r#"{"id":"c","n":1e400}"#, "the exact text is kept");
        let bad = items[2].as_result().unwrap_err();
        assert_eq!(bad.raw, r#"{"id":"\ud800"}"#, "kept as text");
        assert_eq!(
            serde_json::to_string(&items[3]).unwrap(),
            r#"{"id":"c","n":1e400}"#
        );
    }

    #[derive(Debug, Deserialize)]
    struct Envelope {
        #[serde(default, deserialize_with = "or_none")]
        count: Option<u64>,
        #[serde(default, deserialize_with = "or_none")]
        meta: Option<Item>,
        next: Option<String>,
    }

    #[test]
    fn a_malformed_optional_field_costs_only_itself() {
        let e: Envelope = serde_json::from_str(
            r#"{"count": "many", "meta": {"id": "a", "id": "b"}, "next": "p2"}"#,
        )
        .unwrap();
        assert_eq!(
            (e.count, e.meta.is_none(), e.next.as_deref()),
            (None, true, Some("p2"))
        );
        let e: Envelope = serde_json::from_str(r#"{"count": 1e400, "next": "p3"}"#).unwrap();
        assert_eq!((e.count, e.next.as_deref()), (None, Some("p3")));
        let e: Envelope = serde_json::from_str(r#"{"count": 7}"#).unwrap();
        assert_eq!(e.count, Some(7));
        // A field paging needs stays strict.
        assert!(serde_json::from_str::<Envelope>(r#"{"next": 5}"#).is_err());
    }

    #[test]
    fn one_bad_element_costs_only_itself() {
        let items: Vec<Lenient<Item>> =
            serde_json::from_str(r#"[{"id":"a"},{"nope":1},{"id":"c"}]"#).unwrap();
        assert_eq!(items[0].valid(), Some(&Item { id: "a".into() }));
        assert_eq!(items[0].raw(), Some(serde_json::json!({"id": "a"})));
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
