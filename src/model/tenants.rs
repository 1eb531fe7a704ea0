//! Tenants: the one MSP tenant and its customer tenants, with their settings.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::TenantId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantKind {
    Msp,
    Customer,
}

impl TenantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantKind::Msp => "msp",
            TenantKind::Customer => "customer",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "msp" => Some(TenantKind::Msp),
            "customer" => Some(TenantKind::Customer),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMode {
    Named,
    Shared,
}

impl LoginMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMode::Named => "named",
            LoginMode::Shared => "shared",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "named" => Some(LoginMode::Named),
            "shared" => Some(LoginMode::Shared),
            _ => None,
        }
    }
}

/// A URL-safe tenant identifier: 2–32 of `[a-z0-9-]`, starting with a letter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Slug> {
        let err = |m: &str| Err(Error::validation("slug", m));
        let n = s.chars().count();
        if !(2..=32).contains(&n) {
            return err("must be 2–32 characters");
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return err("must start with a lowercase letter");
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return err("may only contain a–z, 0–9 and '-'");
        }
        if s.ends_with('-') {
            return err("must not end with '-'");
        }
        Ok(Slug(s.to_string()))
    }
    /// A slug suggested from a display name ("Acme Corp." → "acme-corp").
    pub fn suggest(name: &str) -> String {
        let mut out = String::new();
        for c in name.to_lowercase().chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        let mut out: String = out.trim_matches('-').chars().take(32).collect();
        while out.ends_with('-') {
            out.pop();
        }
        if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
            out = format!("t-{out}").chars().take(32).collect();
        }
        out
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Slug::parse(&s)
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1–100 characters, no control characters, trimmed.
pub fn parse_name(field: &str, s: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Error::validation(field, "is required"));
    }
    if t.chars().count() > 100 {
        return Err(Error::validation(field, "must be at most 100 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(Error::validation(
            field,
            "must not contain control characters",
        ));
    }
    Ok(t.to_string())
}

/// JIT and login settings of a customer tenant (DESIGN §1, §3, §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub co_management: bool,
    pub login_mode: LoginMode,
    pub jit_enabled: bool,
    pub jit_justification_required: bool,
    pub jit_max_minutes: u32,
    pub jit_pending_timeout_minutes: u32,
    pub seats: u32,
    /// IANA name: policy windows and auto-approval hours are in this zone.
    pub time_zone: String,
    /// How long an offline login lasts on a workstation (MFA-06).
    pub offline_login_minutes: u32,
    /// A workstation holding an open grant or technician login that has not polled for this
    /// long raises a tamper alert.
    pub silence_alert_minutes: u32,
    /// The administrators found at enrollment are removed by the agent…
    pub remove_standing_admins: bool,
    /// …except these accounts (e.g. the MSP's break-glass account).
    pub standing_admin_exceptions: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            co_management: false,
            login_mode: LoginMode::Named,
            jit_enabled: true,
            jit_justification_required: true,
            jit_max_minutes: 240,
            jit_pending_timeout_minutes: 1440,
            seats: 0,
            time_zone: super::zones::DEFAULT.into(),
            offline_login_minutes: super::logins::OFFLINE_MINUTES,
            silence_alert_minutes: 10,
            remove_standing_admins: false,
            standing_admin_exceptions: Vec::new(),
        }
    }
}

/// Account names typed as a comma-separated list (`breakglass, it-admin`).
pub fn account_list(typed: &str) -> Vec<String> {
    typed
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

impl Settings {
    pub fn validate(&self) -> Result<()> {
        if !(5..=1440).contains(&self.jit_max_minutes) {
            return Err(Error::validation(
                "jit_max_minutes",
                "must be between 5 minutes and 24 hours (1440)",
            ));
        }
        if !(5..=10080).contains(&self.jit_pending_timeout_minutes) {
            return Err(Error::validation(
                "jit_pending_timeout_minutes",
                "must be between 5 minutes and 7 days (10080)",
            ));
        }
        if self.seats > 100_000 {
            return Err(Error::validation("seats", "must be at most 100000"));
        }
        if !(5..=1440).contains(&self.offline_login_minutes) {
            return Err(Error::validation(
                "offline_login_minutes",
                "must be between 5 minutes and 24 hours (1440)",
            ));
        }
        if self.standing_admin_exceptions.len() > 50
            || self.standing_admin_exceptions.iter().any(|a| {
                a.is_empty()
                    || a.chars().count() > 64
                    || a.chars().any(|c| c.is_whitespace() || c == ',')
            })
        {
            return Err(Error::validation(
                "standing_admin_exceptions",
                "list at most 50 account names, separated by commas, each without spaces and at most 64 characters",
            ));
        }
        if !(1..=1440).contains(&self.silence_alert_minutes) {
            return Err(Error::validation(
                "silence_alert_minutes",
                "must be between 1 minute and 24 hours (1440)",
            ));
        }
        if super::zones::check(&self.time_zone)? != self.time_zone {
            return Err(Error::validation(
                "time_zone",
                "must not have spaces around it",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub kind: TenantKind,
    pub name: String,
    pub slug: Slug,
    pub active: bool,
    pub settings: Settings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_rules_and_say_which_broke() {
        assert!(Slug::parse("acme").is_ok());
        assert!(Slug::parse("acme-2").is_ok());
        for (bad, why) in [
            ("a", "2–32"),
            ("2acme", "start with"),
            ("Acme", "start with"),
            ("ac_me", "only contain"),
            ("acme-", "end with"),
        ] {
            let e = Slug::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(Slug::suggest("Acme Corp."), "acme-corp");
        assert_eq!(Slug::suggest("42 Widgets"), "t-42-widgets");
        assert!(Slug::parse(&Slug::suggest("Ünïcode & Co")).is_ok());
    }

    #[test]
    fn settings_bounds() {
        let mut s = Settings::default();
        assert!(s.validate().is_ok());
        s.jit_max_minutes = 1441;
        assert!(s.validate().unwrap_err().to_string().contains("24 hours"));
        s.jit_max_minutes = 4;
        assert!(s.validate().is_err());
    }
}
