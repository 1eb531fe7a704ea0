//! Use cases: authorize → load → model rule → persist → audit, in one write transaction.

pub mod audit;
pub mod auth;
pub mod backup;
pub mod certificates;
pub mod checkpoints;
pub mod commands;
pub mod devices;
pub mod jobs;
pub mod logins;
pub mod policies;
pub mod policy_files;
pub mod requests;
pub mod roles;
pub mod setup;
pub mod standing_admins;
pub mod syslog;
pub mod system;
pub mod tamper;
pub mod tenants;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::Crypto;
use crate::store::Db;
use crate::tls::CertResolver;

/// What every use case and job may reach: the database, the clock, the master key, the
/// configuration and the live TLS certificate.
#[derive(Clone)]
pub struct Ctx {
    pub db: Db,
    pub clock: Clock,
    pub crypto: Arc<Crypto>,
    pub cfg: Arc<Config>,
    pub certs: Arc<CertResolver>,
    /// Outgoing mail; None when no SMTP server is configured.
    pub mail: Option<Arc<crate::notify::Mailer>>,
    pub wake: Arc<crate::notify::Wakeups>,
    pub beats: Arc<crate::notify::Heartbeats>,
    pub stopping: Arc<crate::notify::Stopping>,
    /// Sign-in back-off per (email, source), the same for known and unknown emails.
    pub logins: Arc<throttle::Throttle>,
    /// Refused ids per principal (id guessing).
    pub probes: Arc<throttle::Throttle>,
    /// Link bases from the addresses actually bound, set once the listeners are up.
    pub bound: Arc<std::sync::OnceLock<crate::model::links::Links>>,
}

impl Ctx {
    /// Where links point (DESIGN §7): `server.public_url`, else the address listened on.
    pub fn links(&self) -> crate::model::links::Links {
        self.bound
            .get()
            .cloned()
            .unwrap_or_else(|| self.cfg.links())
    }
}
