//! The base URL of every link the appliance hands out (setup and enrollment links, agent
//! command lines, mails, webhooks). One rule everywhere: `server.public_url` when it is set,
//! otherwise the address actually listened on — never the `Host` header a client sent.

use std::net::{IpAddr, SocketAddr};

/// Where people and agents reach the appliance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    /// The portal: setup and enrollment links, mails, webhook links.
    pub portal: String,
    /// The agent API (`--server` of the enrollment command line).
    pub agent: String,
}

/// What the rule needs to know.
pub struct Where<'a> {
    pub public_url: &'a str,
    /// The name in the certificate (`tls.hostname`, else the machine's hostname).
    pub hostname: &'a str,
    /// The portal's configured listen address (`host:port`) and, once bound, the real one.
    pub listen: &'a str,
    pub bound: Option<SocketAddr>,
    /// The separate agent listener, if any (configured and bound).
    pub agent_listen: &'a str,
    pub agent_bound: Option<SocketAddr>,
}

/// `https://host:port` for a listener: its address when it names one, the certificate's
/// hostname when it listens on every interface.
fn from_listener(hostname: &str, listen: &str, bound: Option<SocketAddr>) -> String {
    let configured: Option<SocketAddr> = listen.parse().ok();
    let port = bound
        .map(|b| b.port())
        .or_else(|| configured.map(|c| c.port()))
        .or_else(|| listen.rsplit(':').next().and_then(|p| p.parse().ok()))
        .unwrap_or(8443);
    let ip = bound.map(|b| b.ip()).or_else(|| configured.map(|c| c.ip()));
    let host = match ip {
        Some(ip) if ip.is_unspecified() => hostname.to_string(),
        Some(IpAddr::V6(v6)) => format!("[{v6}]"),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        // A name such as `localhost:8443`.
        None => listen
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| hostname.to_string()),
    };
    format!("https://{host}:{port}")
}

/// The host part of a URL (`https://box.example:8443/x` → `box.example`).
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then_some(host)
}

pub fn links(w: &Where<'_>) -> Links {
    let public = w.public_url.trim().trim_end_matches('/');
    let portal = if public.is_empty() {
        from_listener(w.hostname, w.listen, w.bound)
    } else {
        public.to_string()
    };
    let agent = if w.agent_listen.is_empty() && w.agent_bound.is_none() {
        portal.clone()
    } else {
        // Its own listener: its port, under the public name when there is one.
        let own = from_listener(w.hostname, w.agent_listen, w.agent_bound);
        match host_of(public) {
            Some(h) if !public.is_empty() => {
                let port = own.rsplit(':').next().unwrap_or("8443");
                format!("https://{h}:{port}")
            }
            _ => own,
        }
    };
    Links { portal, agent }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<'a>(public: &'a str, listen: &'a str, bound: Option<&str>) -> Where<'a> {
        Where {
            public_url: public,
            hostname: "box",
            listen,
            bound: bound.map(|b| b.parse().unwrap()),
            agent_listen: "",
            agent_bound: None,
        }
    }

    #[test]
    fn public_url_wins_and_loses_its_slash() {
        let l = links(&w("https://hg.example.com/", "0.0.0.0:8443", None));
        assert_eq!(l.portal, "https://hg.example.com");
        assert_eq!(l.agent, "https://hg.example.com");
    }

    #[test]
    fn otherwise_the_address_actually_listened_on() {
        assert_eq!(
            links(&w("", "0.0.0.0:8443", None)).portal,
            "https://box:8443"
        );
        assert_eq!(
            links(&w("", "127.0.0.1:0", Some("127.0.0.1:40123"))).portal,
            "https://127.0.0.1:40123"
        );
        assert_eq!(
            links(&w("", "0.0.0.0:0", Some("0.0.0.0:40124"))).portal,
            "https://box:40124"
        );
        assert_eq!(
            links(&w("", "[::1]:9443", Some("[::1]:9443"))).portal,
            "https://[::1]:9443"
        );
        assert_eq!(
            links(&w("", "localhost:9443", None)).portal,
            "https://localhost:9443"
        );
    }

    #[test]
    fn a_separate_agent_listener_has_its_own_port() {
        let mut x = w("https://hg.example.com", "0.0.0.0:8443", None);
        x.agent_listen = "0.0.0.0:9443";
        assert_eq!(links(&x).agent, "https://hg.example.com:9443");
        let mut y = w("", "127.0.0.1:8443", None);
        y.agent_listen = "10.0.0.5:9443";
        assert_eq!(links(&y).agent, "https://10.0.0.5:9443");
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(host_of("https://a.b:8443/x"), Some("a.b"));
        assert_eq!(host_of("https://[::1]:8443"), Some("::1"));
        assert_eq!(host_of("https://a.b"), Some("a.b"));
        assert_eq!(host_of(""), None);
    }
}
