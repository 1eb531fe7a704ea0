//! `hourglass agent simulate`: N virtual agents in one process, each with an in-memory
//! machine, enrolling, long-polling, running and acknowledging commands and reporting events
//! like real ones. It prints throughput and latency every second and is the load generator
//! for the benchmarks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::enforcer::{self, Verdict};
use super::os::MemoryOs;
use super::state::State;
use crate::error::{Error, Result};
use crate::proto::{
    self, AckRequest, AckResult, EnrollRequest, EnrollResponse, EventsRequest, PollRequest,
    PollResponse,
};

/// The local account of every simulated workstation.
pub const SIM_USER: &str = "sim-user";

pub struct SimOptions {
    pub server: String,
    pub token: String,
    pub fingerprint: String,
    pub count: usize,
    /// Long-poll hold asked for (0 = answer at once: a throughput test).
    pub hold_secs: u64,
    /// Stop after this many seconds (0 = run until interrupted).
    pub seconds: u64,
    /// Agents sharing one HTTP/2 connection (1: each its own TLS connection, as a real fleet).
    pub per_connection: usize,
    /// The appliance's process, whose resident memory is reported each second when known.
    pub server_pid: Option<u32>,
}

/// Connections per loopback source address: well below the ~28,000 ephemeral ports Linux
/// hands out per address, so 100,000 agents on their own connections fit, and so do their
/// reconnections after a restart while the old connections wait out TIME_WAIT.
const CONNECTIONS_PER_SOURCE: usize = 10_000;

/// Counters shared by all virtual agents.
#[derive(Default)]
pub struct Stats {
    pub enrolled: AtomicU64,
    pub polls: AtomicU64,
    pub errors: AtomicU64,
    /// Of `errors`, the calls that could not connect (or lost their connection).
    pub connect_errors: AtomicU64,
    pub commands: AtomicU64,
    pub acks: AtomicU64,
    pub events: AtomicU64,
    /// Bumped by whoever watches a restart (`new_epoch`); `served` counts the agents answered
    /// at least once since, so "every device is served again" is `served == count`.
    epoch: AtomicU64,
    pub served: AtomicU64,
    /// Set by `halt`: the run ends within a second, whatever `seconds` said.
    halted: std::sync::atomic::AtomicBool,
    latencies_us: std::sync::Mutex<Vec<u64>>,
    /// Held long-polls answered with nothing: how long past the hold the answer came.
    overshoot_us: std::sync::Mutex<Vec<u64>>,
    /// The latest failed call, as the client described it (what the errors are).
    last_error: std::sync::Mutex<Option<String>>,
}

impl Stats {
    fn record(list: &std::sync::Mutex<Vec<u64>>, d: Duration) {
        if let Ok(mut l) = list.lock() {
            l.push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        }
    }
    /// Drains the poll latencies gathered since the last call: (count, p50, p99) in ms.
    pub fn take_latencies(&self) -> (usize, f64, f64) {
        percentiles(&self.latencies_us)
    }
    /// Drains the held polls' time past their hold: (count, p50, p99) in ms.
    pub fn take_overshoot(&self) -> (usize, f64, f64) {
        percentiles(&self.overshoot_us)
    }
    /// The latest failed call's description, if any failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
    fn failed(&self, why: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(why);
        }
    }
    /// Ends the run that reports into these counters (a benchmark done with its phase).
    pub fn halt(&self) {
        self.halted.store(true, Ordering::Relaxed);
    }
    /// Starts counting `served` afresh (say, at an appliance restart).
    pub fn new_epoch(&self) {
        self.served.store(0, Ordering::Relaxed);
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }
    /// An agent was answered: counted in `served` once per epoch.
    fn answered(&self, seen: &mut u64) {
        let now = self.epoch.load(Ordering::Relaxed);
        if *seen != now {
            *seen = now;
            self.served.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn percentiles(list: &std::sync::Mutex<Vec<u64>>) -> (usize, f64, f64) {
    let mut l = list
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    if l.is_empty() {
        return (0, 0.0, 0.0);
    }
    l.sort_unstable();
    let at = |q: f64| l[((l.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;
    (l.len(), at(0.5), at(0.99))
}

fn client(pin: &str, source: Option<std::net::IpAddr>) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(super::client::pinned_tls_config(pin)?)
        .timeout(Duration::from_secs(60))
        .local_address(source)
        .build()
        .map_err(Error::internal)
}

/// The source address of the `n`-th connection: spread over 127.0.0.1, 127.0.0.2, … when
/// the appliance is on IPv4 loopback (the whole 127/8 reaches it), else the system's choice.
fn source_for(server: &str, n: usize) -> Option<std::net::IpAddr> {
    let host = reqwest::Url::parse(server).ok()?.host_str()?.to_string();
    let ip: std::net::Ipv4Addr = host.parse().ok()?;
    if !ip.is_loopback() {
        return None;
    }
    let k = u32::try_from(n / CONNECTIONS_PER_SOURCE).ok()?;
    let [_, a, b, c] = (0x7f00_0001u32 + k).to_be_bytes();
    Some(std::net::Ipv4Addr::new(127, a, b, c).into())
}

/// Resident memory of a process in MB, from /proc (Linux).
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Enrolls the `i`-th virtual workstation (`sim-00000i`).
pub async fn enroll_one(c: &reqwest::Client, o: &SimOptions, i: usize) -> Result<EnrollResponse> {
    let req = EnrollRequest {
        token: o.token.clone(),
        hostname: format!("sim-{i:06}"),
        os: "linux".into(),
        os_version: "simulated".into(),
        agent_version: proto::AGENT_VERSION.into(),
    };
    let r = c
        .post(format!("{}/agent/v1/enroll", o.server))
        .json(&req)
        .send()
        .await
        .map_err(|e| Error::startup(format!("enroll: {e}")))?;
    if !r.status().is_success() {
        return Err(Error::startup(format!("enroll refused: {}", r.status())));
    }
    r.json()
        .await
        .map_err(|e| Error::startup(format!("enroll: {e}")))
}

// Long on purpose: the whole life of one simulated agent, in the order a real one lives it.
/// One virtual agent's life: poll, check, run on its memory machine, acknowledge, report.
async fn agent(
    c: reqwest::Client,
    server: String,
    hold: u64,
    e: EnrollResponse,
    stats: Arc<Stats>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let os = MemoryOs::default();
    let mut state = State {
        server: server.clone(),
        fingerprint: String::new(),
        device_id: e.device_id,
        device_secret: e.device_secret.clone(),
        tenant: e.tenant,
        last_seq: 0,
        clock_offset_ms: 0,
        baseline_admins: Vec::new(),
        ordered_admins: Vec::new(),
        grants: Vec::new(),
        grant_times: Vec::new(),
        results: Vec::new(),
        // The simulated workstation's one local user, who may ask for rights.
        end_users: vec![SIM_USER.into()],
        offline: None,
        policies: None,
        seen_logons: vec![],
        password_versions: Default::default(),
        secret_issued_at: e.server_time,
        previous_secret: None,
    };
    let anchor = Mutex::new((Instant::now(), e.server_time));
    let post = |path: String| {
        c.post(format!("{server}/agent/v1{path}"))
            .header("x-device-id", e.device_id.to_string())
            .bearer_auth(&e.device_secret)
    };
    // As the real agent: 1 s doubling to 60 s with jitter while the appliance is unreachable.
    let mut backoff = 1u64;
    let mut seen = u64::MAX;
    // As the real agent: the first poll after a start or an outage is answered at once.
    let mut quick = true;
    while !stop.load(Ordering::Relaxed) {
        let req = PollRequest {
            agent_version: proto::AGENT_VERSION.into(),
            agent_hash: String::new(),
            admin_members: Vec::new(),
            last_seq: state.last_seq,
            wait_secs: Some(if quick { 0 } else { hold }),
            password_versions: Default::default(),
        };
        let t = Instant::now();
        let resp: PollResponse = match post("/poll".into()).json(&req).send().await {
            Ok(r) if r.status().is_success() => match r.json().await {
                Ok(p) => p,
                Err(e) => {
                    stats.failed(format!("unreadable poll answer: {e}"));
                    quick = true;
                    super::daemon::wait_backoff(&mut backoff).await;
                    continue;
                }
            },
            other => {
                stats.failed(match &other {
                    Ok(r) => format!("poll answered {}", r.status()),
                    Err(e) => format!("poll failed: {}", super::daemon::describe(e)),
                });
                if other
                    .as_ref()
                    .is_err_and(|e| e.is_connect() || e.is_request())
                {
                    stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                }
                quick = true;
                super::daemon::wait_backoff(&mut backoff).await;
                continue;
            }
        };
        backoff = 1;
        stats.polls.fetch_add(1, Ordering::Relaxed);
        stats.answered(&mut seen);
        let took = t.elapsed();
        if hold == 0 || quick || !resp.commands.is_empty() {
            Stats::record(&stats.latencies_us, took);
        } else {
            Stats::record(
                &stats.overshoot_us,
                took.saturating_sub(Duration::from_secs(hold)),
            );
        }
        quick = false;
        *anchor.lock().await = (Instant::now(), resp.server_time);
        for cmd in resp.commands {
            stats.commands.fetch_add(1, Ordering::Relaxed);
            let now = resp.server_time;
            let (result, details, events) = match enforcer::check(&state, &cmd, now) {
                Verdict::Reack(r, d) => (r, d, Vec::new()),
                Verdict::Refuse(why) => (AckResult::Refused, why, Vec::new()),
                Verdict::Run(a) => match enforcer::apply(&os, &mut state, &cmd, &a, now) {
                    Ok(ev) => (AckResult::Done, "ok".into(), ev),
                    Err(e) => (AckResult::Failed, e.to_string(), Vec::new()),
                },
            };
            state.last_seq = state.last_seq.max(cmd.seq);
            state.remember(cmd.id, result, details.clone());
            if post(format!("/commands/{}/ack", cmd.id))
                .json(&AckRequest { result, details })
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                stats.acks.fetch_add(1, Ordering::Relaxed);
            }
            if !events.is_empty() {
                let n = events.len() as u64;
                if post("/events".into())
                    .json(&EventsRequest { events })
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    stats.events.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Every connection is an open file: say so before opening them, not 20,000 errors later.
fn check_open_files(connections: usize) -> Result<()> {
    let Some(limit) = crate::limits::raise_open_files() else {
        return Ok(());
    };
    let need = connections as u64 + 64;
    if need > limit {
        return Err(Error::startup(format!(
            "{connections} connections need about {need} open files, but this process may open {limit}; raise it (ulimit -n, as root also ulimit -Hn) or share connections (--share-connection)"
        )));
    }
    Ok(())
}

/// `call`, tried again after 1, 2 and 4 s while it fails (a burst overflowing the backlog).
async fn retried<T, E, F: std::future::Future<Output = std::result::Result<T, E>>>(
    mut call: impl FnMut() -> F,
) -> std::result::Result<T, E> {
    let mut r = call().await;
    for wait in [1, 2, 4] {
        if r.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(wait)).await;
        r = call().await;
    }
    r
}

/// One client per `per` virtual agents, each client one connection.
async fn connect(o: &SimOptions, per: usize) -> Result<Vec<reqwest::Client>> {
    let server = &o.server;
    let clients: Vec<reqwest::Client> = (0..o.count.div_ceil(per))
        .map(|n| client(&o.fingerprint, source_for(server, n)))
        .collect::<Result<_>>()?;
    if per > 1 {
        // One call each first: requests that start together before a client's HTTP/2
        // connection is up would each open their own, and the sharing would be lost.
        // In batches, retried: thousands of handshakes at once overflow the listen backlog.
        for batch in clients.chunks(256) {
            let warm = batch.iter().map(|c| {
                let url = format!("{server}/agent/v1/openapi.json");
                retried(move || c.get(url.clone()).send())
            });
            for r in futures_util::future::join_all(warm).await {
                r.map_err(|e| Error::startup(format!("cannot reach {server}: {e}")))?;
            }
        }
    }
    Ok(clients)
}

/// The simulator's line for the second just gone.
fn print_second(o: &SimOptions, stats: &Stats, at: f64, polls: u64, acks: u64) {
    let (n, p50, p99) = stats.take_latencies();
    let rss = o
        .server_pid
        .and_then(rss_mb)
        .map(|mb| format!("  server RSS {mb:.0} MB"))
        .unwrap_or_default();
    // Held polls answered with nothing: how late past the hold (0 when short polls).
    let (_, h50, h99) = stats.take_overshoot();
    let held = if o.hold_secs > 0 {
        format!("  past hold p50 {h50:.1} ms p99 {h99:.1} ms")
    } else {
        String::new()
    };
    println!(
        "{at:>5.0}s  polls/s {polls:>7}  acks/s {acks:>5}  errors {:>4} (connect {})  poll latency p50 {p50:.1} ms p99 {p99:.1} ms ({n} samples){held}{rss}",
        stats.errors.load(Ordering::Relaxed),
        stats.connect_errors.load(Ordering::Relaxed),
    );
}

/// Enrolls `count` virtual agents (in parallel batches) and runs them.
pub async fn run(o: SimOptions, stats: Arc<Stats>, quiet: bool) -> Result<()> {
    let server = o.server.trim_end_matches('/').to_string();
    let o = SimOptions {
        server: server.clone(),
        ..o
    };
    let per = o.per_connection.max(1);
    check_open_files(o.count.div_ceil(per))?;
    let clients = connect(&o, per).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let mut enrolled = Vec::with_capacity(o.count);
    for chunk in (0..o.count).collect::<Vec<_>>().chunks(64) {
        let futs = chunk.iter().map(|&i| {
            let c = clients[i / per].clone();
            let o = &o;
            // A refused connection under a burst is retried, as an installer would.
            async move { (i, retried(|| enroll_one(&c, o, i)).await) }
        });
        for (i, r) in futures_util::future::join_all(futs).await {
            enrolled.push((i, r?));
            stats.enrolled.fetch_add(1, Ordering::Relaxed);
        }
    }
    if !quiet {
        println!(
            "enrolled {} virtual agents in {:.1}s",
            o.count,
            started.elapsed().as_secs_f64()
        );
    }
    let mut tasks = Vec::new();
    for (i, e) in enrolled {
        tasks.push(tokio::spawn(agent(
            clients[i / per].clone(),
            server.clone(),
            o.hold_secs,
            e,
            stats.clone(),
            stop.clone(),
        )));
    }
    let run_started = Instant::now();
    let mut last = (0u64, 0u64);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let polls = stats.polls.load(Ordering::Relaxed);
        let acks = stats.acks.load(Ordering::Relaxed);
        if !quiet {
            print_second(
                &o,
                &stats,
                run_started.elapsed().as_secs_f64(),
                polls - last.0,
                acks - last.1,
            );
        }
        last = (polls, acks);
        let over = o.seconds > 0 && run_started.elapsed().as_secs() >= o.seconds;
        if over || stats.halted.load(Ordering::Relaxed) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_loopback_addresses() {
        let at = |n| source_for("https://127.0.0.1:8443", n).map(|a| a.to_string());
        assert_eq!(at(0).as_deref(), Some("127.0.0.1"));
        assert_eq!(at(CONNECTIONS_PER_SOURCE - 1).as_deref(), Some("127.0.0.1"));
        assert_eq!(at(CONNECTIONS_PER_SOURCE).as_deref(), Some("127.0.0.2"));
        assert_eq!(at(5 * CONNECTIONS_PER_SOURCE).as_deref(), Some("127.0.0.6"));
        assert_eq!(source_for("https://hg.example.net", 0), None);
        assert_eq!(source_for("https://10.0.0.5:8443", 0), None);
    }
}
