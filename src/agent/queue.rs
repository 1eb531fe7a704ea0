//! Events waiting for upload, one JSON line each in the state directory, so none is lost
//! while the appliance is unreachable or the agent restarts (AGT-06).

use crate::fsx::OwnerOnly;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::proto::Event;

const FILE: &str = "events.jsonl";
/// Upper bound on the queue; beyond it the oldest routine events go first, never security ones.
const MAX_EVENTS: usize = 100_000;

pub struct Queue {
    path: PathBuf,
}

impl Queue {
    pub fn new(dir: &Path) -> Queue {
        Queue {
            path: dir.join(FILE),
        }
    }

    pub fn push(&self, e: &Event) -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .owner_only()
            .open(&self.path)?;
        let mut line = serde_json::to_vec(e)?;
        line.push(b'\n');
        f.write_all(&line)?;
        f.sync_data()?;
        Ok(())
    }

    /// All queued events; a damaged line (torn write) is skipped.
    pub fn all(&self) -> Result<Vec<Event>> {
        match fs::read_to_string(&self.path) {
            Ok(t) => Ok(t
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops the uploaded events (by id) and trims the queue to its bound.
    pub fn remove(&self, ids: &[String]) -> Result<()> {
        let mut rest: Vec<Event> = self
            .all()?
            .into_iter()
            .filter(|e| !ids.contains(&e.id))
            .collect();
        if rest.len() > MAX_EVENTS {
            let mut excess = rest.len() - MAX_EVENTS;
            rest.retain(|e| {
                let routine = e.kind.is_routine();
                if routine && excess > 0 {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .owner_only()
            .open(&tmp)?;
        for e in &rest {
            let mut line = serde_json::to_vec(e)?;
            line.push(b'\n');
            f.write_all(&line)?;
        }
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_persist_until_removed() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        for i in 0..3 {
            q.push(&Event {
                id: format!("e{i}"),
                kind: crate::proto::EventKind::Ppam,
                at: i,
                data: serde_json::json!({}),
            })
            .unwrap();
        }
        let again = Queue::new(d.path());
        assert_eq!(again.all().unwrap().len(), 3);
        again.remove(&["e1".into()]).unwrap();
        let ids: Vec<_> = q.all().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, vec!["e0", "e2"]);
    }
}
