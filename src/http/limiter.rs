//! A fixed-window limiter per key (client address), in memory: online guessing from one
//! source is throttled across accounts (AUTH-05).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;

pub struct Limiter {
    per_window: u32,
    window_ms: i64,
    hits: Mutex<HashMap<String, (i64, u32)>>,
}

impl Limiter {
    pub fn new(per_window: u32, window_ms: i64) -> Self {
        Limiter {
            per_window,
            window_ms,
            hits: Mutex::new(HashMap::new()),
        }
    }

    pub fn allow(&self, key: &str, now: Timestamp) -> bool {
        let Ok(mut hits) = self.hits.lock() else {
            return false;
        };
        if hits.len() > 100_000 {
            hits.retain(|_, (start, _)| now.millis() - *start < self.window_ms);
        }
        let e = hits.entry(key.to_string()).or_insert((now.millis(), 0));
        if now.millis() - e.0 >= self.window_ms {
            *e = (now.millis(), 0);
        }
        e.1 += 1;
        e.1 <= self.per_window
    }
}
