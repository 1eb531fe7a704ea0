//! What every agent poll asks — is this device's secret right, has it anything queued, which
//! password versions are current — answered from memory that the writes keep exact.
//!
//! The store functions that change one of these facts note it on their `WriteTx`; the notes
//! are applied after the commit, while the single writer is still held, so a poll that starts
//! after the change returns never sees the old answer. A miss is answered from the database
//! and remembered only if no note was applied meanwhile (the generation did not move), so a
//! read that raced a change cannot put a stale answer back. Nothing depends on the cache being
//! warm: it starts empty, and a restart simply rebuilds it as devices poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ids::{DeviceId, TenantId};

/// A device's credential as the poll path needs it (only active devices are remembered).
#[derive(Debug, Clone)]
pub struct Cred {
    pub tenant: TenantId,
    pub secret_hash: Vec<u8>,
}

/// (account, current version, a change pending) per escrowed account of a device.
pub type Versions = Arc<Vec<(String, Option<String>, bool)>>;

/// A change a write made, applied after its commit.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Note {
    /// Retired, or its secret replaced: the next call must read the database.
    Credential(DeviceId),
    /// A command was queued for it.
    Queued(DeviceId),
    /// One of its commands was answered: whether more wait is read again.
    Answered(DeviceId),
    /// Queued commands of many devices ended (a restore): every marker is read again.
    AllAnswered,
    /// An escrowed password changed state somewhere.
    Versions,
}

#[derive(Default)]
struct State {
    generation: u64,
    creds: HashMap<DeviceId, Cred>,
    pending: HashMap<DeviceId, bool>,
    versions: HashMap<DeviceId, Versions>,
}

#[derive(Default)]
pub struct Hot {
    state: Mutex<State>,
}

impl Hot {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The maps are only ever replaced whole-entry, so a panicked holder left them valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Taken before a database read whose answer is to be remembered.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn cred(&self, id: DeviceId) -> Option<Cred> {
        self.lock().creds.get(&id).cloned()
    }

    pub fn remember_cred(&self, id: DeviceId, c: Cred, generation: u64) {
        let mut s = self.lock();
        if s.generation == generation {
            s.creds.insert(id, c);
        }
    }

    /// Some(false): nothing is queued for the device; None: unknown, read the database.
    pub fn pending(&self, id: DeviceId) -> Option<bool> {
        self.lock().pending.get(&id).copied()
    }

    pub fn remember_pending(&self, id: DeviceId, pending: bool, generation: u64) {
        let mut s = self.lock();
        if s.generation == generation {
            s.pending.insert(id, pending);
        }
    }

    pub fn versions(&self, id: DeviceId) -> Option<Versions> {
        self.lock().versions.get(&id).cloned()
    }

    pub fn remember_versions(&self, id: DeviceId, v: Versions, generation: u64) {
        let mut s = self.lock();
        if s.generation == generation {
            s.versions.insert(id, v);
        }
    }

    /// (credentials, pending markers, version lists) held, for /metrics.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let s = self.lock();
        (s.creds.len(), s.pending.len(), s.versions.len())
    }

    pub(crate) fn apply(&self, notes: &[Note]) {
        if notes.is_empty() {
            return;
        }
        let mut s = self.lock();
        s.generation += 1;
        for n in notes {
            match *n {
                Note::Credential(id) => {
                    s.creds.remove(&id);
                }
                Note::Queued(id) => {
                    s.pending.insert(id, true);
                }
                Note::Answered(id) => {
                    s.pending.remove(&id);
                }
                Note::AllAnswered => s.pending.clear(),
                Note::Versions => s.versions.clear(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred() -> Cred {
        Cred {
            tenant: TenantId::new(),
            secret_hash: vec![1; 32],
        }
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_remembered() {
        let hot = Hot::default();
        let id = DeviceId::new();
        let before = hot.generation();
        hot.apply(&[Note::Credential(id)]);
        hot.remember_cred(id, cred(), before);
        assert!(
            hot.cred(id).is_none(),
            "read before the retirement: dropped"
        );
        hot.remember_cred(id, cred(), hot.generation());
        assert!(hot.cred(id).is_some());
        hot.apply(&[Note::Credential(id)]);
        assert!(hot.cred(id).is_none(), "retired: forgotten");
    }

    #[test]
    fn markers_follow_queue_and_answers() {
        let hot = Hot::default();
        let id = DeviceId::new();
        assert_eq!(hot.pending(id), None);
        hot.remember_pending(id, false, hot.generation());
        assert_eq!(hot.pending(id), Some(false));
        hot.apply(&[Note::Queued(id)]);
        assert_eq!(hot.pending(id), Some(true));
        hot.apply(&[Note::Answered(id)]);
        assert_eq!(hot.pending(id), None, "read again after an answer");
        hot.remember_pending(id, true, hot.generation());
        hot.apply(&[Note::AllAnswered]);
        assert_eq!(hot.pending(id), None);
    }
}
