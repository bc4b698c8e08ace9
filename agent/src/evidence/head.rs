//! The chain head kept outside the evidence directory (`<data_dir>/evidence-head`), and the start-up
//! rules that compare it with the store (docs/evidence.md, "Head, epochs"): a store whose end was
//! removed is refused, a wiped store starts a new epoch, a sequence is never used twice.
//!
//! The file holds one line, `SEQ:SHA256 EPOCH\n`, replaced durably (temp file, fsync, rename, directory
//! fsync) after every entry the agent appends.

use std::path::Path;

/// The last entry of a chain: its sequence, the SHA-256 (hex) of its manifest.json, and its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub sequence: u64,
    pub manifest_sha256: String,
    pub epoch: u64,
}

impl Head {
    /// `SEQ:SHA256`, as the platform and `vigil verify --expect-head` name a head.
    pub fn id(&self) -> String {
        format!("{}:{}", self.sequence, self.manifest_sha256)
    }

    /// The file's line: `SEQ:SHA256 EPOCH`.
    pub fn line(&self) -> String {
        format!("{} {}\n", self.id(), self.epoch)
    }

    /// Parses the file's text; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Head, String> {
        let line = text.lines().next().unwrap_or("").trim();
        let (id, epoch) = line.split_once(' ').ok_or_else(|| format!("{line:?} is not \"SEQ:SHA256 EPOCH\""))?;
        let (sequence, sha) = id.split_once(':').ok_or_else(|| format!("{id:?} is not \"SEQ:SHA256\""))?;
        let sequence = match sequence.parse::<u64>() {
            Ok(n) if n >= 1 && sequence.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("sequence {sequence:?} is not a positive integer")),
        };
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("{sha:?} is not a lower-case hex SHA-256"));
        }
        let epoch = match epoch.trim().parse::<u64>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(format!("epoch {epoch:?} is not a positive integer")),
        };
        Ok(Head { sequence, manifest_sha256: sha.to_owned(), epoch })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("evidence head file {path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error(
        "evidence head file {path} is unreadable: {problem}; it records the last entry this agent wrote \
             (restore it, or remove it to adopt the store as it is)"
    )]
    Corrupt { path: std::path::PathBuf, problem: String },
}

/// The recorded head, if the file exists.
pub fn read(path: &Path) -> Result<Option<Head>, HeadError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            Head::parse(&text).map(Some).map_err(|problem| HeadError::Corrupt { path: path.to_owned(), problem })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HeadError::Io { path: path.to_owned(), source }),
    }
}

/// Replaces the recorded head durably.
pub fn write(path: &Path, head: &Head) -> Result<(), HeadError> {
    crate::fsio::write(path, head.line().as_bytes(), crate::fsio::PRIVATE_FILE)
        .map_err(|source| HeadError::Io { path: path.to_owned(), source })
}

/// What start-up does, given the recorded head and the store's last entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Neither: a new chain (sequence 1, epoch 1).
    NewChain,
    /// No recorded head, a store (an upgrade, or a first start with a head file): adopt the store.
    AdoptUnrecorded,
    /// The store ends at the recorded head.
    Normal,
    /// The store is ahead of the recorded head and contains it (a crash between an entry's rename and
    /// the head's update): adopt the store, rewrite the head.
    AdoptAhead,
    /// The store ends before the recorded head, or at its sequence with another hash, or does not
    /// contain it: refuse to start.
    WentBackwards,
    /// A recorded head and an empty store (wiped, or a new directory): a new epoch after the head.
    NewEpoch,
}

/// The start-up rule. `contains(h)` says whether the store holds an entry at `h.sequence` with that
/// hash, chained to the store's last entry.
pub fn start(recorded: Option<&Head>, last: Option<&Head>, contains: impl Fn(&Head) -> bool) -> Start {
    match (recorded, last) {
        (None, None) => Start::NewChain,
        (None, Some(_)) => Start::AdoptUnrecorded,
        (Some(_), None) => Start::NewEpoch,
        (Some(h), Some(s)) if h.sequence == s.sequence && h.manifest_sha256 == s.manifest_sha256 => Start::Normal,
        (Some(h), Some(s)) if s.sequence > h.sequence && contains(h) => Start::AdoptAhead,
        (Some(_), Some(_)) => Start::WentBackwards,
    }
}

/// The refusal when the store went backwards, naming both heads (docs/evidence.md).
pub fn went_backwards(dir: &Path, store: &Head, recorded: &Head, file: &Path) -> String {
    format!(
        "evidence store went backwards: {} ends at {} but this agent last wrote {} (recorded in {}); entries \
         were removed from its end. Restore them, or move the evidence directory aside to start a new epoch.",
        dir.display(),
        store.id(),
        recorded.id(),
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(sequence: u64, c: char) -> Head {
        Head { sequence, manifest_sha256: c.to_string().repeat(64), epoch: 1 }
    }

    #[test]
    fn the_line_round_trips_and_bad_lines_are_named() {
        let h = Head { sequence: 42, manifest_sha256: "ab".repeat(32), epoch: 3 };
        assert_eq!(h.line(), format!("42:{} 3\n", "ab".repeat(32)));
        assert_eq!(Head::parse(&h.line()).unwrap(), h);
        assert!(Head::parse("42:abc 1").unwrap_err().contains("SHA-256"));
        assert!(Head::parse(&format!("0:{} 1", "a".repeat(64))).unwrap_err().contains("sequence"));
        assert!(Head::parse(&format!("+4:{} 1", "a".repeat(64))).unwrap_err().contains("sequence"));
        assert!(Head::parse(&format!("4:{} 0", "a".repeat(64))).unwrap_err().contains("epoch"));
        assert!(Head::parse(&format!("4:{}", "a".repeat(64))).unwrap_err().contains("EPOCH"));
        assert!(Head::parse(&format!("4:{} 1", "A".repeat(64))).unwrap_err().contains("lower-case"));
    }

    #[test]
    fn written_heads_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evidence-head");
        assert_eq!(read(&path).unwrap(), None);
        write(&path, &head(7, 'c')).unwrap();
        assert_eq!(read(&path).unwrap(), Some(head(7, 'c')));
        std::fs::write(&path, "garbage").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("unreadable"));
    }

    #[test]
    fn start_up_rules() {
        let yes = |_: &Head| true;
        let no = |_: &Head| false;
        assert_eq!(start(None, None, yes), Start::NewChain);
        assert_eq!(start(None, Some(&head(3, 'a')), yes), Start::AdoptUnrecorded);
        assert_eq!(start(Some(&head(3, 'a')), None, yes), Start::NewEpoch);
        assert_eq!(start(Some(&head(3, 'a')), Some(&head(3, 'a')), no), Start::Normal);
        assert_eq!(start(Some(&head(3, 'a')), Some(&head(4, 'b')), yes), Start::AdoptAhead);
        assert_eq!(start(Some(&head(3, 'a')), Some(&head(4, 'b')), no), Start::WentBackwards);
        assert_eq!(start(Some(&head(3, 'a')), Some(&head(2, 'b')), yes), Start::WentBackwards);
        assert_eq!(start(Some(&head(3, 'a')), Some(&head(3, 'b')), yes), Start::WentBackwards);
    }
}
