//! BENCHMARKS.md from one run's figures. The backup benchmark's section (its own run) and the
//! hand-written reading of the figures (under `## Reading the figures`) are kept as they are.

use crate::audit::Verify;
use crate::ceiling::Load;
use crate::common::percentile;
use crate::handshakes::Handshakes;
use crate::held::{Held, Storm};

#[derive(Default)]
pub struct Figures {
    /// This process's open-file limit (each connection is one on either side).
    pub open_files: u64,
    pub ceiling: Load,
    pub polls_1k: Load,
    pub polls_10k: Load,
    pub handshakes: Handshakes,
    pub connected: usize,
    pub connected_over: usize,
    pub delivery: (Vec<f64>, usize),
    pub approvals: (Vec<f64>, usize),
    pub decide_service: Vec<f64>,
    pub decide_https: Vec<f64>,
    pub held: Vec<Held>,
    pub storms: Vec<Storm>,
    pub verify: Option<Verify>,
}

fn group(n: usize) -> String {
    hourglass::limits::group(n as u64)
}

fn row(what: &str, l: &[f64], unit_ms_decimals: usize) -> String {
    let d = unit_ms_decimals;
    format!(
        "| {what} | {} | {:.d$} ms | {:.d$} ms | {:.d$} ms |\n",
        group(l.len()),
        percentile(l, 0.5),
        percentile(l, 0.99),
        l.last().copied().unwrap_or(0.0),
    )
}

fn header(date: &str, cpus: usize, files: u64) -> String {
    format!(
        "# Benchmarks\n\n\
Measured with `cargo bench --bench fleet` (release build) on {date}, {cpus} CPU cores, an\n\
open-file limit of {} per process, appliance and simulator on the same machine over loopback\n\
TLS. Every figure below comes from that one run; the reading of them (goals met and missed,\n\
and what bounds them) follows under \"Reading the figures\".\n\n",
        group(files as usize)
    )
}

fn throughput(f: &Figures) -> String {
    let c = &f.ceiling;
    let ratio = 100.0 * f.polls_1k.per_sec / c.per_sec.max(1.0);
    let h = &f.handshakes;
    format!(
        "## Agent polling (short polls: answered at once, the throughput test)\n\n\
50 simulated agents per HTTP/2 connection here, as the ceiling's clients.\n\n\
| load | requests/s | p50 latency | p99 latency |\n|---|---|---|---|\n\
| ceiling: actix-web hello-world, same TLS, 1,000 clients | {:.0} | {:.1} ms | {:.1} ms |\n\
| `/agent/v1/poll`, 1,000 devices | {:.0} | {:.1} ms | {:.1} ms |\n\
| `/agent/v1/poll`, 10,000 devices | {:.0} | {:.1} ms | {:.1} ms |\n\n\
Poll throughput: **{ratio:.0} % of the hello-world ceiling** with 1,000 devices (goal ≥ 50 %).\n\n\
## TLS handshakes (what a reconnect costs)\n\n\
32 callers opening connections one after another (one request on each, answered 404):\n\n\
| handshake | connections/s |\n|---|---|\n\
| full (a new client: after an appliance restart) | {:.0} |\n\
| resumed (the client offers its session ticket) | {:.0} |\n\n",
        c.per_sec,
        c.p50,
        c.p99,
        f.polls_1k.per_sec,
        f.polls_1k.p50,
        f.polls_1k.p99,
        f.polls_10k.per_sec,
        f.polls_10k.p50,
        f.polls_10k.p99,
        h.full_per_sec,
        h.resumed_per_sec,
    )
}

fn connected(f: &Figures) -> String {
    let n = group(f.connected);
    let how = if f.connected_over >= f.connected {
        "one TLS connection each".to_string()
    } else {
        format!(
            "over {} TLS connections ({} agents to a connection: both ends of every connection are open files of this one process, whose limit here is {})",
            group(f.connected_over),
            f.connected.div_ceil(f.connected_over.max(1)),
            group(f.open_files as usize),
        )
    };
    format!(
        "## With {n} devices connected\n\n\
The appliance in the benchmark's process; {n} simulated agents {how}, holding 25 s\n\
long-polls; 1,000 of them get the work below.\n\n\
### Command delivery (queued → acknowledged)\n\n\
One `notify` queued for each of 1,000 devices, 5 ms apart; from the command row's `issued_at`\n\
to its `acked_at` (server clock). {} of {} acknowledged.\n\n\
| command | acknowledged | p50 | p99 | max |\n|---|---|---|---|---|\n{}\n\
### JIT approval (approve → agent acknowledges the grant)\n\n\
Each device's user asks for 30 minutes, an admin approves each request 5 ms apart; from the\n\
start of the approval (authorization, state change, audit entry and `grant_admin` in one\n\
transaction, the long-poll woken) to the agent's acknowledgement of the executed grant.\n\
{} of {} executed. Goal: p99 < 100 ms.\n\n\
| command | executed | p50 | p99 | max |\n|---|---|---|---|---|\n{}\n\
### Application elevation decisions at 500/s\n\n\
5,000 `decide` calls paced at 500/s against a 50-rule policy: end to end over HTTPS on one kept\n\
connection with a real device id and secret (authentication, policy read, engine, audit entry,\n\
answer), and as the in-process service call alone. Goal: p99 < 5 ms end to end.\n\n\
| path | calls | p50 | p99 | max |\n|---|---|---|---|---|\n{}{}\n",
        f.delivery.0.len(),
        f.delivery.1,
        row("notify", &f.delivery.0, 0),
        f.approvals.0.len(),
        f.approvals.1,
        row("grant_admin", &f.approvals.0, 0),
        row("HTTPS `/agent/v1/decide`", &f.decide_https, 2),
        row("service call", &f.decide_service, 2),
    )
}

fn held(f: &Figures) -> String {
    let mut s = String::from(
        "## Devices holding long-polls\n\n\
`hourglass serve` as its own process; the simulated agents each on their own TLS connection\n\
where the open-file limit allows (spread over 127.0.0.x source addresses), else sharing as\n\
few as fit; holding 25 s long-polls, watched for 40 s after all enrolled. CPU is of one core\n\
(200 % = both). Latency is how long past its 25 s hold a quiet poll was answered. Goal at\n\
100,000: RSS < 1.5 GB, 0 errors.\n\n\
| devices | TLS connections | enrolled in | idle RSS | RSS | peak RSS | CPU | polls | errors (connect) | past-hold p50 | p99 |\n\
|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for h in &f.held {
        s.push_str(&format!(
            "| {} | {} | {:.0} s | {:.0} MB | {:.0} MB | {:.0} MB | {:.0} % | {} | {} ({}) | {:.1} ms | {:.1} ms |\n",
            group(h.devices),
            group(h.connections),
            h.enroll_secs,
            h.idle_mb,
            h.rss_mb,
            h.hwm_mb,
            h.cpu_pct,
            group(h.polls as usize),
            h.errors,
            h.connect_errors,
            h.p50,
            h.p99,
        ));
    }
    s.push('\n');
    if !f.storms.is_empty() {
        s.push_str(&storms(f));
    }
    if let Some(v) = &f.verify {
        s.push_str(&format!(
            "## Audit verify\n\n\
`hourglass audit verify` (the CLI, a process of its own) on a log of {} entries, beside the\n\
same chain hash computed in a tight loop on one entry and raw SHA-256 on 1 MiB blocks.\n\
Goal: ≥ 10⁶ rows/s.\n\n\
| `audit verify` | chain hash alone | SHA-256 |\n|---|---|---|\n\
| {} rows/s | {} rows/s | {:.0} MB/s |\n\n",
            group(v.rows as usize),
            group(v.rows_per_sec as usize),
            group(v.hash_rows_per_sec as usize),
            v.sha256_mb_per_sec,
        ));
    }
    s
}

/// The reconnect storms: a row each, and what one connection per device would cost.
fn storms(f: &Figures) -> String {
    let mut s = String::from(
        "## Reconnect storm\n\n\
Devices of the runs above, connected; the appliance is killed (SIGKILL) and started again at\n\
once; the agents reconnect with the real agent's back-off (1 s doubling to 60 s, with jitter)\n\
and its first poll after an outage, answered at once. Goal: every device served again within\n\
2 minutes.\n\n\
| devices | TLS connections | listening again | every device served again | served on the way | errors seen by agents | RSS after |\n|---|---|---|---|---|---|---|\n",
    );
    let rate = f.handshakes.full_per_sec.max(1.0);
    let mut notes = String::new();
    for st in &f.storms {
        let marks: Vec<String> = st
            .served_at
            .iter()
            .map(|(s, n)| format!("{} after {s} s", group(*n as usize)))
            .collect();
        s.push_str(&format!(
            "| {} | {} | {:.1} s | {} | {} | {} | {:.0} MB |\n",
            group(st.devices),
            group(st.connections),
            st.restart_secs,
            st.all_served_secs
                .map(|t| format!("{t:.0} s"))
                .unwrap_or_else(|| "not within 180 s".into()),
            marks.join(", "),
            group(st.errors as usize),
            st.rss_mb,
        ));
        if st.connections < st.devices {
            notes.push_str(&format!(
                "With {} devices on {} connections the appliance shook hands {} times; with one\n\
connection each it would shake hands {} times: at the full-handshake rate measured above\n\
({:.0}/s) that is {:.0} s of handshakes alone.\n",
                group(st.devices),
                group(st.connections),
                group(st.connections),
                group(st.devices),
                rate,
                st.devices as f64 / rate,
            ));
        }
    }
    s.push('\n');
    if !notes.is_empty() {
        s.push_str(&notes);
        s.push('\n');
    }
    s
}

pub fn render(f: &Figures) -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{}{}{}{}",
        header(&date, cpus, f.open_files),
        throughput(f),
        connected(f),
        held(f)
    )
}

/// Writes the report, keeping the hand-written reading and the backup section after it.
pub fn write(report: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let kept = ["## Reading the figures", "## Backup under write load"]
        .iter()
        .find_map(|h| old.find(h))
        .map(|i| old[i..].to_string())
        .unwrap_or_default();
    std::fs::write(path, format!("{report}{kept}")).unwrap();
}
