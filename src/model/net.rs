//! Who the client is behind reverse proxies: `X-Forwarded-For` is believed only when the
//! connection comes from a proxy the operator listed, and then read from the right, skipping
//! further trusted proxies, so a client cannot choose its own address by sending the header.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// An IPv4 address seen through a dual-stack socket (`::ffff:a.b.c.d`) as plain IPv4.
fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One X-Forwarded-For entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), as some gateways send.
fn entry(s: &str) -> Result<IpAddr, ()> {
    let s = s.trim();
    let ip = s
        .parse::<IpAddr>()
        .or_else(|_| s.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .map_err(|_| ())?;
    Ok(plain(ip))
}

/// `server.trusted_proxies`: addresses or CIDRs, comma-separated; empty = none.
pub fn parse_proxies(s: &str) -> Result<Vec<IpNet>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    Error::startup(format!(
                        "server.trusted_proxies: {p:?} is not an address or a CIDR such as 10.0.0.0/8"
                    ))
                })
        })
        .collect()
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = plain(peer);
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(xff) = forwarded_for else {
        return peer;
    };
    let mut last = peer;
    for part in xff.rsplit(',') {
        match entry(part) {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return ip,
            // Garbage in the chain: stop at the last address we could vouch for.
            Err(_) => return last,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let t = parse_proxies("10.0.0.5, 192.168.10.0/24").unwrap();
        // Not through a proxy: the header is the client's own words and is ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &t),
            ip("203.0.113.9")
        );
        // Through the proxy: the address it saw.
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("203.0.113.7"), &t),
            ip("203.0.113.7")
        );
        // A client prepending a fake address gets the one the proxy appended.
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("1.1.1.1, 203.0.113.7"), &t),
            ip("203.0.113.7")
        );
        // Two trusted hops.
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("203.0.113.7, 192.168.10.3"), &t),
            ip("203.0.113.7")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), None, &t), ip("10.0.0.5"));
        // A dual-stack listener sees the proxy as ::ffff:10.0.0.5; gateways may add ports.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), Some("203.0.113.7:4711"), &t),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), Some("[2001:db8::7]:443"), &t),
            ip("2001:db8::7")
        );
        assert_eq!(client_ip(ip("10.0.0.5"), Some("junk"), &t), ip("10.0.0.5"));
        assert!(parse_proxies("").unwrap().is_empty());
        assert!(parse_proxies("10.0.0.0/33").is_err());
        assert!(parse_proxies("proxy.local").is_err());
    }
}
