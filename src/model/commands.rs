//! The fixed agent command set and its rules, shared by the server (what it may queue) and
//! the agent (what it will run): no shell, managed accounts only, grants of at most 24 h.

use serde::{Deserialize, Serialize};

pub const MAX_GRANT_MS: i64 = 24 * 60 * 60 * 1000;
/// Local cap on grants per hour (AGT-04).
pub const MAX_GRANTS_PER_HOUR: usize = 10;

super::text_enum! {
    /// The command types, as stored and sent to the agent.
    pub enum CommandKind {
        GrantAdmin = "grant_admin",
        RevokeAdmin = "revoke_admin",
        EnsureAccount = "ensure_account",
        RotatePassword = "rotate_password",
        DisableAccount = "disable_account",
        DeleteAccount = "delete_account",
        SetStandingAdmins = "set_standing_admins",
        Logoff = "logoff",
        Notify = "notify",
        SetOfflineSecret = "set_offline_secret",
        PolicyUpdate = "policy_update",
    }
}

super::text_enum! {
    /// Where an order to a workstation stands: queued until the agent answers (done, failed,
    /// refused) or its time runs out (expired).
    pub enum CommandState {
        Queued = "queued",
        Done = "done",
        Failed = "failed",
        Refused = "refused",
        Expired = "expired",
    }
}

/// A command as the appliance keeps it: arguments with secrets blanked (the full ones sealed).
#[derive(Clone, Debug)]
pub struct StoredCommand {
    pub id: crate::ids::CommandId,
    pub tenant_id: crate::ids::TenantId,
    pub device_id: crate::ids::DeviceId,
    pub seq: i64,
    pub kind: CommandKind,
    pub args: String,
    pub args_sealed: Option<Vec<u8>>,
    pub issued_at: crate::clock::Timestamp,
    pub not_after: crate::clock::Timestamp,
    pub state: CommandState,
    pub acked_at: Option<crate::clock::Timestamp>,
    pub details: Option<String>,
}

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
    pub fn kind(&self) -> CommandKind {
        match self {
            Action::GrantAdmin { .. } => CommandKind::GrantAdmin,
            Action::RevokeAdmin { .. } => CommandKind::RevokeAdmin,
            Action::EnsureAccount { .. } => CommandKind::EnsureAccount,
            Action::RotatePassword { .. } => CommandKind::RotatePassword,
            Action::DisableAccount { .. } => CommandKind::DisableAccount,
            Action::DeleteAccount { .. } => CommandKind::DeleteAccount,
            Action::SetStandingAdmins { .. } => CommandKind::SetStandingAdmins,
            Action::Logoff { .. } => CommandKind::Logoff,
            Action::Notify { .. } => CommandKind::Notify,
            Action::SetOfflineSecret { .. } => CommandKind::SetOfflineSecret,
            Action::PolicyUpdate { .. } => CommandKind::PolicyUpdate,
        }
    }

    pub fn parse(kind: &str, args: &serde_json::Value) -> Result<Action, String> {
        if CommandKind::parse(kind).is_none() {
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
        assert_eq!(Action::parse(a.kind().as_str(), &a.args()).unwrap(), a);
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
        assert_eq!(CommandKind::ALL.len(), 11);
    }
}
