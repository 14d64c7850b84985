//! Canonical JSON: every document pack writes is serialised the same way on every machine.
//!
//! The form is compact (no whitespace between tokens), object keys sorted by their UTF-8
//! bytes at every level, arrays in their given order, strings escaped as `serde_json`
//! escapes them (only `"`, `\` and control characters; everything else as UTF-8), and
//! integers in plain decimal. This does not depend on how a type orders its fields or on
//! the iteration order of a `HashMap` (oci-spec keeps annotations in one), so the same
//! inputs always give the same bytes and the same digest.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

/// Serialises `value` as canonical JSON.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::new();
    write_value(&mut out, &value)?;
    Ok(out)
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_value(out, value)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        // Scalars have one serde_json rendering.
        other => serde_json::to_writer(&mut *out, other)?,
    }
    Ok(())
}

/// Writes `value` as canonical JSON to `writer`.
pub fn to_writer<W: Write, T: Serialize + ?Sized>(
    mut writer: W,
    value: &T,
) -> Result<(), serde_json::Error> {
    let bytes = to_vec(value)?;
    writer.write_all(&bytes).map_err(serde_json::Error::io)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let mut map = HashMap::new();
        for key in ["zeta", "alpha", "Mid", "beta"] {
            map.insert(
                key.to_string(),
                serde_json::json!({"b": 1, "a": [3, {"y": null, "x": true}]}),
            );
        }
        let bytes = to_vec(&map).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"Mid":{"a":[3,{"x":true,"y":null}],"b":1},"alpha":{"a":[3,{"x":true,"y":null}],"b":1},"beta":{"a":[3,{"x":true,"y":null}],"b":1},"zeta":{"a":[3,{"x":true,"y":null}],"b":1}}"#
        );
    }

    #[test]
    fn strings_are_escaped_minimally() {
        let bytes = to_vec(&serde_json::json!({"k": "é \"q\" \\ \n <>&"})).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"k":"é \"q\" \\ \n <>&"}"#
        );
    }

    #[test]
    fn hash_map_order_does_not_matter() {
        let a: HashMap<String, u64> = (0..50).map(|i| (format!("k{i}"), i)).collect();
        let b: HashMap<String, u64> = (0..50).rev().map(|i| (format!("k{i}"), i)).collect();
        assert_eq!(to_vec(&a).unwrap(), to_vec(&b).unwrap());
    }
}
