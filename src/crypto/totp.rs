//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step). Replay protection is the caller's:
//! `check` returns the matched step, which the store accepts only if it is above the last one.

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::clock::Timestamp;
use crate::error::{Error, Result};

pub const SECRET_BYTES: usize = 20;
pub const STEP_SECS: u64 = 30;

fn totp(secret: &[u8]) -> Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(Secret::from(secret.to_vec()))
        .build()
        .map_err(|e| Error::internal(format!("totp: {e:?}")))
}

/// A new 160-bit secret from the OS random source (MFA-02).
pub fn new_secret() -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut s = zeroize::Zeroizing::new(vec![0u8; SECRET_BYTES]);
    super::fill_random(&mut s)?;
    Ok(s)
}

pub fn step_of(now: Timestamp) -> u64 {
    u64::try_from(now.seconds()).unwrap_or(0) / STEP_SECS
}

/// The step the code matches within ±1 step of `now` (server time only), if any.
pub fn check(secret: &[u8], code: &str, now: Timestamp) -> Result<Option<u64>> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret)?;
    let matched = t.check(&code, u64::try_from(now.seconds()).unwrap_or(0));
    if let Some(step) = matched {
        let drift = i128::from(step) - i128::from(step_of(now));
        if drift != 0 {
            tracing::info!(
                drift_steps = drift as i64,
                "TOTP code accepted with clock drift"
            );
        }
    }
    Ok(matched)
}

/// The code for `now` (tests, and the offline-code view later).
pub fn code_at(secret: &[u8], now: Timestamp) -> Result<String> {
    Ok(totp(secret)?
        .generate(u64::try_from(now.seconds()).unwrap_or(0))
        .to_string())
}

pub fn base32(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

pub fn from_base32(text: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    Secret::try_from_base32(text)
        .map(|s| zeroize::Zeroizing::new(s.as_bytes().to_vec()))
        .map_err(|_| Error::internal("not a base32 secret"))
}

/// `otpauth://` URL for authenticator apps.
pub fn otpauth_url(secret: &[u8], issuer: &str, account: &str) -> Result<String> {
    let t = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(Secret::from(secret.to_vec()))
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|e| Error::internal(format!("totp: {e:?}")))?;
    t.to_url()
        .map_err(|e| Error::internal(format!("totp url: {e:?}")))
}

/// A PNG QR code (base64) of `text`, for `data:` image URLs.
pub fn qr_png_base64(text: &str) -> Result<String> {
    qrcodegen_image::draw_base64(text).map_err(|e| Error::internal(format!("qr: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238 Appendix B (SHA-1), last six digits of the 8-digit values.
    #[test]
    fn rfc6238_vectors() {
        for (t, code8) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(
                code_at(RFC_SECRET, Timestamp(t * 1000)).unwrap(),
                code8[2..],
                "t={t}"
            );
        }
    }

    /// RFC 4226 Appendix D: HOTP counter c is the TOTP step c at T0 = 0.
    #[test]
    fn rfc4226_vectors() {
        let want = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (c, code) in want.iter().enumerate() {
            assert_eq!(
                code_at(RFC_SECRET, Timestamp(c as i64 * 30_000)).unwrap(),
                *code,
                "counter {c}"
            );
        }
    }

    #[test]
    fn drift_window_is_one_step_each_way() {
        let secret = new_secret().unwrap();
        let now = Timestamp(1_800_000_000_000);
        let step = step_of(now);
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let at = Timestamp(now.0 + offset * 30_000);
            let code = code_at(&secret, at).unwrap();
            let got = check(&secret, &code, now).unwrap();
            assert_eq!(got.is_some(), ok, "offset {offset}");
            if ok {
                assert_eq!(got, Some((step as i64 + offset) as u64));
            }
        }
        assert_eq!(check(&secret, "12345", now).unwrap(), None);
        assert_eq!(check(&secret, "abcdef", now).unwrap(), None);
        assert_eq!(secret.len(), 20);
    }
}
