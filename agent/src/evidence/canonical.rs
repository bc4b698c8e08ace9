//! Canonical JSON (docs/evidence.md): keys sorted by code point, no whitespace, integers only — the same
//! bytes as Python's `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("not canonical JSON: {0}")]
pub struct CanonicalError(pub String);

pub fn to_bytes(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend(b"null"),
        Value::Bool(b) => out.extend(if *b { &b"true"[..] } else { &b"false"[..] }),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(CanonicalError(format!("floating-point number {n}")));
            }
            out.extend(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(&map[key], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend(b"\\\""),
            '\\' => out.extend(b"\\\\"),
            '\n' => out.extend(b"\\n"),
            '\r' => out.extend(b"\\r"),
            '\t' => out.extend(b"\\t"),
            '\u{08}' => out.extend(b"\\b"),
            '\u{0c}' => out.extend(b"\\f"),
            c if (c as u32) < 0x20 => out.extend(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_keys_compacts_and_refuses_floats() {
        let v: Value = serde_json::from_str(r#"{"b": [1, "x\ny", {"z": true, "a": null}], "a": "é\u0001"}"#).unwrap();
        assert_eq!(
            String::from_utf8(to_bytes(&v).unwrap()).unwrap(),
            "{\"a\":\"é\\u0001\",\"b\":[1,\"x\\ny\",{\"a\":null,\"z\":true}]}"
        );
        assert!(to_bytes(&serde_json::json!({"s": 0.5})).is_err());
    }

    /// docs/evidence.md, "As a subset of RFC 8785": the string escapes of RFC 8785 section 3.2.2.2, and the
    /// one ordering difference (code points, not UTF-16 code units) on RFC 8785 section 3.2.3's own example.
    #[test]
    fn rfc8785_subset_and_its_documented_difference() {
        let v: Value = serde_json::from_str(r#"{"s": "\u0000\b\f\n\r\t\u001f\u007f\u2028€\"\\/"}"#).unwrap();
        assert_eq!(
            String::from_utf8(to_bytes(&v).unwrap()).unwrap(),
            "{\"s\":\"\\u0000\\b\\f\\n\\r\\t\\u001f\u{7f}\u{2028}€\\\"\\\\/\"}"
        );
        let keys = ["\u{20ac}", "\r", "\u{fb33}", "1", "\u{1f600}", "\u{80}", "\u{f6}"];
        let v = Value::Object(keys.iter().map(|k| (k.to_string(), Value::from(1))).collect());
        let text = String::from_utf8(to_bytes(&v).unwrap()).unwrap();
        let order: Vec<&str> = keys.iter().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        // RFC 8785 orders U+1F600 (UTF-16 D83D DE00) before U+FB33; by code point it comes after.
        assert_eq!(order, ["\r", "1", "\u{80}", "\u{f6}", "\u{20ac}", "\u{fb33}", "\u{1f600}"]);
        let positions: Vec<usize> = order.iter().map(|k| text.find(&to_json_key(k)).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        // Integers: all digits, also beyond 2^53 (RFC 8785 would round through a double).
        let big: Value =
            serde_json::from_str("[9007199254740993, -9223372036854775808, 18446744073709551615]").unwrap();
        assert_eq!(to_bytes(&big).unwrap(), b"[9007199254740993,-9223372036854775808,18446744073709551615]");
    }

    fn to_json_key(k: &str) -> String {
        let mut out = Vec::new();
        write_string(k, &mut out);
        String::from_utf8(out).unwrap() + ":"
    }
}
