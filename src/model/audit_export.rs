//! Audit export lines (CSV and NDJSON) that cannot inject (AUD-05): control characters are
//! written as visible escapes, so a record stays one line, and CSV cells that a spreadsheet
//! would run as a formula get a leading `'`.

use serde_json::json;

use super::audit::Entry;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
    /// What comes before the first entry.
    pub fn header(self) -> String {
        match self {
            Format::Csv => format!("{}\r\n", COLUMNS.join(",")),
            Format::Ndjson => String::new(),
        }
    }
    /// One entry with the names of its actor, target and workstation, line ending included.
    pub fn line(self, seq: i64, e: &Entry, names: &Names) -> String {
        match self {
            Format::Csv => csv_line(seq, e, names),
            // serde_json escapes every control character, so a line is always one line.
            Format::Ndjson => format!("{}\n", ndjson(seq, e, names)),
        }
    }
}

/// What an entry's ids are called now (joined in at export, never part of the chain).
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub actor: Option<String>,
    pub target: Option<String>,
    pub device: Option<String>,
    /// The entry in words, where its event has a sentence (technician logins).
    pub summary: Option<String>,
}

const COLUMNS: [&str; 21] = [
    "seq",
    "time",
    "event",
    "outcome",
    "tenant_id",
    "actor_kind",
    "actor_id",
    "actor_name",
    "target_kind",
    "target_id",
    "target_name",
    "device_id",
    "device_name",
    "request_identifier",
    "ticket_identifier",
    "ip",
    "http_request_id",
    "justification",
    "summary",
    "details",
    "id",
];

fn ndjson(seq: i64, e: &Entry, n: &Names) -> serde_json::Value {
    let details: serde_json::Value =
        serde_json::from_str(&e.details).unwrap_or_else(|_| json!(e.details));
    json!({
        "seq": seq, "time": e.at.rfc3339(), "event": e.event, "outcome": e.outcome.as_str(),
        "tenant_id": e.tenant_id, "actor_kind": e.actor_kind.as_str(), "actor_id": e.actor_id,
        "actor_name": n.actor, "target_kind": e.target_kind, "target_id": e.target_id,
        "target_name": n.target, "device_id": e.device_id, "device_name": n.device,
        "request_identifier": e.request_identifier, "ticket_identifier": e.ticket_identifier,
        "ip": e.ip, "http_request_id": e.http_request_id, "summary": n.summary,
        "details": details, "id": e.id,
    })
}

/// The requester's words, in a column of their own: the text most likely to carry a formula.
fn justification(e: &Entry) -> String {
    serde_json::from_str::<serde_json::Value>(&e.details)
        .ok()
        .and_then(|d| {
            d.get("justification")
                .and_then(|j| j.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn csv_line(seq: i64, e: &Entry, n: &Names) -> String {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let cells = [
        seq.to_string(),
        e.at.rfc3339(),
        e.event.clone(),
        e.outcome.as_str().to_string(),
        o(&e.tenant_id),
        e.actor_kind.as_str().to_string(),
        o(&e.actor_id),
        o(&n.actor),
        o(&e.target_kind),
        o(&e.target_id),
        o(&n.target),
        o(&e.device_id),
        o(&n.device),
        o(&e.request_identifier),
        o(&e.ticket_identifier),
        o(&e.ip),
        o(&e.http_request_id),
        justification(e),
        o(&n.summary),
        e.details.clone(),
        e.id.clone(),
    ];
    let mut out = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// One CSV cell: control characters escaped, a formula neutralised, quoted when needed.
pub fn csv_cell(raw: &str) -> String {
    let mut s = escape_controls(raw);
    if s.starts_with(['=', '+', '-', '@']) {
        s.insert(0, '\'');
    }
    if s.contains([',', '"']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// CR, LF, NUL, TAB and every other control character as a visible escape (`\n`, `\u{1b}`…).
pub fn escape_controls(raw: &str) -> String {
    if !raw.chars().any(char::is_control) {
        return raw.to_string();
    }
    raw.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::model::audit::{ActorKind, Outcome};

    fn entry(ticket: &str) -> Entry {
        Entry {
            id: "e1".into(),
            at: Timestamp(1_790_000_000_123),
            event: "request_created".into(),
            outcome: Outcome::Success,
            tenant_id: Some("t1".into()),
            actor_kind: ActorKind::Device,
            actor_id: None,
            target_kind: Some("request".into()),
            target_id: Some("r1".into()),
            device_id: Some("d1".into()),
            request_identifier: Some("r1".into()),
            ticket_identifier: Some(ticket.into()),
            ip: None,
            http_request_id: None,
            details: r#"{"justification":"=HYPERLINK(\"http://x\")"}"#.into(),
        }
    }

    #[test]
    fn formulas_are_neutralised_and_quotes_doubled() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for f in ["+1", "-1", "@SUM(A1)", "=1"] {
            assert!(csv_cell(f).starts_with('\''), "{f}");
        }
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
    }

    #[test]
    fn control_characters_never_break_a_record() {
        let e = entry("W11\n<14>1 FAKE\r\0\u{1b}");
        for f in [Format::Csv, Format::Ndjson] {
            let line = f.line(7, &e, &Names::default());
            assert_eq!(
                line.trim_end_matches(['\r', '\n']).lines().count(),
                1,
                "{line:?}"
            );
            assert!(
                !line
                    .trim_end_matches(['\r', '\n'])
                    .contains(['\r', '\0', '\u{1b}']),
                "{line:?}"
            );
        }
        let csv = Format::Csv.line(7, &e, &Names::default());
        assert!(csv.contains("W11\\n<14>1 FAKE\\r\\u{0}\\u{1b}"), "{csv}");
        assert_eq!(csv.split(',').next(), Some("7"));
        assert!(csv.contains(",\"'=HYPERLINK(\"\"http://x\"\")\","), "{csv}");
        let nd: serde_json::Value =
            serde_json::from_str(Format::Ndjson.line(7, &e, &Names::default()).trim_end()).unwrap();
        assert_eq!(nd["ticket_identifier"], "W11\n<14>1 FAKE\r\0\u{1b}");
        assert_eq!(nd["details"]["justification"], "=HYPERLINK(\"http://x\")");
        assert_eq!(nd["time"], "2026-09-21T14:13:20.123Z");
    }

    #[test]
    fn the_header_names_every_column_once() {
        let h = Format::Csv.header();
        assert_eq!(h.trim_end().split(',').count(), 21);
        let e = Entry {
            details: r#"{"justification":"fix"}"#.into(),
            ..entry("T")
        };
        let names = Names {
            actor: Some("Nik Potter".into()),
            target: Some("bob on W11-PC".into()),
            device: Some("W11-PC".into()),
            summary: Some("nik logged into W11-PC with account msp-nik".into()),
        };
        let line = Format::Csv.line(1, &e, &names);
        assert_eq!(line.trim_end().split(',').count(), 21);
        assert!(line.contains(",bob on W11-PC,"), "{line}");
        assert!(
            line.contains(",nik logged into W11-PC with account msp-nik,"),
            "{line}"
        );
    }
}
