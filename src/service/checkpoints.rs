//! AUD-04: a hash chain cannot see its own tail cut off or the whole log rewritten, so the
//! appliance signs a checkpoint (size + head hash, Ed25519, C2SP signed note) every five
//! minutes or 1,000 entries and sends it out of the database: into the data directory's
//! checkpoint file and the service log (journald → syslog/SIEM). `verify_against` proves the
//! stored log still extends a checkpoint kept elsewhere.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::Ctx;
use crate::clock::Timestamp;
use crate::crypto::signing::{self, SigningKey};
use crate::crypto::{Crypto, SealContext};
use crate::error::{Error, Result};
use crate::model::checkpoint::{self as note, Checkpoint};
use crate::store::{self, Db, WriteTx};

const KEY: &str = "audit_signing_key";
const VERIFIER_KEY: &str = "audit_verifier_key";
const LAST: &str = "audit_checkpoint";
const LAST_AT: &str = "audit_checkpoint_at";
const EVERY_MS: i64 = 5 * 60_000;
const EVERY_ENTRIES: u64 = 1000;
/// The newest checkpoint, in the data directory (copy it off the machine to keep it safe).
pub const FILE: &str = "audit-checkpoint.txt";

fn seal_ctx() -> SealContext<'static> {
    SealContext {
        table: "settings",
        column: "value",
        row_id: KEY,
        tenant_id: "",
    }
}

/// Signs a checkpoint when the log has grown and one is due; returns how many were written.
/// A log that no longer extends the last checkpoint (from the database or the file) is not
/// signed: that would bless a truncated or rewritten log. It is reported every 5 minutes.
pub async fn sweep(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let crypto = ctx.crypto.clone();
    let host = super::system::hostname(&ctx.cfg);
    let path = ctx.cfg.storage.data_dir.join(FILE);
    let outside = std::fs::read_to_string(&path).ok();
    let outcome = ctx
        .db
        .write(move |tx| sign_if_due(tx, &crypto, &host, outside.as_deref(), now))
        .await?;
    match outcome {
        Signing::Nothing => Ok(0),
        Signing::Refused(why) => {
            metrics::counter!("hourglass_audit_checkpoint_refused_total").increment(1);
            tracing::error!(target: "hourglass::audit_checkpoint", "{why}");
            Ok(0)
        }
        Signing::Signed(text) => {
            // The signed note on one line for the log: syslog records must not span lines.
            tracing::info!(target: "hourglass::audit_checkpoint", checkpoint = %text.escape_debug(), "signed audit checkpoint");
            if let Err(e) = write_file(&path, &text) {
                tracing::warn!(error = %e, "cannot write the audit checkpoint file");
            }
            super::syslog::send_checkpoint(ctx, now, &text).await;
            Ok(1)
        }
    }
}

enum Signing {
    Nothing,
    Signed(String),
    Refused(String),
}

/// A checkpoint note that verifies with `key` (None for anything else).
fn ours(key: &Signer, text: Option<&str>) -> Option<Checkpoint> {
    let signed = note::parse(text?).ok()?;
    let valid = signed.signatures.iter().any(|(n, i, sig)| {
        *n == key.name && *i == key.id && signing::verify(&key.public, signed.text.as_bytes(), sig)
    });
    valid.then_some(signed.checkpoint)
}

/// The newest checkpoint this appliance signed, from the database or the file outside it.
fn previous(
    r: &store::Reader<'_>,
    key: &Signer,
    outside: Option<&str>,
) -> Result<Option<Checkpoint>> {
    let stored = ours(key, store::settings::get(r, LAST)?.as_deref());
    Ok([stored, ours(key, outside)]
        .into_iter()
        .flatten()
        .max_by_key(|c| c.size))
}

/// Why a log (the live one, or a backup's copy) does not extend checkpoint `p`, if it does not.
fn not_extending(r: &store::Reader<'_>, p: &Checkpoint) -> Result<Option<String>> {
    let size = store::audit::head(r)?.map_or(0, |(s, _)| u64::try_from(s).unwrap_or(0));
    let at = i64::try_from(p.size)
        .ok()
        .map(|s| store::audit::hash_at(r, s))
        .transpose()?
        .flatten();
    Ok((size < p.size || at.as_deref() != Some(&p.root[..])).then(|| {
        format!(
            "the audit log ({size} entries) does not extend the last signed checkpoint ({} entries): it was truncated or rewritten; no checkpoint is signed until this is investigated",
            p.size
        )
    }))
}

fn sign_if_due(
    tx: &WriteTx<'_>,
    crypto: &Crypto,
    host: &str,
    outside: Option<&str>,
    now: Timestamp,
) -> Result<Signing> {
    let r = tx.reader();
    let Some((size, root)) = store::audit::head(&r)? else {
        return Ok(Signing::Nothing);
    };
    let size = u64::try_from(size).unwrap_or(0);
    let key = signing_key(tx, crypto, host, now)?;
    let prev = previous(&r, &key, outside)?;
    let last_size = prev.as_ref().map_or(0, |c| c.size);
    let last_at = store::settings::get(&r, LAST_AT)?
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::MIN / 2);
    let elapsed = now.millis().saturating_sub(last_at);
    // A clock set back counts as due, or no checkpoint would come until it caught up.
    let due = !(0..EVERY_MS).contains(&elapsed) || size.saturating_sub(last_size) >= EVERY_ENTRIES;
    if !due {
        return Ok(Signing::Nothing);
    }
    if let Some(why) = prev
        .as_ref()
        .map(|p| not_extending(&r, p))
        .transpose()?
        .flatten()
    {
        store::settings::put(tx, LAST_AT, &now.millis().to_string(), now)?;
        return Ok(Signing::Refused(why));
    }
    if size <= last_size {
        return Ok(Signing::Nothing);
    }
    let root: [u8; 32] = root
        .try_into()
        .map_err(|_| Error::internal("the chain head hash is not 32 bytes"))?;
    let text = key.sign(Checkpoint {
        origin: key.name.clone(),
        size,
        root,
    });
    store::settings::put(tx, LAST, &text, now)?;
    store::settings::put(tx, LAST_AT, &now.millis().to_string(), now)?;
    Ok(Signing::Signed(text))
}

/// A signed checkpoint of a backup's copy of the log at its head, for its manifest; refused
/// when the copy does not extend the appliance's last checkpoint. Nothing is recorded as the
/// appliance's own last checkpoint.
pub fn sign_head(ctx: &Ctx, copy: &Db) -> Result<String> {
    let host = super::system::hostname(&ctx.cfg);
    let outside = std::fs::read_to_string(ctx.cfg.storage.data_dir.join(FILE)).ok();
    let (crypto, now) = (ctx.crypto.clone(), ctx.clock.now());
    let key = ctx.db.write_blocking(move |tx| {
        let key = signing_key(tx, &crypto, &host, now)?;
        Ok((previous(&tx.reader(), &key, outside.as_deref())?, key))
    });
    let (prev, key) = key?;
    copy.read_blocking(|r| {
        if let Some(why) = prev
            .as_ref()
            .map(|p| not_extending(r, p))
            .transpose()?
            .flatten()
        {
            return Err(Error::startup(why));
        }
        let (size, root) = store::audit::head(r)?
            .ok_or_else(|| Error::startup("the backup's audit log is empty"))?;
        let root: [u8; 32] = root
            .try_into()
            .map_err(|_| Error::internal("the chain head hash is not 32 bytes"))?;
        let size = u64::try_from(size).unwrap_or(0);
        Ok(key.sign(Checkpoint {
            origin: key.name.clone(),
            size,
            root,
        }))
    })
}

/// The appliance's checkpoint key: its name (the checkpoint origin), key id and public half,
/// all derived from the sealed private key (the stored verifier key is only a copy for
/// readers, and a replaced one changes nothing here).
struct Signer {
    key: SigningKey,
    name: String,
    id: [u8; 4],
    public: Vec<u8>,
}

impl Signer {
    fn new(key: SigningKey, name: String) -> Self {
        let public = key.public();
        let id = note::key_id(&name, &public, crate::crypto::sha256);
        Signer {
            key,
            name,
            id,
            public,
        }
    }
    fn sign(&self, cp: Checkpoint) -> String {
        cp.signed(self.id, &self.key.sign(cp.body().as_bytes()))
    }
}

/// The sealed form: 0x02, the name's length (2 bytes) and the name, then the PKCS#8 key; the
/// name (the checkpoint origin) is sealed with the key so neither can be swapped alone.
const SEALED_FORMAT: u8 = 2;

/// The appliance's checkpoint key, created on first use. Everything about it comes from the
/// sealed row; the readable verifier key is a copy for `audit verify` and is put right when it
/// no longer matches.
fn signing_key(tx: &WriteTx<'_>, crypto: &Crypto, host: &str, now: Timestamp) -> Result<Signer> {
    let r = tx.reader();
    if let Some(sealed) = store::settings::get(&r, KEY)? {
        let blob = B64
            .decode(sealed)
            .map_err(|_| Error::internal("the stored audit signing key is not base64"))?;
        let plain = crypto.open(&seal_ctx(), &blob)?;
        let bad = || Error::internal("the stored audit signing key is malformed");
        let (&format, rest) = plain.split_first().ok_or_else(bad)?;
        if format != SEALED_FORMAT || rest.len() < 2 {
            return Err(bad());
        }
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let name = rest.get(2..2 + n).ok_or_else(bad)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| bad())?;
        let signer = Signer::new(SigningKey::from_pkcs8(&rest[2 + n..])?, name);
        let vkey = note::verifier_key(&signer.name, signer.id, &signer.public);
        if store::settings::get(&r, VERIFIER_KEY)?.as_deref() != Some(vkey.as_str()) {
            tracing::error!(
                "the stored audit verifier key did not match the sealed signing key; restored it"
            );
            store::settings::put(tx, VERIFIER_KEY, &vkey, now)?;
        }
        return Ok(signer);
    }
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    let name = format!("{safe}/hourglass-audit");
    let pkcs8 = signing::generate_pkcs8()?;
    let mut plain = zeroize::Zeroizing::new(vec![SEALED_FORMAT]);
    plain.extend_from_slice(&(name.len() as u16).to_be_bytes());
    plain.extend_from_slice(name.as_bytes());
    plain.extend_from_slice(&pkcs8);
    let signer = Signer::new(SigningKey::from_pkcs8(&pkcs8)?, name);
    let vkey = note::verifier_key(&signer.name, signer.id, &signer.public);
    store::settings::put(tx, KEY, &B64.encode(crypto.seal(&seal_ctx(), &plain)?), now)?;
    store::settings::put(tx, VERIFIER_KEY, &vkey, now)?;
    tracing::info!(verifier_key = %vkey, "created the audit checkpoint signing key; keep this verifier key with your checkpoints");
    Ok(signer)
}

/// Replaces the file atomically so a reader never sees half a checkpoint.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    use crate::fsx::OwnerOnly;
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    // Private whatever the umask: the checkpoint is the operator's, not other users'.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .owner_only()
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself survives a power cut only once the directory is synced.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The newest signed checkpoint: (entries it covers, when, verifier key), for the audit page.
pub async fn latest(db: &Db) -> Result<Option<(u64, Timestamp, String)>> {
    db.read(|r| {
        let text = store::settings::get(r, LAST)?;
        let at = store::settings::get(r, LAST_AT)?.and_then(|v| v.parse::<i64>().ok());
        let vkey = store::settings::get(r, VERIFIER_KEY)?;
        Ok(match (text.and_then(|t| note::parse(&t).ok()), at, vkey) {
            (Some(c), Some(at), Some(k)) => Some((c.checkpoint.size, Timestamp(at), k)),
            _ => None,
        })
    })
    .await
}

/// The appliance's verifier key, once a checkpoint has been signed.
pub fn verifier_key(db: &Db) -> Result<Option<String>> {
    db.read_blocking(|r| store::settings::get(r, VERIFIER_KEY))
}

/// Checks the stored log against a signed checkpoint: Ok(what was proven) or Err(why not).
/// `vkey` overrides the key recorded in the database (one kept off the machine is better).
pub fn verify_against(
    db: &Db,
    text: &str,
    vkey: Option<&str>,
) -> Result<std::result::Result<String, String>> {
    let signed =
        note::parse(text).map_err(|e| Error::startup(format!("not a signed checkpoint: {e}")))?;
    let given = vkey.is_some();
    let vkey = match vkey {
        Some(k) => k.to_string(),
        None => verifier_key(db)?.ok_or_else(|| {
            Error::startup(
                "this database has no checkpoint key (no checkpoint was ever signed); pass --key",
            )
        })?,
    };
    let (name, id, public) = note::parse_verifier_key(&vkey)
        .map_err(|e| Error::startup(format!("bad verifier key: {e}")))?;
    let Some((_, _, sig)) = signed
        .signatures
        .iter()
        .find(|(n, i, _)| *n == name && *i == id)
    else {
        return Ok(Err(format!(
            "the checkpoint is not signed by the key {name}"
        )));
    };
    if !signing::verify(&public, signed.text.as_bytes(), sig) {
        return Ok(Err(
            "the checkpoint's signature does not verify: it was altered or forged".into(),
        ));
    }
    let cp = signed.checkpoint;
    let size = i64::try_from(cp.size)
        .map_err(|_| Error::startup("the checkpoint size is out of range"))?;
    let (head, at) =
        db.read_blocking(|r| Ok((store::audit::head(r)?, store::audit::hash_at(r, size)?)))?;
    let log = head.map_or(0, |(s, _)| s);
    if log < size {
        return Ok(Err(format!(
            "log shorter than checkpoint: the log has {log} entries, the checkpoint signed {size}"
        )));
    }
    if at.as_deref() != Some(&cp.root[..]) {
        return Ok(Err(format!(
            "log rewritten: entry {size} differs from the checkpoint"
        )));
    }
    let whose = if given {
        "the key given"
    } else {
        "the key recorded in the database; pass --key with a copy kept elsewhere for a stronger check"
    };
    Ok(Ok(format!(
        "the log extends the signed checkpoint of {size} entries ({}), checked with {whose}",
        cp.origin
    )))
}
