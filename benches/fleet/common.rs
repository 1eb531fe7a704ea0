//! What every phase of the fleet benchmark uses: the simulator on its own threads, process
//! figures from /proc, percentiles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hourglass::agent::simulate::{self, SimOptions, Stats};

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

pub fn options(server: &str, token: &str, fp: &str, count: usize, hold: u64) -> SimOptions {
    SimOptions {
        server: server.into(),
        token: token.into(),
        fingerprint: fp.into(),
        count,
        hold_secs: hold,
        seconds: 0,
        per_connection: 1,
        server_pid: None,
    }
}

/// Runs the simulator on its own multi-threaded runtime (another OS thread), as a separate
/// load generator would; it runs until `seconds` pass or `Stats::halt`.
pub fn simulate_in_background(o: SimOptions) -> (Arc<Stats>, std::thread::JoinHandle<()>) {
    let stats = Arc::new(Stats::default());
    let s2 = stats.clone();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(simulate::run(o, s2, true)).unwrap();
        // Wait for the aborted agents to be dropped: their connections are this process's
        // open files, and the next phase needs them back.
        rt.shutdown_timeout(Duration::from_secs(30));
    });
    (stats, t)
}

/// The simulator for `o.seconds`, to the end.
pub fn simulate(o: SimOptions) -> Arc<Stats> {
    let (stats, t) = simulate_in_background(o);
    t.join().unwrap();
    stats
}

/// Waits until every device of `stats` is enrolled; returns how long that took.
pub fn wait_enrolled(stats: &Stats, count: usize) -> Duration {
    let t = Instant::now();
    while stats.enrolled.load(std::sync::atomic::Ordering::Relaxed) < count as u64 {
        assert!(
            t.elapsed() < Duration::from_secs(900),
            "enrolling {count} devices took over 15 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t.elapsed()
}

fn status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident memory now, in MB.
pub fn rss_mb(pid: u32) -> f64 {
    status(pid, "VmRSS:") as f64 / 1024.0
}

/// Peak resident memory, in MB.
pub fn hwm_mb(pid: u32) -> f64 {
    status(pid, "VmHWM:") as f64 / 1024.0
}

/// CPU time (user + system) the process has used, in seconds (/proc counts in 1/100 s).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Raises this process's open-file limit (soft and, as root, hard) so that 100,000
/// connections on each side fit; the server child inherits it.
pub fn raise_open_files() -> u64 {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(nr_open),
            maximum: Some(nr_open),
        },
    );
    hourglass::limits::raise_open_files().unwrap_or(0)
}

/// Devices per connection so that `devices` fit in `connections` (1: each its own).
pub fn per_connection(devices: usize, connections: usize) -> usize {
    devices.div_ceil(connections.max(1)).max(1)
}
