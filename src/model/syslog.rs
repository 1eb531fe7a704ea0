//! Audit entries as RFC 5424 syslog messages for a SIEM. Everything taken from an entry is
//! made safe for its place: header fields printable ASCII without spaces, structured-data
//! values with `" \ ]` escaped, and control characters (CR, LF, NUL…) written as visible
//! escapes, so one entry is always one record on one line (AUD-05).

use super::audit::{Entry, Outcome};
use super::audit_export::escape_controls;

/// Facility 13 ("log audit"); severity notice for successes, warning for failures.
const FACILITY: u8 = 13;
/// Private enterprise number reserved for documentation (RFC 5612), naming our SD-ID.
const SD_ID: &str = "hourglass@32473";

/// `[0-9A-Za-z.-]` only, at most `max` characters, `-` when empty (the NILVALUE).
fn header_field(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != ']' && c != '=' {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// An SD-PARAM value: `"`, `\` and `]` backslash-escaped (§6.3.3), then controls written as
/// visible escapes (a backslash before another character reads as itself).
fn sd_value(s: &str) -> String {
    let quoted: String = s
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' | ']' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    escape_controls(&quoted)
}

/// One audit entry as an RFC 5424 message (no trailing newline; framing is the sender's).
pub fn entry(host: &str, seq: i64, e: &Entry) -> String {
    let severity = if e.outcome == Outcome::Success { 5 } else { 4 };
    let mut sd = format!("[{SD_ID} seq=\"{seq}\" outcome=\"{}\"", e.outcome.as_str());
    let fields = [
        ("tenant", &e.tenant_id),
        ("actor", &e.actor_id),
        ("target_kind", &e.target_kind),
        ("target", &e.target_id),
        ("device", &e.device_id),
        ("request", &e.request_identifier),
        ("ticket", &e.ticket_identifier),
        ("ip", &e.ip),
    ];
    sd.push_str(&format!(" actor_kind=\"{}\"", e.actor_kind.as_str()));
    for (name, v) in fields {
        if let Some(v) = v {
            sd.push_str(&format!(" {name}=\"{}\"", sd_value(v)));
        }
    }
    sd.push(']');
    format!(
        "<{}>1 {} {} hourglass - {} {sd} {}",
        FACILITY * 8 + severity,
        e.at.rfc3339(),
        header_field(host, 255),
        header_field(&e.event, 32),
        escape_controls(&e.details)
    )
}

/// A signed audit checkpoint (AUD-04) on one line, so a SIEM keeps a copy outside the box.
pub fn checkpoint(host: &str, at: &str, note: &str) -> String {
    format!(
        "<{}>1 {at} {} hourglass - checkpoint - {}",
        FACILITY * 8 + 5,
        header_field(host, 255),
        escape_controls(note)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::model::audit::ActorKind;

    fn hostile() -> Entry {
        Entry {
            id: "e1".into(),
            at: Timestamp(1_790_000_000_123),
            event: "request_created".into(),
            outcome: Outcome::Failure,
            tenant_id: Some("t1".into()),
            actor_kind: ActorKind::Device,
            actor_id: None,
            target_kind: None,
            target_id: None,
            device_id: Some("d1".into()),
            request_identifier: Some("r1".into()),
            ticket_identifier: Some("W11\n<14>1 FAKE \"x\"] \\".into()),
            ip: None,
            http_request_id: None,
            details: "{\"hostname\":\"W11\\n<14>1 FAKE\"}".into(),
        }
    }

    #[test]
    fn a_hostile_entry_stays_one_record_with_its_values_escaped() {
        let m = entry("hourglass.example", 42, &hostile());
        assert!(!m.contains(['\n', '\r', '\0']), "{m}");
        assert!(m.starts_with("<108>1 2026-09-21T14:13:20.123Z hourglass.example hourglass - request_created [hourglass@32473 seq=\"42\" outcome=\"failure\""), "{m}");
        assert!(m.contains(r#"ticket="W11\n<14>1 FAKE \"x\"\] \\""#), "{m}");
        assert!(m.ends_with(r#"{"hostname":"W11\n<14>1 FAKE"}"#), "{m}");
    }

    #[test]
    fn header_fields_are_printable_ascii_without_spaces() {
        assert_eq!(header_field("bad host\n", 255), "bad_host_");
        assert_eq!(header_field("", 255), "-");
        assert_eq!(header_field(&"x".repeat(40), 32).len(), 32);
        let c = checkpoint(
            "h",
            "2026-11-23T00:00:00.000Z",
            "o\n5\nAAAA\n\n\u{2014} o sig\n",
        );
        assert_eq!(
            c,
            "<109>1 2026-11-23T00:00:00.000Z h hourglass - checkpoint - o\\n5\\nAAAA\\n\\n\u{2014} o sig\\n"
        );
    }
}
