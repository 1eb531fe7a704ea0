//! The workstation side (`hourglass agent …`). It talks to the appliance only through the
//! agent protocol and never reaches the server's store or services.

pub mod client;
pub mod daemon;
pub mod elevate;
pub mod enforcer;
pub mod local;
pub mod offline;
pub mod os;
#[cfg(all(test, unix))]
mod os_cases;
pub mod pam;
pub mod pe;
#[cfg(windows)]
pub mod pipe;
pub mod queue;
pub mod requests;
pub mod runas;
mod secret;
#[cfg(windows)]
pub mod service;
pub mod simulate;
pub mod state;
pub mod utmp;
#[cfg(windows)]
pub mod win32;
pub mod windows;
