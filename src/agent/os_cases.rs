//! One behavioural case table for every `Os` back end: the Linux shadow tools against a
//! throw-away root and the Windows back end against the in-memory SAM must do the same
//! thing for create, set password, grant, revoke (on time, on the agent's clock), disable,
//! log off and PPAM revert.

// Test code: unwrap and panic are how a case fails (CONVENTIONS #13 covers non-test code).
#![allow(clippy::unwrap_used, clippy::panic)]

use super::enforcer::{self, Verdict};
use super::os::{LinuxShadow, Os};
use super::state::State;
use super::windows::{FakeSam, FakeState, Session, WinApi, WindowsSam};
use crate::model::commands::Action;
use crate::proto::EventKind;

/// What only the back end's own inspection can tell.
trait Probe {
    /// The password opens the account and the account may log on.
    fn can_log_on(&self, name: &str, password: &str) -> bool;
    /// An interactive session of `name` exists (or, in a throw-away root, was never ended).
    fn has_session(&self, name: &str) -> bool;
}

const PW: &str = "first-long-password-1";
const PW2: &str = "second-long-password-2";

fn grant(s: &State, seq: i64, account: &str, expires_at: i64) -> crate::proto::Command {
    let action = Action::GrantAdmin {
        account: account.into(),
        expires_at,
        session: None,
    };
    crate::proto::Command {
        id: crate::ids::CommandId::new(),
        device_id: s.device_id,
        tenant_id: crate::ids::TenantId::new(),
        seq,
        issued_at: 0,
        not_after: 10_000_000,
        kind: action.kind().as_str().into(),
        args: action.args(),
    }
}

fn admins(os: &dyn Os) -> Vec<String> {
    os.admin_members()
        .unwrap()
        .into_iter()
        .map(|a| a.to_lowercase())
        .collect()
}

fn cases(os: &dyn Os, probe: &dyn Probe) {
    // Create: a new account that logs on with its password and holds no rights yet.
    os.ensure_account("msp-case", PW, false).unwrap();
    assert_eq!(os.has_account("msp-case"), Some(true));
    assert!(probe.can_log_on("msp-case", PW));
    assert!(!admins(os).contains(&"msp-case".into()));

    // Set password: the old one stops working.
    os.set_password("msp-case", PW2).unwrap();
    assert!(probe.can_log_on("msp-case", PW2));
    assert!(!probe.can_log_on("msp-case", PW));

    // Grant and revoke on time, through the enforcer as the daemon does it.
    let mut s = State::for_tests();
    let g = grant(&s, 1, "msp-case", 600_000);
    let Verdict::Run(a) = enforcer::check(&s, &g, 0) else {
        panic!("the grant is refused")
    };
    enforcer::apply(os, &mut s, &g, &a, 0).unwrap();
    assert!(admins(os).contains(&"msp-case".into()));
    os.add_admin("msp-case").unwrap(); // twice is once
    assert_eq!(admins(os).iter().filter(|a| *a == "msp-case").count(), 1);

    // PPAM: an account added behind the agent's back is reverted; the baseline is kept.
    os.ensure_account("mallory", PW, true).unwrap();
    let ev = enforcer::tick(os, &mut s, 1_000).unwrap();
    assert!(ev.iter().any(|e| e.kind == EventKind::Ppam), "{ev:?}");
    let now = admins(os);
    assert!(
        !now.contains(&"mallory".into()) && now.contains(&"alice".into()),
        "{now:?}"
    );
    assert!(now.contains(&"msp-case".into()), "the ordered grant stays");

    // On time: out of the group and logged off (every session of the account).
    assert!(probe.has_session("msp-case"));
    let ev = enforcer::tick(os, &mut s, 600_000).unwrap();
    assert!(
        ev.iter().any(|e| e.kind == EventKind::GrantExpired),
        "{ev:?}"
    );
    assert!(!admins(os).contains(&"msp-case".into()));
    assert!(!probe.has_session("msp-case"));
    os.remove_admin("msp-case").unwrap(); // revoking twice is fine
    os.logoff("msp-case").unwrap(); // so is logging off nobody

    // Disable: out of the group, cannot log on; enabling again restores both.
    os.add_admin("msp-case").unwrap();
    os.disable_account("msp-case").unwrap();
    assert!(!probe.can_log_on("msp-case", PW2));
    assert!(!admins(os).contains(&"msp-case".into()));
    os.disable_account("never-existed").unwrap();
    os.ensure_account("msp-case", PW, true).unwrap();
    assert!(probe.can_log_on("msp-case", PW));
    assert!(admins(os).contains(&"msp-case".into()));

    // Delete (an erased person's account): gone, out of the group; twice is once.
    os.delete_account("msp-case").unwrap();
    assert_eq!(os.has_account("msp-case"), Some(false));
    assert!(!probe.can_log_on("msp-case", PW));
    assert!(!admins(os).contains(&"msp-case".into()));
    os.delete_account("msp-case").unwrap();

    // An account the machine does not have cannot be granted.
    assert!(os.add_admin("nobody-here").is_err());
}

struct LinuxProbe(std::path::PathBuf);

impl Probe for LinuxProbe {
    fn can_log_on(&self, name: &str, password: &str) -> bool {
        use sha_crypt::{PasswordHash, PasswordVerifier, ShaCrypt};
        let shadow = std::fs::read_to_string(self.0.join("etc/shadow")).unwrap_or_default();
        let Some(f) = shadow
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f[0] == name)
        else {
            return false;
        };
        // Locked ('!') or expired (field 8 set to a day long past) cannot log on.
        let expired = f.get(7).is_some_and(|e| !e.is_empty());
        !f[1].starts_with('!')
            && !expired
            && PasswordHash::new(f[1]).is_ok_and(|h| {
                ShaCrypt::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
    }
    fn has_session(&self, name: &str) -> bool {
        // A throw-away root has no sessions: the back end records the log-off instead.
        let log = std::fs::read_to_string(self.0.join("var/log/hourglass-agent/actions.log"))
            .unwrap_or_default();
        !log.lines().any(|l| l == format!("logoff {name}"))
    }
}

fn linux_root() -> tempfile::TempDir {
    let r = tempfile::tempdir().unwrap();
    let p = r.path();
    std::fs::create_dir_all(p.join("etc")).unwrap();
    std::fs::create_dir_all(p.join("home")).unwrap();
    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n",
        ),
        (
            "etc/shadow",
            "root:*:19000:0:99999:7:::\nalice:*:19000:0:99999:7:::\n",
        ),
        ("etc/group", "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n"),
        ("etc/gshadow", "root:*::\nsudo:*::alice\nalice:!::\n"),
    ];
    for (f, text) in files {
        std::fs::write(p.join(f), text).unwrap();
    }
    r
}

#[test]
fn the_linux_back_end_passes_the_case_table() {
    let root = linux_root();
    let os = LinuxShadow::new(root.path(), "sudo");
    cases(&os, &LinuxProbe(root.path().to_path_buf()));
}

struct SamProbe<'a>(&'a FakeSam);

impl Probe for SamProbe<'_> {
    fn can_log_on(&self, name: &str, password: &str) -> bool {
        self.0
            .snapshot()
            .users
            .get(&name.to_lowercase())
            .is_some_and(|u| u.enabled && u.password == password)
    }
    fn has_session(&self, name: &str) -> bool {
        self.0
            .snapshot()
            .sessions
            .iter()
            .any(|s| s.user.eq_ignore_ascii_case(name))
    }
}

#[test]
fn the_windows_back_end_passes_the_case_table() {
    // A German Windows: the group is "Administratoren"; alice is the baseline admin and
    // msp-case will be logged on twice (console and remote desktop).
    let sam = FakeSam::with(FakeState {
        admin_group: Some("Administratoren".into()),
        admins: vec!["alice".into()],
        sessions: vec![
            Session {
                id: 1,
                user: "MSP-CASE".into(),
                station: "Console".into(),
                logon_at: 1_800_000_000,
            },
            Session {
                id: 2,
                user: "msp-case".into(),
                station: "RDP-Tcp#0".into(),
                logon_at: 1_800_000_100,
            },
        ],
        ..FakeState::default()
    });
    sam.add_user("alice", "alice-long-password").unwrap();
    let os = WindowsSam::new(sam);
    let probe = SamProbe(os.api());
    cases(&os, &probe);
}
