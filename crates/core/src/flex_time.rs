use std::fmt;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A timestamp in any of the shapes marketplaces send, normalised to UTC.
///
/// Accepted shapes:
/// - RFC 3339 with any offset or `Z`, with or without fractional seconds
///   (`2019-03-13T09:34:26.450-04:00`), also with a space instead of `T`;
/// - a date-time without an offset, taken as UTC (`2019-04-08T20:58:49`);
/// - RFC 2822 (`Tue, 25 Oct 2016 22:56:47 GMT`);
/// - an integer (or a string of digits): epoch seconds, or milliseconds when it is
///   larger than 10^11;
/// - Mongo-style wrappers `{"$date": <any of the above>}` and `{"$numberLong": "<ms>"}`.
///
/// The value as it arrived is kept and serialised back unchanged; a value built in code
/// serialises as RFC 3339 in UTC with milliseconds.
#[derive(Clone)]
pub struct FlexDateTime {
    utc: DateTime<Utc>,
    raw: Option<Value>,
}

impl FlexDateTime {
    /// The instant, in UTC.
    pub fn utc(&self) -> DateTime<Utc> {
        self.utc
    }

    /// The JSON value as the vendor sent it, if it came from the wire.
    pub fn raw(&self) -> Option<&Value> {
        self.raw.as_ref()
    }

    /// Parses any accepted shape; the error says what was not understood.
    pub fn from_value(value: &Value) -> Result<Self, String> {
        parse_value(value, 0).map(|utc| FlexDateTime {
            utc,
            raw: Some(value.clone()),
        })
    }

    /// RFC 3339 in UTC with milliseconds, as sent in queries and bodies.
    pub fn to_rfc3339(&self) -> String {
        self.utc.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl PartialEq for FlexDateTime {
    fn eq(&self, other: &Self) -> bool {
        self.utc == other.utc
    }
}

impl Eq for FlexDateTime {}

impl PartialOrd for FlexDateTime {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FlexDateTime {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.utc.cmp(&other.utc)
    }
}

impl std::hash::Hash for FlexDateTime {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.utc.hash(state)
    }
}

impl fmt::Debug for FlexDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlexDateTime({})", self.to_rfc3339())
    }
}

impl fmt::Display for FlexDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl<Tz: TimeZone> From<DateTime<Tz>> for FlexDateTime {
    fn from(value: DateTime<Tz>) -> Self {
        FlexDateTime {
            utc: value.with_timezone(&Utc),
            raw: None,
        }
    }
}

impl std::str::FromStr for FlexDateTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_str(s).map(FlexDateTime::from)
    }
}

impl Serialize for FlexDateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.raw {
            Some(raw) => raw.serialize(serializer),
            None => serializer.serialize_str(&self.to_rfc3339()),
        }
    }
}

impl<'de> Deserialize<'de> for FlexDateTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        FlexDateTime::from_value(&value).map_err(serde::de::Error::custom)
    }
}

fn parse_value(value: &Value, depth: u8) -> Result<DateTime<Utc>, String> {
    if depth > 3 {
        return Err("timestamp wrappers nested too deep".into());
    }
    match value {
        Value::String(s) => parse_str(s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => from_epoch(i),
            None => Err(format!("timestamp number {n} is not an integer")),
        },
        Value::Object(map) => {
            if let Some(inner) = map.get("$date") {
                parse_value(inner, depth + 1)
            } else if let Some(Value::String(ms)) = map.get("$numberLong") {
                ms.parse::<i64>()
                    .map_err(|_| format!("`$numberLong` {ms:?} is not an integer"))
                    .and_then(from_epoch_millis)
            } else {
                Err("timestamp object has neither `$date` nor `$numberLong`".into())
            }
        }
        other => Err(format!("expected a timestamp, found {}", kind(other))),
    }
}

fn parse_str(s: &str) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    if t.len() > 10 && t.as_bytes()[10] == b' ' {
        let with_t = format!("{}T{}", &t[..10], &t[11..]);
        if let Ok(dt) = DateTime::parse_from_rfc3339(&with_t) {
            return Ok(dt.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(naive.and_utc());
        }
    }
    if let Ok(dt) = DateTime::parse_from_rfc2822(t) {
        return Ok(dt.with_timezone(&Utc));
    }
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = t.parse::<i64>() {
            return from_epoch(i);
        }
    }
    Err(format!("unrecognised timestamp {:?}", truncate(t, 64)))
}

fn from_epoch(i: i64) -> Result<DateTime<Utc>, String> {
    if i.unsigned_abs() > 100_000_000_000 {
        from_epoch_millis(i)
    } else {
        Utc.timestamp_opt(i, 0)
            .single()
            .ok_or_else(|| format!("epoch seconds {i} out of range"))
    }
}

fn from_epoch_millis(ms: i64) -> Result<DateTime<Utc>, String> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| format!("epoch milliseconds {ms} out of range"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> FlexDateTime {
        serde_json::from_str(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        assert_eq!(
            parse("\"2019-03-13T09:34:26.450-04:00\"").to_rfc3339(),
            "2019-03-13T13:34:26.450Z"
        );
        assert_eq!(
            parse("\"2020-12-05T20:01:46.000Z\"").to_rfc3339(),
            "2020-12-05T20:01:46.000Z"
        );
    }

    #[test]
    fn mongo_wrappers_and_epochs() {
        let a = parse(r#"{"$date": "2024-04-24T09:57:57.620Z"}"#);
        let b = parse(r#"{"$date": {"$numberLong": "1713952677620"}}"#);
        let c = parse("1713952677620");
        let d = parse("1713952677");
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(d.to_rfc3339(), "2024-04-24T09:57:57.000Z");
    }

    #[test]
    fn rfc2822_space_separated_and_naive() {
        assert_eq!(
            parse("\"Tue, 25 Oct 2016 22:56:47 GMT\"").to_rfc3339(),
            "2016-10-25T22:56:47.000Z"
        );
        assert_eq!(
            parse("\"2024-04-24 09:57:56.851+00:00\"").to_rfc3339(),
            "2024-04-24T09:57:56.851Z"
        );
        assert_eq!(
            parse("\"2019-04-08T20:58:49\"").to_rfc3339(),
            "2019-04-08T20:58:49.000Z"
        );
    }

    #[test]
    fn wire_form_round_trips_and_garbage_is_an_error() {
        let raw = r#"{"$date":"2024-04-24T09:57:57.620Z"}"#;
        assert_eq!(serde_json::to_string(&parse(raw)).unwrap(), raw);
        let err = serde_json::from_str::<FlexDateTime>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("unrecognised timestamp"), "{err}");
        assert!(serde_json::from_str::<FlexDateTime>("true").is_err());
    }
}
