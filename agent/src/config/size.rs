//! Byte sizes written the way people write them: `20 GiB`, `500MB`, `1048576`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A number of bytes. Accepts an integer or a string with a unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        if digits.is_empty() {
            return Err(format!("{text:?} is not a size (expected e.g. \"20 GiB\")"));
        }
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "kB" | "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            other => {
                return Err(format!("unknown unit {other:?} in {text:?} (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"));
            }
        };
        let n: u64 = digits.parse().map_err(|_| format!("{text:?} is too large"))?;
        n.checked_mul(multiplier).map(ByteSize).ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes, as an integer or a string such as \"20 GiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("size must not be negative, got {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_numbers() {
        assert_eq!(ByteSize::parse("20 GiB"), Ok(ByteSize(20 << 30)));
        assert_eq!(ByteSize::parse("500MB"), Ok(ByteSize(500_000_000)));
        assert_eq!(ByteSize::parse("1048576"), Ok(ByteSize(1 << 20)));
        assert!(ByteSize::parse("GiB").is_err());
        assert!(ByteSize::parse("5 parsecs").unwrap_err().contains("parsecs"));
        assert!(ByteSize::parse("99999999999 TiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(ByteSize(20 << 30).to_string(), "20 GiB");
        assert_eq!(ByteSize(1536).to_string(), "1536 B");
    }
}
