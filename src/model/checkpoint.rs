//! Signed audit checkpoints in the C2SP formats: a tlog-checkpoint body
//! (`origin\nsize\nbase64(root)\n`) inside a signed note (blank line, then
//! `— name base64(key id ‖ signature)` lines). Our log is a hash chain, so `root` is the
//! chain hash of entry `size` (the head at that size), not a Merkle root.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// Signature type byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;
/// Anything longer is not one of our checkpoints.
const MAX_NOTE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
}

impl Checkpoint {
    /// The note text that is signed, final newline included.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// The whole signed note.
    pub fn signed(&self, key_id: [u8; 4], signature: &[u8]) -> String {
        let mut sig = key_id.to_vec();
        sig.extend_from_slice(signature);
        format!(
            "{}\n\u{2014} {} {}\n",
            self.body(),
            self.origin,
            B64.encode(sig)
        )
    }
}

/// A checkpoint read from a file, with the signature lines still to be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The signed text exactly as read (extension lines included), final newline included.
    pub text: String,
    /// (key name, key id, signature bytes)
    pub signatures: Vec<(String, [u8; 4], Vec<u8>)>,
}

/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`, computed by the caller's `sha256`.
pub fn key_id(name: &str, public: &[u8], sha256: impl Fn(&[u8]) -> [u8; 32]) -> [u8; 4] {
    let mut m = name.as_bytes().to_vec();
    m.push(b'\n');
    m.push(ED25519);
    m.extend_from_slice(public);
    let h = sha256(&m);
    [h[0], h[1], h[2], h[3]]
}

/// The verifier key string of Go's note package: `name+hex(key id)+base64(0x01 ‖ public)`.
pub fn verifier_key(name: &str, key_id: [u8; 4], public: &[u8]) -> String {
    let mut k = vec![ED25519];
    k.extend_from_slice(public);
    format!("{name}+{}+{}", hex::encode(key_id), B64.encode(k))
}

/// (name, key id, 32-byte public key) from a verifier key string.
pub fn parse_verifier_key(s: &str) -> Result<(String, [u8; 4], Vec<u8>), &'static str> {
    let mut parts = s.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a verifier key reads name+keyid+base64key");
    };
    let id: [u8; 4] = hex::decode(id)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("the key id is not 8 hex digits")?;
    let key = B64.decode(key).map_err(|_| "the key is not base64")?;
    match key.split_first() {
        Some((&ED25519, public)) if public.len() == 32 => {
            Ok((name.to_string(), id, public.to_vec()))
        }
        _ => Err("not an Ed25519 verifier key"),
    }
}

/// Parses a signed checkpoint note; says what is wrong with a malformed one.
pub fn parse(text: &str) -> Result<SignedCheckpoint, &'static str> {
    if text.len() > MAX_NOTE {
        return Err("too long to be a checkpoint");
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err("control characters are not allowed in a signed note");
    }
    let (body, sigs) = text
        .split_once("\n\n")
        .ok_or("no blank line between the checkpoint and its signatures")?;
    let mut lines = body.split('\n');
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or("no origin line")?;
    let size = lines
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("the second line is not a tree size")?;
    let root: [u8; 32] = lines
        .next()
        .and_then(|r| B64.decode(r).ok())
        .and_then(|r| r.try_into().ok())
        .ok_or("the third line is not a base64 SHA-256 hash")?;
    let mut signatures = Vec::new();
    for line in sigs.lines().filter(|l| !l.is_empty()) {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or("a signature line must start with an em dash")?;
        let (name, sig) = rest
            .split_once(' ')
            .ok_or("a signature line needs a key name and a signature")?;
        let raw = B64.decode(sig).map_err(|_| "a signature is not base64")?;
        if raw.len() < 5 {
            return Err("a signature is too short");
        }
        let id = [raw[0], raw[1], raw[2], raw[3]];
        signatures.push((name.to_string(), id, raw[4..].to_vec()));
    }
    if signatures.is_empty() {
        return Err("the checkpoint is not signed");
    }
    Ok(SignedCheckpoint {
        checkpoint: Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        },
        text: format!("{body}\n"),
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "hourglass.example/audit".into(),
            size: 42,
            root: [7u8; 32],
        }
    }

    #[test]
    fn a_signed_note_reads_back() {
        let text = cp().signed([1, 2, 3, 4], &[9u8; 64]);
        assert!(text.starts_with("hourglass.example/audit\n42\n"));
        assert!(text.contains("\n\n\u{2014} hourglass.example/audit "));
        let p = parse(&text).unwrap();
        assert_eq!(p.checkpoint, cp());
        assert_eq!(p.text, cp().body());
        assert_eq!(
            p.signatures,
            vec![(
                "hourglass.example/audit".into(),
                [1, 2, 3, 4],
                vec![9u8; 64]
            )]
        );
    }

    #[test]
    fn malformed_notes_say_what_is_wrong() {
        let good = cp().signed([1, 2, 3, 4], &[9u8; 64]);
        for (text, why) in [
            ("x\n1\n", "no blank line"),
            (&good.replace("\n42\n", "\nforty\n")[..], "tree size"),
            (&good.replace("\u{2014} ", "- ")[..], "em dash"),
            (&format!("{}\n\n", cp().body()), "not signed"),
            ("a\r\n1\n\n", "control characters"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn verifier_keys_round_trip() {
        let k = verifier_key("n.example/a", [0xde, 0xad, 0xbe, 0xef], &[5u8; 32]);
        assert!(k.starts_with("n.example/a+deadbeef+"));
        assert_eq!(
            parse_verifier_key(&k).unwrap(),
            (
                "n.example/a".into(),
                [0xde, 0xad, 0xbe, 0xef],
                vec![5u8; 32]
            )
        );
        assert!(parse_verifier_key("n+zz+AA==").is_err());
    }
}
