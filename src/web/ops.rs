//! Operations endpoints: /healthz, /metrics and the CSP violation sink.

use actix_web::{HttpRequest, HttpResponse, web};

use super::error::WebError;
use crate::error::Error;
use crate::http::AppState;
use crate::service;

/// 200 only when the disk and the database accept a write; otherwise 503 with the reason.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let now = state.ctx.clock.now();
    match service::system::health(&state.ctx.db, &state.ctx.cfg.storage, now).await {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ok\n"),
        Err(p) => {
            tracing::error!(reason = p.reason, "health check failed: {}", p.message);
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body(format!("unavailable: {}: {}\n", p.reason, p.message))
        }
    }
}

/// Prometheus text format. Loopback only unless `server.metrics_remote` (AZ-03): labels never
/// carry tenant data, but request counts are still nobody else's business.
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    // The client's address: behind a reverse proxy on this host every request comes from
    // loopback, so the forwarded address decides.
    let loopback = crate::http::client_ip(&req)
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    if !loopback && !state.ctx.cfg.server.metrics_remote {
        return Err(WebError(Error::NotFound));
    }
    let (conns, idle) = state.ctx.db.pool_state();
    metrics::gauge!("hourglass_db_read_pool_connections").set(f64::from(conns));
    metrics::gauge!("hourglass_db_read_pool_idle").set(f64::from(idle));
    // Polls per second and their latency: hourglass_http_request*{route="/agent/v1/poll"}.
    metrics::gauge!("hourglass_agents_connected").set(state.ctx.wake.connected() as f64);
    metrics::gauge!("hourglass_long_polls_held").set(state.ctx.stopping.held() as f64);
    // What the poll path answers from memory instead of SQLite (store::hot).
    let (creds, markers, versions) = state.ctx.db.hot().sizes();
    metrics::gauge!("hourglass_poll_cache_credentials").set(creds as f64);
    metrics::gauge!("hourglass_poll_cache_pending_markers").set(markers as f64);
    metrics::gauge!("hourglass_poll_cache_version_lists").set(versions as f64);
    metrics::gauge!("hourglass_db_reads").set(state.ctx.db.reads() as f64);
    let body = state.metrics.render();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body))
}

/// Browsers POST CSP violation reports here; each is logged and counted, never stored.
pub async fn csp_report(body: web::Bytes) -> HttpResponse {
    let report: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let r = report.get("csp-report").unwrap_or(&report);
    let directive = r
        .get("violated-directive")
        .or_else(|| r.get("effective-directive"))
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    let blocked = r.get("blocked-uri").and_then(|v| v.as_str()).unwrap_or("");
    tracing::warn!(
        directive,
        blocked,
        "content security policy violation reported by a browser"
    );
    metrics::counter!("hourglass_csp_violations_total").increment(1);
    HttpResponse::NoContent().finish()
}
