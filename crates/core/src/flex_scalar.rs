use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A boolean that some vendors send as `"true"` / `"false"` (Ozon's `has_next`, Allegro's
/// `read` in its own examples) or as `0` / `1`. Serialises as a JSON boolean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlexBool(pub bool);

impl FlexBool {
    /// The value.
    pub fn get(self) -> bool {
        self.0
    }
}

impl From<bool> for FlexBool {
    fn from(value: bool) -> Self {
        FlexBool(value)
    }
}

impl From<FlexBool> for bool {
    fn from(value: FlexBool) -> Self {
        value.0
    }
}

impl fmt::Display for FlexBool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for FlexBool {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(self.0)
    }
}

impl<'de> Deserialize<'de> for FlexBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FlexBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean, \"true\"/\"false\" or 0/1")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FlexBool, E> {
                Ok(FlexBool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FlexBool, E> {
                match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => Ok(FlexBool(true)),
                    "false" | "0" => Ok(FlexBool(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FlexBool, E> {
                match v {
                    0 => Ok(FlexBool(false)),
                    1 => Ok(FlexBool(true)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FlexBool, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// An integer that some vendors send as a JSON string (`"size": "103584"` in Mercado
/// Libre's attachment examples). Serialises as a JSON number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlexInt(pub i64);

impl FlexInt {
    /// The value.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for FlexInt {
    fn from(value: i64) -> Self {
        FlexInt(value)
    }
}

impl From<FlexInt> for i64 {
    fn from(value: FlexInt) -> Self {
        value.0
    }
}

impl fmt::Display for FlexInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for FlexInt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for FlexInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FlexInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string of digits")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FlexInt, E> {
                Ok(FlexInt(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FlexInt, E> {
                i64::try_from(v)
                    .map(FlexInt)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FlexInt, E> {
                if v.fract() == 0.0 && v.abs() < 9.0e15 {
                    Ok(FlexInt(v as i64))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FlexInt, E> {
                v.trim()
                    .parse()
                    .map(FlexInt)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_strings_and_digits() {
        for (raw, want) in [
            ("true", true),
            ("\"true\"", true),
            ("\"False\"", false),
            ("0", false),
            ("1", true),
        ] {
            assert_eq!(
                serde_json::from_str::<FlexBool>(raw).unwrap().get(),
                want,
                "{raw}"
            );
        }
        assert!(serde_json::from_str::<FlexBool>("\"maybe\"").is_err());
        assert_eq!(serde_json::to_string(&FlexBool(true)).unwrap(), "true");
    }

    #[test]
    fn integers_as_strings() {
        assert_eq!(
            serde_json::from_str::<FlexInt>("\"103584\"").unwrap().get(),
            103584
        );
        assert_eq!(
            serde_json::from_str::<FlexInt>("225677").unwrap().get(),
            225677
        );
        assert_eq!(serde_json::from_str::<FlexInt>("20.0").unwrap().get(), 20);
        assert!(serde_json::from_str::<FlexInt>("\"12a\"").is_err());
        assert!(serde_json::from_str::<FlexInt>("1.5").is_err());
    }
}
