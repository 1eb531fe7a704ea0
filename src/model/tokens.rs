//! Management API tokens (stored hashed; a token acts as its person).

use crate::clock::Timestamp;
use crate::ids::{TenantId, UserId};

#[derive(Clone, Debug)]
pub struct ApiToken {
    pub id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// May do sensitive actions (SESS-05); such a token always has an expiry.
    pub sensitive: bool,
    pub expires_at: Option<Timestamp>,
}

impl ApiToken {
    /// Not revoked and not past its expiry.
    pub fn usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}
