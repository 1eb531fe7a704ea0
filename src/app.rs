//! Composition root: opens the data directory, builds the actix apps, starts listeners and
//! the scheduler, and shuts everything down gracefully.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::http::AppState;
use crate::service::{self, Ctx};
use crate::store::{self, Db, Opened};
use crate::tls::{self, CertResolver};
use crate::web::headers::Guard;

/// Libraries whose start-up and shutdown lines ("Job creator created", "starting 2 workers")
/// stay out of the service log unless they warn.
pub const QUIET_LOGS: &[&str] = &[
    "tokio_cron_scheduler=warn",
    "actix_server=warn",
    "actix_web::middleware=warn",
];

/// The portal (and, unless it has its own listener, the agent API).
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // With its own listener, the agent API stays off the portal's.
    let agent_here = state.ctx.cfg.server.agent_listen.is_empty();
    App::new()
        .app_data(state)
        .app_data(
            web::FormConfig::default()
                .limit(crate::web::csrf::FORM_LIMIT)
                .error_handler(|e, _| {
                    let e = match e {
                        actix_web::error::UrlencodedError::Overflow { .. } => {
                            Error::TooLarge(format!(
                                "This form is too large (at most {} KiB).",
                                crate::web::csrf::FORM_LIMIT / 1024
                            ))
                        }
                        other => Error::validation("form", other),
                    };
                    crate::web::error::WebError(e).into()
                }),
        )
        .app_data(
            web::JsonConfig::default()
                .limit(64 * 1024)
                .error_handler(|e, _| {
                    crate::web::api::ApiError(Error::validation("body", e)).into()
                }),
        )
        .app_data(web::QueryConfig::default().error_handler(|e, req| {
            // The management API answers in JSON, the portal with a page.
            if req.path().starts_with("/api/") {
                crate::web::api::ApiError(Error::validation("query", e)).into()
            } else {
                crate::web::error::WebError(Error::validation("query", e)).into()
            }
        }))
        .wrap(crate::web::step_up::StepUp)
        .wrap(crate::web::csrf::Csrf)
        .wrap(Guard)
        .configure(|c| {
            if agent_here {
                crate::agent_api::configure(c);
            }
        })
        .configure(crate::web::configure)
        .default_service(web::to(crate::web::error::not_found))
}

/// The agent listener: agent API and health only, so the portal can stay internal (WEB-08).
pub fn build_agent_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(state)
        .wrap(Guard)
        .configure(crate::agent_api::configure)
        .service(web::resource("/healthz").route(web::get().to(crate::web::ops::healthz)))
        .default_service(web::to(crate::web::error::not_found))
}

/// An opened data directory: database, master key and active certificate.
pub struct Appliance {
    pub ctx: Ctx,
    pub opened: Opened,
    pub fingerprint: String,
    /// The data directory's lock, when taken before opening (`serve`); `start` takes it
    /// otherwise.
    pub lock: Option<std::fs::File>,
}

/// Opens (creating on first start) the data directory, refusing anything it should not touch.
pub fn open(cfg: Config, clock: Clock) -> Result<Appliance> {
    tls::install_default_provider();
    let dir = &cfg.storage.data_dir;
    ensure_data_dir(dir)?;
    let db_path = cfg.db_path();
    // Decide about the key before the database is touched: a missing key next to an
    // existing database must stop start-up, never be replaced.
    let existing = store::inspect(&db_path)?;
    refuse_emptied_database(&cfg)?;
    let crypto = Arc::new(Crypto::load_or_create(&cfg.key_path(), existing.is_none())?);
    let (db, opened) = Db::open(
        &db_path,
        Duration::from_millis(cfg.storage.busy_timeout_ms),
        cfg.storage.read_pool_size,
    )?;
    let now = clock.now();
    let hostname = cfg.hostname();
    let cert = service::certificates::ensure(&db, &crypto, &hostname, now)?;
    let key = service::certificates::certified_key(&db, &crypto, &cert, now)?;
    let certs = Arc::new(CertResolver::new(cert.id, key));
    let mail = crate::notify::Mailer::from_config(&cfg.smtp)?.map(Arc::new);
    crate::service::syslog::target(&cfg.syslog)?;
    crate::model::net::parse_proxies(&cfg.server.trusted_proxies)?;
    let ctx = Ctx {
        db,
        clock,
        crypto,
        cfg: Arc::new(cfg),
        certs,
        mail,
        wake: Default::default(),
        beats: Default::default(),
        stopping: Default::default(),
        bound: Default::default(),
        logins: Default::default(),
        probes: Default::default(),
    };
    Ok(Appliance {
        ctx,
        opened,
        fingerprint: cert.fingerprint,
        lock: None,
    })
}

/// A zero-byte database beside an existing `master.key` is a lost or truncated database, not
/// a new install: starting fresh would make a new certificate and break every agent's pin.
/// Only `storage.start_fresh = true` says otherwise.
fn refuse_emptied_database(cfg: &Config) -> Result<()> {
    let db = cfg.db_path();
    let empty = std::fs::metadata(&db).is_ok_and(|m| m.is_file() && m.len() == 0);
    if empty && cfg.key_path().exists() && !cfg.storage.start_fresh {
        return Err(Error::startup(format!(
            "{} is empty but {} exists: the database was lost or truncated. Restore it \
             (`hourglass restore --from BACKUP`, or `litestream restore` then `hourglass restore`); \
             to start a new appliance here on purpose, set storage.start_fresh = true \
             (HOURGLASS__STORAGE__START_FRESH=true) once",
            db.display(),
            cfg.key_path().display()
        )));
    }
    Ok(())
}

fn ensure_data_dir(dir: &Path) -> Result<()> {
    use crate::fsx::OwnerOnly;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::startup(format!(
                "data directory {} exists but is not a directory",
                dir.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Only the last component is created: a mistyped parent is reported, not invented.
            std::fs::DirBuilder::new()
                .owner_only()
                .create(dir)
                .map_err(|e| {
                    Error::startup(format!(
                        "cannot create data directory {}: {e} (does its parent directory exist?)",
                        dir.display()
                    ))
                })?;
        }
        Err(e) => {
            return Err(Error::startup(format!(
                "cannot access data directory {}: {e}",
                dir.display()
            )));
        }
    }
    std::fs::read_dir(dir).map_err(|e| {
        Error::startup(format!("cannot read data directory {}: {e}", dir.display()))
    })?;
    Ok(())
}

/// Listening servers plus the scheduler.
pub struct Running {
    pub portal_addrs: Vec<SocketAddr>,
    pub agent_addrs: Vec<SocketAddr>,
    pub redirect_addrs: Vec<SocketAddr>,
    pub ctx: Ctx,
    handles: Vec<ServerHandle>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    scheduler: Option<tokio_cron_scheduler::JobScheduler>,
    /// Held while serving, so a restore cannot swap the database underneath.
    _lock: std::fs::File,
}

/// Takes the data directory's lock (released when the file is dropped, or the process ends).
pub fn lock_data_dir(dir: &Path) -> Result<std::fs::File> {
    use crate::fsx::OwnerOnly;
    let path = dir.join("hourglass.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .owner_only()
        .open(&path)
        .map_err(|e| Error::startup(format!("cannot open {}: {e}", path.display())))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::startup(format!(
            "{} is in use by a running appliance: stop it first",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::startup(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

fn bind_error(addr: &str, e: std::io::Error) -> Error {
    Error::startup(format!("cannot listen on {addr}: {e}"))
}

/// Binds every listener (failing before anything is recorded if a port is taken), audits
/// the start, runs the start-up sweep and starts the scheduler.
pub async fn start(appliance: Appliance) -> Result<Running> {
    let ctx = appliance.ctx;
    let cfg = ctx.cfg.clone();
    let lock = match appliance.lock {
        Some(l) => l,
        None => lock_data_dir(&cfg.storage.data_dir)?,
    };
    service::backup::check_dir(&cfg)?;
    let state = web::Data::new(AppState::new(ctx.clone()));
    let tls_cfg = tls::server_config(ctx.certs.clone())?;
    let shutdown = cfg.server.shutdown_timeout_secs;

    let conns = crate::web::connections::Connections::new(
        cfg.server.max_connections_per_client,
        state.proxies.clone(),
    );
    let mut servers = Vec::new();
    let st = state.clone();
    let c = conns.clone();
    let portal = HttpServer::new(move || build_app(st.clone()))
        .on_connect(move |io, data| c.on_connect(io, data))
        // Agents use this listener too unless `server.agent_listen` separates them.
        .max_connections(crate::limits::MAX_CONNECTIONS_PER_WORKER)
        .disable_signals()
        .shutdown_timeout(shutdown)
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(5))
        .bind_rustls_0_23(&cfg.server.listen, tls_cfg.clone())
        .map_err(|e| bind_error(&cfg.server.listen, e))?;
    let portal_addrs = portal.addrs();
    servers.push(portal.run());

    let mut agent_addrs = Vec::new();
    if !cfg.server.agent_listen.is_empty() {
        let st = state.clone();
        let c = conns.clone();
        let agent = HttpServer::new(move || build_agent_app(st.clone()))
            .on_connect(move |io, data| c.on_connect(io, data))
            .max_connections(crate::limits::MAX_CONNECTIONS_PER_WORKER)
            .disable_signals()
            .shutdown_timeout(shutdown)
            .client_request_timeout(Duration::from_secs(10))
            .bind_rustls_0_23(&cfg.server.agent_listen, tls_cfg.clone())
            .map_err(|e| bind_error(&cfg.server.agent_listen, e))?;
        agent_addrs = agent.addrs();
        servers.push(agent.run());
    }

    let mut redirect_addrs = Vec::new();
    if !cfg.server.redirect_listen.is_empty() {
        let https_port = portal_addrs.first().map(|a| a.port()).unwrap_or(8443);
        let (server, addrs) = redirect_server(&cfg.server.redirect_listen, https_port)?;
        redirect_addrs = addrs;
        servers.push(server);
    }

    let _ = ctx
        .bound
        .set(cfg.links_bound(portal_addrs.first().copied(), agent_addrs.first().copied()));
    service::system::record_start(&ctx.db, &cfg, env!("CARGO_PKG_VERSION"), ctx.clock.now())
        .await?;
    let scheduler = crate::jobs::start(ctx.clone()).await?;
    let handles = servers.iter().map(|s| s.handle()).collect();
    let tasks = servers.into_iter().map(tokio::spawn).collect();
    Ok(Running {
        portal_addrs,
        agent_addrs,
        redirect_addrs,
        ctx,
        handles,
        tasks,
        scheduler: Some(scheduler),
        _lock: lock,
    })
}

/// The plain-HTTP listener, which only sends browsers to the HTTPS port.
fn redirect_server(
    addr: &str,
    https_port: u16,
) -> Result<(actix_web::dev::Server, Vec<std::net::SocketAddr>)> {
    let redirect = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(https_port))
            .default_service(web::to(redirect_to_https))
    })
    .disable_signals()
    .shutdown_timeout(1)
    .bind(addr)
    .map_err(|e| bind_error(addr, e))?;
    let addrs = redirect.addrs();
    Ok((redirect.run(), addrs))
}

/// The plain-HTTP listener's only answer.
async fn redirect_to_https(req: HttpRequest, port: web::Data<u16>) -> HttpResponse {
    let host = req
        .connection_info()
        .host()
        .split(':')
        .next()
        .unwrap_or("localhost")
        .to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    HttpResponse::PermanentRedirect()
        .insert_header((
            "location",
            format!("https://{host}:{}{path}", port.get_ref()),
        ))
        .finish()
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to the shutdown timeout), stops
    /// the scheduler and records the stop.
    pub async fn shutdown(mut self) -> Result<()> {
        self.ctx.stopping.trigger();
        // Held long-polls answer at once now; let them be written before connections close.
        for _ in 0..100 {
            if self.ctx.stopping.held() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Graceful first, within the configured time (plus a margin); a stop that does not
        // come back (seen rarely) is made forceful rather than hanging the shutdown.
        let grace = Duration::from_secs(self.ctx.cfg.server.shutdown_timeout_secs + 5);
        for h in &self.handles {
            if tokio::time::timeout(grace, h.stop(true)).await.is_err() {
                tracing::warn!("graceful stop timed out; stopping at once");
                let _ = tokio::time::timeout(Duration::from_secs(5), h.stop(false)).await;
            }
        }
        // Bounded: a stop must not hang on a job or task that does not finish.
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(mut s) = self.scheduler.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
        }
        // Stopping must not depend on the database still accepting writes.
        if let Err(e) = service::system::record_stop(&self.ctx.db, self.ctx.clock.now()).await {
            tracing::error!(error = %e, "could not audit the shutdown");
        }
        Ok(())
    }
}

/// `hourglass serve` from a plain thread: runs the actix system until a signal.
pub fn serve_blocking(cfg: Config, clock: Clock) -> Result<()> {
    actix_web::rt::System::new().block_on(serve(cfg, clock))
}

/// `hourglass serve`: runs until SIGTERM or Ctrl-C.
pub async fn serve(cfg: Config, clock: Clock) -> Result<()> {
    // Locked before anything is written: a restore in progress is not raced.
    let appliance = tokio::task::spawn_blocking(move || {
        ensure_data_dir(&cfg.storage.data_dir)?;
        let lock = lock_data_dir(&cfg.storage.data_dir)?;
        open(cfg, clock).map(|a| Appliance {
            lock: Some(lock),
            ..a
        })
    })
    .await
    .map_err(Error::internal)??;
    let created = appliance.opened == Opened::Created;
    let fingerprint = appliance.fingerprint.clone();
    let data_dir = appliance.ctx.cfg.storage.data_dir.clone();
    let open_files = crate::limits::raise_open_files();
    let running = start(appliance).await?;
    let stop = stop_signal()?;
    for a in &running.portal_addrs {
        println!(
            "Hourglass {} listening on https://{a}",
            env!("CARGO_PKG_VERSION")
        );
    }
    for a in &running.agent_addrs {
        println!("Agent API listening on https://{a}");
    }
    for a in &running.redirect_addrs {
        println!("Redirecting http://{a} to HTTPS");
    }
    println!("TLS certificate fingerprint (agents pin this): {fingerprint}");
    println!(
        "Data directory: {} ({})",
        data_dir.display(),
        if created {
            "new database created"
        } else {
            "existing database"
        }
    );
    println!(
        "{}",
        crate::limits::capacity_line(
            open_files,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        )
    );
    // Until setup is done, each start prints a new one-time link (the previous one stops
    // working) on the address actually listened on.
    if let Some(token) = service::setup::setup_link_if_needed(&running.ctx).await? {
        println!(
            "First-run setup (one-time link, valid 24 hours): {}/setup/{token}",
            running.ctx.links().portal
        );
    }
    stop.await;
    println!("Shutting down: finishing in-flight requests");
    running.shutdown().await?;
    println!("Stopped");
    Ok(())
}

/// Runs a future on the actix system (the operator commands that serve: serve, demo).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    actix_web::rt::System::new().block_on(f)
}

/// Elsewhere (the appliance runs on Linux; this keeps the crate building): Ctrl-C.
#[cfg(not(unix))]
pub fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Registers for SIGTERM and SIGINT at once (a signal that arrives before the wait starts
/// must not kill the process with its default action), then returns the wait.
#[cfg(unix)]
pub fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let cannot = |e: std::io::Error| Error::startup(format!("cannot handle signals: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(cannot)?;
    let mut int = signal(SignalKind::interrupt()).map_err(cannot)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}
