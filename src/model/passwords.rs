//! The portal password policy (AUTH-01..03): length in code points, no composition rules,
//! an embedded blocklist of common passwords, and context words.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::error::{Error, Result};

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

const BLOCKLIST: &str = include_str!("../../assets/blocklist/common-passwords.txt");

fn blocklist() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        BLOCKLIST
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Words a password must not contain: the product, tenant names and slugs, the user's email
/// local part and username.
#[derive(Debug, Default, Clone)]
pub struct Context {
    pub words: Vec<String>,
}

impl Context {
    pub fn new(words: impl IntoIterator<Item = String>) -> Self {
        let mut all = vec!["hourglass".to_string()];
        for w in words {
            for part in w.to_lowercase().split(|c: char| !c.is_alphanumeric()) {
                if part.chars().count() >= 3 {
                    all.push(part.to_string());
                }
            }
        }
        all.sort();
        all.dedup();
        Context { words: all }
    }
}

/// Checks a new password; the error says which rule it broke.
pub fn check(password: &str, ctx: &Context) -> Result<()> {
    let err = |m: String| Err(Error::validation("password", m));
    let n = password.chars().count();
    if n < MIN_CHARS {
        return err(format!(
            "must be at least {MIN_CHARS} characters (it has {n})"
        ));
    }
    if n > MAX_CHARS {
        return err(format!("must be at most {MAX_CHARS} characters"));
    }
    if password.chars().any(char::is_control) {
        return err("must not contain control characters".into());
    }
    let lower = password.to_lowercase();
    if blocklist().contains(lower.as_str()) {
        return err("is one of the most commonly used passwords; choose another".into());
    }
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    if core.chars().count() >= 4 && blocklist().contains(core) {
        return err(format!(
            "is a common password (\"{core}\") with digits or symbols added; choose another"
        ));
    }
    if let Some(w) = ctx.words.iter().find(|w| lower.contains(w.as_str())) {
        return err(format!(
            "must not contain \"{w}\" (the product, your organisation or your own name)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context::new([
            "nik@acme.com".to_string(),
            "Acme Corp".to_string(),
            "co-nik".to_string(),
        ])
    }

    #[test]
    fn length_counts_code_points_with_the_documented_bounds() {
        let c = Context::default();
        assert!(check("qwq7zvbnmlkj"[..11].as_ref(), &c).is_err());
        assert!(check("zq7wvbnmlkjh", &c).is_ok());
        assert!(check(&"zq7w".repeat(16), &c).is_ok());
        assert!(check(&"zq7w".repeat(32), &c).is_ok());
        assert!(
            check(&format!("{}z", "zq7w".repeat(32)), &c)
                .unwrap_err()
                .to_string()
                .contains("at most 128")
        );
        assert!(
            check("Pässwörd🙂x12", &c).is_ok(),
            "12 code points of printable unicode"
        );
        assert!(
            check("aaaaaaaaaaaabbbb", &c).is_ok(),
            "no composition rules"
        );
    }

    #[test]
    fn common_and_context_passwords_are_refused_with_the_reason() {
        let e = check("Password123!", &ctx()).unwrap_err().to_string();
        assert!(e.contains("common password"), "{e}");
        let e = check("hourglass2025", &ctx()).unwrap_err().to_string();
        assert!(e.contains("\"hourglass\""), "{e}");
        let e = check("nikacme12345", &ctx()).unwrap_err().to_string();
        assert!(e.contains("must not contain"), "{e}");
        assert!(blocklist().len() >= 10_000, "{}", blocklist().len());
    }
}
