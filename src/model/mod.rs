//! Pure types and rules: no I/O, no clock reads, no SQL.

pub mod audit;
pub mod audit_export;
pub mod checkpoint;
pub mod commands;
pub mod devices;
pub mod links;
pub mod logins;
pub mod net;
pub mod passwords;
pub mod permissions;
pub mod policies;
pub mod requests;
pub mod roles;
pub mod sessions;
pub mod syslog;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod webhooks;
pub mod zones;
