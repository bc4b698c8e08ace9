//! Passwords: argon2id hashes in the PHC string format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), so a
//! hash names its own parameters and a later change of [`PARAMS`] still verifies the old ones.
//!
//! Parameters: argon2id, m = 32 MiB, t = 3 passes, p = 1 lane — above OWASP's minimum (19 MiB, t = 2;
//! Password Storage Cheat Sheet), chosen for a cost of 50–100 ms a hash: on this project's 2-core build
//! machine one hash costs 56–63 ms (`the_cost_is_stated`, argon2 optimised as in every build profile,
//! the machine busy with a CI run; 22–43 ms with m = 19 MiB, t = 2). A Raspberry Pi-class box takes
//! roughly 3× that: still well under a second per sign-in, and 32 MiB at a time is nothing for the box.
//! Sign-ins are few, and the lock-out bounds an online guesser long before the cost matters; the cost
//! is for a stolen `console.sqlite`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory (KiB), passes, lanes: see the module doc.
pub const PARAMS: (u32, u32, u32) = (32 * 1024, 3, 1);

/// The shortest password accepted (NIST SP 800-63B asks at least 8; a console that changes what a
/// ward's cameras watch asks a little more).
pub const MIN_LENGTH: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password must be at most 1024 characters")]
    TooLong,
    #[error("the password hash could not be made: {0}")]
    Hash(String),
}

fn argon2() -> Argon2<'static> {
    let (m, t, p) = PARAMS;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(m, t, p, None).expect("valid argon2 parameters"))
}

/// Checks a new password's length (in characters).
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    match password.chars().count() {
        n if n < MIN_LENGTH => Err(PasswordError::TooShort),
        n if n > 1024 => Err(PasswordError::TooLong),
        _ => Ok(()),
    }
}

/// The PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::encode_b64(&rand_bytes::<16>()).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (the comparison inside is constant-time). A hash
/// that does not parse matches nothing.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    // The hash's own parameters are used (Argon2::default() is only the algorithm's driver).
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// A hash of nothing anyone knows, verified against when the name is unknown, so that an unknown name
/// costs the same time as a wrong password (no user enumeration by timing).
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let random: [u8; 16] = rand_bytes();
        hash(&crate::hashing::hex(&random)).expect("hashing a random password")
    })
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("the system's random source");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_names_argon2id() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=32768,t=3,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse batterY", &phc));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(hash("correct horse battery").unwrap(), phc, "a fresh salt each time");
        assert!(!verify("", decoy()));
        assert!(matches!(check_new("short"), Err(PasswordError::TooShort)));
        assert!(check_new("ten chars!").is_ok());
    }

    /// Prints what one hash costs here (the module doc's figure); not an assertion on time.
    #[test]
    fn the_cost_is_stated() {
        let started = std::time::Instant::now();
        for _ in 0..5 {
            hash("correct horse battery").unwrap();
        }
        eprintln!("argon2id {PARAMS:?}: {:?} per hash", started.elapsed() / 5);
    }
}
