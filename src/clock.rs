//! The only reader of OS time. Everything time-dependent takes a `Timestamp`
//! from a `Clock`, so tests move a manual clock instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// UTC milliseconds since the Unix epoch, as stored in the database.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub const fn millis(self) -> i64 {
        self.0
    }
    pub const fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    pub fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }
    pub fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
    /// Midnight UTC of a `YYYY-MM-DD` date (filters), or None when it is not one.
    pub fn parse_date(s: &str) -> Option<Timestamp> {
        let fmt = time::macros::format_description!("[year]-[month]-[day]");
        let d = time::Date::parse(s.trim(), &fmt).ok()?;
        Some(Timestamp(d.midnight().assume_utc().unix_timestamp() * 1000))
    }

    /// An RFC 3339 time with any offset (`2026-11-23T08:00:00Z`, `…+01:00`).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t =
            time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
                .ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .ok()
            .map(Timestamp)
    }

    /// RFC 3339 with milliseconds, UTC (`2026-11-23T06:13:54.123Z`).
    pub fn rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => {
                let fmt = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                );
                t.format(&fmt).unwrap_or_else(|_| self.0.to_string())
            }
            Err(_) => self.0.to_string(),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// System time in production, a settable value in tests.
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn system() -> Self {
        Clock::System
    }
    pub fn manual(start: Timestamp) -> Self {
        Clock::Manual(Arc::new(AtomicI64::new(start.0)))
    }
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp(system_millis()),
            Clock::Manual(v) => Timestamp(v.load(Ordering::SeqCst)),
        }
    }
    /// Moves a manual clock forward (or back, with a negative value). No-op on the system clock.
    pub fn advance_secs(&self, secs: i64) {
        if let Clock::Manual(v) = self {
            v.fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
        }
    }
    pub fn advance_millis(&self, ms: i64) {
        if let Clock::Manual(v) = self {
            v.fetch_add(ms, Ordering::SeqCst);
        }
    }
    pub fn set(&self, t: Timestamp) {
        if let Clock::Manual(v) = self {
            v.store(t.0, Ordering::SeqCst);
        }
    }
}

#[allow(clippy::disallowed_methods)] // the one sanctioned reader of OS time
fn system_millis() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Monotonic instant for latency measurement and the agent's deadlines; never for stored time.
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

/// Blocking sleep for the CLI and agent loops; tests never call it.
#[allow(clippy::disallowed_methods)]
pub fn sleep_blocking(d: std::time::Duration) {
    std::thread::sleep(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(Timestamp(1_000));
        assert_eq!(c.now(), Timestamp(1_000));
        c.advance_secs(90);
        assert_eq!(c.now(), Timestamp(91_000));
        c.set(Timestamp(5));
        assert_eq!(c.now().millis(), 5);
    }

    #[test]
    fn rfc3339_has_milliseconds_in_utc() {
        assert_eq!(
            Timestamp(1_234_567_890_123).rfc3339(),
            "2009-02-13T23:31:30.123Z"
        );
        assert_eq!(Timestamp(0).seconds(), 0);
        assert_eq!(
            Timestamp::parse_date("2009-02-13"),
            Some(Timestamp(1_234_483_200_000))
        );
        assert_eq!(Timestamp::parse_date("13/02/2009"), None);
        assert_eq!(Timestamp(-1).seconds(), -1);
    }
}
