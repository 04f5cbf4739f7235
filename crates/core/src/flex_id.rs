use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An identifier that vendors send either as a JSON string or as a JSON integer.
///
/// Ozon's 19-digit message ids, Mercado Libre's `user_id`s and others drift between the
/// two. The value is kept as text (so no precision is lost: `u64::MAX` round-trips) and
/// serialises back in the form it came in. A fractional or out-of-range number is an
/// error, never a rounded id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlexId {
    value: String,
    numeric: bool,
}

impl FlexId {
    /// A textual id, sent back as a JSON string.
    pub fn text(value: impl Into<String>) -> Self {
        FlexId {
            value: value.into(),
            numeric: false,
        }
    }

    /// A numeric id, sent back as a JSON integer.
    pub fn number(value: u64) -> Self {
        FlexId {
            value: value.to_string(),
            numeric: true,
        }
    }

    /// The id as text, whatever form it arrived in.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The id as an unsigned integer, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        self.value.parse().ok()
    }

    /// The id as text, without a copy.
    pub fn into_string(self) -> String {
        self.value
    }

    /// Whether it arrived (and will be sent) as a JSON number.
    pub fn is_numeric(&self) -> bool {
        self.numeric
    }
}

impl fmt::Debug for FlexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.numeric {
            write!(f, "FlexId({})", self.value)
        } else {
            write!(f, "FlexId({:?})", self.value)
        }
    }
}

impl fmt::Display for FlexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl AsRef<str> for FlexId {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

impl From<&str> for FlexId {
    fn from(value: &str) -> Self {
        FlexId::text(value)
    }
}

impl From<String> for FlexId {
    fn from(value: String) -> Self {
        FlexId::text(value)
    }
}

impl From<u64> for FlexId {
    fn from(value: u64) -> Self {
        FlexId::number(value)
    }
}

impl std::str::FromStr for FlexId {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(FlexId::text(s))
    }
}

impl Serialize for FlexId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.numeric {
            if let Ok(n) = self.value.parse::<u64>() {
                return serializer.serialize_u64(n);
            }
            if let Ok(n) = self.value.parse::<i64>() {
                return serializer.serialize_i64(n);
            }
        }
        serializer.serialize_str(&self.value)
    }
}

struct FlexIdVisitor;

impl<'de> Visitor<'de> for FlexIdVisitor {
    type Value = FlexId;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an identifier as a string or an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FlexId, E> {
        Ok(FlexId::text(v))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<FlexId, E> {
        Ok(FlexId::text(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<FlexId, E> {
        Ok(FlexId::number(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<FlexId, E> {
        Ok(FlexId {
            value: v.to_string(),
            numeric: true,
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<FlexId, E> {
        Err(E::custom(format_args!(
            "identifier {v} is not an integer that fits in 64 bits; refusing to round it"
        )))
    }
}

impl<'de> Deserialize<'de> for FlexId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FlexIdVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_number_forms_decode_to_the_same_text() {
        let a: FlexId = serde_json::from_str("\"3000000000118021931\"").unwrap();
        let b: FlexId = serde_json::from_str("3000000000118021931").unwrap();
        assert_eq!(a.as_str(), b.as_str());
        assert_eq!(b.as_u64(), Some(3000000000118021931));
        assert!(!a.is_numeric() && b.is_numeric());
    }

    #[test]
    fn round_trips_in_the_form_it_arrived() {
        for raw in ["\"415458330\"", "415458330", "18446744073709551615", "-5"] {
            let id: FlexId = serde_json::from_str(raw).unwrap();
            assert_eq!(serde_json::to_string(&id).unwrap(), raw);
        }
    }

    #[test]
    fn out_of_range_number_is_an_error_not_a_rounded_id() {
        let err = serde_json::from_str::<FlexId>("30000000001280042740").unwrap_err();
        assert!(err.to_string().contains("refusing to round"), "{err}");
    }
}
