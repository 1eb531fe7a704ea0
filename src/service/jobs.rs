//! Scheduler job bodies: idempotent, driven by what the database says is due at `now`,
//! returning how much they did. `jobs.rs` only wires the schedule.

use super::Ctx;
use super::audit::Audit;
use super::certificates;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::model::audit::Event;
use crate::store;

/// The frequent sweep (start-up and every few seconds): everything due at `now`. Each part
/// runs even when another fails (a failure there must not stop expiry here); the first
/// error is returned after all have run.
pub async fn sweep(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let mut done = 0;
    let mut first_error = None;
    let mut tally = |part: &'static str, r: Result<u64>| match r {
        Ok(n) => done += n,
        Err(e) => {
            tracing::error!(part, error = %e, "sweep step failed");
            first_error.get_or_insert(e);
        }
    };
    tally("certificate", reload_certificate(ctx, now).await);
    tally("certificate expiry", cert_expiry_warning(ctx, now).await);
    tally("prune", prune_expired(ctx, now).await);
    tally("heartbeats", super::devices::flush_heartbeats(ctx).await);
    // After the flush: a beat just received is not silence.
    tally("tamper", super::tamper::watch(ctx, now).await);
    tally("commands", super::commands::expire(ctx, now).await);
    tally("requests", super::requests::sweep(ctx, now).await);
    tally("logins", super::logins::sweep(ctx, now).await);
    tally(
        "audit checkpoint",
        super::checkpoints::sweep(ctx, now).await,
    );
    tally("syslog", super::syslog::forward(ctx).await);
    tally("backup", super::backup::sweep(ctx, now).await);
    // Sent beside the sweep: a slow receiver must not hold up expiry.
    super::webhooks::kick(ctx);
    match first_error {
        None => Ok(done),
        Some(e) => Err(e),
    }
}

/// Forgets portal sessions past their limits and one-time links that can no longer be used.
pub async fn prune_expired(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    ctx.db
        .write(move |tx| {
            Ok(store::sessions::prune(tx, now, super::auth::IDLE_MS)?
                + store::links::prune(tx, now)?)
        })
        .await
}

/// Serves a newly imported certificate without a restart.
pub async fn reload_certificate(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let c2 = ctx.clone();
    let Some(active) = tokio::task::spawn_blocking(move || certificates::active(&c2.db))
        .await
        .map_err(crate::error::Error::internal)??
    else {
        return Ok(0);
    };
    if ctx.certs.current_id() == Some(active.id) {
        return Ok(0);
    }
    let c2 = ctx.clone();
    let key = tokio::task::spawn_blocking(move || {
        certificates::certified_key(&c2.db, &c2.crypto, &active, now).map(|k| (active.id, k))
    })
    .await
    .map_err(crate::error::Error::internal)??;
    ctx.certs.replace(key.0, key.1);
    tracing::info!(certificate = %key.0, "serving the newly activated TLS certificate");
    Ok(1)
}

/// Audits (at most daily) that the active certificate expires within `cert_warn_days`.
pub async fn cert_expiry_warning(ctx: &Ctx, now: Timestamp) -> Result<u64> {
    let warn_ms = i64::from(ctx.cfg.jobs.cert_warn_days) * 86_400_000;
    ctx.db
        .write(move |tx| {
            let Some(c) = store::certificates::active(&tx.reader())? else { return Ok(0) };
            if c.not_after.millis() - now.millis() > warn_ms {
                return Ok(0);
            }
            let since = now.plus_secs(-86_400);
            if store::audit::exists_since(&tx.reader(), Event::CertExpiryWarning.code(), &c.id.to_string(), since)? {
                return Ok(0);
            }
            tracing::warn!(not_after = %c.not_after, "the TLS certificate expires soon: import a new one with `hourglass cert import`");
            Audit::new(Event::CertExpiryWarning, now)
                .target("certificate", c.id)
                .details(certificates::expiry_details(&c))
                .append(tx)?;
            Ok(1)
        })
        .await
}
