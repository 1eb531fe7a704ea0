//! Application elevation policies (DESIGN §4): rules, validation and the one matching engine
//! the appliance and the agent share, so an offline decision equals the online one.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a rule compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Vendor,
    Product,
    /// Signed by this trusted publisher, and the signature verified.
    Verified,
    /// SHA-256 of the executable.
    Hash,
    Clsid,
    /// A glob over the executable's absolute path (`*` within a folder, `**` across folders).
    Path,
}

impl RuleKind {
    pub const ALL: &'static [RuleKind] = &[
        RuleKind::Vendor,
        RuleKind::Product,
        RuleKind::Verified,
        RuleKind::Hash,
        RuleKind::Clsid,
        RuleKind::Path,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Vendor => "vendor",
            RuleKind::Product => "product",
            RuleKind::Verified => "verified",
            RuleKind::Hash => "hash",
            RuleKind::Clsid => "clsid",
            RuleKind::Path => "path",
        }
    }
    pub fn parse(s: &str) -> Option<RuleKind> {
        RuleKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
    pub fn label(self) -> &'static str {
        match self {
            RuleKind::Vendor => "Vendor",
            RuleKind::Product => "Product",
            RuleKind::Verified => "Verified executable (publisher)",
            RuleKind::Hash => "File hash (SHA-256)",
            RuleKind::Clsid => "CLSID",
            RuleKind::Path => "Folder path",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub kind: RuleKind,
    pub value: String,
    /// A deny rule wins over every allow.
    #[serde(default)]
    pub deny: bool,
}

/// How long a policy applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Span {
    /// `hours` from deployment (`from`, UTC ms).
    Fixed { hours: u32, from: i64 },
    /// From–to, UTC ms.
    Window { from: i64, to: i64 },
}

impl Span {
    /// The end of the span, and whether `now` is inside it.
    pub fn until(&self) -> i64 {
        match self {
            Span::Fixed { hours, from } => from + i64::from(*hours) * 3_600_000,
            Span::Window { to, .. } => *to,
        }
    }
    pub fn contains(&self, now: i64) -> bool {
        let from = match self {
            Span::Fixed { from, .. } | Span::Window { from, .. } => *from,
        };
        from <= now && now < self.until()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Every application may be elevated (deny rules still apply).
    All,
    /// Only applications an allow rule matches.
    Specific,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    /// Device ids; empty = all devices.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Local account names of endpoint users; empty = all users.
    #[serde(default)]
    pub users: Vec<String>,
    pub span: Span,
    pub access: Access,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// "Just this request": allows one run, then is used up (the appliance deletes it when
    /// it decides, the agent remembers it ran when it decided offline).
    #[serde(default, skip_serializing_if = "is_false")]
    pub once: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What the agent knows about the program to elevate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub path: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub product: String,
    #[serde(default)]
    pub signer: String,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub clsid: String,
}

/// The answer to "may this user elevate this program here, now?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow {
        policy: String,
        /// None when the policy allows all applications.
        rule: Option<String>,
        until: i64,
    },
    Deny {
        policy: String,
        rule: String,
    },
    Ask,
}

const MAX_FIELD: usize = 1024;

fn hex64(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

fn guid(v: &str) -> bool {
    let v = v
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(v);
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn absolute(v: &str) -> bool {
    let b = v.as_bytes();
    v.starts_with('/')
        || (b.len() > 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
}

/// Checks a rule's value for its kind; returns it normalised (hashes and CLSIDs lower-case,
/// CLSIDs without braces).
pub fn check_rule(kind: RuleKind, value: &str) -> Result<String> {
    let v = value.trim();
    let bad = |m: &str| Err(Error::validation("value", format!("{}: {m}", kind.label())));
    if v.is_empty() {
        return bad("is required");
    }
    if v.len() > MAX_FIELD || v.chars().any(char::is_control) {
        return bad("must be at most 1024 printable characters");
    }
    match kind {
        RuleKind::Hash if !hex64(v) => bad("must be 64 hexadecimal characters"),
        RuleKind::Hash => Ok(v.to_ascii_lowercase()),
        RuleKind::Clsid if !guid(v) => {
            bad("must be a GUID like {0002DF01-0000-0000-C000-000000000046}")
        }
        RuleKind::Clsid => Ok(v
            .trim_matches(|c| c == '{' || c == '}')
            .to_ascii_lowercase()),
        RuleKind::Path if !absolute(v) => {
            bad("must be an absolute path pattern (/usr/bin/* or C:\\Tools\\*)")
        }
        _ => Ok(v.to_string()),
    }
}

/// Checks a whole policy before it is saved.
pub fn check_policy(p: &Policy) -> Result<()> {
    if p.name.trim().is_empty() || p.name.len() > 200 {
        return Err(Error::validation(
            "name",
            "is required (at most 200 characters)",
        ));
    }
    if p.description.len() > 2000 {
        return Err(Error::validation(
            "description",
            "must be at most 2000 characters",
        ));
    }
    match p.span {
        Span::Fixed { hours, .. } if hours == 0 || hours > 8760 => {
            return Err(Error::validation(
                "hours",
                "must be between 1 and 8760 (a year)",
            ));
        }
        Span::Window { from, to } if to <= from => {
            return Err(Error::validation(
                "to",
                "the window must end after it starts",
            ));
        }
        _ => {}
    }
    if p.access == Access::Specific && !p.rules.iter().any(|r| !r.deny) {
        return Err(Error::validation(
            "rules",
            "a policy for specific applications needs at least one allow rule",
        ));
    }
    for r in &p.rules {
        if check_rule(r.kind, &r.value)? != r.value {
            return Err(Error::validation(
                "value",
                "rule values must be stored normalised",
            ));
        }
    }
    Ok(())
}

/// Glob match: `**` any characters, `*` any characters but the separator, `?` one character.
fn glob(pattern: &[u8], text: &[u8], sep: u8) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) if rest.first() == Some(&b'*') => {
            let rest = &rest[1..];
            (0..=text.len()).any(|i| glob(rest, &text[i..], sep))
        }
        Some((b'*', rest)) => {
            let mut i = 0;
            loop {
                if glob(rest, &text[i..], sep) {
                    return true;
                }
                if i == text.len() || text[i] == sep {
                    return false;
                }
                i += 1;
            }
        }
        Some((b'?', rest)) => !text.is_empty() && text[0] != sep && glob(rest, &text[1..], sep),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..], sep),
    }
}

/// Windows paths compare case-insensitively with `\`; everything else exactly with `/`.
fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern.contains('\\') || path.contains('\\') {
        glob(
            pattern.to_ascii_lowercase().as_bytes(),
            path.to_ascii_lowercase().as_bytes(),
            b'\\',
        )
    } else {
        glob(pattern.as_bytes(), path.as_bytes(), b'/')
    }
}

pub fn rule_matches(r: &Rule, app: &App) -> bool {
    let eq = |a: &str| !a.is_empty() && a.eq_ignore_ascii_case(&r.value);
    match r.kind {
        RuleKind::Vendor => eq(&app.vendor),
        RuleKind::Product => eq(&app.product),
        RuleKind::Verified => app.verified && eq(&app.signer),
        RuleKind::Hash => eq(&app.sha256),
        RuleKind::Clsid => eq(app.clsid.trim_matches(|c| c == '{' || c == '}')),
        RuleKind::Path => !app.path.is_empty() && path_matches(&r.value, &app.path),
    }
}

/// Whether the policy applies to this device and user now.
pub fn applies(p: &Policy, device: &str, user: &str, now: i64) -> bool {
    p.enabled
        && p.span.contains(now)
        && (p.devices.is_empty() || p.devices.iter().any(|d| d == device))
        && (p.users.is_empty() || p.users.iter().any(|u| u == user))
}

/// The decision: a matching deny rule of any applicable policy wins; then the first
/// applicable policy (in the given order) that allows the program; otherwise ask.
pub fn decide(policies: &[Policy], device: &str, user: &str, app: &App, now: i64) -> Decision {
    let live: Vec<&Policy> = policies
        .iter()
        .filter(|p| applies(p, device, user, now))
        .collect();
    for p in &live {
        if let Some(r) = p.rules.iter().find(|r| r.deny && rule_matches(r, app)) {
            return Decision::Deny {
                policy: p.id.clone(),
                rule: r.id.clone(),
            };
        }
    }
    for p in &live {
        let until = p.span.until();
        match p.access {
            Access::All => {
                return Decision::Allow {
                    policy: p.id.clone(),
                    rule: None,
                    until,
                };
            }
            Access::Specific => {
                if let Some(r) = p.rules.iter().find(|r| !r.deny && rule_matches(r, app)) {
                    return Decision::Allow {
                        policy: p.id.clone(),
                        rule: Some(r.id.clone()),
                        until,
                    };
                }
            }
        }
    }
    Decision::Ask
}

/// Checks the attributes an agent sends (sizes, no control characters).
pub fn check_app(app: &App) -> Result<()> {
    for (field, v) in [
        ("path", &app.path),
        ("sha256", &app.sha256),
        ("vendor", &app.vendor),
        ("product", &app.product),
        ("signer", &app.signer),
        ("clsid", &app.clsid),
    ] {
        if v.len() > MAX_FIELD || v.chars().any(char::is_control) {
            return Err(Error::validation(
                field,
                "must be at most 1024 printable characters",
            ));
        }
    }
    if app.path.is_empty() {
        return Err(Error::validation("path", "is required"));
    }
    Ok(())
}

#[doc(hidden)]
pub mod cases;
