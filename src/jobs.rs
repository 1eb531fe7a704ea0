//! Scheduler wiring only; the job bodies are in `service::jobs` and take `now`.

use std::time::Duration;

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::error::{Error, Result};
use crate::service::{self, Ctx};

/// Runs the start-up sweep (everything that fell due while the appliance was down), then
/// schedules the recurring sweep.
pub async fn start(ctx: Ctx) -> Result<JobScheduler> {
    run_sweep(&ctx).await;
    let sched = JobScheduler::new()
        .await
        .map_err(|e| Error::internal(format!("scheduler: {e}")))?;
    let every = Duration::from_secs(u64::from(ctx.cfg.jobs.sweep_seconds.max(1)));
    let c = ctx.clone();
    let job = Job::new_repeated_async(every, move |_id, _lock| {
        let c = c.clone();
        Box::pin(async move { run_sweep(&c).await })
    })
    .map_err(|e| Error::internal(format!("scheduler: {e}")))?;
    sched
        .add(job)
        .await
        .map_err(|e| Error::internal(format!("scheduler: {e}")))?;
    sched
        .start()
        .await
        .map_err(|e| Error::internal(format!("scheduler: {e}")))?;
    Ok(sched)
}

async fn run_sweep(ctx: &Ctx) {
    let now = ctx.clock.now();
    match service::jobs::sweep(ctx, now).await {
        Ok(n) => {
            metrics::counter!("hourglass_job_runs_total", "job" => "sweep", "outcome" => "ok")
                .increment(1);
            if n > 0 {
                tracing::debug!(done = n, "sweep");
            }
        }
        Err(e) => {
            metrics::counter!("hourglass_job_runs_total", "job" => "sweep", "outcome" => "error")
                .increment(1);
            tracing::error!(error = %e, "sweep failed");
        }
    }
}
