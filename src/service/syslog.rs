//! Forwards the audit log to a SIEM as RFC 5424 syslog (DESIGN §6), from a cursor kept in the
//! database: each sweep sends what was appended since, and the cursor moves only after a
//! batch went out, so a receiver that is down loses nothing (at-least-once over TCP; UDP
//! cannot tell). Signed checkpoints go the same way, so a copy lives outside the appliance.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::Ctx;
use crate::clock::Timestamp;
use crate::config::SyslogConfig;
use crate::error::{Error, Result};
use crate::model::syslog as fmt;
use crate::store;

const CURSOR: &str = "syslog_forwarded_seq";
const BATCH: u32 = 500;
/// Batches per sweep: a long backlog (first start, receiver back) drains over a few sweeps.
const BATCHES: usize = 10;
const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Udp(String),
    Tcp(String),
}

/// The configured receiver; None when forwarding is off. Checked at start-up.
pub fn target(cfg: &SyslogConfig) -> Result<Option<Target>> {
    let a = cfg.address.trim();
    if a.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::startup(format!(
            "syslog.address must look like udp://HOST:PORT or tcp://HOST:PORT, not {a:?}"
        ))
    };
    let (scheme, rest) = a.split_once("://").ok_or_else(bad)?;
    let port_ok = rest
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(bad());
    }
    match scheme {
        "udp" => Ok(Some(Target::Udp(rest.to_string()))),
        "tcp" => Ok(Some(Target::Tcp(rest.to_string()))),
        _ => Err(bad()),
    }
}

/// Sends what was appended since the cursor; returns how many entries went out.
pub async fn forward(ctx: &Ctx) -> Result<u64> {
    let Some(target) = target(&ctx.cfg.syslog)? else {
        return Ok(0);
    };
    let host = super::system::hostname(&ctx.cfg);
    let mut sent = 0;
    for _ in 0..BATCHES {
        let (from, batch) = ctx
            .db
            .read(|r| {
                let from = store::settings::get(r, CURSOR)?
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                Ok((from, store::audit::after(r, from, BATCH)?))
            })
            .await?;
        let Some(last) = batch.last().map(|(seq, _)| *seq) else {
            break;
        };
        let lines: Vec<String> = batch
            .iter()
            .map(|(seq, e)| fmt::entry(&host, *seq, e))
            .collect();
        send(&target, &lines).await?;
        let now = ctx.clock.now();
        ctx.db
            .write(move |tx| {
                // Moved only forward, and only from where this batch started.
                let cur = store::settings::get(&tx.reader(), CURSOR)?
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                if cur == from {
                    store::settings::put(tx, CURSOR, &last.to_string(), now)?;
                }
                Ok(())
            })
            .await?;
        sent += lines.len() as u64;
        metrics::counter!("hourglass_syslog_sent_total").increment(lines.len() as u64);
    }
    Ok(sent)
}

/// Best effort: a checkpoint that cannot be sent is still in the file and the service log.
pub async fn send_checkpoint(ctx: &Ctx, now: Timestamp, note: &str) {
    let Ok(Some(target)) = target(&ctx.cfg.syslog) else {
        return;
    };
    let line = fmt::checkpoint(&super::system::hostname(&ctx.cfg), &now.rfc3339(), note);
    if let Err(e) = send(&target, &[line]).await {
        tracing::warn!(error = %e, "cannot send the audit checkpoint to syslog");
    }
}

async fn send(target: &Target, lines: &[String]) -> Result<()> {
    let io = |e: std::io::Error| Error::Unavailable(format!("syslog receiver: {e}"));
    let timed =
        |what: &'static str| Error::Unavailable(format!("syslog receiver: {what} timed out"));
    match target {
        Target::Udp(addr) => {
            let bind = if addr.starts_with('[') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let sock = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
            sock.connect(addr.as_str()).await.map_err(io)?;
            for l in lines {
                sock.send(l.as_bytes()).await.map_err(io)?;
            }
        }
        Target::Tcp(addr) => {
            let mut s =
                tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr.as_str()))
                    .await
                    .map_err(|_| timed("connect"))?
                    .map_err(io)?;
            // Octet counting (RFC 6587 §3.4.1): a length prefix, so no message can split another.
            let mut buf = Vec::new();
            for l in lines {
                buf.extend_from_slice(format!("{} {l}", l.len()).as_bytes());
            }
            tokio::time::timeout(TIMEOUT, async {
                s.write_all(&buf).await?;
                s.shutdown().await
            })
            .await
            .map_err(|_| timed("send"))?
            .map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        let t = |a: &str| target(&SyslogConfig { address: a.into() });
        assert_eq!(t("").unwrap(), None);
        assert_eq!(
            t("udp://siem.example:514").unwrap(),
            Some(Target::Udp("siem.example:514".into()))
        );
        assert_eq!(
            t("tcp://[::1]:601").unwrap(),
            Some(Target::Tcp("[::1]:601".into()))
        );
        for bad in [
            "siem:514",
            "http://siem:514",
            "udp://siem",
            "udp://:514",
            "tcp://h:0",
        ] {
            let e = t(bad).unwrap_err().to_string();
            assert!(e.contains("udp://HOST:PORT"), "{bad}: {e}");
        }
    }
}
