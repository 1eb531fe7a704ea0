//! In-memory counters of failures by key, for the throttles that must not depend on what
//! exists: sign-in back-off per (email, source) — the same answers for known and unknown
//! emails (AUTH-06) — and refusals of foreign or missing ids per principal (TI-02).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;

/// Failures per key, with when the last one happened and when the window began.
#[derive(Default)]
pub struct Throttle {
    keys: Mutex<HashMap<String, Count>>,
}

#[derive(Clone, Copy, Debug)]
struct Count {
    n: u32,
    first: Timestamp,
    last: Timestamp,
}

/// What `note` found after counting one more.
#[derive(Debug, PartialEq, Eq)]
pub enum Burst {
    /// Under the limit.
    Under,
    /// This one crossed the limit (audit the burst once).
    Crossed,
    /// Still over the limit.
    Over,
}

impl Throttle {
    /// Counts a failure of `key` within a window of `window_ms`; how it stands against `max`.
    pub fn note(&self, key: &str, now: Timestamp, window_ms: i64, max: u32) -> Burst {
        let Ok(mut m) = self.keys.lock() else {
            return Burst::Under;
        };
        // Keep the map small: forget keys quiet for a whole window.
        if m.len() > 100_000 {
            m.retain(|_, c| now.millis() - c.last.millis() < window_ms);
        }
        let c = m.entry(key.to_string()).or_insert(Count {
            n: 0,
            first: now,
            last: now,
        });
        if now.millis() - c.first.millis() >= window_ms {
            *c = Count {
                n: 0,
                first: now,
                last: now,
            };
        }
        c.n += 1;
        c.last = now;
        match c.n.cmp(&max) {
            std::cmp::Ordering::Less => Burst::Under,
            std::cmp::Ordering::Equal => Burst::Crossed,
            std::cmp::Ordering::Greater => Burst::Over,
        }
    }

    /// Seconds `key` must still wait: after `free` failures, 1 s doubling to 300 s, counted
    /// from its last failure.
    pub fn wait_secs(&self, key: &str, now: Timestamp, free: u32) -> i64 {
        let Ok(m) = self.keys.lock() else { return 0 };
        let Some(c) = m.get(key) else { return 0 };
        if c.n < free {
            return 0;
        }
        let wait = (1i64 << (c.n - free).min(8)).min(300);
        let ms = (c.last.millis() + wait * 1000 - now.millis()).max(0);
        (ms + 999) / 1000
    }

    /// Forgets every count (the authorization matrix probes thousands of ids on purpose).
    pub fn forget_all(&self) {
        if let Ok(mut m) = self.keys.lock() {
            m.clear();
        }
    }

    pub fn clear(&self, key: &str) {
        if let Ok(mut m) = self.keys.lock() {
            m.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_cross_once_and_back_off_grows() {
        let t = Throttle::default();
        let now = Timestamp(1_000_000);
        for _ in 0..2 {
            assert_eq!(t.note("k", now, 60_000, 3), Burst::Under);
        }
        assert_eq!(t.note("k", now, 60_000, 3), Burst::Crossed);
        assert_eq!(t.note("k", now, 60_000, 3), Burst::Over);
        assert_eq!(
            t.note("k", now.plus_secs(61), 60_000, 3),
            Burst::Under,
            "a new window"
        );
        let b = Throttle::default();
        for _ in 0..5 {
            b.note("x", now, 3_600_000, 1000);
        }
        assert_eq!(b.wait_secs("x", now, 5), 1);
        b.note("x", now, 3_600_000, 1000);
        assert_eq!(b.wait_secs("x", now, 5), 2);
        assert_eq!(b.wait_secs("x", now.plus_secs(2), 5), 0);
        b.clear("x");
        assert_eq!(b.wait_secs("x", now, 5), 0);
    }
}
