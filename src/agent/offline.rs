//! `hourglass agent offline-login`: a technician gets in while the appliance is unreachable
//! (DESIGN §5, MFA-06). The code is checked here against the secret the appliance sent, on
//! the server's time as last learned; each code is accepted once (the last step is kept on
//! disk), repeated wrong codes lock the command for a while. The account is enabled with a
//! fresh password printed once; the running agent rotates it and disables the account when
//! the offline session is over, and uploads the events.
//!
//! The command and the daemon are separate processes: what they share lives in
//! `offline.json`, read and written only under an exclusive lock on `offline.lock`.

use crate::fsx::OwnerOnly;
use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::enforcer::event;
use super::os::Os;
use super::state::State;
use crate::clock::Timestamp;
use crate::crypto::totp;
use crate::error::{Error, Result};
use crate::model::commands::is_managed_account;
use crate::model::logins::{OFFLINE_LOCK_MS, OFFLINE_MAX_FAILURES, password_from};
use crate::proto::{Event, EventKind};

const FILE: &str = "offline.json";
const LOCK: &str = "offline.lock";

/// An offline session the daemon ends at `expires_at` (server-clock ms).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub account: String,
    pub expires_at: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Offline {
    /// The last TOTP step accepted: a code of this step or an earlier one is refused.
    pub last_step: u64,
    pub failures: u32,
    /// Server-clock ms until which no code is accepted.
    pub locked_until: i64,
    pub sessions: Vec<Session>,
    /// Events for the daemon to queue for upload.
    pub outbox: Vec<Event>,
    /// "Just this request" policies that have had their one run here.
    #[serde(default)]
    pub used_once: Vec<String>,
}

/// Runs `f` on the shared file under the lock and saves what it left when it changed, also
/// when `f` fails (a failed attempt must still count).
pub fn with<T>(dir: &Path, f: impl FnOnce(&mut Offline) -> Result<T>) -> Result<T> {
    super::state::ensure_dir(dir)?;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .owner_only()
        .open(dir.join(LOCK))?;
    lock.lock()?;
    let before = fs::read_to_string(dir.join(FILE)).unwrap_or_default();
    let mut o: Offline = serde_json::from_str(&before).unwrap_or_default();
    let out = f(&mut o);
    let after = serde_json::to_string(&o)?;
    if after == before {
        return out;
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .owner_only()
        .open(&tmp)?;
    file.write_all(after.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(FILE))?;
    drop(lock);
    out
}

/// Checks a code at server time `now`: the matched step must be newer than the last one.
pub fn check_code(o: &mut Offline, secret: &[u8], code: &str, now: i64) -> Result<u64> {
    if o.locked_until > now {
        return Err(Error::Locked(format!(
            "too many wrong codes: offline login is locked until {}",
            Timestamp::from_millis(o.locked_until).rfc3339()
        )));
    }
    match totp::check(secret, code, Timestamp::from_millis(now))? {
        Some(step) if step > o.last_step => {
            o.last_step = step;
            o.failures = 0;
            Ok(step)
        }
        matched => {
            o.failures += 1;
            if o.failures >= OFFLINE_MAX_FAILURES {
                o.failures = 0;
                o.locked_until = now + OFFLINE_LOCK_MS;
            }
            Err(Error::validation(
                "code",
                if matched.is_some() {
                    "this code has already been used; wait for the next one"
                } else {
                    "wrong code"
                },
            ))
        }
    }
}

/// What `offline-login` prints: the account, its password (once) and the deadline.
pub struct Granted {
    pub account: String,
    pub password: zeroize::Zeroizing<String>,
    pub expires_at: i64,
}

/// How the technician gave the code: the `offline-login` command or the login prompt (PAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Command,
    Pam,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Command => "command",
            Via::Pam => "login_prompt",
        }
    }
}

/// `hourglass agent offline-login --account A --code C`, or a code typed at the login prompt.
/// A refused code is told to the appliance too (wrong, reused or locked out).
pub fn login(
    dir: &Path,
    os: &dyn Os,
    (account, code): (&str, &str),
    via: Via,
    wall_ms: i64,
) -> Result<Granted> {
    let state = State::load(dir)?;
    let off = state.offline.clone().ok_or_else(|| {
        Error::InvalidState(
            "this workstation has no offline secret yet (it gets one with the first online login)"
                .into(),
        )
    })?;
    if !is_managed_account(account) {
        return Err(Error::validation(
            "account",
            "must be a technician account (msp-… or co-…)",
        ));
    }
    let secret = totp::from_base32(&off.secret)
        .map_err(|_| Error::internal("the stored offline secret is damaged"))?;
    // The server's time as last learned: the workstation's own clock may be off.
    let now = state.server_now(wall_ms);
    with(dir, |o| {
        let step = check_code(o, &secret, code, now).inspect_err(|e| {
            o.outbox.push(event(
                EventKind::OfflineLoginRefused,
                now,
                serde_json::json!({"account": account, "reason": e.to_string(), "via": via.as_str()}),
            ))
        })?;
        let password = password_from(&*crate::crypto::random_secret()?);
        os.ensure_account(account, &password, true)?;
        let expires_at = now + i64::from(off.minutes) * 60_000;
        o.sessions.retain(|s| s.account != account);
        o.sessions.push(Session {
            account: account.to_string(),
            expires_at,
        });
        o.outbox.push(event(
            EventKind::OfflineLogin,
            now,
            serde_json::json!({"account": account, "step": step, "expires_at": expires_at, "via": via.as_str()}),
        ));
        Ok(Granted {
            account: account.to_string(),
            password,
            expires_at,
        })
    })
}

/// The daemon's part, every tick: accounts of open offline sessions are ordered (not PPAM
/// intruders); finished ones get a new password nobody knows, are disabled and logged off.
/// `then` (the enforcer's own tick) runs under the same lock, so an offline login cannot add
/// its account between the two and be reverted as an intruder. Returns the events to upload.
pub fn tick(
    dir: &Path,
    os: &dyn Os,
    state: &mut State,
    now: i64,
    then: impl FnOnce(&mut State) -> Result<Vec<Event>>,
) -> Result<Vec<Event>> {
    with(dir, |o| {
        let mut events = std::mem::take(&mut o.outbox);
        for s in o.sessions.clone() {
            if s.expires_at > now {
                if !state.ordered_admins.contains(&s.account) {
                    state.ordered_admins.push(s.account.clone());
                }
                continue;
            }
            os.set_password(
                &s.account,
                &password_from(&*crate::crypto::random_secret()?),
            )?;
            os.disable_account(&s.account)?;
            os.logoff(&s.account)?;
            state.ordered_admins.retain(|a| *a != s.account);
            o.sessions.retain(|x| x.account != s.account);
            events.push(event(
                EventKind::OfflineSessionEnded,
                now,
                serde_json::json!({"account": s.account}),
            ));
        }
        events.extend(then(state)?);
        Ok(events)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::os::MemoryOs;

    const MIN: i64 = 60_000;

    #[test]
    fn each_code_once_wrong_codes_lock_and_the_server_time_decides() {
        let secret = totp::new_secret().unwrap();
        let server_now = 1_800_000_000_000i64;
        let code = totp::code_at(&secret, Timestamp::from_millis(server_now)).unwrap();
        let mut o = Offline::default();
        // The workstation's clock is 5 minutes behind; with the learned offset it works.
        let wall = server_now - 5 * MIN;
        assert!(check_code(&mut Offline::default(), &secret, &code, wall).is_err());
        let step = check_code(&mut o, &secret, &code, wall + 5 * MIN).unwrap();
        let again = check_code(&mut o, &secret, &code, server_now).unwrap_err();
        assert!(again.to_string().contains("already been used"), "{again}");
        // Saved and read back (a restart): still refused.
        let dir = tempfile::tempdir().unwrap();
        with(dir.path(), |x| {
            x.last_step = step;
            Ok(())
        })
        .unwrap();
        let replay = with(dir.path(), |x| check_code(x, &secret, &code, server_now));
        assert!(replay.is_err());
        for _ in 0..OFFLINE_MAX_FAILURES {
            let _ = check_code(&mut o, &secret, "000000", server_now);
        }
        let next = totp::code_at(&secret, Timestamp::from_millis(server_now + MIN)).unwrap();
        let locked = check_code(&mut o, &secret, &next, server_now + MIN).unwrap_err();
        assert!(locked.to_string().contains("locked"), "{locked}");
        assert!(check_code(&mut o, &secret, &next, server_now + 16 * MIN).is_err());
        let later = totp::code_at(&secret, Timestamp::from_millis(server_now + 16 * MIN)).unwrap();
        assert!(check_code(&mut o, &secret, &later, server_now + 16 * MIN).is_ok());
    }

    #[test]
    fn an_offline_session_is_ended_by_the_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let os = MemoryOs::default();
        let mut s = State::for_tests();
        with(dir.path(), |o| {
            o.sessions.push(Session {
                account: "msp-nik".into(),
                expires_at: 10 * MIN,
            });
            o.outbox
                .push(event(EventKind::OfflineLogin, 0, serde_json::json!({})));
            Ok(())
        })
        .unwrap();
        os.ensure_account("msp-nik", "pw", true).unwrap();
        let first = tick(dir.path(), &os, &mut s, MIN, |_| Ok(Vec::new())).unwrap();
        assert_eq!(first.len(), 1, "the login event is handed over once");
        assert!(s.ordered_admins.contains(&"msp-nik".to_string()));
        assert!(
            tick(dir.path(), &os, &mut s, 2 * MIN, |_| Ok(Vec::new()))
                .unwrap()
                .is_empty()
        );
        let ended = tick(dir.path(), &os, &mut s, 10 * MIN, |_| Ok(Vec::new())).unwrap();
        assert_eq!(ended[0].kind, EventKind::OfflineSessionEnded);
        assert!(!os.admin_members().unwrap().contains(&"msp-nik".to_string()));
        let m = os.state.lock().unwrap().clone();
        assert!(m.accounts["msp-nik"].1, "disabled");
        assert_ne!(m.accounts["msp-nik"].0, "pw", "rotated");
        assert!(m.log.contains(&"logoff msp-nik".to_string()));
    }
}
