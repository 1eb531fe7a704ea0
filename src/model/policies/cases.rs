//! The case table both the appliance's decide and the agent's offline decide are run on
//! (unit tests here, and the integration test that compares the two over the wire).

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
// Long on purpose: a table of cases, one per row.
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
