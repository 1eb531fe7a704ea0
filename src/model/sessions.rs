//! A portal session as the services see it (tokens are only ever stored hashed).

use crate::clock::Timestamp;
use crate::ids::UserId;

#[derive(Clone, Debug)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub user_id: Option<UserId>,
    pub stage: Stage,
    pub pending_totp: Option<Vec<u8>>,
    pub link_id: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub mfa_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// What the CSRF token is derived from; kept across a step-up's id renewal.
    pub csrf_seed: Option<Vec<u8>>,
}

/// How far a session has come: an enrollment or setup link opened (`PreAuth`), the password
/// accepted and the code still to come (`Mfa`), or signed in (`Full`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    PreAuth,
    Mfa,
    Full,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::PreAuth => "pre_auth",
            Stage::Mfa => "mfa",
            Stage::Full => "full",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        [Stage::PreAuth, Stage::Mfa, Stage::Full]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}
