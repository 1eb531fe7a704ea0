//! The fixed agent command set and its rules, shared by the server (what it may queue) and
//! the agent (what it will run): no shell, managed accounts only, grants of at most 24 h.

use serde::{Deserialize, Serialize};

pub const MAX_GRANT_MS: i64 = 24 * 60 * 60 * 1000;
/// Local cap on grants per hour (AGT-04).
pub const MAX_GRANTS_PER_HOUR: usize = 10;

pub const KINDS: &[&str] = &[
    "grant_admin",
    "revoke_admin",
    "ensure_account",
    "rotate_password",
    "disable_account",
    "delete_account",
    "set_standing_admins",
    "logoff",
    "notify",
    "set_offline_secret",
    "policy_update",
];

/// Which request a grant belongs to, stamped on the agent's events of that session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRef {
    pub request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A command's meaning, parsed from its `kind` and `args`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "args",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Action {
    GrantAdmin {
        account: String,
        expires_at: i64,
        /// The JIT request (RequestIdentifier and TicketIdentifier) every event of the
        /// session carries; none for grants that are not a user's request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<SessionRef>,
    },
    RevokeAdmin {
        account: String,
    },
    EnsureAccount {
        account: String,
        password: String,
        admin: bool,
        /// The escrowed password's version id, kept by the agent (CRED-05).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    RotatePassword {
        account: String,
        password: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
    },
    DisableAccount {
        account: String,
    },
    /// Removes a managed account from the workstation (its person was erased).
    DeleteAccount {
        account: String,
    },
    /// The administrators found at enrollment lose their rights, except those in `keep`, and
    /// are kept out afterwards like any other addition (PPAM).
    SetStandingAdmins {
        keep: Vec<String>,
    },
    Logoff {
        account: String,
    },
    Notify {
        message: String,
    },
    /// The offline-code secret (base32; empty clears it) and how long an offline login lasts.
    SetOfflineSecret {
        secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        minutes: Option<u32>,
    },
    PolicyUpdate {
        version: i64,
        bundle: serde_json::Value,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::GrantAdmin { .. } => "grant_admin",
            Action::RevokeAdmin { .. } => "revoke_admin",
            Action::EnsureAccount { .. } => "ensure_account",
            Action::RotatePassword { .. } => "rotate_password",
            Action::DisableAccount { .. } => "disable_account",
            Action::DeleteAccount { .. } => "delete_account",
            Action::SetStandingAdmins { .. } => "set_standing_admins",
            Action::Logoff { .. } => "logoff",
            Action::Notify { .. } => "notify",
            Action::SetOfflineSecret { .. } => "set_offline_secret",
            Action::PolicyUpdate { .. } => "policy_update",
        }
    }

    pub fn parse(kind: &str, args: &serde_json::Value) -> Result<Action, String> {
        if !KINDS.contains(&kind) {
            return Err(format!("unknown command type {kind:?}"));
        }
        serde_json::from_value(serde_json::json!({"kind": kind, "args": args}))
            .map_err(|e| format!("bad arguments for {kind}: {e}"))
    }

    pub fn args(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("args").cloned())
            .unwrap_or_default()
    }

    /// The arguments with secrets blanked, for storage and display; None when there is none.
    pub fn redacted_args(&self) -> Option<serde_json::Value> {
        let mut a = self.args();
        let mut hit = false;
        for k in ["password", "secret"] {
            if let Some(v) = a.get_mut(k) {
                *v = serde_json::Value::String("(sealed)".into());
                hit = true;
            }
        }
        // The account of an erased person: its name came from their username (only the
        // sealed arguments, which the workstation gets, still hold it).
        if let (Action::DeleteAccount { .. }, Some(v)) = (self, a.get_mut("account")) {
            *v = serde_json::Value::String("(erased)".into());
            hit = true;
        }
        hit.then_some(a)
    }

    /// The local account the command touches, if any.
    pub fn account(&self) -> Option<&str> {
        match self {
            Action::GrantAdmin { account, .. }
            | Action::RevokeAdmin { account }
            | Action::EnsureAccount { account, .. }
            | Action::RotatePassword { account, .. }
            | Action::DisableAccount { account }
            | Action::DeleteAccount { account }
            | Action::Logoff { account } => Some(account),
            _ => None,
        }
    }
}

/// `^(msp|co)-[a-z0-9._-]{1,17}$`: the accounts Hourglass creates and manages (AGT-04).
pub fn is_managed_account(name: &str) -> bool {
    let rest = name
        .strip_prefix("msp-")
        .or_else(|| name.strip_prefix("co-"));
    matches!(rest, Some(r) if (1..=17).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)))
}

/// Whether the agent may act on `account`: a managed account, or an enrolled end user (whose
/// rights are only ever granted and revoked, never created or given a password).
pub fn may_touch(action: &Action, end_users: &[String]) -> bool {
    match action.account() {
        None => true,
        Some(a) if is_managed_account(a) => true,
        Some(a) => {
            matches!(
                action,
                Action::GrantAdmin { .. } | Action::RevokeAdmin { .. } | Action::Logoff { .. }
            ) && end_users.iter().any(|u| u == a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_account_is_stored_without_its_name() {
        let d = Action::DeleteAccount {
            account: "msp-nik".into(),
        };
        assert_eq!(d.redacted_args().unwrap()["account"], "(erased)");
        assert_eq!(
            d.args()["account"],
            "msp-nik",
            "the workstation gets the name"
        );
        assert_eq!(Action::parse("delete_account", &d.args()).unwrap(), d);
        let disable = Action::DisableAccount {
            account: "msp-nik".into(),
        };
        assert_eq!(disable.redacted_args(), None);
    }

    #[test]
    fn only_managed_accounts_are_touched() {
        for ok in [
            "msp-nik",
            "co-nik",
            "msp-1234",
            "co-a.b_c-d",
            "msp-abcdefghijklmnopq",
        ] {
            assert!(is_managed_account(ok), "{ok}");
        }
        for bad in [
            "root",
            "Administrator",
            "msp-",
            "co-",
            "msp-Nik",
            "msp-abcdefghijklmnopqr",
            "xmsp-nik",
            "msp-n k",
        ] {
            assert!(!is_managed_account(bad), "{bad}");
        }
        let root = Action::EnsureAccount {
            account: "root".into(),
            password: "x".into(),
            admin: true,
            version: None,
        };
        assert!(
            !may_touch(&root, &["root".into()]),
            "end users are never created or given passwords"
        );
        let grant = Action::GrantAdmin {
            account: "alice".into(),
            expires_at: 1,
            session: None,
        };
        assert!(may_touch(&grant, &["alice".into()]));
        assert!(!may_touch(&grant, &[]));
    }

    #[test]
    fn commands_round_trip_and_unknown_ones_are_refused() {
        let a = Action::GrantAdmin {
            account: "msp-nik".into(),
            expires_at: 42,
            session: None,
        };
        assert_eq!(Action::parse(a.kind(), &a.args()).unwrap(), a);
        assert!(
            Action::parse("run_shell", &serde_json::json!({"cmd": "rm -rf /"}))
                .unwrap_err()
                .contains("unknown command type")
        );
        assert!(Action::parse("grant_admin", &serde_json::json!({"account": "msp-nik"})).is_err());
        assert!(
            Action::parse(
                "grant_admin",
                &serde_json::json!({"account": "msp-nik", "expires_at": 1, "x": 1})
            )
            .is_err()
        );
        assert_eq!(KINDS.len(), 11);
    }
}
