//! One-time links (setup, enrollment): what they are for and what the store keeps of them.

use crate::clock::Timestamp;
use crate::ids::UserId;

super::text_enum! {
    /// What a one-time link opens.
    pub enum LinkKind {
        /// The first MSP admin's setup on a fresh appliance.
        Setup = "setup",
        /// An invited (or reset) person's enrollment.
        Enrollment = "enrollment",
    }
}

impl LinkKind {
    /// The portal path the link opens (`/setup/…`, `/enroll/…`).
    pub fn path(self) -> &'static str {
        match self {
            LinkKind::Setup => "setup",
            LinkKind::Enrollment => "enroll",
        }
    }
}

/// A row of `one_time_links` (the token itself is kept only as a hash).
#[derive(Clone, Debug)]
pub struct Link {
    pub id: String,
    pub kind: LinkKind,
    pub user_id: Option<UserId>,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}
