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

/// The case table both the appliance's decide and the agent's offline decide are run on
/// (unit tests here, and the integration test that compares the two over the wire).
#[doc(hidden)]
pub mod cases {
    use super::*;

    pub const NOW: i64 = 1_800_000_000_000;
    pub const HOUR: i64 = 3_600_000;
    pub const SHA: &str = "a3f5c1d2e4b6a8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8";

    fn rule(id: &str, kind: RuleKind, value: &str, deny: bool) -> Rule {
        Rule {
            id: id.into(),
            kind,
            value: value.into(),
            deny,
        }
    }

    pub fn policies() -> Vec<Policy> {
        vec![
            Policy {
                id: "p-tools".into(),
                name: "Tools".into(),
                description: String::new(),
                enabled: true,
                devices: vec![],
                users: vec![],
                span: Span::Fixed {
                    hours: 8,
                    from: NOW - HOUR,
                },
                access: Access::Specific,
                rules: vec![
                    rule("r-vendor", RuleKind::Vendor, "Debian", false),
                    rule("r-product", RuleKind::Product, "wireshark", false),
                    rule("r-signed", RuleKind::Verified, "Acme Corp", false),
                    rule("r-hash", RuleKind::Hash, SHA, false),
                    rule(
                        "r-clsid",
                        RuleKind::Clsid,
                        "0002df01-0000-0000-c000-000000000046",
                        false,
                    ),
                    rule("r-path", RuleKind::Path, "/opt/tools/*", false),
                    rule("r-winpath", RuleKind::Path, "C:\\Tools\\**", false),
                    rule("r-no-shell", RuleKind::Path, "/usr/bin/bash", true),
                ],
                once: false,
            },
            Policy {
                id: "p-window".into(),
                name: "Maintenance window".into(),
                description: String::new(),
                enabled: true,
                devices: vec!["dev-1".into()],
                users: vec!["bob".into()],
                span: Span::Window {
                    from: NOW + HOUR,
                    to: NOW + 2 * HOUR,
                },
                access: Access::All,
                rules: vec![],
                once: false,
            },
        ]
    }

    fn app(f: impl FnOnce(&mut App)) -> App {
        let mut a = App {
            path: "/srv/unknown".into(),
            ..App::default()
        };
        f(&mut a);
        a
    }

    /// (case, device, user, app, time, expected policy/rule or "ask"/"deny:rule").
    pub fn table() -> Vec<(
        &'static str,
        &'static str,
        &'static str,
        App,
        i64,
        &'static str,
    )> {
        vec![
            (
                "vendor, any case",
                "dev-2",
                "ann",
                app(|a| a.vendor = "debian".into()),
                NOW,
                "p-tools/r-vendor",
            ),
            (
                "product",
                "dev-2",
                "ann",
                app(|a| a.product = "Wireshark".into()),
                NOW,
                "p-tools/r-product",
            ),
            (
                "signed and verified",
                "dev-2",
                "ann",
                app(|a| {
                    a.signer = "Acme Corp".into();
                    a.verified = true;
                }),
                NOW,
                "p-tools/r-signed",
            ),
            (
                "signed, not verified",
                "dev-2",
                "ann",
                app(|a| a.signer = "Acme Corp".into()),
                NOW,
                "ask",
            ),
            (
                "hash",
                "dev-2",
                "ann",
                app(|a| a.sha256 = SHA.to_uppercase()),
                NOW,
                "p-tools/r-hash",
            ),
            (
                "clsid with braces",
                "dev-2",
                "ann",
                app(|a| a.clsid = "{0002DF01-0000-0000-C000-000000000046}".into()),
                NOW,
                "p-tools/r-clsid",
            ),
            (
                "path in the folder",
                "dev-2",
                "ann",
                app(|a| a.path = "/opt/tools/nmap".into()),
                NOW,
                "p-tools/r-path",
            ),
            (
                "path below the folder: * stays in it",
                "dev-2",
                "ann",
                app(|a| a.path = "/opt/tools/sub/nmap".into()),
                NOW,
                "ask",
            ),
            (
                "Linux paths are case-sensitive",
                "dev-2",
                "ann",
                app(|a| a.path = "/OPT/tools/nmap".into()),
                NOW,
                "ask",
            ),
            (
                "Windows paths are not; ** crosses folders",
                "dev-2",
                "ann",
                app(|a| a.path = "c:\\tools\\sub\\x.exe".into()),
                NOW,
                "p-tools/r-winpath",
            ),
            (
                "deny wins over an allow",
                "dev-2",
                "ann",
                app(|a| {
                    a.path = "/usr/bin/bash".into();
                    a.vendor = "Debian".into();
                }),
                NOW,
                "deny:r-no-shell",
            ),
            ("nothing matches", "dev-2", "ann", app(|_| {}), NOW, "ask"),
            (
                "fixed: before deployment",
                "dev-2",
                "ann",
                app(|a| a.vendor = "Debian".into()),
                NOW - HOUR - 1,
                "ask",
            ),
            (
                "fixed: last millisecond",
                "dev-2",
                "ann",
                app(|a| a.vendor = "Debian".into()),
                NOW + 7 * HOUR - 1,
                "p-tools/r-vendor",
            ),
            (
                "fixed: at the end",
                "dev-2",
                "ann",
                app(|a| a.vendor = "Debian".into()),
                NOW + 7 * HOUR,
                "ask",
            ),
            (
                "window: all applications for bob on dev-1",
                "dev-1",
                "bob",
                app(|_| {}),
                NOW + HOUR,
                "p-window/-",
            ),
            (
                "window: not before it opens",
                "dev-1",
                "bob",
                app(|_| {}),
                NOW + HOUR - 1,
                "ask",
            ),
            (
                "window: closed at its end",
                "dev-1",
                "bob",
                app(|_| {}),
                NOW + 2 * HOUR,
                "ask",
            ),
            (
                "window: another user",
                "dev-1",
                "ann",
                app(|_| {}),
                NOW + HOUR,
                "ask",
            ),
            (
                "window: another device",
                "dev-2",
                "bob",
                app(|_| {}),
                NOW + HOUR,
                "ask",
            ),
            (
                "window: deny of another policy still wins",
                "dev-1",
                "bob",
                app(|a| a.path = "/usr/bin/bash".into()),
                NOW + HOUR,
                "deny:r-no-shell",
            ),
        ]
    }

    pub fn render(d: &Decision) -> String {
        match d {
            Decision::Allow { policy, rule, .. } => {
                format!("{policy}/{}", rule.as_deref().unwrap_or("-"))
            }
            Decision::Deny { rule, .. } => format!("deny:{rule}"),
            Decision::Ask => "ask".into(),
        }
    }

    #[test]
    fn every_rule_type_deny_precedence_spans_and_targets() {
        let ps = policies();
        for p in &ps {
            check_policy(p).unwrap();
        }
        for (case, device, user, a, now, want) in table() {
            assert_eq!(render(&decide(&ps, device, user, &a, now)), want, "{case}");
        }
    }

    #[test]
    fn malformed_rules_and_policies_are_refused() {
        assert!(check_rule(RuleKind::Hash, "abc").is_err());
        assert!(check_rule(RuleKind::Hash, &"g".repeat(64)).is_err());
        assert!(check_rule(RuleKind::Clsid, "not-a-guid").is_err());
        assert!(check_rule(RuleKind::Path, "tools/*").is_err());
        assert!(check_rule(RuleKind::Vendor, " ").is_err());
        assert!(check_rule(RuleKind::Product, &"x".repeat(2000)).is_err());
        assert_eq!(
            check_rule(RuleKind::Hash, &SHA.to_uppercase()).unwrap(),
            SHA
        );
        let mut p = policies().remove(0);
        p.rules.retain(|r| r.deny);
        assert!(
            check_policy(&p).is_err(),
            "specific applications need an allow rule"
        );
        let mut w = policies().remove(1);
        w.span = Span::Window { from: NOW, to: NOW };
        assert!(
            check_policy(&w).is_err(),
            "a window must end after it starts"
        );
        w.name = " ".into();
        assert!(check_policy(&w).is_err());
        assert!(
            check_app(&App {
                path: "/x\n".into(),
                ..App::default()
            })
            .is_err()
        );
        assert!(
            check_app(&App {
                path: "x".repeat(5000),
                ..App::default()
            })
            .is_err()
        );
    }
}
