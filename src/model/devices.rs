//! Workstations as the appliance knows them.

use crate::clock::Timestamp;
use crate::ids::{DeviceId, TenantId};

/// A row of `devices` as the services see it (read by `store::devices`).
#[derive(Clone, Debug)]
pub struct Device {
    pub id: DeviceId,
    pub tenant_id: TenantId,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub agent_version: String,
    /// SHA-256 of the agent binary as last reported ("" before the first report).
    pub agent_hash: String,
    pub active: bool,
    pub admin_members: Vec<String>,
    pub enrolled_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// An open tamper alert (shown as a badge) and when it was raised.
    pub alert: Option<Alert>,
    pub alert_at: Option<Timestamp>,
}

/// Who an authenticated agent call comes from, all the poll path needs (answered from memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceKey {
    pub id: DeviceId,
    pub tenant_id: TenantId,
}

impl Device {
    pub fn key(&self) -> DeviceKey {
        DeviceKey {
            id: self.id,
            tenant_id: self.tenant_id,
        }
    }
}

super::text_enum! {
    /// What a device's tamper alert says.
    pub enum Alert {
        /// It stopped checking in while holding admin rights or a technician login.
        Silent = "silent",
        /// Its agent reported another version or binary than before.
        AgentChanged = "agent_changed",
        /// Its agent started again while it held admin rights or a technician login.
        Restarted = "restarted",
    }
}

impl Alert {
    pub fn label(self) -> &'static str {
        match self {
            Alert::Silent => "stopped checking in while holding rights",
            Alert::AgentChanged => "agent binary or version changed",
            Alert::Restarted => "agent restarted while holding rights",
        }
    }
    /// The alert as the device page's banner says it.
    pub fn sentence(self) -> &'static str {
        match self {
            Alert::Silent => "this workstation stopped checking in while holding rights",
            Alert::AgentChanged => "the agent binary or version changed",
            Alert::Restarted => "the agent restarted while holding rights",
        }
    }
}

/// A device's latest heartbeat, held in memory until the sweep writes the batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub at: Timestamp,
    pub agent_version: String,
    pub agent_hash: String,
    /// Members of its administrators group.
    pub admins: Vec<String>,
}

impl Heartbeat {
    /// Whether this beat reports another agent build than `d` had (a first report is none).
    pub fn changed_agent(&self, d: &Device) -> bool {
        let differs = |old: &str, new: &str| !old.is_empty() && !new.is_empty() && old != new;
        differs(&d.agent_version, &self.agent_version) || differs(&d.agent_hash, &self.agent_hash)
    }
}

#[derive(Clone, Debug)]
pub struct EnrollmentToken {
    pub id: String,
    pub tenant_id: TenantId,
    pub uses_left: i64,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub created_at: Timestamp,
}
