//! `hourglass agent enroll` and `hourglass agent run`: the workstation daemon. It long-polls
//! the appliance, runs commands through the `Os` back end, acknowledges them, enforces grant
//! deadlines on its own monotonic clock and uploads its event queue, reconnecting with
//! jittered back-off while the appliance is away.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::enforcer::{self, Verdict};
#[cfg(unix)]
use super::os::LinuxShadow;
use super::os::Os;
use super::queue::Queue;
use super::state::State;
use crate::error::{Error, Result};
use crate::proto::{
    self, AckRequest, AckResult, EnrollRequest, EnrollResponse, EventKind, EventsRequest,
    PollRequest, PollResponse,
};

pub struct Options {
    pub state_dir: PathBuf,
    pub root: PathBuf,
    pub admin_group: String,
    pub backend: Backend,
}

/// Which machine the agent changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// This machine: the shadow tools under `--root` on Linux, the SAM on Windows.
    #[default]
    System,
    /// The Windows back end over an in-memory SAM kept in `<state-dir>/fake-sam.json`
    /// (tests; trying the Windows logic where there is no Windows).
    FakeSam,
}

impl Options {
    pub fn os(&self) -> Result<Arc<dyn Os>> {
        Ok(match self.backend {
            Backend::FakeSam => Arc::new(super::windows::WindowsSam::new(
                super::windows::StoredSam::open(&self.state_dir.join("fake-sam.json"))?,
            )),
            Backend::System => system_os(self),
        })
    }
}

#[cfg(unix)]
fn system_os(o: &Options) -> Arc<dyn Os> {
    Arc::new(LinuxShadow::new(&o.root, &o.admin_group))
}

#[cfg(windows)]
fn system_os(_o: &Options) -> Arc<dyn Os> {
    Arc::new(super::windows::WindowsSam::new(super::win32::Win32Api))
}

#[allow(clippy::disallowed_methods)] // the agent's wall clock: only to learn the server offset
fn wall_ms() -> i64 {
    crate::clock::Clock::system().now().millis()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::internal)
}

/// Explains a failed request in one line; a pin mismatch says nothing was sent.
pub(super) fn describe(e: &reqwest::Error) -> String {
    let mut chain = format!("{e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain = format!("{chain}: {s}");
        src = s.source();
    }
    if chain.contains("does not match the pinned") {
        return "the server's certificate does not match the --fingerprint given; nothing was sent"
            .into();
    }
    chain
}

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Enrolls this machine: pins the fingerprint, trades the token for an id and secret, and
/// stores them (0600) with the current administrators as the untouchable baseline.
pub fn enroll(server: &str, token: &str, fingerprint: &str, o: &Options) -> Result<State> {
    if State::path(&o.state_dir).exists() {
        return Err(Error::startup(format!(
            "{} already holds an enrollment; remove it first to enroll this machine again",
            State::path(&o.state_dir).display()
        )));
    }
    let server = server.trim_end_matches('/').to_string();
    let client = super::client::pinned_client(fingerprint)
        .map_err(|e| Error::startup(format!("--fingerprint: {e}")))?;
    let os = o.os()?;
    let baseline = os.admin_members().map_err(|e| {
        Error::startup(format!(
            "cannot read the administrators group under {}: {e}",
            o.root.display()
        ))
    })?;
    let req = EnrollRequest {
        token: token.to_string(),
        hostname: gethostname::gethostname().to_string_lossy().to_lowercase(),
        os: std::env::consts::OS.to_string(),
        os_version: os_release(),
        agent_version: proto::AGENT_VERSION.to_string(),
    };
    let resp: EnrollResponse = runtime()?.block_on(async {
        let r = client
            .post(format!("{server}/agent/v1/enroll"))
            .json(&req)
            .send()
            .await
            .map_err(|e| Error::startup(format!("cannot reach {server}: {}", describe(&e))))?;
        if !r.status().is_success() {
            let status = r.status();
            let body: proto::ErrorBody = r.json().await.unwrap_or(proto::ErrorBody {
                code: "error".into(),
                message: status.to_string(),
            });
            return Err(Error::startup(format!(
                "enrollment refused ({status}): {}",
                body.message
            )));
        }
        r.json()
            .await
            .map_err(|e| Error::startup(format!("unexpected answer from {server}: {e}")))
    })?;
    let state = State {
        server,
        fingerprint: fingerprint.trim().to_lowercase(),
        device_id: resp.device_id,
        device_secret: resp.device_secret,
        tenant: resp.tenant,
        last_seq: 0,
        clock_offset_ms: resp.server_time - wall_ms(),
        baseline_admins: baseline,
        ordered_admins: Vec::new(),
        grants: Vec::new(),
        grant_times: Vec::new(),
        results: Vec::new(),
        end_users: Vec::new(),
        offline: None,
        policies: None,
        seen_logons: vec![],
        password_versions: Default::default(),
        secret_issued_at: resp.server_time,
        previous_secret: None,
    };
    state.save(&o.state_dir)?;
    Ok(state)
}

/// Server time estimated on the monotonic clock from the last time the server told it
/// (AGT-05): wall-clock changes on the workstation do not move deadlines.
struct Anchor {
    at: Instant,
    server_ms: i64,
}

impl Anchor {
    fn now(&self) -> i64 {
        self.server_ms + i64::try_from(self.at.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}

pub(super) struct Shared {
    pub(super) state: State,
    anchor: Anchor,
}

impl Shared {
    /// Server time as the agent estimates it now.
    pub(super) fn server_now(&self) -> i64 {
        self.anchor.now()
    }
}

/// The appliance as this device sees it: pinned TLS, device credentials.
pub(super) struct Api {
    client: reqwest::Client,
    server: String,
    device: crate::ids::DeviceId,
    /// Replaced when the secret is rotated (`secret.rs`).
    pub(super) secret: Mutex<String>,
}

impl Api {
    fn new(s: &State) -> Result<Api> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(super::client::pinned_tls_config(&s.fingerprint)?)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(40))
            .build()
            .map_err(Error::internal)?;
        Ok(Api {
            client,
            server: s.server.clone(),
            device: s.device_id,
            secret: Mutex::new(s.device_secret.clone()),
        })
    }

    pub(super) fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let secret = self.secret.lock().map(|s| s.clone()).unwrap_or_default();
        self.client
            .post(format!("{}/agent/v1{path}", self.server))
            .header("x-device-id", self.device.to_string())
            .bearer_auth(secret)
    }
}

/// `hourglass agent run`: until SIGTERM or Ctrl-C.
pub fn run(o: &Options) -> Result<()> {
    run_until(o, terminated())
}

/// Takes back every administrator right the appliance ordered and disables every account it
/// manages (before the agent is removed: nothing it granted may outlive it).
pub fn release_everything(o: &Options) -> Result<()> {
    let mut state = State::load(&o.state_dir)?;
    let os = o.os()?;
    for account in state.ordered_admins.clone() {
        os.remove_admin(&account)?;
    }
    let managed = state
        .password_versions
        .keys()
        .chain(state.grants.iter().map(|g| &g.account))
        .filter(|a| a.starts_with("msp-") || a.starts_with("co-"))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>();
    for account in managed {
        os.disable_account(&account)?;
    }
    state.ordered_admins.clear();
    state.grants.clear();
    state.save(&o.state_dir)
}

/// The daemon, until `stop` completes (a signal, or the service manager's stop request).
pub fn run_until(o: &Options, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    let state = State::load(&o.state_dir)?;
    let os: Arc<dyn Os> = o.os()?;
    // Until the first answer from the server, its time comes from the wall clock plus the
    // offset learned before the restart.
    let anchor = Anchor {
        at: Instant::now(),
        server_ms: state.server_now(wall_ms()),
    };
    let started_at = anchor.server_ms;
    // What this machine held when the agent stopped, from its own state: the appliance's clock
    // and the agent's estimate of it differ by a few milliseconds, too little to tell a first
    // start from a restart during a login.
    let holding = !state.grants.is_empty() || !state.ordered_admins.is_empty();
    let shared = Arc::new(Mutex::new(Shared { state, anchor }));
    let queue = Arc::new(Queue::new(&o.state_dir));
    // Told to the appliance: a start while rights are held is worth an alert (tamper evidence).
    queue.push(&enforcer::event(
        EventKind::AgentStarted,
        started_at,
        serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "holding": holding}),
    ))?;
    let dir = o.state_dir.clone();
    #[cfg(unix)]
    let root = o.root.clone();
    let api = Arc::new(Api::new(&lock(&shared)?.state)?);
    let nudge = Arc::new(tokio::sync::Notify::new());
    runtime()?.block_on(async move {
        let enforcer = tokio::spawn(enforce_loop(
            shared.clone(),
            os.clone(),
            queue.clone(),
            dir.clone(),
            nudge.clone(),
        ));
        let uploader = tokio::spawn(upload_loop(api.clone(), queue.clone(), nudge.clone()));
        // End users ask through the local socket (no root needed on their side).
        #[cfg(windows)]
        let pipe = {
            let (name, d) = (super::pipe::pipe_name(&dir), dir.clone());
            let fake = o.backend == Backend::FakeSam;
            tokio::spawn(async move {
                if let Err(e) = super::pipe::serve(name, d, fake).await {
                    eprintln!("hourglass agent: {e}; end users must ask as administrators");
                }
            })
        };
        #[cfg(unix)]
        let local = {
            let (sock, d, r) = (super::local::socket_path(&dir), dir.clone(), root.clone());
            tokio::spawn(async move {
                if let Err(e) = super::local::serve(sock, d, r).await {
                    eprintln!("hourglass agent: {e}; end users must ask as root");
                }
            })
        };
        let result = tokio::select! {
            r = poll_loop(shared.clone(), os, api, queue, dir.clone(), nudge) => r,
            _ = stop => Ok(()),
        };
        enforcer.abort();
        uploader.abort();
        #[cfg(unix)]
        local.abort();
        #[cfg(windows)]
        pipe.abort();
        if let Ok(s) = shared.lock() {
            s.state.save(&dir)?;
        }
        result
    })
}

#[cfg(unix)]
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    if let Ok(mut t) = signal(SignalKind::terminate()) {
        tokio::select! { _ = t.recv() => {}, _ = tokio::signal::ctrl_c() => {} }
    } else {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// In a console: Ctrl-C (under the service manager, `agent::service` passes its own stop).
#[cfg(not(unix))]
async fn terminated() {
    let _ = tokio::signal::ctrl_c().await;
}

pub(super) fn lock(shared: &Mutex<Shared>) -> Result<std::sync::MutexGuard<'_, Shared>> {
    shared
        .lock()
        .map_err(|_| Error::internal("agent state poisoned"))
}

async fn enforce_loop(
    shared: Arc<Mutex<Shared>>,
    os: Arc<dyn Os>,
    queue: Arc<Queue>,
    dir: PathBuf,
    nudge: Arc<tokio::sync::Notify>,
) {
    let mut every = tokio::time::interval(Duration::from_millis(250));
    loop {
        every.tick().await;
        let r = (|| -> Result<()> {
            let mut s = lock(&shared)?;
            let now = s.anchor.now();
            let events = super::offline::tick(&dir, os.as_ref(), &mut s.state, now, |st| {
                enforcer::tick(os.as_ref(), st, now)
            })?;
            if !events.is_empty() {
                for e in &events {
                    queue.push(e)?;
                }
                s.state.save(&dir)?;
                nudge.notify_one();
            }
            Ok(())
        })();
        if let Err(e) = r {
            eprintln!("hourglass agent: enforcement: {e}");
        }
    }
}

fn jitter_ms(max: u64) -> u64 {
    let mut b = [0u8; 2];
    let _ = crate::crypto::fill_random(&mut b);
    u64::from(u16::from_le_bytes(b)) % max.max(1)
}

// Long on purpose: the poll loop's states (wait, poll, handle, acknowledge, back off) read best in one place.
async fn poll_loop(
    shared: Arc<Mutex<Shared>>,
    os: Arc<dyn Os>,
    api: Arc<Api>,
    queue: Arc<Queue>,
    dir: PathBuf,
    nudge: Arc<tokio::sync::Notify>,
) -> Result<()> {
    let mut backoff = 1u64;
    // The running binary's hash goes with every poll once known (tamper evidence); hashing
    // it takes a moment, so the first polls go without.
    let agent_hash = Arc::new(std::sync::OnceLock::new());
    let h = agent_hash.clone();
    tokio::task::spawn_blocking(move || {
        let hash = std::env::current_exe().and_then(|p| crate::crypto::sha256_file(&p));
        let _ = h.set(hash.unwrap_or_default());
    });
    // The first poll after a start or an outage is answered at once, so queued events and
    // acknowledgements go out without waiting out a long-poll.
    let mut quick = true;
    // Said once per start and once after each outage, so the log shows when it was reached.
    let mut connected = false;
    loop {
        let req = {
            let s = lock(&shared)?;
            PollRequest {
                agent_version: proto::AGENT_VERSION.into(),
                agent_hash: agent_hash.get().cloned().unwrap_or_default(),
                admin_members: os.admin_members().unwrap_or_default(),
                last_seq: s.state.last_seq,
                wait_secs: quick.then_some(0),
                password_versions: s.state.password_versions.clone(),
            }
        };
        let resp: PollResponse = match api.post("/poll").json(&req).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => {
                // A new secret the appliance never kept (say, restored from a backup taken
                // before the rotation): the previous one is still its secret.
                if super::secret::fall_back(&api, &shared, &dir)? {
                    continue;
                }
                return Err(Error::startup(
                    "the appliance no longer recognises this device (retired?); enroll it again",
                ));
            }
            Ok(r) if r.status().is_success() => match r.json().await {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("hourglass agent: unreadable poll answer: {e}");
                    quick = true;
                    connected = false;
                    wait_backoff(&mut backoff).await;
                    continue;
                }
            },
            Ok(r) => {
                eprintln!("hourglass agent: poll answered {}", r.status());
                quick = true;
                connected = false;
                wait_backoff(&mut backoff).await;
                continue;
            }
            Err(e) => {
                eprintln!(
                    "hourglass agent: appliance unreachable ({}); retrying",
                    describe(&e)
                );
                quick = true;
                connected = false;
                wait_backoff(&mut backoff).await;
                continue;
            }
        };
        backoff = 1;
        quick = false;
        match super::secret::after_poll(&api, &shared, &dir).await {
            Ok(replaced) => quick = replaced,
            Err(e) => eprintln!("hourglass agent: could not replace the device secret ({e})"),
        }
        if !connected {
            eprintln!(
                "hourglass agent: connected to {} (device {})",
                api.server, api.device
            );
            connected = true;
        }
        let acks = handle(&shared, os.as_ref(), &queue, &dir, resp)?;
        for (id, result, details) in acks {
            // A lost ack is harmless: the command comes again and is re-acknowledged.
            let _ = api
                .post(&format!("/commands/{id}/ack"))
                .json(&AckRequest { result, details })
                .send()
                .await;
        }
        // The appliance answered: whatever is queued can go now.
        nudge.notify_one();
    }
}

/// Uploads the event queue whenever something was queued, and every 30 s in any case.
async fn upload_loop(api: Arc<Api>, queue: Arc<Queue>, nudge: Arc<tokio::sync::Notify>) {
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(30), nudge.notified()).await;
        upload(&api, &queue).await;
    }
}

/// Waits out the back-off after a failed poll, then doubles it (1 s … 60 s, with jitter).
pub(super) async fn wait_backoff(backoff: &mut u64) {
    let ms = *backoff * 1000 + jitter_ms(*backoff * 500);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    *backoff = (*backoff * 2).min(60);
}

type Ack = (crate::ids::CommandId, AckResult, String);

/// Learns the server time, then checks and runs each delivered command.
fn handle(
    shared: &Mutex<Shared>,
    os: &dyn Os,
    queue: &Queue,
    dir: &Path,
    resp: PollResponse,
) -> Result<Vec<Ack>> {
    let mut s = lock(shared)?;
    // End users are registered by `agent request-admin`, a separate process.
    s.state.end_users = super::requests::end_users(dir);
    s.anchor = Anchor {
        at: Instant::now(),
        server_ms: resp.server_time,
    };
    s.state.clock_offset_ms = resp.server_time - wall_ms();
    let mut acks = Vec::new();
    for c in &resp.commands {
        let now = s.anchor.now();
        let (result, details) = match enforcer::check(&s.state, c, now) {
            Verdict::Reack(r, d) => {
                acks.push((c.id, r, d));
                continue;
            }
            Verdict::Refuse(why) => {
                queue.push(&enforcer::event(
                    EventKind::CommandRefused,
                    now,
                    serde_json::json!({"command": c.id, "kind": c.kind, "reason": why}),
                ))?;
                (AckResult::Refused, why)
            }
            Verdict::Run(action) => match enforcer::apply(os, &mut s.state, c, &action, now) {
                Ok(events) => {
                    for e in &events {
                        queue.push(e)?;
                    }
                    (AckResult::Done, "ok".to_string())
                }
                Err(e) => (AckResult::Failed, e.to_string()),
            },
        };
        if c.device_id == s.state.device_id {
            s.state.last_seq = s.state.last_seq.max(c.seq);
            s.state.remember(c.id, result, details.clone());
        }
        acks.push((c.id, result, details));
    }
    s.state.save(dir)?;
    Ok(acks)
}

/// Uploads queued events in batches well under the 1 MiB limit; removes what the server took.
async fn upload(api: &Api, queue: &Queue) {
    let Ok(events) = queue.all() else { return };
    for batch in events.chunks(200) {
        let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
        match api
            .post("/events")
            .json(&EventsRequest {
                events: batch.to_vec(),
            })
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let _ = queue.remove(&ids);
            }
            _ => return,
        }
    }
}
