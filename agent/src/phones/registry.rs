//! The phone registry: `<data_dir>/phones.sqlite` (SQLite, WAL). `vigil phones add|list|revoke` and the
//! running agent (enrolment, every signed request, the `phone_add` / `phone_revoke` commands) open the
//! same file, so nothing is cached: every call reads the current state, and a phone revoked from the
//! command line is refused by the running agent at its next request.
//!
//! A phone is created by an invitation: a random one-time token (only its SHA-256 is stored) that expires.
//! Enrolment binds the phone's public key (an ECDSA P-256 SPKI made by the phone's browser) and uses the
//! token up, in one transaction. Revoking keeps the phone listed, with when and why.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::protocol::Phone;
use super::report::Mode;
use crate::hashing::sha256_hex;

/// The file's schema; `user_version` 1.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS phones (
        id TEXT PRIMARY KEY,
        ward TEXT NOT NULL,
        name TEXT NOT NULL,
        mode TEXT NOT NULL,
        physician TEXT,
        public_key BLOB,
        created_ms INTEGER NOT NULL,
        enrolled_ms INTEGER,
        revoked_ms INTEGER,
        revoked_reason TEXT);
    CREATE TABLE IF NOT EXISTS invitations (
        token_sha256 TEXT PRIMARY KEY,
        phone_id TEXT NOT NULL REFERENCES phones(id),
        expires_ms INTEGER NOT NULL,
        used_ms INTEGER);";

const SCHEMA_VERSION: i64 = 1;

/// The DER header of an ECDSA P-256 public key (SubjectPublicKeyInfo, id-ecPublicKey with the
/// prime256v1 curve, then a BIT STRING of 66 bytes: no unused bits and the 65-byte point). WebCrypto's
/// `exportKey("spki")` of a P-256 key is exactly this header followed by the uncompressed point.
pub const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("phone registry {path}: {source}")]
    Db { path: String, source: rusqlite::Error },
    #[error(
        "phone registry {path}: schema version {found} is newer than this vigil knows ({SCHEMA_VERSION}); it was \
         written by a newer vigil"
    )]
    TooNew { path: String, found: i64 },
    #[error("no phone {0:?} in the registry")]
    UnknownPhone(String),
    #[error("{0}")]
    Invalid(String),
}

/// Why an enrolment was refused (each has its HTTP status and code, see `http`).
#[derive(Debug, thiserror::Error)]
pub enum EnrolError {
    #[error("this enrolment link is not known to this box (mistyped, or made for another box)")]
    UnknownToken,
    #[error("this enrolment link was already used; make a new one with `vigil phones add`")]
    TokenUsed,
    #[error("this enrolment link expired at {}; make a new one with `vigil phones add`", humantime::format_rfc3339_seconds(*.0))]
    TokenExpired(SystemTime),
    #[error("public_key: {0}")]
    BadKey(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A new phone and its one-time enrolment token (shown once, never stored).
#[derive(Debug, Clone)]
pub struct Invitation {
    pub phone: Phone,
    /// 32 random bytes, base64url without padding: goes into the link's fragment.
    pub token: String,
    pub expires_at: SystemTime,
}

impl Invitation {
    /// The link the phone opens: `<public_url>/ward/#enrol=<token>` (a fragment never reaches a server's
    /// access log or a Referer header).
    pub fn link(&self, public_url: &str) -> String {
        format!("{}/ward/#enrol={}", public_url.trim_end_matches('/'), self.token)
    }
}

/// A phone as `vigil phones list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub phone: Phone,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
    /// SHA-256 (hex) of the enrolled public key (SPKI DER): what evidence names as `key_sha256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    /// Not enrolled yet: when its link stops working.
    #[serde(skip_serializing_if = "Option::is_none", with = "crate::phones::protocol::rfc3339_opt")]
    pub link_expires_at: Option<SystemTime>,
}

/// What [`Registry::revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Revoked {
    pub revoked_at: SystemTime,
    /// It was revoked before (this call changed nothing; `revoked_at` is the first time).
    pub already: bool,
}

/// What a new phone is for.
#[derive(Debug, Clone)]
pub struct NewPhone {
    pub ward: String,
    pub name: String,
    pub mode: Mode,
    pub physician: Option<String>,
}

pub struct Registry {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Registry {
    /// The registry file of a data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("phones.sqlite")
    }

    /// Opens (creating when absent) the registry at `path`.
    pub fn open(path: &Path) -> Result<Registry, RegistryError> {
        let name = path.display().to_string();
        let db = |source| RegistryError::Db { path: name.clone(), source };
        let mut conn = Connection::open(path).map_err(db)?;
        // The CLI and the agent may write at the same moment: wait for the other's short transaction.
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
        if found > SCHEMA_VERSION {
            return Err(RegistryError::TooNew { path: name, found });
        }
        let tx = conn.transaction().map_err(db)?;
        tx.execute_batch(SCHEMA).map_err(db)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Registry { conn: Mutex::new(conn), path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> RegistryError + '_ {
        |source| RegistryError::Db { path: self.path.display().to_string(), source }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new phone and its enrolment token, valid for `ttl` from `now`. The caller has checked that the
    /// ward (and the physician) exist.
    pub fn add(&self, new: NewPhone, ttl: Duration, now: SystemTime) -> Result<Invitation, RegistryError> {
        if new.name.trim().is_empty() || new.name.chars().count() > 100 {
            return Err(RegistryError::Invalid(format!("name must be 1..100 characters, got {:?}", new.name)));
        }
        if (new.mode == Mode::Physician) != new.physician.is_some() {
            return Err(RegistryError::Invalid("a physician phone names its physician, a bedside phone none".into()));
        }
        let rng = ring::rand::SystemRandom::new();
        let token_bytes: [u8; 32] = random(&rng);
        let token = URL_SAFE_NO_PAD.encode(token_bytes);
        let phone = Phone {
            id: new_phone_id(&rng),
            ward: new.ward,
            name: new.name,
            mode: new.mode,
            physician: new.physician,
            public_key: None,
            created_at: truncate_ms(now),
            enrolled_at: None,
            revoked_at: None,
        };
        let expires_at = truncate_ms(now + ttl);
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        tx.execute(
            "INSERT INTO phones (id, ward, name, mode, physician, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![phone.id, phone.ward, phone.name, mode_str(phone.mode), phone.physician, ms(now)],
        )
        .map_err(self.db())?;
        tx.execute(
            "INSERT INTO invitations (token_sha256, phone_id, expires_ms) VALUES (?1, ?2, ?3)",
            params![sha256_hex(token.as_bytes()), phone.id, ms(expires_at)],
        )
        .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(Invitation { phone, token, expires_at })
    }

    /// Binds `public_key` (SPKI DER) to the token's phone and uses the token up, in one transaction.
    pub fn enrol(&self, token: &str, public_key: &[u8], now: SystemTime) -> Result<Phone, EnrolError> {
        let point = p256_point(public_key).map_err(EnrolError::BadKey)?;
        if !on_curve(point) {
            return Err(EnrolError::BadKey("the point is not on the P-256 curve".into()));
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        let found: Option<(String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT phone_id, expires_ms, used_ms FROM invitations WHERE token_sha256 = ?1",
                [sha256_hex(token.as_bytes())],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.db())?;
        let Some((phone_id, expires_ms, used_ms)) = found else { return Err(EnrolError::UnknownToken) };
        if used_ms.is_some() {
            return Err(EnrolError::TokenUsed);
        }
        if ms(now) >= expires_ms {
            return Err(EnrolError::TokenExpired(time(expires_ms)));
        }
        tx.execute(
            "UPDATE invitations SET used_ms = ?1 WHERE token_sha256 = ?2",
            params![ms(now), sha256_hex(token.as_bytes())],
        )
        .map_err(self.db())?;
        tx.execute(
            "UPDATE phones SET public_key = ?1, enrolled_ms = ?2 WHERE id = ?3",
            params![public_key, ms(now), phone_id],
        )
        .map_err(self.db())?;
        let phone = get(&tx, &phone_id).map_err(self.db())?.ok_or(RegistryError::UnknownPhone(phone_id))?;
        tx.commit().map_err(self.db())?;
        Ok(phone.phone)
    }

    /// The phone as it is now (revoked ones too).
    pub fn get(&self, id: &str) -> Result<Option<Phone>, RegistryError> {
        Ok(get(&self.lock(), id).map_err(self.db())?.map(|l| l.phone))
    }

    /// Every phone, revoked ones too, oldest first.
    pub fn list(&self) -> Result<Vec<Listed>, RegistryError> {
        let conn = self.lock();
        let mut statement = conn.prepare(&format!("{SELECT} ORDER BY p.created_ms, p.id")).map_err(self.db())?;
        let rows = statement.query_map([], row).map_err(self.db())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.db())
    }

    /// Revokes a phone for `reason`: its requests are refused from now on, and an unused enrolment link
    /// stops working. Revoking a revoked phone changes nothing.
    pub fn revoke(&self, id: &str, reason: &str, now: SystemTime) -> Result<Revoked, RegistryError> {
        if reason.trim().is_empty() || reason.chars().count() > 500 {
            return Err(RegistryError::Invalid("the reason must be 1..500 characters".into()));
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.db())?;
        let phone = get(&tx, id).map_err(self.db())?.ok_or_else(|| RegistryError::UnknownPhone(id.to_owned()))?;
        if let Some(at) = phone.phone.revoked_at {
            return Ok(Revoked { revoked_at: at, already: true });
        }
        tx.execute(
            "UPDATE phones SET revoked_ms = ?1, revoked_reason = ?2 WHERE id = ?3",
            params![ms(now), reason, id],
        )
        .map_err(self.db())?;
        tx.execute("UPDATE invitations SET used_ms = ?1 WHERE phone_id = ?2 AND used_ms IS NULL", params![ms(now), id])
            .map_err(self.db())?;
        tx.commit().map_err(self.db())?;
        Ok(Revoked { revoked_at: truncate_ms(now), already: false })
    }
}

const SELECT: &str = "SELECT p.id, p.ward, p.name, p.mode, p.physician, p.public_key, p.created_ms, p.enrolled_ms,
    p.revoked_ms, p.revoked_reason,
    (SELECT MAX(i.expires_ms) FROM invitations i WHERE i.phone_id = p.id AND i.used_ms IS NULL)
    FROM phones p";

fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Listed>> {
    conn.query_row(&format!("{SELECT} WHERE p.id = ?1"), [id], row).optional()
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Listed> {
    let mode: String = r.get(3)?;
    let public_key: Option<Vec<u8>> = r.get(5)?;
    let enrolled = r.get::<_, Option<i64>>(7)?.map(time);
    let phone = Phone {
        id: r.get(0)?,
        ward: r.get(1)?,
        name: r.get(2)?,
        mode: if mode == "physician" { Mode::Physician } else { Mode::Bedside },
        physician: r.get(4)?,
        public_key: public_key.clone(),
        created_at: time(r.get(6)?),
        enrolled_at: enrolled,
        revoked_at: r.get::<_, Option<i64>>(8)?.map(time),
    };
    Ok(Listed {
        key_sha256: public_key.as_deref().map(sha256_hex),
        revoked_reason: r.get(9)?,
        link_expires_at: if enrolled.is_none() { r.get::<_, Option<i64>>(10)?.map(time) } else { None },
        phone,
    })
}

/// The 65-byte uncompressed point of a P-256 SPKI, or what is wrong with it.
pub fn p256_point(spki: &[u8]) -> Result<&[u8], String> {
    let point = spki
        .strip_prefix(&P256_SPKI_HEADER[..])
        .ok_or("not an ECDSA P-256 public key (SubjectPublicKeyInfo with id-ecPublicKey and prime256v1)")?;
    if point.len() != 65 || point[0] != 0x04 {
        return Err(format!(
            "the P-256 point must be 65 bytes, uncompressed (0x04 first); got {} bytes{}",
            point.len(),
            point.first().map(|b| format!(" starting 0x{b:02x}")).unwrap_or_default()
        ));
    }
    Ok(point)
}

/// Whether a 65-byte uncompressed point is a valid P-256 public key. ring checks it when the point is
/// used for a key agreement (an ephemeral one here; nothing is kept), and offers no other way to ask.
fn on_curve(point: &[u8]) -> bool {
    use ring::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
    let Ok(ours) = EphemeralPrivateKey::generate(&ECDH_P256, &ring::rand::SystemRandom::new()) else { return false };
    agree_ephemeral(ours, &UnparsedPublicKey::new(&ECDH_P256, point), |_| ()).is_ok()
}

fn random<const N: usize>(rng: &ring::rand::SystemRandom) -> [u8; N] {
    ring::rand::generate::<[u8; N]>(rng).expect("the system random generator failed").expose()
}

/// `ph-` and 10 characters of a 31-letter alphabet without look-alikes (about 49 bits): short enough to
/// read out over the phone.
fn new_phone_id(rng: &ring::rand::SystemRandom) -> String {
    const ALPHABET: &[u8; 31] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes: [u8; 10] = random(rng);
    let tail: String = bytes.iter().map(|b| ALPHABET[usize::from(b % 31)] as char).collect();
    format!("ph-{tail}")
}

fn mode_str(mode: Mode) -> &'static str {
    match mode {
        Mode::Bedside => "bedside",
        Mode::Physician => "physician",
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn truncate_ms(t: SystemTime) -> SystemTime {
    time(ms(t))
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    pub(crate) fn phone_key() -> (EcdsaKeyPair, Vec<u8>) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let spki = [&P256_SPKI_HEADER[..], pair.public_key().as_ref()].concat();
        (pair, spki)
    }

    fn bedside() -> NewPhone {
        NewPhone { ward: "ward-3".into(), name: "Li Na".into(), mode: Mode::Bedside, physician: None }
    }

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&Registry::path_in(dir.path())).unwrap();
        (dir, registry)
    }

    #[test]
    fn a_token_enrols_once_and_only_its_hash_is_stored() {
        let (dir, registry) = registry();
        let now = SystemTime::now();
        let invitation = registry.add(bedside(), Duration::from_secs(600), now).unwrap();
        assert!(invitation.phone.id.starts_with("ph-") && invitation.phone.id.len() == 13, "{}", invitation.phone.id);
        assert_eq!(URL_SAFE_NO_PAD.decode(&invitation.token).unwrap().len(), 32);
        assert_eq!(invitation.link("https://box:8443/"), format!("https://box:8443/ward/#enrol={}", invitation.token));
        let file = std::fs::read(Registry::path_in(dir.path())).unwrap();
        let wal = std::fs::read(dir.path().join("phones.sqlite-wal")).unwrap_or_default();
        let needle = invitation.token.as_bytes();
        assert!(![file, wal].iter().any(|b| b.windows(needle.len()).any(|w| w == needle)), "the token is stored");

        let (_, spki) = phone_key();
        let listed = registry.list().unwrap();
        assert_eq!(listed[0].link_expires_at, Some(invitation.expires_at));
        let phone = registry.enrol(&invitation.token, &spki, now + Duration::from_secs(1)).unwrap();
        assert_eq!(phone.public_key.as_deref(), Some(&spki[..]));
        assert!(phone.enrolled_at.is_some());
        assert!(matches!(registry.enrol(&invitation.token, &spki, now), Err(EnrolError::TokenUsed)));
        assert!(matches!(registry.enrol("nope", &spki, now), Err(EnrolError::UnknownToken)));
        let listed = registry.list().unwrap();
        assert_eq!(listed[0].key_sha256.as_deref(), Some(sha256_hex(&spki).as_str()));
        assert_eq!(listed[0].link_expires_at, None);
    }

    #[test]
    fn an_expired_token_is_refused_and_names_when() {
        let (_dir, registry) = registry();
        let now = SystemTime::now();
        let invitation = registry.add(bedside(), Duration::from_secs(60), now).unwrap();
        let (_, spki) = phone_key();
        let err = registry.enrol(&invitation.token, &spki, now + Duration::from_secs(61)).unwrap_err();
        assert!(matches!(err, EnrolError::TokenExpired(_)), "{err}");
        assert!(err.to_string().contains("expired at"), "{err}");
        assert_eq!(registry.get(&invitation.phone.id).unwrap().unwrap().public_key, None);
    }

    #[test]
    fn only_an_uncompressed_p256_spki_is_accepted() {
        let (_dir, registry) = registry();
        let invitation = registry.add(bedside(), Duration::from_secs(60), SystemTime::now()).unwrap();
        let (_, spki) = phone_key();
        let mut compressed = spki[..P256_SPKI_HEADER.len() + 33].to_vec();
        compressed[P256_SPKI_HEADER.len()] = 0x02;
        let mut other_curve = spki.clone();
        other_curve[P256_SPKI_HEADER.len() - 3] = 0x22; // secp384r1's last OID byte
        let mut off_curve = spki.clone();
        *off_curve.last_mut().unwrap() ^= 0x01;
        for (bad, what) in [
            (&compressed, "65 bytes"),
            (&other_curve, "P-256"),
            (&spki[..20].to_vec(), "P-256"),
            (&off_curve, "not on the P-256 curve"),
        ] {
            let err = registry.enrol(&invitation.token, bad, SystemTime::now()).unwrap_err();
            assert!(matches!(&err, EnrolError::BadKey(m) if m.contains(what)), "{err}");
        }
        // A refused key does not use the token up.
        registry.enrol(&invitation.token, &spki, SystemTime::now()).unwrap();
    }

    #[test]
    fn revoked_stays_listed_with_its_reason_and_its_link_dies() {
        let (dir, registry) = registry();
        let now = SystemTime::now();
        let enrolled = registry.add(bedside(), Duration::from_secs(600), now).unwrap();
        let (_, spki) = phone_key();
        registry.enrol(&enrolled.token, &spki, now).unwrap();
        let pending = registry.add(bedside(), Duration::from_secs(600), now).unwrap();
        let first = registry.revoke(&enrolled.phone.id, "lost on the ward", now).unwrap();
        assert!(!first.already);
        let again = registry.revoke(&enrolled.phone.id, "again", now + Duration::from_secs(5)).unwrap();
        assert_eq!(again, Revoked { revoked_at: first.revoked_at, already: true });
        registry.revoke(&pending.phone.id, "never handed out", now).unwrap();
        assert!(matches!(registry.enrol(&pending.token, &spki, now), Err(EnrolError::TokenUsed)));
        assert!(matches!(registry.revoke("ph-unknown", "x", now), Err(RegistryError::UnknownPhone(_))));

        // Another process (the CLI) sees it at once.
        let other = Registry::open(&Registry::path_in(dir.path())).unwrap();
        let listed = other.list().unwrap();
        assert_eq!(listed.len(), 2);
        let lost = listed.iter().find(|l| l.phone.id == enrolled.phone.id).unwrap();
        assert_eq!(lost.revoked_reason.as_deref(), Some("lost on the ward"));
        assert_eq!(lost.phone.revoked_at, Some(first.revoked_at));
        let json = serde_json::to_value(lost).unwrap();
        assert_eq!(json["revoked_reason"], "lost on the ward");
        assert!(json["revoked_at"].is_string() && json["key_sha256"].is_string(), "{json}");
    }

    #[test]
    fn a_physician_phone_names_its_physician() {
        let (_dir, registry) = registry();
        let mut new = bedside();
        new.mode = Mode::Physician;
        assert!(registry.add(new.clone(), Duration::from_secs(60), SystemTime::now()).is_err());
        new.physician = Some("dr-wang".into());
        let invitation = registry.add(new, Duration::from_secs(60), SystemTime::now()).unwrap();
        let phone = registry.get(&invitation.phone.id).unwrap().unwrap();
        assert_eq!((phone.mode, phone.physician.as_deref()), (Mode::Physician, Some("dr-wang")));
    }
}
