//! What the agent remembers across restarts, in its state directory (files 0600): identity,
//! the last command sequence, recent results (to re-acknowledge re-sent commands), active
//! grants with their absolute expiry, and the learned offset to the server's clock.

use crate::fsx::OwnerOnly;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{CommandId, DeviceId};
use crate::model::commands::SessionRef;
use crate::proto::AckResult;

#[cfg(not(windows))]
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hourglass-agent";
/// `%ProgramData%\Hourglass` on a standard installation.
#[cfg(windows)]
pub const DEFAULT_STATE_DIR: &str = r"C:\ProgramData\Hourglass";
const STATE_FILE: &str = "state.json";
/// How many recent command results are kept for re-acknowledgement.
const REMEMBERED: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Grant {
    pub account: String,
    /// Server-clock UTC ms.
    pub expires_at: i64,
    pub command_id: CommandId,
    /// 5- and 1-minute warnings already given.
    #[serde(default)]
    pub warned: Vec<u32>,
    /// The JIT request this grant serves, stamped on the session's events.
    #[serde(default)]
    pub session: Option<SessionRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub server: String,
    pub fingerprint: String,
    pub device_id: DeviceId,
    pub device_secret: String,
    pub tenant: String,
    pub last_seq: i64,
    /// server time − local wall time, ms (learned at every poll).
    pub clock_offset_ms: i64,
    /// Members of the administrators group when the agent was enrolled: never reverted.
    pub baseline_admins: Vec<String>,
    /// Accounts the appliance put in the administrators group (grants, technician logins).
    pub ordered_admins: Vec<String>,
    pub grants: Vec<Grant>,
    /// Server-clock times of recent grants, for the hourly cap.
    pub grant_times: Vec<i64>,
    /// (command, result) of recently handled commands, newest last.
    pub results: Vec<(CommandId, AckResult, String)>,
    /// End users enrolled on this machine (may be granted admin rights, never created).
    #[serde(default)]
    pub end_users: Vec<String>,
    /// The offline-code secret (base32) and how long an offline login lasts (MFA-06).
    #[serde(default)]
    pub offline: Option<OfflineSecret>,
    /// The tenant's application policies as last received (offline decisions).
    #[serde(default)]
    pub policies: Option<PolicyBundle>,
    /// Log-ons of managed accounts already reported (`user|line|time`), newest last.
    #[serde(default)]
    pub seen_logons: Vec<String>,
    /// Managed account → version id of the password last set here (CRED-05).
    #[serde(default)]
    pub password_versions: std::collections::BTreeMap<String, String>,
    /// Server time the device secret was issued (0: before rotation existed, so due at once).
    #[serde(default)]
    pub secret_issued_at: i64,
    /// The secret before the last rotation, until the appliance has accepted the new one.
    #[serde(default)]
    pub previous_secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyBundle {
    pub version: i64,
    pub policies: Vec<crate::model::policies::Policy>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OfflineSecret {
    pub secret: String,
    pub minutes: u32,
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    pub fn load(dir: &Path) -> Result<State> {
        let p = Self::path(dir);
        let text = fs::read_to_string(&p).map_err(|e| {
            Error::startup(format!(
                "cannot read {}: {e} (enroll first with `hourglass agent enroll`)",
                p.display()
            ))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::startup(format!("{} is damaged: {e}", p.display())))
    }

    /// Atomic save: write a temporary file (0600), fsync, rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        ensure_dir(dir)?;
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .owner_only()
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        fs::rename(&tmp, Self::path(dir))?;
        Ok(())
    }

    pub fn remember(&mut self, id: CommandId, result: AckResult, details: String) {
        self.results.retain(|(c, _, _)| *c != id);
        self.results.push((id, result, details));
        if self.results.len() > REMEMBERED {
            let extra = self.results.len() - REMEMBERED;
            self.results.drain(..extra);
        }
    }

    pub fn result_of(&self, id: CommandId) -> Option<(AckResult, String)> {
        self.results
            .iter()
            .find(|(c, _, _)| *c == id)
            .map(|(_, r, d)| (*r, d.clone()))
    }

    /// Server time as the agent estimates it.
    pub fn server_now(&self, wall_ms: i64) -> i64 {
        wall_ms + self.clock_offset_ms
    }

    #[cfg(test)]
    pub fn for_tests() -> State {
        State {
            server: "https://x".into(),
            fingerprint: String::new(),
            device_id: DeviceId::new(),
            device_secret: String::new(),
            tenant: "acme".into(),
            last_seq: 0,
            clock_offset_ms: 0,
            baseline_admins: vec!["alice".into()],
            ordered_admins: vec![],
            grants: vec![],
            grant_times: vec![],
            results: vec![],
            end_users: vec![],
            offline: None,
            policies: None,
            seen_logons: vec![],
            password_versions: Default::default(),
            secret_issued_at: 0,
            previous_secret: None,
        }
    }
}

pub fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .owner_only()
            .create(dir)
            .map_err(|e| {
                Error::startup(format!(
                    "cannot create state directory {}: {e}",
                    dir.display()
                ))
            })?;
    }
    Ok(())
}
