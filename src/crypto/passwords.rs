//! Argon2id password hashing (AUTH-04) on the blocking pool, bounded by a semaphore so a
//! burst of logins cannot exhaust CPU and memory (LD-03).

use std::sync::OnceLock;

use argon2::{Algorithm, Argon2, Params, Version};
use argon2::{PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// OWASP's second Argon2id setting: m = 19 MiB, t = 2, p = 1.
pub const M_COST: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

fn argon2() -> Result<Argon2<'static>> {
    let params = Params::new(M_COST, T_COST, P_COST, None).map_err(Error::internal)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn permits() -> &'static Semaphore {
    static S: OnceLock<Semaphore> = OnceLock::new();
    S.get_or_init(|| {
        Semaphore::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
    })
}

pub fn hash_blocking(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    super::fill_random(&mut salt)?;
    Ok(argon2()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(Error::internal)?
        .to_string())
}

/// Whether `password` matches `phc`. Any unparsable hash is a mismatch.
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Whether a stored hash uses weaker parameters than today's and should be re-hashed.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return true;
    };
    let get = |k: &str| h.params.get_decimal(k).unwrap_or(0);
    h.algorithm.as_str() != "argon2id"
        || get("m") < M_COST
        || get("t") < T_COST
        || h.salt.is_none_or(|s| s.len() < 16)
}

/// A hash of a random password, verified against when the email is unknown so timing does
/// not reveal which accounts exist (AUTH-06).
pub fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| {
        let pw = super::random_token(16).unwrap_or_else(|_| "fallback-dummy-password".into());
        hash_blocking(&pw).unwrap_or_default()
    })
}

pub async fn hash(password: Zeroizing<String>) -> Result<String> {
    let _permit = permits().acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(Error::internal)?
}

/// Verifies against `phc`, or against the dummy hash when there is none.
pub async fn verify(password: Zeroizing<String>, phc: Option<String>) -> Result<bool> {
    let _permit = permits().acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(move || match phc {
        Some(h) => verify_blocking(&password, &h),
        None => {
            let _ = verify_blocking(&password, dummy_hash());
            false
        }
    })
    .await
    .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_use_owasp_parameters_and_verify() {
        let h = hash_blocking("correct horse battery").unwrap();
        let parsed = PasswordHash::new(&h).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.params.get_decimal("m"), Some(19_456));
        assert_eq!(parsed.params.get_decimal("t"), Some(2));
        assert_eq!(parsed.params.get_decimal("p"), Some(1));
        assert!(parsed.salt.unwrap().len() >= 16, "16-byte salt");
        assert!(verify_blocking("correct horse battery", &h));
        assert!(!verify_blocking("correct horse batterz", &h));
        assert!(!needs_rehash(&h));
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        )
        .hash_password_with_salt(b"x", &[1u8; 16])
        .unwrap()
        .to_string();
        assert!(needs_rehash(&weak));
        assert!(!verify_blocking("x", "not a hash"));
    }
}
