//! The Windows back end of the agent's `Os` trait: local accounts in the SAM, the local
//! Administrators group (found by its well-known SID S-1-5-32-544, so "Administratoren" or
//! "Administrateurs" work), and terminal-services sessions. The logic lives here, over the
//! thin `WinApi` trait, so it runs against `FakeSam` on any OS; the real calls are in
//! `agent::win32` (Windows only). Passwords travel only as arguments, never to a log.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::os::{Os, no_such_account};
use super::utmp::LoggedOn;
use crate::error::{Error, Result};

/// Windows refuses local account names longer than this.
pub const NAME_MAX: usize = crate::model::users::USERNAME_MAX;

/// Characters Windows does not allow in an account name.
const BAD_CHARS: &[char] = &[
    '"', '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '@',
];

// The status codes the SAM and the group calls answer with (lmerr.h, winerror.h).
pub const NERR_SUCCESS: u32 = 0;
pub const ERROR_ACCESS_DENIED: u32 = 5;
pub const ERROR_NO_SUCH_ALIAS: u32 = 1376;
pub const ERROR_MEMBER_NOT_IN_ALIAS: u32 = 1377;
pub const ERROR_MEMBER_IN_ALIAS: u32 = 1378;
pub const ERROR_NO_SUCH_MEMBER: u32 = 1387;
pub const NERR_BAD_USERNAME: u32 = 2202;
pub const NERR_GROUP_NOT_FOUND: u32 = 2220;
pub const NERR_USER_NOT_FOUND: u32 = 2221;
pub const NERR_USER_EXISTS: u32 = 2224;
pub const NERR_PASSWORD_TOO_SHORT: u32 = 2245;

/// What a Win32 call reported, by meaning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WinError {
    UserExists,
    UserNotFound,
    BadName,
    /// Length, complexity or history: the local password policy said no.
    PasswordPolicy,
    GroupNotFound,
    AlreadyMember,
    NotMember,
    AccessDenied,
    Failed {
        call: &'static str,
        code: u32,
    },
}

impl WinError {
    pub fn from_code(call: &'static str, code: u32) -> WinError {
        match code {
            NERR_USER_EXISTS => WinError::UserExists,
            NERR_USER_NOT_FOUND | ERROR_NO_SUCH_MEMBER => WinError::UserNotFound,
            NERR_BAD_USERNAME => WinError::BadName,
            NERR_PASSWORD_TOO_SHORT => WinError::PasswordPolicy,
            NERR_GROUP_NOT_FOUND | ERROR_NO_SUCH_ALIAS => WinError::GroupNotFound,
            ERROR_MEMBER_IN_ALIAS => WinError::AlreadyMember,
            ERROR_MEMBER_NOT_IN_ALIAS => WinError::NotMember,
            ERROR_ACCESS_DENIED => WinError::AccessDenied,
            code => WinError::Failed { call, code },
        }
    }

    /// The agent's error: refusals the approver should read as they are, the rest internal.
    fn into_error(self, account: &str) -> Error {
        match self {
            WinError::UserNotFound => no_such_account(account),
            WinError::BadName => Error::InvalidState(format!(
                "Windows refused the account name {account}: at most {NAME_MAX} characters, none of \"/\\[]:;|=,+*?<>@"
            )),
            WinError::PasswordPolicy => Error::InvalidState(format!(
                "the workstation's password policy refused the new password for {account} (length, complexity or history)"
            )),
            WinError::GroupNotFound => Error::InvalidState(
                "this workstation has no local Administrators group (S-1-5-32-544)".into(),
            ),
            WinError::AccessDenied => Error::InvalidState(
                "access denied: the agent must run as the Hourglass service (LocalSystem)".into(),
            ),
            WinError::UserExists | WinError::AlreadyMember | WinError::NotMember => {
                Error::internal(format!("unexpected answer for {account}: {self:?}"))
            }
            WinError::Failed { call, code } => {
                Error::internal(format!("{call} failed with error {code}"))
            }
        }
    }
}

/// One terminal-services session with a user in it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub id: u32,
    pub user: String,
    /// The window station ("Console", "RDP-Tcp#3").
    pub station: String,
    /// When the user logged on (Unix seconds).
    pub logon_at: i64,
}

/// The Win32 calls the back end needs, one method each, names as Windows gives them.
pub trait WinApi: Send + Sync {
    fn user_exists(&self, name: &str) -> std::result::Result<bool, WinError>;
    /// NetUserAdd (level 1): a normal, enabled user whose password does not expire.
    fn add_user(&self, name: &str, password: &str) -> std::result::Result<(), WinError>;
    /// NetUserSetInfo level 1003.
    fn set_password(&self, name: &str, password: &str) -> std::result::Result<(), WinError>;
    /// NetUserSetInfo level 1008: UF_ACCOUNTDISABLE cleared or set, other flags kept.
    fn set_enabled(&self, name: &str, enabled: bool) -> std::result::Result<(), WinError>;
    /// NetUserDel.
    fn delete_user(&self, name: &str) -> std::result::Result<(), WinError>;
    /// The local name of S-1-5-32-544 (CreateWellKnownSid + LookupAccountSidW).
    fn administrators_group(&self) -> std::result::Result<String, WinError>;
    fn group_members(&self, group: &str) -> std::result::Result<Vec<String>, WinError>;
    fn add_to_group(&self, group: &str, name: &str) -> std::result::Result<(), WinError>;
    fn remove_from_group(&self, group: &str, name: &str) -> std::result::Result<(), WinError>;
    /// Sessions with a user (WTSEnumerateSessionsW + WTSQuerySessionInformationW).
    fn sessions(&self) -> std::result::Result<Vec<Session>, WinError>;
    fn logoff_session(&self, id: u32) -> std::result::Result<(), WinError>;
    /// A message box in the session, not waited for (WTSSendMessageW).
    fn send_message(&self, id: u32, title: &str, text: &str) -> std::result::Result<(), WinError>;
}

/// Whether Windows would accept `name` as a local account name.
pub fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > NAME_MAX || name.ends_with('.') || name.contains(BAD_CHARS) {
        return Err(WinError::BadName.into_error(name));
    }
    Ok(())
}

/// A command line that Windows programs split back into exactly `program` and `args`
/// (the CommandLineToArgvW rules: quotes around spaces, backslashes doubled before a quote).
pub fn command_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(quote_arg)
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote_arg(a: &str) -> String {
    if !a.is_empty() && !a.contains([' ', '\t', '\n', '"']) {
        return a.to_string();
    }
    let mut out = String::from('"');
    let mut slashes = 0;
    for c in a.chars() {
        match c {
            '\\' => slashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(slashes * 2 + 1));
                out.push('"');
                slashes = 0;
            }
            c => {
                out.push_str(&"\\".repeat(slashes));
                out.push(c);
                slashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(slashes * 2));
    out.push('"');
    out
}

pub struct WindowsSam<A: WinApi> {
    api: A,
}

impl<A: WinApi> WindowsSam<A> {
    pub fn new(api: A) -> Self {
        WindowsSam { api }
    }

    pub fn api(&self) -> &A {
        &self.api
    }

    fn group(&self) -> Result<String> {
        self.api
            .administrators_group()
            .map_err(|e| e.into_error("Administrators"))
    }
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl<A: WinApi> Os for WindowsSam<A> {
    fn ensure_account(&self, name: &str, password: &str, admin: bool) -> Result<()> {
        check_name(name)?;
        let e = |w: WinError| w.into_error(name);
        let existed = self.api.user_exists(name).map_err(e)?;
        if existed {
            self.api.set_password(name, password).map_err(e)?;
        } else {
            // Created with its password: a refused password leaves no account behind.
            self.api.add_user(name, password).map_err(e)?;
        }
        self.api.set_enabled(name, true).map_err(e)?;
        if admin && let Err(err) = self.add_admin(name) {
            // Not left enabled without the rights it was enabled for.
            let _ = self.api.set_enabled(name, false);
            return Err(err);
        }
        Ok(())
    }

    fn set_password(&self, name: &str, password: &str) -> Result<()> {
        self.api
            .set_password(name, password)
            .map_err(|w| w.into_error(name))
    }

    fn disable_account(&self, name: &str) -> Result<()> {
        if !self.api.user_exists(name).map_err(|w| w.into_error(name))? {
            return Ok(());
        }
        self.remove_admin(name)?;
        self.api
            .set_enabled(name, false)
            .map_err(|w| w.into_error(name))
    }

    fn delete_account(&self, name: &str) -> Result<()> {
        self.remove_admin(name)?;
        match self.api.delete_user(name) {
            Ok(()) | Err(WinError::UserNotFound) => Ok(()),
            Err(w) => Err(w.into_error(name)),
        }
    }

    fn add_admin(&self, name: &str) -> Result<()> {
        let group = self.group()?;
        match self.api.add_to_group(&group, name) {
            Ok(()) | Err(WinError::AlreadyMember) => Ok(()),
            Err(w) => Err(w.into_error(name)),
        }
    }

    fn remove_admin(&self, name: &str) -> Result<()> {
        let group = self.group()?;
        match self.api.remove_from_group(&group, name) {
            Ok(()) | Err(WinError::NotMember) | Err(WinError::UserNotFound) => Ok(()),
            Err(w) => Err(w.into_error(name)),
        }
    }

    fn admin_members(&self) -> Result<Vec<String>> {
        let group = self.group()?;
        self.api
            .group_members(&group)
            .map_err(|w| w.into_error(&group))
    }

    fn logoff(&self, name: &str) -> Result<()> {
        let sessions = self.api.sessions().map_err(|w| w.into_error(name))?;
        for s in sessions.iter().filter(|s| same(&s.user, name)) {
            self.api
                .logoff_session(s.id)
                .map_err(|w| w.into_error(name))?;
        }
        Ok(())
    }

    fn notify(&self, message: &str) -> Result<()> {
        let sessions = self.api.sessions().map_err(|w| w.into_error("session"))?;
        for s in &sessions {
            // One unreachable session must not keep the message from the others.
            if let Err(w) = self.api.send_message(s.id, "Hourglass", message) {
                tracing::warn!(session = s.id, "cannot show a message: {w:?}");
            }
        }
        Ok(())
    }

    fn logged_on(&self) -> Vec<LoggedOn> {
        self.api
            .sessions()
            .unwrap_or_default()
            .into_iter()
            .map(|s| LoggedOn {
                user: s.user,
                line: s.station,
                host: String::new(),
                at: s.logon_at,
            })
            .collect()
    }

    fn has_account(&self, name: &str) -> Option<bool> {
        self.api.user_exists(name).ok()
    }
}

/// An in-memory SAM that answers like Windows does: case-insensitive names, the 20-character
/// limit, `NERR_UserExists`, a password policy (minimum length), enabled and disabled
/// accounts, a localised Administrators group, and sessions. For tests and for running the
/// Windows back end where there is no Windows (`agent run --os-backend fake-sam`).
#[derive(Default)]
pub struct FakeSam {
    pub state: Mutex<FakeState>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FakeUser {
    pub name: String,
    pub password: String,
    pub enabled: bool,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FakeState {
    /// Lower-cased name → user.
    pub users: BTreeMap<String, FakeUser>,
    /// The Administrators group's local name; None: the group is missing.
    pub admin_group: Option<String>,
    pub admins: Vec<String>,
    pub sessions: Vec<Session>,
    pub min_password_len: usize,
    /// Messages shown: (session, text).
    pub messages: Vec<(u32, String)>,
}

impl Default for FakeState {
    fn default() -> Self {
        FakeState {
            users: BTreeMap::new(),
            admin_group: Some("Administrators".into()),
            admins: vec!["Administrator".into()],
            sessions: Vec::new(),
            min_password_len: 14,
            messages: Vec::new(),
        }
    }
}

impl FakeSam {
    pub fn with(state: FakeState) -> Self {
        FakeSam {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> FakeState {
        self.lock().clone()
    }

    fn group_ok(s: &FakeState, group: &str) -> std::result::Result<(), WinError> {
        match &s.admin_group {
            Some(g) if same(g, group) => Ok(()),
            _ => Err(WinError::GroupNotFound),
        }
    }
}

impl WinApi for FakeSam {
    fn user_exists(&self, name: &str) -> std::result::Result<bool, WinError> {
        Ok(self.lock().users.contains_key(&name.to_lowercase()))
    }
    fn add_user(&self, name: &str, password: &str) -> std::result::Result<(), WinError> {
        let mut s = self.lock();
        if name.chars().count() > NAME_MAX || name.contains(BAD_CHARS) {
            return Err(WinError::from_code("NetUserAdd", NERR_BAD_USERNAME));
        }
        if s.users.contains_key(&name.to_lowercase()) {
            return Err(WinError::from_code("NetUserAdd", NERR_USER_EXISTS));
        }
        if password.chars().count() < s.min_password_len {
            return Err(WinError::from_code("NetUserAdd", NERR_PASSWORD_TOO_SHORT));
        }
        s.users.insert(
            name.to_lowercase(),
            FakeUser {
                name: name.into(),
                password: password.into(),
                enabled: true,
            },
        );
        Ok(())
    }
    fn set_password(&self, name: &str, password: &str) -> std::result::Result<(), WinError> {
        let mut s = self.lock();
        let min = s.min_password_len;
        let u = s
            .users
            .get_mut(&name.to_lowercase())
            .ok_or(WinError::UserNotFound)?;
        if password.chars().count() < min {
            return Err(WinError::from_code(
                "NetUserSetInfo",
                NERR_PASSWORD_TOO_SHORT,
            ));
        }
        u.password = password.into();
        Ok(())
    }
    fn set_enabled(&self, name: &str, enabled: bool) -> std::result::Result<(), WinError> {
        let mut s = self.lock();
        let u = s
            .users
            .get_mut(&name.to_lowercase())
            .ok_or(WinError::UserNotFound)?;
        u.enabled = enabled;
        Ok(())
    }
    fn delete_user(&self, name: &str) -> std::result::Result<(), WinError> {
        let mut s = self.lock();
        let u = s
            .users
            .remove(&name.to_lowercase())
            .ok_or(WinError::UserNotFound)?;
        s.admins.retain(|a| !same(a, &u.name));
        Ok(())
    }
    fn administrators_group(&self) -> std::result::Result<String, WinError> {
        self.lock()
            .admin_group
            .clone()
            .ok_or(WinError::GroupNotFound)
    }
    fn group_members(&self, group: &str) -> std::result::Result<Vec<String>, WinError> {
        let s = self.lock();
        Self::group_ok(&s, group)?;
        Ok(s.admins.clone())
    }
    fn add_to_group(&self, group: &str, name: &str) -> std::result::Result<(), WinError> {
        let mut s = self.lock();
        Self::group_ok(&s, group)?;
        let Some(u) = s.users.get(&name.to_lowercase()).map(|u| u.name.clone()) else {
            return Err(WinError::from_code(
                "NetLocalGroupAddMembers",
                ERROR_NO_SUCH_MEMBER,
            ));
        };
        if s.admins.iter().any(|a| same(a, name)) {
            return Err(WinError::from_code(
                "NetLocalGroupAddMembers",
                ERROR_MEMBER_IN_ALIAS,
            ));
        }
        s.admins.push(u);
        Ok(())
    }
    fn remove_from_group(&self, group: &str, name: &str) -> std::result::Result<(), WinError> {
        let mut s = self.lock();
        Self::group_ok(&s, group)?;
        let before = s.admins.len();
        s.admins.retain(|a| !same(a, name));
        if s.admins.len() == before {
            return Err(WinError::from_code(
                "NetLocalGroupDelMembers",
                ERROR_MEMBER_NOT_IN_ALIAS,
            ));
        }
        Ok(())
    }
    fn sessions(&self) -> std::result::Result<Vec<Session>, WinError> {
        Ok(self.lock().sessions.clone())
    }
    fn logoff_session(&self, id: u32) -> std::result::Result<(), WinError> {
        let mut s = self.lock();
        let before = s.sessions.len();
        s.sessions.retain(|x| x.id != id);
        if s.sessions.len() == before {
            return Err(WinError::Failed {
                call: "WTSLogoffSession",
                code: 7022,
            });
        }
        Ok(())
    }
    fn send_message(&self, id: u32, _title: &str, text: &str) -> std::result::Result<(), WinError> {
        self.lock().messages.push((id, text.into()));
        Ok(())
    }
}

/// The in-memory SAM kept in a JSON file, so a test can seed it before `agent run` and read
/// it afterwards (`--os-backend fake-sam`: the Windows logic on a machine without Windows).
pub struct StoredSam {
    path: std::path::PathBuf,
    sam: FakeSam,
}

impl StoredSam {
    pub fn open(path: &std::path::Path) -> Result<StoredSam> {
        let state = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::startup(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FakeState::default(),
            Err(e) => return Err(e.into()),
        };
        Ok(StoredSam {
            path: path.to_path_buf(),
            sam: FakeSam::with(state),
        })
    }

    fn save<T>(&self, r: std::result::Result<T, WinError>) -> std::result::Result<T, WinError> {
        let write = serde_json::to_vec_pretty(&self.sam.snapshot())
            .map_err(std::io::Error::other)
            .and_then(|b| {
                let tmp = self.path.with_extension("tmp");
                std::fs::write(&tmp, b)?;
                std::fs::rename(&tmp, &self.path)
            });
        match write {
            Ok(()) => r,
            Err(_) => Err(WinError::Failed {
                call: "fake-sam save",
                code: 0,
            }),
        }
    }
}

impl WinApi for StoredSam {
    fn user_exists(&self, name: &str) -> std::result::Result<bool, WinError> {
        self.sam.user_exists(name)
    }
    fn add_user(&self, name: &str, password: &str) -> std::result::Result<(), WinError> {
        self.save(self.sam.add_user(name, password))
    }
    fn set_password(&self, name: &str, password: &str) -> std::result::Result<(), WinError> {
        self.save(self.sam.set_password(name, password))
    }
    fn set_enabled(&self, name: &str, enabled: bool) -> std::result::Result<(), WinError> {
        self.save(self.sam.set_enabled(name, enabled))
    }
    fn delete_user(&self, name: &str) -> std::result::Result<(), WinError> {
        self.save(self.sam.delete_user(name))
    }
    fn administrators_group(&self) -> std::result::Result<String, WinError> {
        self.sam.administrators_group()
    }
    fn group_members(&self, group: &str) -> std::result::Result<Vec<String>, WinError> {
        self.sam.group_members(group)
    }
    fn add_to_group(&self, group: &str, name: &str) -> std::result::Result<(), WinError> {
        self.save(self.sam.add_to_group(group, name))
    }
    fn remove_from_group(&self, group: &str, name: &str) -> std::result::Result<(), WinError> {
        self.save(self.sam.remove_from_group(group, name))
    }
    fn sessions(&self) -> std::result::Result<Vec<Session>, WinError> {
        self.sam.sessions()
    }
    fn logoff_session(&self, id: u32) -> std::result::Result<(), WinError> {
        self.save(self.sam.logoff_session(id))
    }
    fn send_message(&self, id: u32, title: &str, text: &str) -> std::result::Result<(), WinError> {
        self.save(self.sam.send_message(id, title, text))
    }
}

#[cfg(test)]
mod tests;
