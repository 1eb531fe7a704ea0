//! The state both HTTP edges are handed, and who the client is.

use std::sync::OnceLock;

use actix_web::{HttpRequest, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::service::Ctx;

pub struct AppState {
    pub ctx: Ctx,
    pub metrics: PrometheusHandle,
    /// Sign-in attempts per client address.
    pub limiter: super::limiter::Limiter,
    /// Reverse proxies whose X-Forwarded-For is believed (checked at start-up).
    pub proxies: Vec<ipnet::IpNet>,
}

impl AppState {
    pub fn new(ctx: Ctx) -> Self {
        AppState {
            metrics: metrics_handle(),
            limiter: super::limiter::Limiter::new(30, 60_000),
            proxies: crate::model::net::parse_proxies(&ctx.cfg.server.trusted_proxies)
                .unwrap_or_default(),
            ctx,
        }
    }
}

/// The client's address (behind a trusted proxy, the one it forwarded).
pub fn client_ip(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let proxies = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.proxies.as_slice())
        .unwrap_or_default();
    // Every X-Forwarded-For line, in order: a proxy may add its own line after the client's.
    let xff: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let xff = (!xff.is_empty()).then(|| xff.join(","));
    Some(crate::model::net::client_ip(peer, xff.as_deref(), proxies).to_string())
}

/// One process-wide Prometheus recorder (tests start several servers in one process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            // A poll answered from memory takes microseconds: finer buckets for its work.
            let poll_work = [
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0,
            ];
            let recorder = match PrometheusBuilder::new()
                .set_buckets(&buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("hourglass_poll_work_seconds".into()),
                        &poll_work,
                    )
                }) {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
