//! Secrets at rest and random values: the master key file, AEAD sealing bound to its row,
//! hashes and tokens. (Password hashing and TOTP join this module with sign-in.)

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::fsx::OwnerOnly;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

pub mod passwords;
pub mod signing;
pub mod totp;

use crate::error::{Error, Result};

const KEY_LEN: usize = 32;
const BLOB_FORMAT: u8 = 1;

/// The key-encryption key from `master.key`. Only sealed blobs ever leave this type.
pub struct Crypto {
    version: u32,
    key: LessSafeKey,
    /// Derived from the master key for MACs of values that must not be in the database
    /// (CSRF tokens), so a stolen database alone does not yield them.
    mac: ring::hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crypto(key v{})", self.version)
    }
}

/// What a sealed value belongs to. It is authenticated with the ciphertext, so a blob copied
/// into another row, column or tenant no longer opens (CRY-02).
#[derive(Clone, Copy, Debug)]
pub struct SealContext<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row_id: &'a str,
    /// Empty for appliance-wide secrets such as the TLS key.
    pub tenant_id: &'a str,
}

impl SealContext<'_> {
    fn aad(&self, key_version: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [self.table, self.column, self.row_id, self.tenant_id] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&key_version.to_be_bytes());
        out
    }
}

impl Crypto {
    pub fn from_key(bytes: &[u8; KEY_LEN], version: u32) -> Result<Self> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| Error::internal("bad key length"))?;
        let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes);
        let mac_key = ring::hmac::sign(&derive, b"hourglass-mac-key-v1");
        Ok(Self {
            version,
            key: LessSafeKey::new(unbound),
            mac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key.as_ref()),
            rng: SystemRandom::new(),
        })
    }

    /// A throw-away key for tests and the in-memory database.
    pub fn ephemeral() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(k.as_mut())?;
        Self::from_key(&k, 1)
    }

    /// Opens `master.key`, creating it (0600) only when `may_create` (a brand-new database).
    pub fn load_or_create(path: &Path, may_create: bool) -> Result<Self> {
        if !path.exists() {
            if !may_create {
                return Err(Error::startup(format!(
                    "{} is missing but the database already exists: restore the key file that belongs to this database (secrets in it cannot be read without it)",
                    path.display()
                )));
            }
            let mut k = Zeroizing::new([0u8; KEY_LEN]);
            fill_random(k.as_mut())?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .owner_only()
                .open(path)
                .map_err(|e| Error::startup(format!("cannot create {}: {e}", path.display())))?;
            f.write_all(k.as_ref())?;
            f.sync_all()?;
            return Self::from_key(&k, 1);
        }
        check_key_permissions(path)?;
        let bytes = Zeroizing::new(
            fs::read(path)
                .map_err(|e| Error::startup(format!("cannot read {}: {e}", path.display())))?,
        );
        let key: &[u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            Error::startup(format!(
                "{} is not a valid key file: expected {KEY_LEN} bytes, found {}",
                path.display(),
                bytes.len()
            ))
        })?;
        Self::from_key(key, 1)
    }

    /// HMAC-SHA-256 (hex) of `data` under the derived MAC key, separated by `label`.
    pub fn mac_hex(&self, label: &str, data: &[u8]) -> String {
        let mut msg = Vec::with_capacity(label.len() + 1 + data.len());
        msg.extend_from_slice(label.as_bytes());
        msg.push(0);
        msg.extend_from_slice(data);
        hex::encode(ring::hmac::sign(&self.mac, &msg).as_ref())
    }

    pub fn key_version(&self) -> u32 {
        self.version
    }

    /// Encrypts with a fresh random nonce; the blob records the format and key version.
    pub fn seal(&self, ctx: &SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| Error::internal("random source failed"))?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ctx.aad(self.version)),
                &mut buf,
            )
            .map_err(|_| Error::internal("seal failed"))?;
        let mut out = Vec::with_capacity(1 + 4 + NONCE_LEN + buf.len());
        out.push(BLOB_FORMAT);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts a blob sealed for exactly this context; any mismatch is an error, never garbage.
    pub fn open(&self, ctx: &SealContext<'_>, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let fail = || {
            Error::internal(format!(
                "cannot open sealed {}.{} of row {}",
                ctx.table, ctx.column, ctx.row_id
            ))
        };
        if blob.len() < 1 + 4 + NONCE_LEN + AES_256_GCM.tag_len() || blob[0] != BLOB_FORMAT {
            return Err(fail());
        }
        let version = u32::from_be_bytes([blob[1], blob[2], blob[3], blob[4]]);
        if version != self.version {
            return Err(fail());
        }
        let nonce: [u8; NONCE_LEN] = blob[5..5 + NONCE_LEN].try_into().map_err(|_| fail())?;
        let mut buf = Zeroizing::new(blob[5 + NONCE_LEN..].to_vec());
        let plain_len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(ctx.aad(version)),
                buf.as_mut_slice(),
            )
            .map_err(|_| fail())?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

/// CRY-01: the key may be readable by the service group (0640) but never writable by
/// group/others nor readable by others; a world-writable directory around it is refused too.
pub fn check_key_permissions(path: &Path) -> Result<()> {
    let meta = fs::metadata(path)
        .map_err(|e| Error::startup(format!("cannot read {}: {e}", path.display())))?;
    let mode = crate::fsx::mode(&meta) & 0o777;
    if mode & 0o026 != 0 {
        return Err(Error::startup(format!(
            "{} has mode {mode:04o}: it must not be readable by others or writable by group/others; fix it with `chmod 600 {}`",
            path.display(),
            path.display()
        )));
    }
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(m) = fs::metadata(dir) {
            let dmode = crate::fsx::mode(&m);
            if dmode & 0o002 != 0 && dmode & 0o1000 == 0 {
                return Err(Error::startup(format!(
                    "{} is world-writable ({dmode:04o}), so anyone could replace the key file; fix it with `chmod 700 {}`",
                    dir.display(),
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}

pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::internal("random source failed"))
}

/// `N` random bytes, wiped when dropped (for pure rules that turn them into secrets, such as
/// `model::logins::password_from`).
pub fn random_secret<const N: usize>() -> Result<zeroize::Zeroizing<[u8; N]>> {
    let mut b = zeroize::Zeroizing::new([0u8; N]);
    fill_random(&mut b[..])?;
    Ok(b)
}

/// A URL-safe random token of `bytes` bytes of entropy (≥ 16 for anything unguessable).
pub fn random_token(bytes: usize) -> Result<String> {
    use base64::Engine;
    let mut b = Zeroizing::new(vec![0u8; bytes]);
    fill_random(&mut b)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*b))
}

/// HMAC-SHA-256 in hex (webhook signatures).
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex::encode(ring::hmac::sign(&k, data).as_ref())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// SHA-256 (hex) of a file, read in chunks (the agent hashes its own binary).
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(hex::encode(ctx.finish().as_ref())),
            n => ctx.update(&buf[..n]),
        }
    }
}

/// Constant-time equality for secrets and their hashes (CRY-07).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ctx<'a>(row: &'a str, tenant: &'a str) -> SealContext<'a> {
        SealContext {
            table: "t",
            column: "c",
            row_id: row,
            tenant_id: tenant,
        }
    }

    #[test]
    fn seal_round_trips_and_uses_fresh_nonces() {
        let c = Crypto::ephemeral().unwrap();
        let a = c.seal(&ctx("1", "a"), b"secret").unwrap();
        let b = c.seal(&ctx("1", "a"), b"secret").unwrap();
        assert_ne!(a, b);
        assert_eq!(&*c.open(&ctx("1", "a"), &a).unwrap(), b"secret");
    }

    #[test]
    fn a_blob_moved_to_another_row_or_tenant_does_not_open() {
        let c = Crypto::ephemeral().unwrap();
        let a = c.seal(&ctx("1", "a"), b"secret").unwrap();
        assert!(c.open(&ctx("2", "a"), &a).is_err());
        assert!(c.open(&ctx("1", "b"), &a).is_err());
        let other = SealContext {
            table: "t",
            column: "d",
            row_id: "1",
            tenant_id: "a",
        };
        assert!(c.open(&other, &a).is_err());
        let mut flipped = a.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(c.open(&ctx("1", "a"), &flipped).is_err());
        assert!(c.open(&ctx("1", "a"), b"short").is_err());
    }

    #[test]
    fn another_key_cannot_open() {
        let a = Crypto::ephemeral().unwrap();
        let b = Crypto::ephemeral().unwrap();
        let blob = a.seal(&ctx("1", ""), b"x").unwrap();
        assert!(b.open(&ctx("1", ""), &blob).is_err());
    }

    #[test]
    fn key_file_is_created_0600_and_loose_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let p = dir.path().join("master.key");
        assert!(
            Crypto::load_or_create(&p, false).is_err(),
            "never created for an existing database"
        );
        let c = Crypto::load_or_create(&p, true).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read(&p).unwrap().len(), 32);
        let blob = c.seal(&ctx("1", ""), b"x").unwrap();
        let again = Crypto::load_or_create(&p, false).unwrap();
        assert_eq!(&*again.open(&ctx("1", ""), &blob).unwrap(), b"x");
        for (mode, ok) in [
            (0o644, false),
            (0o660, false),
            (0o620, false),
            (0o604, false),
            (0o640, true),
            (0o400, true),
        ] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let r = Crypto::load_or_create(&p, false);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}");
            if let Err(e) = r {
                assert!(e.to_string().contains("chmod 600"), "{e}");
            }
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            Crypto::load_or_create(&p, false).is_err(),
            "world-writable directory"
        );
    }

    #[test]
    fn tokens_are_random_and_long_enough() {
        let a = random_token(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token(32).unwrap());
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
