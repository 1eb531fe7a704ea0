//! Audit entries, their stable event codes and the hash chain (DESIGN §6, AUD-03):
//! `hash_i = SHA-256(0x00 ‖ u64 seq ‖ hash_{i−1} ‖ canonical(entry_i))`.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crypto::sha256;

macro_rules! events {
    ($($variant:ident => $code:literal),* $(,)?) => {
        /// Stable event codes. Security events use OWASP logging-vocabulary names; product
        /// events keep the seeds' numbers (101, 106, 300) where they exist.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Event { $($variant),* }

        impl Event {
            pub const ALL: &'static [Event] = &[$(Event::$variant),*];

            pub fn code(self) -> &'static str {
                match self { $(Event::$variant => $code),* }
            }
        }
    };
}

events! {
    ServerStart => "sys_startup",
    ServerStop => "sys_shutdown",
    ConfigChanged => "sys_config_changed",
    CertGenerated => "cert_generated",
    CertImported => "cert_imported",
    CertExpiryWarning => "cert_expiry_warning",
    CryptDecryptFail => "crypt_decrypt_fail",
    SetupLinkIssued => "setup_link_issued",
    SetupCompleted => "setup_completed",
    LoginSuccess => "authn_login_success",
    LoginFail => "authn_login_fail",
    LoginLock => "authn_login_lock",
    LoginLocked => "authn_login_fail_max",
    MfaFail => "authn_mfa_fail",
    MfaLock => "authn_mfa_lock",
    TokenReuse => "authn_token_reuse",
    StepUp => "authn_step_up",
    Logout => "session_logout",
    LinkInvalid => "authn_link_invalid",
    AuthzFail => "authz_fail",
    MaliciousCsrf => "malicious_csrf",
    MaliciousDirectReference => "malicious_direct_reference",
    RateLimited => "excess_rate_limit_exceeded",
    TenantCreated => "tenant_created",
    TenantUpdated => "tenant_updated",
    UserCreated => "user_created",
    UserEnrolled => "user_enrolled",
    UserUpdated => "user_updated",
    UserMadeAdmin => "user_made_admin",
    UserRoleAdded => "user_role_added",
    UserRoleRemoved => "user_role_removed",
    UserTenantsAssigned => "user_tenants_assigned",
    UserMfaPaused => "user_mfa_paused",
    UserDisabled => "user_disabled",
    UserEnabled => "user_enabled",
    UserErased => "user_erased",
    UserEnrollmentReset => "user_enrollment_reset",
    UserUnlocked => "user_unlocked",
    UserSessionsEnded => "user_sessions_ended",
    PasswordChanged => "user_password_changed",
    MfaReenrolled => "user_mfa_reenrolled",
    RoleCreated => "role_created",
    RoleDeleted => "role_deleted",
    ApiTokenCreated => "api_token_created",
    ApiTokenRevoked => "api_token_revoked",
    EnrollmentTokenCreated => "enrollment_token_created",
    EnrollmentTokenRevoked => "enrollment_token_revoked",
    DeviceEnrolled => "device_enrolled",
    DeviceEnrollFail => "device_enroll_fail",
    DeviceAuthFail => "device_auth_fail",
    DeviceSecretIssued => "device_secret_issued",
    DeviceSecretRotated => "device_secret_rotated",
    DeviceRetired => "device_retired",
    DeviceAlertDismissed => "device_alert_dismissed",
    DeviceSilent => "device_silent",
    AgentRestarted => "agent_restarted",
    StandingAdminRemoved => "standing_admin_removed",
    DeviceBack => "device_back",
    AgentVersionChanged => "agent_version_changed",
    CommandQueued => "command_queued",
    CommandDone => "command_done",
    CommandFailed => "command_failed",
    CommandRefused => "command_refused",
    DeviceEvent => "device_event",
    Ppam => "ppam_blocked",
    SessionLogon => "300",
    ElevateOnDemand => "101",
    PassiveToken => "106",
    RequestCreated => "request_created",
    RequestDeclined => "request_declined",
    RequestApproved => "request_approved",
    RequestDenied => "request_denied",
    RequestRevoked => "request_revoked",
    RequestTimedOut => "request_timed_out",
    RequestExpired => "request_expired",
    RequestEnded => "request_ended_by_user",
    GrantFailed => "request_grant_failed",
    SessionExtended => "session_extended",
    AutoRuleCreated => "auto_rule_created",
    AutoRuleDeleted => "auto_rule_deleted",
    LoginStarted => "login_started",
    LoginActive => "login_active",
    LoginEnded => "login_ended",
    LoginRevoked => "login_revoked",
    LoginExpired => "login_expired",
    LoginFailed => "login_failed",
    OfflineLogin => "login_offline",
    OfflineLoginRefused => "login_offline_refused",
    SensitiveRead => "sensitive_read",
    CredentialsPurged => "credential_history_purged",
    SharedModeEnabled => "login_shared_mode_enabled",
    OfflineSecretRotated => "offline_secret_rotated",
    LoginOutsideSession => "login_outside_session",
    EndpointUserLinked => "endpoint_user_linked",
    CredentialRollback => "credential_rollback_detected",
    StrayRotated => "login_outside_session_rotated",
    PolicyCreated => "policy_created",
    PolicyUpdated => "policy_updated",
    PolicyDeleted => "policy_deleted",
    PoliciesImported => "policies_imported",
    ElevationAllowed => "elevation_allowed",
    ElevationDenied => "elevation_denied",
    ElevationAsked => "elevation_asked",
    AuditExported => "audit_exported",
    BackupCreated => "backup_created",
    BackupRestored => "backup_restored",
    WebhookCreated => "webhook_created",
    WebhookDeleted => "webhook_deleted",
    WebhookFailed => "webhook_delivery_failed",
}

impl Event {
    pub fn from_code(code: &str) -> Option<Event> {
        Event::ALL.iter().copied().find(|e| e.code() == code)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    System,
    User,
    ApiToken,
    Device,
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::System => "system",
            ActorKind::User => "user",
            ActorKind::ApiToken => "api_token",
            ActorKind::Device => "device",
            ActorKind::Anonymous => "anonymous",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            ActorKind::System,
            ActorKind::User,
            ActorKind::ApiToken,
            ActorKind::Device,
            ActorKind::Anonymous,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The hashed content of one entry, in a fixed field order. Ids only: no names or emails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub at: Timestamp,
    pub event: String,
    pub outcome: Outcome,
    pub tenant_id: Option<String>,
    pub actor_kind: ActorKind,
    pub actor_id: Option<String>,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub device_id: Option<String>,
    pub request_identifier: Option<String>,
    pub ticket_identifier: Option<String>,
    pub ip: Option<String>,
    pub http_request_id: Option<String>,
    /// A JSON object, stored as text.
    pub details: String,
}

impl Entry {
    /// Canonical bytes: JSON with the struct's fixed field order and no whitespace.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

pub const GENESIS: [u8; 32] = [0u8; 32];

pub fn chain_hash(seq: i64, prev: &[u8], entry: &Entry) -> [u8; 32] {
    let mut buf = Vec::with_capacity(1 + 8 + 32 + 256);
    buf.push(0x00);
    buf.extend_from_slice(&(seq as u64).to_be_bytes());
    buf.extend_from_slice(prev);
    buf.extend_from_slice(&entry.canonical());
    sha256(&buf)
}

/// Where and why a chain stopped being valid.
/// Outcome of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked: u64,
    pub broken: Option<Break>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub reason: &'static str,
}

/// Checks stored rows one at a time, in `seq` order, without holding them all in memory.
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev: [u8; 32],
    pub checked: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev: GENESIS,
            checked: 0,
        }
    }
}

impl Verifier {
    pub fn push(
        &mut self,
        seq: i64,
        entry: &Entry,
        prev_hash: &[u8],
        hash: &[u8],
    ) -> Result<(), Break> {
        if seq != self.expected_seq {
            // A gap (deleted row) or a duplicate/reordered number: the first expected one is bad.
            return Err(Break {
                seq: self.expected_seq.min(seq),
                reason: "sequence gap or reorder",
            });
        }
        if prev_hash != self.prev {
            return Err(Break {
                seq,
                reason: "previous-hash link broken",
            });
        }
        let h = chain_hash(seq, prev_hash, entry);
        if hash != h {
            return Err(Break {
                seq,
                reason: "entry content does not match its hash",
            });
        }
        self.prev = h;
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// Compares the end of the chain with the recorded head (seq, hash).
    pub fn finish(&self, head: Option<(i64, Vec<u8>)>) -> Result<(), Break> {
        let last = self.expected_seq - 1;
        match head {
            None if last == 0 => Ok(()),
            None => Err(Break {
                seq: 1,
                reason: "chain head record missing",
            }),
            Some((seq, hash)) if seq == last && hash == self.prev => Ok(()),
            Some((seq, _)) if seq > last => Err(Break {
                seq: last + 1,
                reason: "entries missing at the end of the log",
            }),
            Some(_) => Err(Break {
                seq: last,
                reason: "chain head does not match the last entry",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(i: i64) -> Entry {
        Entry {
            id: format!("id-{i}"),
            at: Timestamp(1_700_000_000_000 + i),
            event: Event::ConfigChanged.code().into(),
            outcome: Outcome::Success,
            tenant_id: None,
            actor_kind: ActorKind::System,
            actor_id: None,
            target_kind: None,
            target_id: None,
            device_id: None,
            request_identifier: None,
            ticket_identifier: None,
            ip: None,
            http_request_id: None,
            details: format!("{{\"n\":{i}}}"),
        }
    }

    /// (seq, entry, prev_hash, hash) rows as the store would hold them.
    fn chain(n: i64) -> Vec<(i64, Entry, Vec<u8>, Vec<u8>)> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let e = entry(seq);
                let h = chain_hash(seq, &prev, &e).to_vec();
                let row = (seq, e, prev.clone(), h.clone());
                prev = h;
                row
            })
            .collect()
    }

    fn verify(
        rows: &[(i64, Entry, Vec<u8>, Vec<u8>)],
        head: Option<(i64, Vec<u8>)>,
    ) -> Result<u64, Break> {
        let mut v = Verifier::default();
        for (seq, e, p, h) in rows {
            v.push(*seq, e, p, h)?;
        }
        v.finish(head)?;
        Ok(v.checked)
    }

    fn head(rows: &[(i64, Entry, Vec<u8>, Vec<u8>)]) -> Option<(i64, Vec<u8>)> {
        rows.last().map(|r| (r.0, r.3.clone()))
    }

    #[test]
    fn a_good_chain_verifies() {
        let rows = chain(20);
        assert_eq!(verify(&rows, head(&rows)), Ok(20));
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn event_codes_are_unique_and_parse_back() {
        let mut codes: Vec<_> = Event::ALL.iter().map(|e| e.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Event::ALL.len());
        for e in Event::ALL {
            assert_eq!(Event::from_code(e.code()), Some(*e));
        }
    }

    proptest! {
        #[test]
        fn any_edit_is_found_at_its_row(n in 2i64..40, pick in any::<prop::sample::Index>(), field in 0u8..4) {
            let mut rows = chain(n);
            let head = head(&rows);
            let i = pick.index(rows.len());
            match field {
                0 => rows[i].1.details = "{\"n\":-1}".into(),
                1 => rows[i].1.at = Timestamp(rows[i].1.at.0 + 1),
                2 => rows[i].1.outcome = Outcome::Failure,
                _ => rows[i].1.actor_id = Some("intruder".into()),
            }
            prop_assert_eq!(verify(&rows, head).map_err(|b| b.seq), Err(rows[i].0));
        }

        #[test]
        fn any_deletion_is_found(n in 2i64..40, pick in any::<prop::sample::Index>()) {
            let mut rows = chain(n);
            let head = head(&rows);
            let i = pick.index(rows.len());
            rows.remove(i);
            prop_assert_eq!(verify(&rows, head).map_err(|b| b.seq), Err(i as i64 + 1));
        }

        #[test]
        fn any_insertion_is_found(n in 2i64..40, pick in any::<prop::sample::Index>()) {
            let mut rows = chain(n);
            let head = head(&rows);
            let i = pick.index(rows.len());
            // A forged row takes number i+1; later rows are renumbered to make room.
            let mut forged = rows[i].clone();
            forged.1.details = "{\"forged\":true}".into();
            for r in rows.iter_mut().skip(i) { r.0 += 1; }
            rows.insert(i, forged);
            prop_assert_eq!(verify(&rows, head).map_err(|b| b.seq), Err(i as i64 + 1));
        }

        #[test]
        fn any_reorder_is_found(n in 3i64..40, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
            let mut rows = chain(n);
            let head = head(&rows);
            let (i, j) = (a.index(rows.len()), b.index(rows.len()));
            prop_assume!(i != j);
            // Swap contents but keep the numbering, as an UPDATE-based reorder would.
            let (lo, hi) = (i.min(j), i.max(j));
            let (ei, ej) = (rows[lo].1.clone(), rows[hi].1.clone());
            rows[lo].1 = ej;
            rows[hi].1 = ei;
            prop_assert_eq!(verify(&rows, head).map_err(|b| b.seq), Err(lo as i64 + 1));
        }
    }
}
