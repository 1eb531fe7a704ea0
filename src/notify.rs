//! Outgoing notifications. Mail (enrollment links) over SMTP with rustls, sent in the
//! background so a slow or absent mail server never holds up a request.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::SmtpConfig;
use crate::error::{Error, Result};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer(from {})", self.from)
    }
}

impl Mailer {
    /// None when no SMTP host is configured (the normal air-gapped case).
    pub fn from_config(c: &SmtpConfig) -> Result<Option<Mailer>> {
        if c.host.trim().is_empty() {
            return Ok(None);
        }
        let bad = |e: &dyn std::fmt::Display| Error::startup(format!("smtp: {e}"));
        let builder = match c.security.as_str() {
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                .map_err(|e| bad(&e))?,
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host).map_err(|e| bad(&e))?,
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
            other => {
                return Err(Error::startup(format!(
                    "smtp.security must be starttls, tls or none, not {other:?}"
                )));
            }
        };
        let mut builder = builder
            .port(c.port)
            .timeout(Some(std::time::Duration::from_secs(20)));
        if !c.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                c.username.clone(),
                c.password.expose().clone(),
            ));
        }
        let from = c
            .from
            .parse::<Mailbox>()
            .map_err(|e| Error::startup(format!("smtp.from {:?}: {e}", c.from)))?;
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
        }))
    }

    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<()> {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| Error::validation("email", e))?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .body(body)
            .map_err(|e| Error::internal(format!("mail: {e}")))?;
        self.transport
            .send(msg)
            .await
            .map_err(|e| Error::internal(format!("smtp: {e}")))?;
        Ok(())
    }
}

// --- agent wake-ups and heartbeats -----------------------------------------------------------

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::Timestamp;
use crate::ids::DeviceId;
use crate::model::devices::Heartbeat;

/// Per-device wake-ups for the long-poll: queuing a command wakes exactly that device's
/// waiting poll (keyed by device, so nothing leaks across tenants, AZ-06).
#[derive(Default)]
pub struct Wakeups {
    map: Mutex<HashMap<DeviceId, Arc<tokio::sync::Notify>>>,
    /// Long-polls each device holds right now: a device waiting on one is connected.
    held: Arc<Mutex<HashMap<DeviceId, usize>>>,
}

/// A held long-poll, counted for its device while it lives.
pub struct HeldPoll {
    held: Arc<Mutex<HashMap<DeviceId, usize>>>,
    device: DeviceId,
}

impl Drop for HeldPoll {
    fn drop(&mut self) {
        if let Ok(mut m) = self.held.lock()
            && let Some(n) = m.get_mut(&self.device)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.device);
            }
        }
    }
}

impl Wakeups {
    /// The device's wake-up; a wake that arrives before the poll waits is kept, not lost.
    pub fn handle(&self, d: DeviceId) -> Arc<tokio::sync::Notify> {
        match self.map.lock() {
            Ok(mut m) => m.entry(d).or_default().clone(),
            Err(_) => Arc::new(tokio::sync::Notify::new()),
        }
    }
    /// Counts a poll of `d` as held until the guard is dropped.
    pub fn hold(&self, d: DeviceId) -> HeldPoll {
        if let Ok(mut m) = self.held.lock() {
            *m.entry(d).or_default() += 1;
        }
        HeldPoll {
            held: self.held.clone(),
            device: d,
        }
    }
    /// Whether `d` is waiting on a long-poll now.
    pub fn is_connected(&self, d: DeviceId) -> bool {
        self.held.lock().is_ok_and(|m| m.contains_key(&d))
    }
    /// How many devices hold a long-poll now.
    pub fn connected(&self) -> usize {
        self.held.lock().map(|m| m.len()).unwrap_or(0)
    }
    pub fn wake(&self, d: DeviceId) {
        if let Ok(m) = self.map.lock()
            && let Some(n) = m.get(&d)
        {
            n.notify_one();
        }
    }
}

/// Heartbeats held in memory and written in batches by the sweep, not one write per poll.
#[derive(Default)]
pub struct Heartbeats {
    pending: Mutex<HashMap<DeviceId, Heartbeat>>,
}

impl Heartbeats {
    pub fn record(&self, d: DeviceId, beat: Heartbeat) {
        if let Ok(mut m) = self.pending.lock() {
            m.insert(d, beat);
        }
    }
    /// An account deleted from the workstation leaves the heartbeat not yet written.
    pub fn forget_member(&self, d: DeviceId, name: &str) {
        if let Ok(mut m) = self.pending.lock()
            && let Some(b) = m.get_mut(&d)
        {
            b.admins.retain(|a| a != name);
        }
    }
    pub fn last_seen(&self, d: DeviceId) -> Option<Timestamp> {
        self.pending
            .lock()
            .ok()
            .and_then(|m| m.get(&d).map(|x| x.at))
    }
    pub fn drain(&self) -> Vec<(DeviceId, Heartbeat)> {
        match self.pending.lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Set once when the appliance begins to stop: held long-polls answer at once instead of
/// keeping a graceful shutdown waiting for 25 seconds.
#[derive(Default)]
pub struct Stopping {
    set: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
    /// Long-polls being held right now; shutdown waits for them to be answered.
    held: std::sync::atomic::AtomicUsize,
}

/// Counts one held long-poll for as long as it lives.
pub struct Held<'a>(&'a Stopping);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0
            .held
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Stopping {
    pub fn trigger(&self) {
        self.set.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn hold(&self) -> Held<'_> {
        self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Held(self)
    }
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn is_set(&self) -> bool {
        self.set.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub async fn wait(&self) {
        let n = self.notify.notified();
        tokio::pin!(n);
        // Register before checking the flag, so a trigger in between is not missed.
        n.as_mut().enable();
        if self.is_set() {
            return;
        }
        n.await;
    }
}
