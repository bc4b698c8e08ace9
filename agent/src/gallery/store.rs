//! The gallery's plaintext, inside the sealed file ([`super::sealed`]): a compact binary form, and the
//! JSON form older Vigils wrote, still read (and rewritten as binary by [`super::Gallery::open`]).
//!
//! Binary form (docs/gallery.md), all integers unsigned little-endian, floats IEEE 754 binary32
//! little-endian (bit for bit what was enrolled):
//!
//! ```text
//! u32 entry count, then per entry:
//!   u32 id length, id (UTF-8)
//!   u8  role (0 patient, 1 physician)
//!   f32 quality
//!   u32 enrolled_at length, enrolled_at (UTF-8)
//!   u32 embedding count, then per embedding: u32 dimension d, d × f32
//! ```
//!
//! 516 bytes per 128-d embedding where JSON's decimal floats take ≈ 10 characters each, and a load is a
//! copy rather than a float parse (`vigil bench gallery` measures both forms).

use std::path::Path;

use super::sealed::{SealKey, SealedError};
use super::{Entry, PersonKind};

/// Magic of the JSON form (older Vigils); also its AES-GCM associated data.
pub const MAGIC_JSON: &[u8] = b"VIGILGAL1\n";
/// Magic of the binary form; also its AES-GCM associated data.
pub const MAGIC_BINARY: &[u8] = b"VIGILGAL2\n";

/// The form a gallery file was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// No file yet.
    Missing,
    Binary,
    /// Written by an older Vigil: to be rewritten as binary.
    Json,
}

/// Reads, decrypts and decodes the gallery at `path`, in either form.
pub fn read(key: &SealKey, path: &Path) -> Result<(Vec<Entry>, Form), SealedError> {
    match key.open_any(path, &[MAGIC_BINARY, MAGIC_JSON])? {
        None => Ok((Vec::new(), Form::Missing)),
        Some((MAGIC_BINARY, plain)) => Ok((decode(&plain).map_err(|detail| corrupt(path, detail))?, Form::Binary)),
        Some((_, plain)) => Ok((decode_json(&plain).map_err(|detail| corrupt(path, detail))?, Form::Json)),
    }
}

/// Encrypts `entries` in the binary form and replaces the file at `path` atomically.
pub fn write(key: &SealKey, path: &Path, entries: &[Entry]) -> Result<(), SealedError> {
    let plain = encode(entries).map_err(|detail| SealedError::Corrupt { path: path.to_owned(), detail })?;
    key.seal(path, MAGIC_BINARY, plain)
}

fn corrupt(path: &Path, detail: String) -> SealedError {
    SealedError::Corrupt { path: path.to_owned(), detail }
}

/// The binary form of `entries`; an error names an entry whose id or time is too long to store.
pub fn encode(entries: &[Entry]) -> Result<Vec<u8>, String> {
    let floats: usize = entries.iter().flat_map(|e| &e.embeddings).map(Vec::len).sum();
    let mut out = Vec::with_capacity(4 + entries.len() * 64 + floats * 4);
    let len = |n: usize, what: &dyn Fn() -> String| u32::try_from(n).map_err(|_| format!("{} is too long", what()));
    out.extend_from_slice(&len(entries.len(), &|| "the gallery".into())?.to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        out.extend_from_slice(&len(e.id.len(), &|| format!("entry {i}'s id"))?.to_le_bytes());
        out.extend_from_slice(e.id.as_bytes());
        out.push(match e.role {
            PersonKind::Patient => 0,
            PersonKind::Physician => 1,
        });
        out.extend_from_slice(&e.quality.to_le_bytes());
        out.extend_from_slice(&len(e.enrolled_at.len(), &|| format!("entry {i}'s enrolled_at"))?.to_le_bytes());
        out.extend_from_slice(e.enrolled_at.as_bytes());
        out.extend_from_slice(&len(e.embeddings.len(), &|| format!("entry {i}'s embedding list"))?.to_le_bytes());
        for v in &e.embeddings {
            out.extend_from_slice(&len(v.len(), &|| format!("an embedding of entry {i}"))?.to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// Decodes the binary form; an error says which entry and field is wrong and at which byte.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.u32(|| "the entry count".into())? as usize;
    // Every entry takes at least 17 bytes: a corrupt count cannot make us reserve gigabytes.
    let mut entries = Vec::with_capacity(count.min(bytes.len() / 17));
    for i in 0..count {
        let id = r.string(|| format!("entry {i}: id"))?;
        let role = match r.take(1, || format!("entry {i}: role"))?[0] {
            0 => PersonKind::Patient,
            1 => PersonKind::Physician,
            other => return Err(format!("entry {i}: unknown role {other} at byte {}", r.at - 1)),
        };
        let quality = r.f32(|| format!("entry {i}: quality"))?;
        let enrolled_at = r.string(|| format!("entry {i}: enrolled_at"))?;
        let n = r.u32(|| format!("entry {i}: embedding count"))? as usize;
        let mut embeddings = Vec::with_capacity(n.min(r.left() / 4));
        for k in 0..n {
            let d = r.u32(|| format!("entry {i}: embedding {k}: dimension"))? as usize;
            let raw = r.take(d.saturating_mul(4), || format!("entry {i}: embedding {k}: {d} values"))?;
            embeddings.push(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect());
        }
        entries.push(Entry { id, role, embeddings, quality, enrolled_at });
    }
    if r.left() > 0 {
        return Err(format!("{} bytes after the last of {count} entries", r.left()));
    }
    Ok(entries)
}

/// The JSON form older Vigils wrote. Kept so tests and `vigil bench gallery` can make such files;
/// Vigil itself never writes it.
pub fn encode_json(entries: &[Entry]) -> Vec<u8> {
    serde_json::to_vec(entries).expect("entries serialise")
}

/// Decodes the JSON form. The error gives the position only: serde's message could quote a value.
pub fn decode_json(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("JSON form: {:?} error at line {}, column {}", e.classify(), e.line(), e.column()))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: impl FnOnce() -> String) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!("{}: cut short at byte {} ({n} bytes needed, {} left)", what(), self.at, self.left()));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f32(&mut self, what: impl FnOnce() -> String) -> Result<f32, String> {
        let b = self.take(4, what)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: impl Fn() -> String) -> Result<String, String> {
        let n = self.u32(&what)? as usize;
        let at = self.at;
        let raw = self.take(n, &what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| format!("{}: not UTF-8 (bytes {at}..{})", what(), at + n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                id: "p-1".into(),
                role: PersonKind::Patient,
                embeddings: vec![(0..128).map(|i| i as f32 * 0.001 - 0.06).collect(), vec![f32::MIN_POSITIVE; 128]],
                quality: 0.875,
                enrolled_at: "2026-11-28T10:00:00Z".into(),
            },
            Entry {
                id: "dr-ü".into(),
                role: PersonKind::Physician,
                embeddings: vec![vec![-0.0, 1e-30, 0.1, f32::MAX]],
                quality: 0.5,
                enrolled_at: String::new(),
            },
            Entry {
                id: "none".into(),
                role: PersonKind::Patient,
                embeddings: vec![],
                quality: 0.0,
                enrolled_at: "t".into(),
            },
        ]
    }

    fn same(a: &[Entry], b: &[Entry]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.id == y.id
                    && x.role == y.role
                    && x.quality.to_bits() == y.quality.to_bits()
                    && x.enrolled_at == y.enrolled_at
                    && x.embeddings.len() == y.embeddings.len()
                    && x.embeddings
                        .iter()
                        .zip(&y.embeddings)
                        .all(|(u, v)| u.len() == v.len() && u.iter().zip(v).all(|(p, q)| p.to_bits() == q.to_bits()))
            })
    }

    #[test]
    fn binary_form_round_trips_bit_for_bit() {
        let e = entries();
        let bytes = encode(&e).unwrap();
        assert!(same(&decode(&bytes).unwrap(), &e));
        // Size: header, and 4 + 512 bytes per 128-d embedding (JSON needs ~10 characters per float).
        assert_eq!(
            bytes.len(),
            4 + (4 + 3 + 1 + 4 + 4 + 20 + 4 + 2 * 516) + (4 + 5 + 1 + 4 + 4 + 4 + 20) + (4 + 4 + 1 + 4 + 4 + 1 + 4)
        );
        assert!(same(&decode(&encode(&[]).unwrap()).unwrap(), &[]));
    }

    #[test]
    fn json_form_still_decodes() {
        let e = entries();
        // As older Vigils wrote it (serde_json of the entries); −0.0 and MIN_POSITIVE survive JSON too.
        assert!(same(&decode_json(&encode_json(&e)).unwrap(), &e));
    }

    #[test]
    fn damaged_binary_is_refused_saying_where() {
        let bytes = encode(&entries()).unwrap();
        // Cut anywhere: an error, never a panic or a silently shorter gallery.
        for cut in 0..bytes.len() {
            let err = decode(&bytes[..cut]).unwrap_err();
            assert!(err.contains("cut short at byte") || err.contains("UTF-8"), "cut at {cut}: {err}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(decode(&extra).unwrap_err(), "1 bytes after the last of 3 entries");
        let mut role = bytes.clone();
        role[4 + 4 + 3] = 9;
        assert_eq!(decode(&role).unwrap_err(), "entry 0: unknown role 9 at byte 11");
        let mut utf8 = bytes.clone();
        utf8[8] = 0xff;
        assert_eq!(decode(&utf8).unwrap_err(), "entry 0: id: not UTF-8 (bytes 8..11)");
        // A huge count or dimension is refused without reserving memory for it.
        let mut count = bytes.clone();
        count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&count).unwrap_err().starts_with("entry 3: id: cut short"));
        let dim_at = 4 + 4 + 3 + 1 + 4 + 4 + 20 + 4;
        let mut dim = bytes;
        dim[dim_at..dim_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decode(&dim).unwrap_err();
        assert!(err.starts_with("entry 0: embedding 0: 4294967295 values: cut short at byte 48"), "{err}");
    }
}
