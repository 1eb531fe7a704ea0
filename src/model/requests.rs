//! JIT admin requests (DESIGN §3): states, input rules and auto-approval matching.

use crate::clock::Timestamp;
use crate::ids::{DeviceId, RequestId, TenantId, UserId};
use crate::model::policies::App;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const MIN_MINUTES: u32 = 5;
pub const MAX_MINUTES: u32 = 24 * 60;
pub const DISABLED_MESSAGE: &str = "Just-in-time requests are disabled";

/// What a workstation asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A JIT administrator session.
    Admin,
    /// More time for the running session.
    Extension,
    /// One program elevated.
    Application,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Admin => "admin",
            Kind::Extension => "extension",
            Kind::Application => "application",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Admin, Kind::Extension, Kind::Application]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// How the portal names it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Extension => "more time",
            Kind::Application => "run a program",
            Kind::Admin => "admin session",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Denied,
    Cancelled,
    TimedOut,
    Declined,
    Expired,
    EndedByUser,
    Revoked,
    /// Approved, but the workstation could not carry the grant out.
    Failed,
}

impl State {
    pub const ALL: &'static [State] = &[
        State::Pending,
        State::Approved,
        State::Denied,
        State::Cancelled,
        State::TimedOut,
        State::Declined,
        State::Expired,
        State::EndedByUser,
        State::Revoked,
        State::Failed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Cancelled => "cancelled",
            State::TimedOut => "timed_out",
            State::Declined => "declined",
            State::Expired => "expired",
            State::EndedByUser => "ended_by_user",
            State::Revoked => "revoked",
            State::Failed => "failed",
        }
    }
    /// The state in words, as people read it.
    pub fn label(self) -> &'static str {
        match self {
            State::Pending => "waiting for a decision",
            State::Approved => "active",
            State::Denied => "denied",
            State::Cancelled => "cancelled",
            State::TimedOut => "timed out (nobody decided)",
            State::Declined => "declined (requests are switched off)",
            State::Expired => "expired",
            State::EndedByUser => "ended by the user",
            State::Revoked => "revoked",
            State::Failed => "failed on the workstation",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.iter().copied().find(|x| x.as_str() == s)
    }
    /// Pending or active: the one a user may have at a time.
    pub fn is_open(self) -> bool {
        matches!(self, State::Pending | State::Approved)
    }
}

/// How an application request is approved (idemeum / AutoElevate): just this request, or
/// as a standing rule for the user, the device or the whole tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    Once,
    User,
    Device,
    Tenant,
}

impl Grant {
    pub const ALL: &'static [Grant] = &[Grant::Once, Grant::User, Grant::Device, Grant::Tenant];
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Once => "once",
            Grant::User => "user",
            Grant::Device => "device",
            Grant::Tenant => "tenant",
        }
    }
    pub fn parse(s: &str) -> Result<Grant> {
        Grant::ALL
            .iter()
            .copied()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| Error::validation("grant", "must be once, user, device or tenant"))
    }
    pub fn label(self) -> &'static str {
        match self {
            Grant::Once => "Just this request",
            Grant::User => "Rule: this user, every device",
            Grant::Device => "Rule: everyone on this device",
            Grant::Tenant => "Rule: the whole tenant",
        }
    }
}

/// Requested or approved minutes: 5 min – 24 h, and no more than the tenant allows.
pub fn check_minutes(field: &str, minutes: i64, tenant_max: u32) -> Result<u32> {
    if minutes < i64::from(MIN_MINUTES) || minutes > i64::from(MAX_MINUTES) {
        return Err(Error::validation(
            field,
            "must be between 5 minutes and 24 hours (5–1440 minutes)",
        ));
    }
    if minutes > i64::from(tenant_max) {
        return Err(Error::validation(
            field,
            format!("must be at most {tenant_max} minutes (this tenant's maximum)"),
        ));
    }
    Ok(minutes as u32)
}

/// The justification: required when the tenant says so; ≤ 2,000 characters, no control
/// characters except line breaks.
pub fn check_justification(text: &str, required: bool) -> Result<String> {
    let t = text.trim();
    if required && t.is_empty() {
        return Err(Error::validation("reason", "a justification is required"));
    }
    if t.chars().count() > 2000 {
        return Err(Error::validation(
            "reason",
            "must be at most 2000 characters",
        ));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::validation(
            "reason",
            "must not contain control characters",
        ));
    }
    Ok(t.to_string())
}

/// An optional ticket reference: ≤ 64 printable characters.
pub fn check_ticket(ticket: Option<&str>) -> Result<Option<String>> {
    match ticket.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) if t.chars().count() > 64 || t.chars().any(char::is_control) => Err(
            Error::validation("ticket", "must be at most 64 printable characters"),
        ),
        Some(t) => Ok(Some(t.to_string())),
    }
}

/// An auto-approval rule: every condition that is set must hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoRule {
    pub id: String,
    pub name: String,
    pub account: Option<String>,
    pub device_id: Option<String>,
    pub max_minutes: u32,
    /// Minutes after midnight UTC; a window may wrap past midnight.
    pub from_minute: Option<u32>,
    pub to_minute: Option<u32>,
}

impl AutoRule {
    pub fn matches(&self, account: &str, device: &str, minutes: u32, minute_of_day: u32) -> bool {
        if self.account.as_deref().is_some_and(|a| a != account)
            || self.device_id.as_deref().is_some_and(|d| d != device)
        {
            return false;
        }
        if minutes > self.max_minutes {
            return false;
        }
        match (self.from_minute, self.to_minute) {
            (Some(f), Some(t)) if f <= t => (f..t).contains(&minute_of_day),
            (Some(f), Some(t)) => minute_of_day >= f || minute_of_day < t,
            _ => true,
        }
    }
}

/// A row of `requests` as the services see it (read by `store::requests`).
#[derive(Clone, Debug)]
pub struct Request {
    pub id: RequestId,
    pub tenant_id: TenantId,
    pub device_id: DeviceId,
    pub endpoint_user_id: String,
    pub account: String,
    pub hostname: String,
    pub kind: Kind,
    pub parent_id: Option<RequestId>,
    pub minutes_requested: u32,
    pub minutes_approved: Option<u32>,
    pub justification: String,
    pub ticket: Option<String>,
    pub state: State,
    pub version: i64,
    pub decided_by: Option<UserId>,
    pub decided_by_rule: Option<String>,
    pub reason: Option<String>,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// An application request: the program's attributes.
    pub app: Option<App>,
    /// How an application request was approved: `once`, `user`, `device` or `tenant`.
    pub grant_scope: Option<Grant>,
    /// The policy an approved application request created.
    pub policy_id: Option<String>,
    /// When the workstation confirmed the grant.
    pub granted_at: Option<Timestamp>,
    /// Why the workstation could not carry the grant out.
    pub failure: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_bounds() {
        assert!(check_minutes("m", 4, 1440).is_err());
        assert_eq!(check_minutes("m", 5, 1440).unwrap(), 5);
        assert_eq!(check_minutes("m", 1440, 1440).unwrap(), 1440);
        assert!(check_minutes("m", 1441, 1440).is_err());
        assert!(
            check_minutes("m", 241, 240)
                .unwrap_err()
                .to_string()
                .contains("tenant's maximum")
        );
    }

    #[test]
    fn justification_and_ticket_rules() {
        assert!(check_justification("  ", true).is_err());
        assert_eq!(check_justification("  ", false).unwrap(), "");
        assert!(check_justification(&"x".repeat(2001), false).is_err());
        assert!(check_justification("a\u{7}b", false).is_err());
        assert!(check_justification("line one\nline two", true).is_ok());
        assert_eq!(
            check_ticket(Some(" INC-42 ")).unwrap(),
            Some("INC-42".into())
        );
        assert!(check_ticket(Some(&"x".repeat(65))).is_err());
        assert_eq!(check_ticket(None).unwrap(), None);
    }

    #[test]
    fn auto_rules_match_every_set_condition() {
        let r = AutoRule {
            id: "r".into(),
            name: "n".into(),
            account: Some("ann".into()),
            device_id: None,
            max_minutes: 60,
            from_minute: Some(8 * 60),
            to_minute: Some(18 * 60),
        };
        assert!(r.matches("ann", "d", 30, 9 * 60));
        assert!(!r.matches("bob", "d", 30, 9 * 60));
        assert!(!r.matches("ann", "d", 61, 9 * 60));
        assert!(!r.matches("ann", "d", 30, 19 * 60));
        let night = AutoRule {
            from_minute: Some(22 * 60),
            to_minute: Some(6 * 60),
            account: None,
            ..r
        };
        assert!(
            night.matches("x", "d", 5, 23 * 60)
                && night.matches("x", "d", 5, 60)
                && !night.matches("x", "d", 5, 12 * 60)
        );
    }
}
