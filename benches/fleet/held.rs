//! A fleet each on its own TLS connection, holding long-polls against `hourglass serve` as its
//! own process (so its memory and CPU are the appliance's alone), and the reconnect storm after
//! that process is killed and started again.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::{cpu_secs, hwm_mb, options, rss_mb, simulate_in_background, wait_enrolled};

/// Long-poll hold asked for (the agent's own).
const HOLD: u64 = 25;
/// How long the connected fleet is watched: more than one hold, so every device polled.
const WINDOW: Duration = Duration::from_secs(40);

pub struct Held {
    pub devices: usize,
    /// TLS connections they use (devices when each has its own).
    pub connections: usize,
    pub enroll_secs: f64,
    pub idle_mb: f64,
    pub rss_mb: f64,
    pub hwm_mb: f64,
    /// Of one core: 100 % is one core busy.
    pub cpu_pct: f64,
    pub polls: u64,
    pub errors: u64,
    pub connect_errors: u64,
    /// Time past the hold before a held poll was answered.
    pub p50: f64,
    pub p99: f64,
}

pub struct Storm {
    pub devices: usize,
    pub connections: usize,
    /// SIGKILL → listening again.
    pub restart_secs: f64,
    /// SIGKILL → every device answered by the new process (None: not within the limit).
    pub all_served_secs: Option<f64>,
    /// Devices answered again after 15, 30, 60 and 120 s.
    pub served_at: Vec<(u64, u64)>,
    pub errors: u64,
    pub rss_mb: f64,
}

fn serve(data_dir: &Path, port: u16) -> Child {
    let c = Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args([
            "serve",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("HOURGLASS__LOG__LEVEL", "error")
        .env("HOURGLASS__SERVER__MAX_CONNECTIONS_PER_CLIENT", "0")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c
}

/// `count` devices, `per` to a connection, holding long-polls for `WINDOW`; then, when
/// `storm`, the appliance is killed and started again until every device is served.
pub fn run(
    data_dir: &Path,
    token: &str,
    fp: &str,
    (count, per): (usize, usize),
    storm: bool,
) -> (Held, Option<Storm>) {
    // A port of its own per run: nothing left of the previous run's connections meets it.
    let port = 18743 + u16::try_from(count / 1000).unwrap();
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    println!("  open files in the benchmark's process: {open}");
    let mut child = serve(data_dir, port);
    std::thread::sleep(Duration::from_secs(2));
    let idle_mb = rss_mb(child.id());
    let server = format!("https://127.0.0.1:{port}");
    let mut o = options(&server, token, fp, count, HOLD);
    o.per_connection = per;
    let (stats, sim) = simulate_in_background(o);
    let enroll = wait_enrolled(&stats, count);
    // Every agent's first poll is answered at once, then they hold: start after one round.
    std::thread::sleep(Duration::from_secs(5));
    let _ = stats.take_overshoot();
    let (polls0, errors0, connect0) = counters(&stats);
    let cpu0 = cpu_secs(child.id());
    std::thread::sleep(WINDOW);
    let cpu = cpu_secs(child.id()) - cpu0;
    let (polls1, errors1, connect1) = counters(&stats);
    let (_, p50, p99) = stats.take_overshoot();
    if let Some(e) = stats.last_error() {
        println!("  latest error: {e}");
    }
    let connections = count.div_ceil(per);
    let held = Held {
        devices: count,
        connections,
        enroll_secs: enroll.as_secs_f64(),
        idle_mb,
        rss_mb: rss_mb(child.id()),
        hwm_mb: hwm_mb(child.id()),
        cpu_pct: 100.0 * cpu / WINDOW.as_secs_f64(),
        polls: polls1 - polls0,
        errors: errors1 - errors0,
        connect_errors: connect1 - connect0,
        p50,
        p99,
    };
    let storm = storm.then(|| Storm {
        connections,
        ..reconnect(&mut child, (data_dir, port), &stats, count)
    });
    stats.halt();
    sim.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    (held, storm)
}

fn counters(s: &hourglass::agent::simulate::Stats) -> (u64, u64, u64) {
    (
        s.polls.load(Ordering::Relaxed),
        s.errors.load(Ordering::Relaxed),
        s.connect_errors.load(Ordering::Relaxed),
    )
}

/// SIGKILL, start again at once, and count the devices the new process has answered.
fn reconnect(
    child: &mut Child,
    (data_dir, port): (&Path, u16),
    stats: &hourglass::agent::simulate::Stats,
    count: usize,
) -> Storm {
    let errors0 = stats.errors.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let _ = child.kill();
    let _ = child.wait();
    // Answers already on their way from the old process are not the new one's.
    std::thread::sleep(Duration::from_millis(100));
    stats.new_epoch();
    *child = serve(data_dir, port);
    let restart_secs = t0.elapsed().as_secs_f64();
    let mut served_at = Vec::new();
    let mut all_served_secs = None;
    let marks = [15u64, 30, 60, 120];
    while t0.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(250));
        let served = stats.served.load(Ordering::Relaxed);
        let secs = t0.elapsed().as_secs();
        if let Some(&m) = marks
            .iter()
            .find(|&&m| secs >= m && !served_at.iter().any(|&(s, _)| s == m))
        {
            served_at.push((m, served));
        }
        if served >= count as u64 {
            all_served_secs = Some(t0.elapsed().as_secs_f64());
            break;
        }
    }
    if let Some(e) = stats.last_error() {
        println!("  latest error in the storm: {e}");
    }
    Storm {
        devices: count,
        connections: count,
        restart_secs,
        all_served_secs,
        served_at,
        errors: stats.errors.load(Ordering::Relaxed) - errors0,
        rss_mb: rss_mb(child.id()),
    }
}
