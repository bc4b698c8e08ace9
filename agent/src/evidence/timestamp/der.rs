//! The little DER that RFC 3161 needs: writing a few types, and reading TLVs strictly (definite
//! lengths in their shortest form, nothing past the end), which is enough to walk a TimeStampResp
//! field by field. Not a general ASN.1 library: each caller knows the structure it expects.

pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OID: u8 = 0x06;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
/// `[0]` constructed (EXPLICIT tagging, and CMS's `content [0]`).
pub const CONTEXT_0: u8 = 0xa0;

/// Why bytes are not the DER expected, with where (offset from the start of the outermost value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}")]
pub struct DerError {
    pub what: String,
    pub offset: usize,
}

/// One tag-length-value.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub value: &'a [u8],
    /// Offset of the value's first byte from the start of the outermost input.
    pub offset: usize,
}

/// Reads consecutive TLVs from a slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes[0]` in the outermost input, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0, base: 0 }
    }

    /// A reader over the contents of a constructed value.
    pub fn inside(tlv: &Tlv<'a>) -> Reader<'a> {
        Reader { bytes: tlv.value, pos: 0, base: tlv.offset }
    }

    fn error(&self, what: impl Into<String>) -> DerError {
        DerError { what: what.into(), offset: self.base + self.pos }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// The next tag without consuming it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The next TLV, whatever its tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let rest = &self.bytes[self.pos..];
        let Some(&tag) = rest.first() else { return Err(self.error("unexpected end of data")) };
        if tag & 0x1f == 0x1f {
            return Err(self.error(format!("multi-byte tag 0x{tag:02x} not expected here")));
        }
        let Some(&first) = rest.get(1) else { return Err(self.error("truncated length")) };
        let (len, header) = if first < 0x80 {
            (first as usize, 2)
        } else if first == 0x80 {
            return Err(self.error("indefinite length (BER, not DER)"));
        } else {
            let n = (first & 0x7f) as usize;
            if n > 4 {
                return Err(self.error(format!("length of {n} bytes is too long")));
            }
            let Some(digits) = rest.get(2..2 + n) else { return Err(self.error("truncated length")) };
            if digits[0] == 0 {
                return Err(self.error("length not in its shortest form"));
            }
            let len = digits.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            if len < 0x80 {
                return Err(self.error("length not in its shortest form"));
            }
            (len, 2 + n)
        };
        let Some(value) = rest.get(header..header + len) else {
            return Err(self.error(format!("value of {len} bytes runs past the end ({} left)", rest.len())));
        };
        let tlv = Tlv { value, offset: self.base + self.pos + header };
        self.pos += header + len;
        Ok(tlv)
    }

    /// The next TLV, which must have `tag`; `name` says what it should be.
    pub fn expect(&mut self, tag: u8, name: &str) -> Result<Tlv<'a>, DerError> {
        match self.peek_tag() {
            Some(t) if t == tag => self.any(),
            Some(t) => Err(self.error(format!("expected {name} (tag 0x{tag:02x}), found tag 0x{t:02x}"))),
            None => Err(self.error(format!("expected {name}, found the end"))),
        }
    }

    /// The next TLV if it has `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) { self.any().map(Some) } else { Ok(None) }
    }

    /// Nothing may follow.
    pub fn finish(&self, name: &str) -> Result<(), DerError> {
        if self.is_empty() { Ok(()) } else { Err(self.error(format!("unexpected data after {name}"))) }
    }
}

/// Parses exactly one TLV with `tag` spanning all of `bytes`.
pub fn single<'a>(bytes: &'a [u8], tag: u8, name: &str) -> Result<Tlv<'a>, DerError> {
    let mut reader = Reader::new(bytes);
    let tlv = reader.expect(tag, name)?;
    reader.finish(name)?;
    Ok(tlv)
}

/// Parses exactly one TLV with `tag` spanning all of `outer`'s value (an EXPLICIT tag, an OCTET STRING
/// holding DER), offsets kept relative to the outermost input.
pub fn single_in<'a>(outer: &Tlv<'a>, tag: u8, name: &str) -> Result<Tlv<'a>, DerError> {
    let mut reader = Reader::inside(outer);
    let tlv = reader.expect(tag, name)?;
    reader.finish(name)?;
    Ok(tlv)
}

/// A non-negative INTEGER's magnitude, big-endian without leading zeros (empty for 0).
pub fn unsigned_integer(tlv: &Tlv<'_>, name: &str) -> Result<Vec<u8>, DerError> {
    let v = tlv.value;
    let error = |what: &str| DerError { what: format!("{name}: {what}"), offset: tlv.offset };
    match v {
        [] => Err(error("empty INTEGER")),
        [first, ..] if first & 0x80 != 0 => Err(error("negative INTEGER")),
        [0, second, ..] if second & 0x80 == 0 => Err(error("INTEGER not in its shortest form")),
        _ => Ok(v.iter().copied().skip_while(|&b| b == 0).collect()),
    }
}

/// A small non-negative INTEGER.
pub fn small_integer(tlv: &Tlv<'_>, name: &str) -> Result<u64, DerError> {
    let magnitude = unsigned_integer(tlv, name)?;
    if magnitude.len() > 8 {
        return Err(DerError { what: format!("{name}: INTEGER too large"), offset: tlv.offset });
    }
    Ok(magnitude.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// An OBJECT IDENTIFIER in dotted form.
pub fn oid_string(tlv: &Tlv<'_>) -> Result<String, DerError> {
    let error = |what: &str| DerError { what: format!("OBJECT IDENTIFIER: {what}"), offset: tlv.offset };
    let mut arcs: Vec<u64> = Vec::new();
    let mut current: u64 = 0;
    let mut started = false;
    for &b in tlv.value {
        if !started && b == 0x80 {
            return Err(error("arc not in its shortest form"));
        }
        started = b & 0x80 != 0;
        if current > u64::MAX >> 7 {
            return Err(error("arc too large"));
        }
        current = (current << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(current);
            current = 0;
        }
    }
    if started || arcs.is_empty() {
        return Err(error("truncated"));
    }
    let first = arcs[0];
    let (a, b) = if first < 40 {
        (0, first)
    } else if first < 80 {
        (1, first - 40)
    } else {
        (2, first - 80)
    };
    let mut text = format!("{a}.{b}");
    for arc in &arcs[1..] {
        text.push_str(&format!(".{arc}"));
    }
    Ok(text)
}

/// Encodes a TLV (definite length, shortest form).
pub fn encode(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let digits: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | digits.len() as u8);
        out.extend(digits);
    }
    out.extend_from_slice(value);
    out
}

/// A SEQUENCE of already encoded parts.
pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    encode(SEQUENCE, &parts.concat())
}

/// A non-negative INTEGER from a big-endian magnitude.
pub fn encode_unsigned(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = magnitude.iter().copied().skip_while(|&b| b == 0).collect();
    let mut value = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|&b| b & 0x80 != 0) {
        value.push(0);
    }
    value.extend(trimmed);
    encode(INTEGER, &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip_and_are_strict() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let bytes = encode(OCTET_STRING, &vec![7u8; len]);
            let tlv = single(&bytes, OCTET_STRING, "test").unwrap();
            assert_eq!(tlv.value.len(), len);
        }
        let indefinite = [0x30, 0x80, 0x00, 0x00];
        assert!(single(&indefinite, SEQUENCE, "x").unwrap_err().what.contains("indefinite"));
        let long_form_short_value = [0x04, 0x81, 0x05, 1, 2, 3, 4, 5];
        assert!(single(&long_form_short_value, OCTET_STRING, "x").unwrap_err().what.contains("shortest"));
        let truncated = [0x04, 0x05, 1, 2];
        assert_eq!(
            single(&truncated, OCTET_STRING, "x").unwrap_err().what,
            "value of 5 bytes runs past the end (4 left)"
        );
        let trailing = [0x05, 0x00, 0x00];
        assert_eq!(
            single(&trailing, NULL, "NULL").unwrap_err(),
            DerError { what: "unexpected data after NULL".into(), offset: 2 }
        );
        assert!(
            single(&[0x02, 0x01, 0x01], SEQUENCE, "TimeStampResp").unwrap_err().what.contains("expected TimeStampResp")
        );
    }

    #[test]
    fn integers() {
        assert_eq!(encode_unsigned(&[0x00, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(encode_unsigned(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(encode_unsigned(&[]), [0x02, 0x01, 0x00]);
        let n = encode_unsigned(&[0xde, 0xad, 0xbe, 0xef]);
        let tlv = single(&n, INTEGER, "n").unwrap();
        assert_eq!(unsigned_integer(&tlv, "n").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(small_integer(&tlv, "n").unwrap(), 0xdead_beef);
        let negative = [0x02, 0x01, 0xff];
        assert!(unsigned_integer(&single(&negative, INTEGER, "n").unwrap(), "n").is_err());
        let padded = [0x02, 0x02, 0x00, 0x01];
        assert!(unsigned_integer(&single(&padded, INTEGER, "n").unwrap(), "n").is_err());
    }

    #[test]
    fn object_identifiers() {
        // SHA-256 (2.16.840.1.101.3.4.2.1) and id-ct-TSTInfo (1.2.840.113549.1.9.16.1.4).
        let sha256 = [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
        assert_eq!(oid_string(&single(&sha256, OID, "oid").unwrap()).unwrap(), "2.16.840.1.101.3.4.2.1");
        let tst = [0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04];
        assert_eq!(oid_string(&single(&tst, OID, "oid").unwrap()).unwrap(), "1.2.840.113549.1.9.16.1.4");
        assert!(oid_string(&single(&[0x06, 0x01, 0x86], OID, "oid").unwrap()).is_err());
    }
}
