//! Outgoing webhooks to approvers: formats (generic JSON, Slack, Teams), the HMAC signature
//! receivers check, and the retry schedule.

use serde_json::{Value, json};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::TenantId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Generic,
    Slack,
    Teams,
}

impl Format {
    pub const ALL: &'static [Format] = &[Format::Generic, Format::Slack, Format::Teams];
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Generic => "generic",
            Format::Slack => "slack",
            Format::Teams => "teams",
        }
    }
    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.iter().copied().find(|f| f.as_str() == s)
    }
    pub fn label(self) -> &'static str {
        match self {
            Format::Generic => "Generic JSON",
            Format::Slack => "Slack (incoming webhook)",
            Format::Teams => "Microsoft Teams (incoming webhook)",
        }
    }
}

/// Attempts before a delivery is given up as `failed`.
pub const MAX_ATTEMPTS: u32 = 6;

/// Seconds to wait after failed attempt `n` (1-based): 30 s, 2 min, 10 min, 1 h, 6 h.
pub fn backoff_secs(n: u32) -> i64 {
    match n {
        0 | 1 => 30,
        2 => 120,
        3 => 600,
        4 => 3_600,
        _ => 21_600,
    }
}

/// The IPv4 address an IPv6 address stands for, in every form that reaches an IPv4 host:
/// mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4
/// (`2002:aabb:ccdd::`).
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let from = |hi: u16, lo: u16| {
        std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(from(s[1], s[2]));
    }
    None
}

/// Whether a webhook may connect to `ip`: never link-local (cloud metadata), unspecified,
/// broadcast or multicast; loopback and the appliance's own addresses (`own`) only when
/// allowed. IPv6 forms of IPv4 addresses are judged as the IPv4 address they reach.
pub fn reachable(ip: std::net::IpAddr, allow_loopback: bool, own: &[std::net::IpAddr]) -> bool {
    use std::net::IpAddr;
    let original = ip;
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    // Cloud metadata services outside link-local space (AWS over IPv6, Alibaba).
    let metadata = ip == IpAddr::from([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254])
        || ip == IpAddr::from([100, 100, 100, 200]);
    let itself = ip.is_loopback() || own.contains(&ip) || own.contains(&original);
    !(link_local
        || metadata
        || broadcast
        || ip.is_unspecified()
        || ip.is_multicast()
        || itself && !allow_loopback)
}

/// A webhook URL: http or https, a host, no credentials in it, ≤ 2,000 characters, and not
/// an address it may not reach (see `reachable`; names are checked again when resolved).
/// Returns the host shown in the portal (the URL itself may be a secret).
pub fn check_url(raw: &str, allow_loopback: bool, own: &[std::net::IpAddr]) -> Result<String> {
    let bad = |why: &str| Error::validation("url", why.to_string());
    let raw = raw.trim();
    if raw.len() > 2000 {
        return Err(bad("must be at most 2000 characters"));
    }
    let u = url::Url::parse(raw).map_err(|_| bad("must be a full http(s) URL"))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(bad(
            "must start with https:// (or http:// inside your network)",
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("must not contain a user name or password"));
    }
    let host = u.host_str().ok_or_else(|| bad("must name a host"))?;
    // `LOCALHOST.` is `localhost`: names compare lower-cased, without the root's dot.
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let ip = match u.host() {
        Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
        _ if name == "localhost" || name.ends_with(".localhost") => {
            Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        }
        _ => None,
    };
    if ip.is_some_and(|ip| !reachable(ip, allow_loopback, own)) {
        return Err(bad(
            "must not point at this appliance itself or a link-local address (such as a cloud metadata service)",
        ));
    }
    Ok(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// The events a webhook can hear, with what the portal calls them. Each carries the request's
/// id and ticket, so a PSA ticket can be updated or closed from it.
pub const EVENTS: &[(&str, &str)] = &[
    ("request.created", "A request waits for a decision"),
    ("request.extension", "A running session asks for more time"),
    (
        "request.approved",
        "A request was approved (by a person or a rule)",
    ),
    ("request.denied", "A request was denied"),
    ("request.revoked", "A session was revoked"),
    ("request.ended", "A session was ended early by its user"),
    ("request.expired", "A session reached its end"),
    (
        "request.timed_out",
        "A request timed out without a decision",
    ),
    (
        "request.failed",
        "The workstation could not carry a grant out",
    ),
    ("login.started", "A technician login started"),
    (
        "login.ended",
        "A technician login was ended by its technician",
    ),
    ("login.revoked", "A technician login was revoked"),
    ("login.expired", "A technician login reached its end"),
    (
        "login.offline",
        "Someone logged in offline with the offline code",
    ),
    (
        "device.silent",
        "A workstation holding admin rights or a login stopped checking in",
    ),
    (
        "device.agent_restarted",
        "A workstation's agent started again while it held rights",
    ),
    (
        "device.agent_changed",
        "A workstation's agent reported another version",
    ),
];

/// A webhook's event filter from what a form or the API sent: known events only, at least
/// one; none given means all of them.
pub fn check_events(asked: &[String]) -> Result<Vec<String>> {
    if asked.is_empty() {
        return Ok(EVENTS.iter().map(|(e, _)| e.to_string()).collect());
    }
    let mut out = Vec::new();
    for a in asked {
        let a = a.trim();
        if !EVENTS.iter().any(|(e, _)| *e == a) {
            return Err(Error::validation("events", format!("unknown event {a:?}")));
        }
        if !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    }
    Ok(out)
}

/// What happened, for every format.
#[derive(Clone, Debug)]
pub struct Notice {
    /// `request.created`, …
    pub event: String,
    /// What the event is about: `request` or `login` (the generic payload's key).
    pub subject: &'static str,
    pub tenant: String,
    pub request_id: String,
    pub ticket: Option<String>,
    pub account: String,
    pub hostname: String,
    pub minutes: u32,
    pub justification: String,
    pub link: String,
    /// RFC 3339.
    pub at: String,
    /// What happened, in words (the chat formats' headline); empty for a new request.
    pub summary: String,
}

impl Notice {
    fn headline(&self) -> String {
        if !self.summary.is_empty() {
            return format!("{} ({})", self.summary, self.tenant);
        }
        format!(
            "{} on {} ({}) asks for administrator rights for {} minutes",
            self.account, self.hostname, self.tenant, self.minutes
        )
    }
}

/// Slack's mrkdwn control characters, so a justification cannot `<!channel>` anyone.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body sent for a notice in a format.
pub fn payload(f: Format, n: &Notice) -> Value {
    let ticket = n.ticket.clone().unwrap_or_default();
    match f {
        Format::Generic => json!({
            "event": n.event, "at": n.at, "tenant": n.tenant, "summary": n.headline(),
            n.subject: {"id": n.request_id, "ticket": n.ticket, "account": n.account,
                        "hostname": n.hostname, "minutes": n.minutes,
                        "justification": n.justification, "link": n.link},
        }),
        Format::Slack => json!({
            "text": format!("{} — {}", slack_escape(&n.headline()), n.link),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", slack_escape(&n.headline()))}},
                {"type": "section", "fields": [
                    {"type": "mrkdwn", "text": format!("*Justification*\n{}", slack_escape(&n.justification))},
                    {"type": "mrkdwn", "text": format!("*Ticket*\n{}", slack_escape(&ticket))},
                ]},
                {"type": "actions", "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Review"}, "url": n.link},
                ]},
            ],
        }),
        Format::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard", "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "weight": "Bolder", "wrap": true, "text": n.headline()},
                        {"type": "FactSet", "facts": [
                            {"title": "Justification", "value": n.justification},
                            {"title": "Ticket", "value": ticket},
                            {"title": "Request", "value": n.request_id},
                        ]},
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": "Review", "url": n.link}],
                },
            }],
        }),
    }
}

/// The string the HMAC covers: `timestamp.body`, so a captured body cannot be replayed
/// under a new timestamp.
pub fn signed_content(timestamp: i64, body: &str) -> String {
    format!("{timestamp}.{body}")
}

#[derive(Clone, Debug)]
pub struct Webhook {
    pub id: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub format: Format,
    /// The events it hears (`EVENTS`).
    pub events: Vec<String>,
    pub host: String,
    pub url_sealed: Vec<u8>,
    pub secret_sealed: Vec<u8>,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_only_the_host_is_shown() {
        assert_eq!(
            check_url("https://hooks.slack.com/services/T0/B0/secret", false, &[]).unwrap(),
            "hooks.slack.com"
        );
        assert_eq!(
            check_url("http://10.0.0.5:8080/x", false, &[]).unwrap(),
            "10.0.0.5:8080"
        );
        for bad in ["", "ftp://x/y", "hooks.slack.com/x", "https://u:p@x/y"] {
            assert!(check_url(bad, false, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_appliance_itself_and_metadata_services_are_out_of_reach() {
        for own in [
            "http://127.0.0.1:8443/metrics",
            "http://localhost/x",
            "http://api.localhost/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://LOCALHOST./x",
            "http://[::127.0.0.1]/x",
            "http://[64:ff9b::7f00:1]/x",
            "http://[2002:7f00:1::]/x",
            "http://127.1.2.3/x",
        ] {
            let e = check_url(own, false, &[]).unwrap_err().to_string();
            assert!(e.contains("this appliance itself"), "{own}: {e}");
            assert!(
                check_url(own, true, &[]).is_ok(),
                "allowed for a local relay: {own}"
            );
        }
        for never in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/latest/meta-data",
            "http://100.100.100.200/",
            "http://[fe80::1]/x",
            "http://0.0.0.0/x",
            "http://224.0.0.1/x",
        ] {
            assert!(check_url(never, true, &[]).is_err(), "{never}");
        }
        assert!(check_url("http://255.255.255.255/x", true, &[]).is_err());
        assert!(
            check_url("https://192.168.1.20/hook", false, &[]).is_ok(),
            "the internal network is fine"
        );
        // The appliance's own interface addresses are the appliance itself.
        let me: std::net::IpAddr = "192.168.1.20".parse().unwrap();
        assert!(check_url("https://192.168.1.20/hook", false, &[me]).is_err());
        assert!(check_url("https://[::ffff:192.168.1.20]/hook", false, &[me]).is_err());
        assert!(check_url("https://192.168.1.20/hook", true, &[me]).is_ok());
    }

    #[test]
    fn retries_back_off_and_stop() {
        let waits: Vec<i64> = (1..MAX_ATTEMPTS).map(backoff_secs).collect();
        assert!(waits.windows(2).all(|w| w[0] < w[1]), "{waits:?}");
    }

    #[test]
    fn an_event_filter_holds_known_events_once_and_defaults_to_all() {
        assert_eq!(check_events(&[]).unwrap().len(), EVENTS.len());
        let two = [
            "request.denied".to_string(),
            "request.denied".into(),
            "request.created".into(),
        ];
        assert_eq!(
            check_events(&two).unwrap(),
            ["request.denied", "request.created"]
        );
        let e = check_events(&["request.flew".to_string()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("request.flew"), "{e}");
    }

    #[test]
    fn every_format_carries_the_link() {
        let n = Notice {
            event: "request.created".into(),
            subject: "request",
            tenant: "Acme".into(),
            request_id: "r1".into(),
            ticket: Some("T-1".into()),
            account: "alice".into(),
            hostname: "pc1".into(),
            minutes: 30,
            justification: "printer driver".into(),
            link: "https://hg/t/acme/requests".into(),
            at: "2026-01-01T00:00:00Z".into(),
            summary: String::new(),
        };
        for f in Format::ALL {
            let body = payload(*f, &n).to_string();
            assert!(body.contains("https://hg/t/acme/requests"), "{f:?}");
            assert!(body.contains("printer driver"), "{f:?}");
        }
        assert_eq!(payload(Format::Slack, &n)["blocks"][0]["type"], "section");
        let loud = Notice {
            justification: "<!channel> now".into(),
            ..n.clone()
        };
        assert!(
            !payload(Format::Slack, &loud)
                .to_string()
                .contains("<!channel>")
        );
        assert_eq!(payload(Format::Teams, &n)["type"], "message");
    }
}

super::text_enum! {
    /// Where one delivery of an event stands.
    pub enum DeliveryState {
        /// Not sent yet, or to be tried again.
        Pending = "pending",
        Delivered = "delivered",
        /// Given up after the last attempt.
        Failed = "failed",
    }
}

/// One event on its way to one webhook (a row of `webhook_deliveries`).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub tenant_id: TenantId,
    pub event: String,
    pub request_id: Option<String>,
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}
