//! `hourglass demo`: the appliance on a fresh data directory with an MSP, two customer tenants,
//! simulated workstations and requests waiting for approval, so every flow can be clicked
//! through at once. Nothing here is special-cased in the product: it seeds through the same
//! services an admin would use, and the workstations are the load simulator's agents.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::agent::simulate::{self, SimOptions, Stats};
use crate::authz::Principal;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::roles::BuiltinRole;
use crate::model::tenants::TenantKind;
use crate::service::{self, Ctx};
use crate::{app, store};

const ADMIN: &str = "admin@demo.test";
const DEVICES_PER_TENANT: usize = 3;

/// A fresh data directory under the system's temporary directory, unless one was given.
pub fn data_dir(given: Option<std::path::PathBuf>) -> std::path::PathBuf {
    given.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("hourglass-demo-{}", uuid::Uuid::now_v7().simple()))
    })
}

pub fn run(mut cfg: Config) -> Result<()> {
    if store::inspect(&cfg.db_path())?.is_some() {
        return Err(Error::startup(format!(
            "{} already holds a database: the demo needs an empty data directory",
            cfg.storage.data_dir.display()
        )));
    }
    if cfg.tls.hostname.is_empty() {
        cfg.tls.hostname = "localhost".into();
    }
    app::block_on(async move {
        let appliance = app::open(cfg, Clock::system())?;
        let fingerprint = appliance.fingerprint.clone();
        let ctx = appliance.ctx.clone();
        let link = service::setup::headless_setup(&ctx, "Demo MSP", "Dana", "Admin", ADMIN)?;
        let running = app::start(appliance).await?;
        let base = ctx.links().portal;
        let summary = seed(&ctx, &base, &fingerprint).await;
        match summary.and_then(|l| app::stop_signal().map(|stop| (l, stop))) {
            Ok((lines, stop)) => {
                println!("Hourglass demo on {base} (certificate fingerprint {fingerprint})");
                println!("Data directory: {}", ctx.cfg.storage.data_dir.display());
                println!(
                    "Sign in as {ADMIN}: open {base}/enroll/{link} and set a password and an authenticator."
                );
                for l in lines {
                    println!("  {l}");
                }
                println!("Press Ctrl-C to stop.");
                stop.await;
            }
            Err(e) => eprintln!("the demo could not be seeded: {e}"),
        }
        running.shutdown().await
    })
}

/// The MSP admin as the acting person while seeding (not signed in yet: invited).
fn seeder(ctx: &Ctx) -> Result<Principal> {
    ctx.db.read_blocking(|r| {
        let c = store::users::credentials_by_email(r, ADMIN)?.ok_or(Error::NotFound)?;
        Ok(Principal {
            user_id: c.user.id,
            tenant_id: c.user.tenant_id,
            tenant_kind: TenantKind::Msp,
            builtin: vec![BuiltinRole::MspAdmin],
            custom: Default::default(),
            all_tenants: true,
            assigned: vec![],
            mfa_at: Some(ctx.clock.now()),
            api_token: None,
        })
    })
}

async fn seed(ctx: &Ctx, base: &str, fingerprint: &str) -> Result<Vec<String>> {
    let p = seeder(ctx)?;
    let origin = service::audit::Origin {
        ip: None,
        request_id: Some("demo-seed".into()),
    };
    let mut lines = Vec::new();
    for (name, slug, reason) in [
        (
            "Acme Corp",
            "acme",
            "Install the accounting software update",
        ),
        (
            "Globex",
            "globex",
            "Printer driver for the new office printer",
        ),
    ] {
        let t = service::tenants::create(
            ctx,
            &p,
            service::tenants::NewTenant {
                name: name.into(),
                slug: slug.into(),
            },
            &origin,
        )
        .await?;
        let n = service::devices::NewToken {
            hours: 1,
            uses: DEVICES_PER_TENANT as u32,
        };
        let (_, token, _) = service::devices::create_token(ctx, &p, &t, n, base, &origin).await?;
        let stats = Arc::new(Stats::default());
        let o = SimOptions {
            server: base.into(),
            token,
            fingerprint: fingerprint.into(),
            count: DEVICES_PER_TENANT,
            hold_secs: 25,
            seconds: 0,
            per_connection: DEVICES_PER_TENANT,
            server_pid: None,
        };
        let s2 = stats.clone();
        tokio::spawn(async move {
            if let Err(e) = simulate::run(o, s2, true).await {
                tracing::warn!(error = %e, "demo workstations stopped");
            }
        });
        for _ in 0..200 {
            if stats.enrolled.load(Ordering::Relaxed) as usize >= DEVICES_PER_TENANT {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let scope = crate::authz::system_scope(t.id);
        let devices = ctx
            .db
            .read(move |r| store::devices::list(r, &scope))
            .await?;
        if let Some(d) = devices.first() {
            let ask = service::requests::Ask {
                account: simulate::SIM_USER.into(),
                minutes: 60,
                reason: reason.into(),
                ticket: Some(format!("{}-1001", slug.to_uppercase())),
                kind: "admin".into(),
                app: None,
            };
            service::requests::create(ctx, d, ask, &origin).await?;
        }
        lines.push(format!(
            "{name} ({base}/t/{slug}): {} simulated workstations, 1 request waiting for approval",
            devices.len()
        ));
    }
    Ok(lines)
}
