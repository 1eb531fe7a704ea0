//! Tenant time zones (IANA names, the tz database bundled into the binary for air-gapped
//! installs): policy windows and auto-approval hours are read in the tenant's zone.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp as Instant, Zoned};

use crate::error::{Error, Result};

pub const DEFAULT: &str = "UTC";

fn zone(name: &str) -> Result<TimeZone> {
    TimeZone::get(name).map_err(|_| {
        Error::validation(
            "time_zone",
            format!("{name:?} is not a time zone; use an IANA name like Europe/Berlin or UTC"),
        )
    })
}

/// Every zone name the bundled database knows, sorted (for pickers).
pub fn names() -> Vec<String> {
    let mut all: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
    all.sort();
    all
}

/// A valid IANA zone name, as given.
pub fn check(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 64 {
        return Err(Error::validation(
            "time_zone",
            "is required (at most 64 characters)",
        ));
    }
    zone(n)?;
    Ok(n.to_string())
}

/// Reads a moment: RFC 3339 with an offset (`2026-11-23T08:00:00Z`, `…+01:00`) as written,
/// or a local date and time (`2026-11-23T08:00`, `2026-11-23 08:00`) in the tenant's zone.
/// A local time a clock change skips or repeats takes the later reading.
pub fn parse(field: &str, text: &str, zone_name: &str) -> Result<i64> {
    let t = text.trim();
    let bad = || {
        Error::validation(
            field,
            format!("must be a time like 2026-11-23T08:00 ({zone_name}) or 2026-11-23T08:00:00Z"),
        )
    };
    if let Ok(i) = t.parse::<Instant>() {
        return Ok(i.as_millisecond());
    }
    let dt: DateTime = t.replacen(' ', "T", 1).parse().map_err(|_| bad())?;
    let z = zone(zone_name)?;
    z.to_ambiguous_zoned(dt)
        .later()
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| bad())
}

fn zoned(ms: i64, zone_name: &str) -> Option<Zoned> {
    let z = TimeZone::get(zone_name).ok()?;
    Some(Instant::from_millisecond(ms).ok()?.to_zoned(z))
}

/// RFC 3339 with the zone's offset at that moment (`2026-11-23T08:00:00+01:00`).
pub fn rfc3339(ms: i64, zone_name: &str) -> String {
    zoned(ms, zone_name)
        .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%.f%:z").to_string())
        .unwrap_or_default()
}

/// The local `YYYY-MM-DDTHH:MM` a form shows and takes back.
pub fn local(ms: i64, zone_name: &str) -> String {
    zoned(ms, zone_name)
        .map(|z| z.strftime("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

/// A moment as people read it, relative to `now`: "just now", "3 min ago", "in 12 min",
/// "today 14:05", "yesterday 09:30", "tomorrow 08:00", "23 Nov 14:05", "23 Nov 2025 14:05".
pub fn human(ms: i64, now_ms: i64, zone_name: &str) -> String {
    let (Some(t), Some(now)) = (zoned(ms, zone_name), zoned(now_ms, zone_name)) else {
        return String::new();
    };
    let d = ms - now_ms;
    let mins = d.abs() / 60_000;
    if d.abs() < 60_000 {
        return "just now".into();
    }
    if mins < 60 {
        return if d < 0 {
            format!("{mins} min ago")
        } else {
            format!("in {mins} min")
        };
    }
    let clock = t.strftime("%H:%M").to_string();
    let day = |z: &Zoned| z.date();
    let today = day(&now);
    match (day(&t) - today).get_days() {
        0 => return format!("today {clock}"),
        -1 => return format!("yesterday {clock}"),
        1 => return format!("tomorrow {clock}"),
        _ => {}
    }
    if t.year() == now.year() {
        t.strftime("%-d %b %H:%M").to_string()
    } else {
        t.strftime("%-d %b %Y %H:%M").to_string()
    }
}

/// The exact moment for a tooltip: `Mon 23 Nov 2026 14:05:09 CET`.
pub fn exact(ms: i64, zone_name: &str) -> String {
    zoned(ms, zone_name)
        .map(|z| z.strftime("%a %-d %b %Y %H:%M:%S %Z").to_string())
        .unwrap_or_default()
}

/// A length of time in words: "45 s", "12 min", "2 h 5 min", "3 days".
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 if (s / 60) % 60 == 0 => format!("{} h", s / 3600),
        3600..86_400 => format!("{} h {} min", s / 3600, (s / 60) % 60),
        _ if s / 86_400 == 1 => "1 day".into(),
        _ => format!("{} days", s / 86_400),
    }
}

/// Minutes after local midnight.
pub fn minute_of_day(ms: i64, zone_name: &str) -> u32 {
    zoned(ms, zone_name)
        .map(|z| u32::from(z.hour() as u8) * 60 + u32::from(z.minute() as u8))
        .unwrap_or_else(|| (ms.rem_euclid(86_400_000) / 60_000) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23T00:00:00Z
    const T0: i64 = 1_795_392_000_000;
    const H: i64 = 3_600_000;

    #[test]
    fn local_times_are_read_in_the_zone_and_offsets_as_written() {
        assert_eq!(
            parse("from", "2026-11-23T08:00", "UTC").unwrap(),
            T0 + 8 * H
        );
        // Berlin is UTC+1 in November.
        assert_eq!(
            parse("from", "2026-11-23T08:00", "Europe/Berlin").unwrap(),
            T0 + 7 * H
        );
        assert_eq!(
            parse("from", "2026-11-23 08:00", "Europe/Berlin").unwrap(),
            T0 + 7 * H
        );
        assert_eq!(
            parse("from", "2026-11-23T08:00:00Z", "Europe/Berlin").unwrap(),
            T0 + 8 * H
        );
        assert_eq!(
            parse("from", "2026-11-23T08:00:00-05:00", "UTC").unwrap(),
            T0 + 13 * H
        );
        let e = parse("from", "tomorrow", "UTC").unwrap_err().to_string();
        assert!(e.contains("2026-11-23T08:00 (UTC)"), "{e}");
        assert!(parse("from", "23.11.2026", "UTC").is_err());
    }

    #[test]
    fn a_repeated_or_skipped_local_time_takes_the_later_reading() {
        // Berlin, 2026-10-25: 02:30 happens twice (CEST then CET); the later is 01:30Z.
        let fall = parse("to", "2026-10-25T02:30", "Europe/Berlin").unwrap();
        assert_eq!(fall, parse("to", "2026-10-25T01:30:00Z", "UTC").unwrap());
        // 2026-03-29: 02:30 does not exist; the later reading is 03:30 CEST = 01:30Z.
        let spring = parse("to", "2026-03-29T02:30", "Europe/Berlin").unwrap();
        assert_eq!(spring, parse("to", "2026-03-29T01:30:00Z", "UTC").unwrap());
    }

    #[test]
    fn milliseconds_survive_a_round_trip() {
        let t = T0 + 7 * H + 123;
        let text = rfc3339(t, "Europe/Berlin");
        assert_eq!(text, "2026-11-23T08:00:00.123+01:00");
        assert_eq!(parse("from", &text, "UTC").unwrap(), t);
    }

    #[test]
    fn moments_are_shown_in_the_zone() {
        assert_eq!(
            rfc3339(T0 + 7 * H, "Europe/Berlin"),
            "2026-11-23T08:00:00+01:00"
        );
        assert_eq!(local(T0 + 7 * H, "Europe/Berlin"), "2026-11-23T08:00");
        assert_eq!(rfc3339(T0, "UTC"), "2026-11-23T00:00:00+00:00");
        assert_eq!(minute_of_day(T0 + 7 * H, "Europe/Berlin"), 8 * 60);
        assert_eq!(minute_of_day(T0 + 7 * H, "America/New_York"), 2 * 60);
        // A round trip through the form keeps the moment.
        let ms = parse("f", &local(T0 + 5 * H, "Asia/Tokyo"), "Asia/Tokyo").unwrap();
        assert_eq!(ms, T0 + 5 * H);
    }

    #[test]
    fn moments_read_like_people_say_them() {
        let now = T0 + 14 * H; // 14:00 UTC, 15:00 in Berlin
        assert_eq!(human(now - 20_000, now, "UTC"), "just now");
        assert_eq!(human(now - 3 * 60_000, now, "UTC"), "3 min ago");
        assert_eq!(human(now + 12 * 60_000, now, "UTC"), "in 12 min");
        assert_eq!(human(now - 3 * H, now, "UTC"), "today 11:00");
        assert_eq!(human(now - 3 * H, now, "Europe/Berlin"), "today 12:00");
        assert_eq!(human(now - 20 * H, now, "UTC"), "yesterday 18:00");
        assert_eq!(human(now + 12 * H, now, "UTC"), "tomorrow 02:00");
        assert_eq!(human(now - 72 * H, now, "UTC"), "20 Nov 14:00");
        assert_eq!(human(now - 400 * 24 * H, now, "UTC"), "19 Oct 2025 14:00");
        assert_eq!(exact(now, "Europe/Berlin"), "Mon 23 Nov 2026 15:00:00 CET");
        assert_eq!(span(45_000), "45 s");
        assert_eq!(span(12 * 60_000), "12 min");
        assert_eq!(span(2 * H + 5 * 60_000), "2 h 5 min");
        assert_eq!(span(8 * H), "8 h");
        assert_eq!(span(72 * H), "3 days");
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check(" Europe/Berlin ").unwrap(), "Europe/Berlin");
        assert!(
            check("Mars/Olympus")
                .unwrap_err()
                .to_string()
                .contains("IANA")
        );
        assert!(check("").is_err());
    }
}
