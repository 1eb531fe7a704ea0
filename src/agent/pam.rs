//! `hourglass agent pam-auth`: the offline code typed at the login prompt or over SSH
//! (DESIGN §5, MFA-06). `pam_exec` (with `expose_authtok`) runs it during the `auth` phase
//! with the account in `PAM_USER` and what was typed on stdin; a managed account and a
//! six-digit code are checked exactly as `offline-login` checks them (one use per code,
//! lockout, the daemon ends the session). Anything else is not ours: the command says nothing
//! and fails, so the rest of the stack (`pam_unix`) decides, and a technician's online
//! password never counts as a wrong code.

use std::path::Path;

use super::offline::{self, Via};
use super::os::Os;
use crate::clock::Timestamp;
use crate::model::commands::is_managed_account;

/// What the login prompt is told (`pam_exec … stdout` shows it), and whether it may log in.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// Not an offline code for a managed account: left to the other modules, silently.
    NotOurs,
    Granted(String),
    Refused(String),
}

/// Checks `typed` for `user` (the `auth` phase only) at wall-clock `wall_ms`.
pub fn auth(
    dir: &Path,
    os: &dyn Os,
    (user, pam_type): (&str, &str),
    typed: &str,
    wall_ms: i64,
) -> Answer {
    let code = typed.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let looks_like_code = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
    if pam_type != "auth" || !is_managed_account(user) || !looks_like_code {
        return Answer::NotOurs;
    }
    match offline::login(dir, os, (user, code), Via::Pam, wall_ms) {
        Ok(g) => Answer::Granted(format!(
            "Hourglass offline login: {} is enabled until {} UTC; the agent then changes its password and disables it. \
             Password for sudo in this session (shown once): {}",
            g.account,
            Timestamp::from_millis(g.expires_at).rfc3339(),
            g.password.as_str()
        )),
        Err(e) => Answer::Refused(format!("Hourglass offline login refused: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::os::MemoryOs;

    #[test]
    fn only_six_digits_for_a_managed_account_in_the_auth_phase_are_ours() {
        let dir = tempfile::tempdir().unwrap();
        let os = MemoryOs::default();
        for (user, kind, typed) in [
            ("alice", "auth", "123456"),
            ("msp-nik", "auth", "a long online password"),
            ("msp-nik", "auth", "1234567"),
            ("msp-nik", "account", "123456"),
        ] {
            assert_eq!(
                auth(dir.path(), &os, (user, kind), typed, 0),
                Answer::NotOurs,
                "{user} {typed}"
            );
        }
        // Nothing was counted: no offline state was written for what was not a code.
        assert!(!dir.path().join("offline.json").exists());
        // A code for a managed account is ours: refused here (no agent state), with a reason.
        match auth(dir.path(), &os, ("msp-nik", "auth"), "123456\0", 0) {
            Answer::Refused(m) => assert!(m.contains("refused"), "{m}"),
            a => panic!("{a:?}"),
        }
    }
}
