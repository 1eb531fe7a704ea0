//! Open connections per client address (WEB-06). A client that already holds
//! `server.max_connections_per_client` connections gets 429 on the new one, which is then
//! closed: one address cannot take every connection slot. Trusted reverse proxies are exempt
//! (the proxy must cap its own clients).

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;

pub struct Connections {
    cap: usize,
    exempt: Vec<ipnet::IpNet>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Held in a connection's data for as long as it is open.
struct Slot {
    ip: IpAddr,
    table: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Marks a connection opened over its client's cap: its requests are refused.
#[derive(Clone, Copy)]
pub struct OverCap;

impl Connections {
    /// `cap` 0 means no cap.
    pub fn new(cap: usize, exempt: Vec<ipnet::IpNet>) -> Arc<Self> {
        Arc::new(Connections {
            cap,
            exempt,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `HttpServer::on_connect` for a TLS listener: counts the connection or marks it over.
    pub fn on_connect(self: &Arc<Self>, io: &dyn Any, data: &mut Extensions) {
        let Some(ip) = io
            .downcast_ref::<TlsStream<TcpStream>>()
            .and_then(|tls| tls.get_ref().0.peer_addr().ok())
            .map(|a| a.ip().to_canonical())
        else {
            return;
        };
        if self.cap == 0 || self.exempt.iter().any(|n| n.contains(&ip)) {
            return;
        }
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            drop(open);
            metrics::counter!("hourglass_connections_refused_total").increment(1);
            data.insert(OverCap);
            return;
        }
        *n += 1;
        drop(open);
        data.insert(Slot {
            ip,
            table: self.clone(),
        });
    }
}
