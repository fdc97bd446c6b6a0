//! Divar's request bodies read strictly: nested at most [`MAX_DEPTH`] levels, and no key twice in
//! one object. `serde_json` alone takes 127 levels (more than a value can go through a store and
//! be read back: a session store that wraps it adds levels of its own) and keeps the last of two
//! equal keys, so two readers of the same body could disagree on what it says.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The deepest nesting a body may have (the body itself is level 1). Divar's documented bodies
/// go 3 levels deep; `extra_data` is the app's own, echoed back.
pub const MAX_DEPTH: usize = 32;

/// Parses `body` as JSON, refusing bodies nested deeper than [`MAX_DEPTH`] and objects with a
/// key twice. The error says which, for the caller's 400.
///
/// ```
/// assert!(kenar::json::parse(br#"{"a": {"b": [1, 2]}}"#).is_ok());
/// assert!(kenar::json::parse(br#"{"a": 1, "a": 2}"#).unwrap_err().contains("twice"));
/// let deep = "[".repeat(40) + &"]".repeat(40);
/// assert!(kenar::json::parse(deep.as_bytes()).unwrap_err().contains("deeper"));
/// ```
pub fn parse(body: &[u8]) -> Result<Value, String> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = Strict { depth: 1 }
        .deserialize(&mut reader)
        .and_then(|value| reader.end().map(|()| value))
        .map_err(|e| format!("the body is not valid JSON: {e}"))?;
    Ok(value)
}

/// One value at `depth`.
struct Strict {
    depth: usize,
}

impl Strict {
    /// A value inside this one.
    fn inner(&self) -> Strict {
        Strict {
            depth: self.depth + 1,
        }
    }

    /// An array or object at this depth.
    fn container<E: de::Error>(&self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.container()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.inner())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.container()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.inner())?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the key `{}` appears twice in one object",
                    key.chars().take(40).collect::<String>()
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_DEPTH, parse};

    fn nested(levels: usize) -> String {
        "[".repeat(levels) + &"]".repeat(levels)
    }

    #[test]
    fn the_limit_is_exact() {
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
        let error = parse(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err();
        assert!(error.contains("nested deeper than 32 levels"), "{error}");
        assert!(parse(nested(126).as_bytes()).is_err());
    }

    #[test]
    fn a_key_twice_is_refused_at_any_level_and_equal_keys_elsewhere_are_fine() {
        assert!(parse(br#"{"a": {"k": 1, "k": 2}}"#).is_err());
        assert!(parse(br#"{"a": {"k": 1}, "b": {"k": 2}}"#).is_ok());
        assert!(parse(br#"[{"k": 1}, {"k": 1}]"#).is_ok());
    }

    #[test]
    fn it_reads_what_serde_json_reads() {
        let body = br#"{"s": "\u0633\u0644\u0627\u0645", "n": -1.5, "u": 18446744073709551615, "b": true, "z": null, "a": [1, "x"]}"#;
        assert_eq!(
            parse(body).unwrap(),
            serde_json::from_slice::<serde_json::Value>(body).unwrap()
        );
        assert!(parse(b"{} trailing").is_err());
        assert!(parse(b"{").is_err());
    }
}
