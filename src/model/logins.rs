//! Technician JIT logins (DESIGN §5): which account a person uses, the per-session
//! passwords (CRY-05), session states and the offline-code rules (MFA-06/07).

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{CommandId, DeviceId, LoginId, TenantId, UserId};
use crate::model::tenants::{LoginMode, TenantKind};

/// Default and bounds of a login session, minutes.
pub const DEFAULT_MINUTES: u32 = 60;
pub const MIN_MINUTES: u32 = 5;
/// How long an offline login lasts before the agent rotates and disables the account.
pub const OFFLINE_MINUTES: u32 = 60;
/// How long a managed account's log-on outside any session waits before the account is
/// rotated and disabled (a session being started, or an offline login being reported).
pub const STRAY_GRACE_SECS: i64 = 5 * 60;
/// Old escrowed passwords kept per account and workstation (CRED-02).
pub const HISTORY: usize = 3;
/// The shared secret is rotated at least this often (MFA-07).
pub const SHARED_SECRET_MAX_AGE_MS: i64 = 30 * 86_400_000;
/// Consecutive wrong offline codes before the agent stops accepting codes for a while.
pub const OFFLINE_MAX_FAILURES: u32 = 10;
pub const OFFLINE_LOCK_MS: i64 = 15 * 60_000;

/// Workstation passwords: 24 symbols from a 64-symbol alphabet = 144 bits (CRY-05: ≥ 20
/// characters, ≥ 120 bits). No quotes, backslash, colon or space, so they survive shells,
/// `chpasswd` and copy-paste.
pub const PASSWORD_LEN: usize = 24;
pub const ALPHABET: &[u8; 64] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789#%+-=?@";

/// A password from random bytes (the service or agent draws them): each symbol from 6
/// random bits, so every symbol is equally likely. Pure, so the rule is testable.
pub fn password_from(random: &[u8; PASSWORD_LEN]) -> zeroize::Zeroizing<String> {
    zeroize::Zeroizing::new(
        random
            .iter()
            .map(|b| ALPHABET[usize::from(b & 63)] as char)
            .collect(),
    )
}

/// The account a person uses on a workstation in named mode: MSP staff `msp-<username>`,
/// a customer's own staff `co-<username>` (their usernames usually carry the prefix already).
pub fn named_account(person_tenant: TenantKind, username: &str) -> String {
    match person_tenant {
        TenantKind::Msp => format!("msp-{username}"),
        TenantKind::Customer if username.starts_with("co-") => username.to_string(),
        TenantKind::Customer => format!("co-{username}"),
    }
}

/// The longest username a person of this kind of tenant may have, so that their workstation
/// account (`msp-` + username, or `co-…`) fits Windows' 20-character limit.
pub fn username_max(person_tenant: TenantKind) -> usize {
    match person_tenant {
        TenantKind::Msp => crate::model::users::USERNAME_MAX - "msp-".len(),
        TenantKind::Customer => crate::model::users::USERNAME_MAX,
    }
}

/// Refuses a username whose workstation account Windows would not take (CONVENTIONS: said
/// where it is chosen, never cut short on the workstation).
pub fn check_account_fits(person_tenant: TenantKind, username: &str) -> Result<()> {
    let account = named_account(person_tenant, username);
    let max = crate::model::users::USERNAME_MAX;
    if account.chars().count() > max {
        return Err(crate::error::Error::validation(
            "username",
            format!(
                "gives the workstation account {account} ({} characters); Windows allows at most {max}: choose a shorter username",
                account.chars().count()
            ),
        ));
    }
    Ok(())
}

/// `msp-` + four digits from two random bytes, for a tenant switching to shared mode.
pub fn shared_account_candidate(random: [u8; 2]) -> String {
    format!("msp-{:04}", u16::from_le_bytes(random) % 10_000)
}

/// The account for a login: named per person, or the tenant's shared one.
pub fn account_for(
    mode: LoginMode,
    shared: Option<&str>,
    person_tenant: TenantKind,
    username: &str,
) -> Result<String> {
    match mode {
        LoginMode::Named => Ok(named_account(person_tenant, username)),
        LoginMode::Shared => shared.map(str::to_string).ok_or_else(|| {
            Error::InvalidState("this tenant's shared account is not set up yet".into())
        }),
    }
}

/// Checks the duration of a login session.
pub fn check_minutes(minutes: Option<i64>, max: u32) -> Result<u32> {
    let m = minutes.unwrap_or(i64::from(DEFAULT_MINUTES.min(max)));
    if m < i64::from(MIN_MINUTES) || m > i64::from(max) {
        return Err(Error::validation(
            "duration_minutes",
            format!("must be between {MIN_MINUTES} and {max} minutes (this tenant's maximum)"),
        ));
    }
    Ok(m as u32)
}

/// States of a login session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The account order is queued; the workstation has not confirmed it yet.
    Waiting,
    Active,
    Ended,
    Expired,
    Revoked,
    Failed,
}

impl State {
    pub const ALL: &'static [State] = &[
        State::Waiting,
        State::Active,
        State::Ended,
        State::Expired,
        State::Revoked,
        State::Failed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Active => "active",
            State::Ended => "ended",
            State::Expired => "expired",
            State::Revoked => "revoked",
            State::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.iter().copied().find(|x| x.as_str() == s)
    }
    pub fn is_open(self) -> bool {
        matches!(self, State::Waiting | State::Active)
    }
    pub fn label(self) -> &'static str {
        match self {
            State::Waiting => "waiting for the workstation",
            State::Active => "active",
            State::Ended => "ended",
            State::Expired => "expired",
            State::Revoked => "revoked",
            State::Failed => "failed on the workstation",
        }
    }
}

/// A row of `logins` as the services see it (read by `store::logins`).
#[derive(Clone, Debug)]
pub struct Login {
    pub id: LoginId,
    pub tenant_id: TenantId,
    pub device_id: DeviceId,
    pub hostname: String,
    pub user_id: UserId,
    /// The person's email (or their pseudonym once erased).
    pub email: String,
    pub account: String,
    pub state: State,
    pub minutes: u32,
    pub ticket: Option<String>,
    pub revealed: bool,
    pub version: i64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub expires_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub ended_by: Option<String>,
    /// Why the workstation refused the login (state `failed`).
    pub failure: Option<String>,
}

super::text_enum! {
    /// Why a workstation password was set.
    pub enum CredentialReason {
        /// For a technician's login session.
        Login = "login",
        /// A scheduled or forced rotation.
        Rotation = "rotation",
    }
}

super::text_enum! {
    /// Where an escrowed password stands.
    pub enum CredentialState {
        /// Sealed and ordered; the workstation has not confirmed it.
        Pending = "pending",
        /// The password the account has now.
        Current = "current",
        /// Replaced (kept a while for recovery).
        Old = "old",
        /// The order never took effect.
        Failed = "failed",
    }
}

#[derive(Clone, Debug)]
pub struct Credential {
    pub id: String,
    pub tenant_id: TenantId,
    pub device_id: DeviceId,
    pub account: String,
    pub login_id: Option<LoginId>,
    pub command_id: Option<CommandId>,
    pub reason: CredentialReason,
    pub state: CredentialState,
    pub password_sealed: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub activated_at: Option<Timestamp>,
}

/// What a login entry says in words, from names joined in when the log is read: the chain
/// keeps only ids (DESIGN §6), so an erased person reads as their pseudonym.
pub struct Names<'a> {
    pub who: &'a str,
    pub hostname: &'a str,
    pub account: &'a str,
}

/// The seed's line for a technician-login event ("nik@… logged into ACME-LT-001 with account
/// msp-nik"); None for other events.
pub fn sentence(event: &str, shared: bool, n: &Names<'_>) -> Option<String> {
    let what = match event {
        "login_started" => "started a login session",
        "login_active" => {
            let verb = if shared { "accessed" } else { "logged into" };
            return Some(format!(
                "{} {verb} {} with account {}",
                n.who, n.hostname, n.account
            ));
        }
        "login_ended" => "ended the login session",
        "login_revoked" => "had the login session revoked",
        "login_expired" => "reached the end of the login session",
        "login_failed" => "could not log in",
        _ => return None,
    };
    Some(format!(
        "{} {what} on {} with account {}",
        n.who, n.hostname, n.account
    ))
}

/// The line of an offline login: a named code names its person, a shared one nobody.
pub fn offline_sentence(
    who: Option<&str>,
    hostname: &str,
    account: &str,
    code_time: &str,
) -> String {
    format!(
        "{} logged into {hostname} offline with account {account} (code of {code_time})",
        who.unwrap_or("someone with the offline code")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn login_entries_read_as_the_seed_line() {
        let n = Names {
            who: "nik@nikpot.com",
            hostname: "ACME-LT-001",
            account: "msp-nik",
        };
        assert_eq!(
            sentence("login_active", false, &n).unwrap(),
            "nik@nikpot.com logged into ACME-LT-001 with account msp-nik"
        );
        assert_eq!(
            sentence("login_active", true, &n).unwrap(),
            "nik@nikpot.com accessed ACME-LT-001 with account msp-nik"
        );
        assert_eq!(
            sentence("login_failed", false, &n).unwrap(),
            "nik@nikpot.com could not log in on ACME-LT-001 with account msp-nik"
        );
        assert_eq!(sentence("request_approved", false, &n), None);
        assert!(
            offline_sentence(None, "H", "msp-1234", "t")
                .starts_with("someone with the offline code")
        );
    }

    #[test]
    fn passwords_are_long_unique_and_uniform() {
        let n = 200_000;
        let mut seen = HashSet::new();
        let mut counts = [0u64; 64];
        for _ in 0..n {
            let p = password_from(&crate::crypto::random_secret().unwrap());
            assert_eq!(p.len(), PASSWORD_LEN);
            for b in p.bytes() {
                let i = ALPHABET.iter().position(|a| *a == b).expect("alphabet");
                counts[i] += 1;
            }
            assert!(seen.insert(p.to_string()), "duplicate password");
        }
        // Chi-square over 64 symbols (63 degrees of freedom): 0.1% critical value ≈ 103.4.
        let expected = (n * PASSWORD_LEN) as f64 / 64.0;
        let chi: f64 = counts
            .iter()
            .map(|c| (*c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi < 103.4, "chi-square {chi}");
        assert!(PASSWORD_LEN as f64 * 6.0 >= 120.0);
        let distinct: HashSet<_> = ALPHABET.iter().collect();
        assert_eq!(distinct.len(), 64);
    }

    #[test]
    fn accounts_follow_the_mode() {
        assert_eq!(named_account(TenantKind::Msp, "nik"), "msp-nik");
        assert_eq!(named_account(TenantKind::Customer, "co-ann"), "co-ann");
        assert_eq!(named_account(TenantKind::Customer, "ann"), "co-ann");
    }

    #[test]
    fn workstation_accounts_fit_the_windows_limit() {
        use crate::model::users::{Email, USERNAME_MAX, Username};
        let email = Email::parse("maximilian.vonundzu@msp.example").unwrap();
        let u = Username::generate("", &email, username_max(TenantKind::Msp), |_| false).unwrap();
        let account = named_account(TenantKind::Msp, u.as_str());
        assert!(account.chars().count() <= USERNAME_MAX, "{account}");
        assert!(check_account_fits(TenantKind::Msp, u.as_str()).is_ok());
        let e = check_account_fits(TenantKind::Msp, "seventeen-letters")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("msp-seventeen-letters") && e.contains("at most 20"),
            "{e}"
        );
        assert!(check_account_fits(TenantKind::Customer, "co-exactly-twenty-ch").is_ok());
        assert!(check_account_fits(TenantKind::Customer, "eighteen-letters-x").is_err());
        assert!(check_account_fits(TenantKind::Msp, "nik").is_ok());
        assert_eq!(
            account_for(LoginMode::Shared, Some("msp-2356"), TenantKind::Msp, "nik").unwrap(),
            "msp-2356"
        );
        assert!(account_for(LoginMode::Shared, None, TenantKind::Msp, "nik").is_err());
        let c = shared_account_candidate(*crate::crypto::random_secret().unwrap());
        assert!(
            c.len() == 8 && c.starts_with("msp-") && c[4..].bytes().all(|b| b.is_ascii_digit())
        );
        assert!(crate::model::commands::is_managed_account(&c));
    }

    #[test]
    fn durations_are_bounded_by_the_tenant() {
        assert_eq!(check_minutes(None, 480).unwrap(), 60);
        assert_eq!(check_minutes(None, 30).unwrap(), 30);
        assert!(check_minutes(Some(4), 480).is_err());
        assert!(check_minutes(Some(481), 480).is_err());
    }
}
