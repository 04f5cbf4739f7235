/// Declares an open enum: the known vendor values as variants, anything else kept in
/// `Unknown(String)`.
///
/// Decoding never fails on an unknown value (`"Сustomer"` with a Cyrillic `С` becomes
/// `Unknown("Сustomer")`), a non-string scalar is kept as its JSON text, and every value
/// serialises back exactly as it arrived. The vendor clients' `enums.rs` files are
/// generated as calls to this macro.
#[macro_export]
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* #[doc = concat!("`", $wire, "`")] $variant, )*
            /// A value this version of the client does not know, kept as sent.
            Unknown(::std::string::String),
        }

        impl $name {
            /// Every value the vendor documents.
            pub const KNOWN: &'static [&'static str] = &[$($wire),*];

            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Unknown(value) => value.as_str(),
                }
            }

            /// Whether the value is one the vendor documents.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Unknown(_))
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $( $wire => Self::$variant, )*
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl ::std::convert::From<::std::string::String> for $name {
            fn from(value: ::std::string::String) -> Self {
                Self::from(value.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {
                Ok(Self::from(value))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                $crate::open_enum_text(deserializer).map(Self::from)
            }
        }
    };
}

/// Reads an open-enum value: a string as is, any other scalar as its JSON text.
#[doc(hidden)]
pub fn open_enum_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    use serde::Deserialize;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(s) => Ok(s),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Ok(v.to_string()),
        other => Err(serde::de::Error::custom(format_args!(
            "expected an enum value (string), found {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(dead_code)]
    crate::open_enum! {
        /// Test enum.
        pub enum UserType { Customer = "Customer", Seller = "Seller" }
    }

    #[test]
    fn unknown_values_are_kept_and_round_trip() {
        let known: UserType = serde_json::from_str("\"Seller\"").unwrap();
        assert_eq!(known, UserType::Seller);
        let cyrillic: UserType = serde_json::from_str("\"\u{0421}ustomer\"").unwrap();
        assert_eq!(cyrillic, UserType::Unknown("\u{0421}ustomer".into()));
        assert!(!cyrillic.is_known());
        assert_eq!(
            serde_json::to_string(&cyrillic).unwrap(),
            "\"\u{0421}ustomer\""
        );
        let number: UserType = serde_json::from_str("7").unwrap();
        assert_eq!(number.as_str(), "7");
    }
}
