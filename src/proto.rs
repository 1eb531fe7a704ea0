//! Agent protocol v1: the JSON both sides speak (`/agent/v1`). Unknown fields are refused so
//! a confused or hostile peer is noticed, not half-understood.

use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, DeviceId, TenantId};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Largest accepted event batch (WEB-06).
pub const MAX_EVENT_BATCH_BYTES: usize = 1024 * 1024;
/// Largest accepted body for every other agent call.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub agent_version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    pub device_id: DeviceId,
    pub device_secret: String,
    pub tenant: String,
    /// Server time (UTC ms) so the agent can learn its clock offset.
    pub server_time: i64,
}

/// `POST /agent/v1/secret`: the device's next secret (AGT-02). The current one keeps working
/// until the agent first calls with this one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretResponse {
    pub device_secret: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    pub agent_version: String,
    /// SHA-256 (hex) of the running agent binary; empty when the agent cannot read it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_hash: String,
    /// Current members of the local administrators group (heartbeat).
    pub admin_members: Vec<String>,
    /// Highest command sequence number the agent has seen.
    pub last_seq: i64,
    /// Hold the request up to this many seconds when nothing is queued (≤ 25).
    #[serde(default)]
    pub wait_secs: Option<u64>,
    /// Managed account → the version id of the password this agent last set (CRED-05): a
    /// version the appliance has moved past means a rolled-back machine or state.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub password_versions: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollResponse {
    pub commands: Vec<Command>,
    pub server_time: i64,
}

/// The command envelope (AGT-03): bound to one device, sequenced, expiring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub id: CommandId,
    pub device_id: DeviceId,
    pub tenant_id: TenantId,
    pub seq: i64,
    pub issued_at: i64,
    pub not_after: i64,
    pub kind: String,
    pub args: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckResult {
    Done,
    Failed,
    Refused,
}

impl AckResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AckResult::Done => "done",
            AckResult::Failed => "failed",
            AckResult::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub result: AckResult,
    #[serde(default)]
    pub details: String,
}

/// What an agent event reports. On the wire it is a word (`grant_started`); a word this build
/// does not know (a newer agent) is kept as it came and audited as a plain device event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EventKind {
    GrantStarted,
    GrantExtended,
    GrantRevoked,
    GrantExpired,
    /// A session logon on the workstation (seed event 300); `observed` ones are strays.
    Logon,
    OfflineLogin,
    /// An offline code was refused on the workstation (wrong, reused, locked out).
    OfflineLoginRefused,
    OfflineSessionEnded,
    /// Seed event 106: a run inside a JIT session.
    PassiveToken,
    /// Seed event 101: an application elevation decided by policy.
    ElevateOnDemand,
    /// An administrator added outside a grant was taken out again.
    Ppam,
    CommandRefused,
    /// An administrator found at enrollment was removed (the tenant's setting).
    StandingAdminRemoved,
    /// The agent started (after a reboot, a crash, or someone stopping it).
    AgentStarted,
    Other(String),
}

impl EventKind {
    const WORDS: &'static [(EventKind, &'static str)] = &[
        (EventKind::GrantStarted, "grant_started"),
        (EventKind::GrantExtended, "grant_extended"),
        (EventKind::GrantRevoked, "grant_revoked"),
        (EventKind::GrantExpired, "grant_expired"),
        (EventKind::Logon, "logon"),
        (EventKind::OfflineLogin, "offline_login"),
        (EventKind::OfflineLoginRefused, "offline_login_refused"),
        (EventKind::OfflineSessionEnded, "offline_session_ended"),
        (EventKind::PassiveToken, "passive_token"),
        (EventKind::ElevateOnDemand, "elevate_on_demand"),
        (EventKind::Ppam, "ppam"),
        (EventKind::CommandRefused, "command_refused"),
        (EventKind::StandingAdminRemoved, "standing_admin_removed"),
        (EventKind::AgentStarted, "agent_started"),
    ];
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Other(s) => s,
            k => EventKind::WORDS
                .iter()
                .find(|(w, _)| w == k)
                .map_or("", |(_, s)| s),
        }
    }
    /// Only what this build does not know may be dropped when the offline queue is full.
    pub fn is_routine(&self) -> bool {
        matches!(self, EventKind::Other(_))
    }
}

impl From<String> for EventKind {
    fn from(s: String) -> EventKind {
        EventKind::WORDS
            .iter()
            .find(|(_, w)| *w == s)
            .map_or(EventKind::Other(s), |(k, _)| k.clone())
    }
}

impl From<EventKind> for String {
    fn from(k: EventKind) -> String {
        k.as_str().to_string()
    }
}

/// One agent event; `id` makes uploads idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    pub at: i64,
    #[serde(default)]
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsRequest {
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsResponse {
    pub accepted: usize,
    pub duplicates: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// What a workstation asks for.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestAsk {
    /// The local account that wants the rights.
    pub account: String,
    pub minutes: i64,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub ticket: Option<String>,
    /// `admin` (a new session), `extension` (more time for the running one) or
    /// `application` (run one program elevated, described by `app`).
    #[serde(default = "admin_kind")]
    pub kind: String,
    #[serde(default)]
    pub app: Option<crate::model::policies::App>,
}

fn admin_kind() -> String {
    "admin".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_keep_their_words_and_unknown_ones_survive() {
        for (k, w) in EventKind::WORDS {
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{w}\""));
            assert_eq!(&serde_json::from_str::<EventKind>(&json).unwrap(), k);
            assert!(!k.is_routine(), "{w} is a security event");
        }
        let newer: EventKind = serde_json::from_str("\"usb_inserted\"").unwrap();
        assert_eq!(newer, EventKind::Other("usb_inserted".into()));
        assert_eq!(serde_json::to_string(&newer).unwrap(), "\"usb_inserted\"");
        assert!(newer.is_routine());
    }
}
