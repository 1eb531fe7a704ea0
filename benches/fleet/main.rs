//! Fleet benchmark: `cargo bench --bench fleet` (release build). Runs the real appliance and
//! the simulator on this machine, side by side in one run, and writes the figures to
//! BENCHMARKS.md: short-poll throughput against a hello-world ceiling over the same TLS, TLS
//! handshakes full and resumed, delivery, approval and `decide` latency with a fleet connected
//! one TLS connection per device, 10,000 / 30,000 / 100,000 such devices holding long-polls
//! against `hourglass serve` as its own process (memory, CPU, errors), the reconnect storm
//! after that process is killed, and `audit verify` on 10⁶ entries beside SHA-256.
//!
//! `HOURGLASS_BENCH_SCALE=0.05` runs every phase with that share of the devices (trying the
//! bench out); only a full-scale run writes BENCHMARKS.md.

// A benchmark harness: failing loudly is the right answer to any error here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod audit;
mod ceiling;
mod common;
mod handshakes;
mod held;
mod inproc;
mod report;

use std::time::Duration;

use hourglass::app;
use hourglass::authz::system_scope;
use hourglass::clock::Clock;
use hourglass::config::Config;
use hourglass::service;

use common::{options, simulate_in_background, wait_enrolled};

fn token(ctx: &service::Ctx, uses: usize) -> String {
    let new = service::devices::NewToken {
        hours: 24,
        uses: u32::try_from(uses.min(100_000)).unwrap(),
    };
    service::devices::create_token_for_slug(ctx, "bench-msp", new, "https://x")
        .unwrap()
        .0
}

fn main() {
    let files = common::raise_open_files();
    let scale: f64 = std::env::var("HOURGLASS_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |k: usize| ((k as f64 * scale) as usize).max(10);
    println!("open-file limit {files}, scale {scale}");
    // Descriptors left for connections after the database, listeners and the like.
    let room = usize::try_from(files).unwrap().saturating_sub(1000);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.storage.data_dir = dir.path().join("data");
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.tls.hostname = "bench.local".into();
    cfg.log.level = "error".into();
    // Every simulated device connects from loopback: no per-address connection cap.
    cfg.server.max_connections_per_client = 0;
    let appliance = app::open(cfg.clone(), Clock::system()).unwrap();
    let fp = appliance.fingerprint.clone();
    let ctx = appliance.ctx.clone();
    service::setup::headless_setup(&ctx, "Bench MSP", "B", "M", "bench@msp.test").unwrap();
    let tls = hourglass::tls::server_config(ctx.certs.clone()).unwrap();

    // The appliance runs on its own thread with its actix system alive until told to stop.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let r = app::start(appliance).await.unwrap();
            tx.send(format!("https://{}", r.portal_addrs[0])).unwrap();
            let _ = stop_rx.await;
            r.shutdown().await.unwrap();
        })
    });
    let server = rx.recv().unwrap();
    let sys = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut f = report::Figures {
        open_files: files,
        ..Default::default()
    };
    println!("ceiling: hello-world over TLS, 1,000 clients, 10 s");
    f.ceiling = ceiling::hello_world(tls.clone(), &fp, 1000, 10);
    let short = token(&ctx, n(1000) + n(10_000) + 10);
    println!("short polls, 1,000 devices, 10 s");
    f.polls_1k = ceiling::short_polls(&server, &short, &fp, n(1000), 10);
    println!("short polls, 10,000 devices, 15 s");
    f.polls_10k = ceiling::short_polls(&server, &short, &fp, n(10_000), 15);
    println!("TLS handshakes, full and resumed");
    f.handshakes = handshakes::measure(&sys, &server, &fp);

    // A fleet connected one TLS connection per device, in long-polls, while commands,
    // approvals and decisions go to 1,000 of them.
    f.connected = n(100_000);
    println!(
        "{} devices connected in-process: delivery, approvals, decide",
        f.connected
    );
    let msp = sys
        .block_on(ctx.db.read(hourglass::store::tenants::msp))
        .unwrap()
        .unwrap();
    let list = || {
        sys.block_on(
            ctx.db
                .read(move |r| hourglass::store::devices::list(r, &system_scope(msp.id))),
        )
        .unwrap()
    };
    let before: std::collections::BTreeSet<_> = list().into_iter().map(|d| d.id).collect();
    let fleet = token(&ctx, f.connected);
    // Both ends of every connection are open files of this one process.
    let mut o = options(&server, &fleet, &fp, f.connected, 25);
    o.per_connection = common::per_connection(f.connected, room / 2 - 500);
    f.connected_over = f.connected.div_ceil(o.per_connection);
    let (stats, sim) = simulate_in_background(o);
    wait_enrolled(&stats, f.connected);
    // Every agent's first poll is answered at once: let them all settle into their holds
    // (one 25 s round) so the figures below are of a connected fleet, not of its arrival.
    std::thread::sleep(Duration::from_secs(30));
    let fresh: Vec<_> = list()
        .into_iter()
        .filter(|d| !before.contains(&d.id))
        .take(1000)
        .collect();
    f.delivery = inproc::delivery(&sys, &ctx, &fresh);
    f.approvals = (inproc::approvals(&sys, &ctx, &fresh), fresh.len());
    f.decide_service = inproc::decisions(&sys, &ctx, &fresh[0]);
    f.decide_https = inproc::decide_https(&sys, &server, &short, &fp);
    stats.halt();
    sim.join().unwrap();
    let _ = stop_tx.send(());
    server_thread.join().unwrap();

    for (count, storm) in [(n(10_000), true), (n(30_000), false), (n(100_000), true)] {
        println!("{count} devices holding long-polls against `hourglass serve`");
        let t = token(&ctx, count);
        let per = common::per_connection(count, room);
        let (h, s) = held::run(&cfg.storage.data_dir, &t, &fp, (count, per), storm);
        f.held.push(h);
        f.storms.extend(s);
    }
    drop(ctx);
    println!("audit verify on {} entries", audit::ENTRIES);
    f.verify = Some(audit::measure(&cfg));
    let text = report::render(&f);
    println!("{text}");
    if scale >= 1.0 {
        report::write(&text);
    }
}
