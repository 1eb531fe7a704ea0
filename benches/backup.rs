//! Backup benchmark (BR-01): `cargo bench --bench backup` (release build). Fills a database,
//! then takes the online backup (`VACUUM INTO` + integrity check + chain verify + manifest)
//! while a writer appends audit entries as fast as it can, and records how long the backup
//! took and how long single writes waited meanwhile. Its figures go into their own section of
//! BENCHMARKS.md (the fleet benchmark keeps that section when it rewrites the file).

// A benchmark harness: failing loudly is the right answer to any error here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hourglass::app;
use hourglass::clock::Clock;
use hourglass::config::Config;
use hourglass::model::audit::Event;
use hourglass::service::audit::Audit;

const SECTION: &str = "## Backup under write load";
const ENTRIES: usize = 200_000;

fn append(db: &hourglass::store::Db, now: hourglass::clock::Timestamp, i: usize) {
    db.write_blocking(|tx| {
        Audit::new(Event::ConfigChanged, now)
            .details(serde_json::json!({"i": i, "pad": "x".repeat(200)}))
            .append(tx)
            .map(|_| ())
    })
    .unwrap();
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::default();
    cfg.storage.data_dir = dir.path().join("data");
    cfg.tls.hostname = "bench.local".into();
    let appliance = app::open(cfg, Clock::system()).unwrap();
    let ctx = appliance.ctx.clone();
    let now = ctx.clock.now();
    println!("filling the database with {ENTRIES} audit entries");
    for chunk in 0..ENTRIES / 1000 {
        ctx.db
            .write_blocking(|tx| {
                for i in 0..1000 {
                    Audit::new(Event::ConfigChanged, now)
                        .details(serde_json::json!({"i": chunk * 1000 + i, "pad": "x".repeat(200)}))
                        .append(tx)?;
                }
                Ok(())
            })
            .unwrap();
    }
    let db_mb = std::fs::metadata(dir.path().join("data/hourglass.db"))
        .map(|m| m.len())
        .unwrap_or(0) as f64
        / 1e6;

    // Writes alone, for comparison.
    let mut alone = Vec::new();
    for i in 0..2000 {
        let t = Instant::now();
        append(&ctx.db, now, i);
        alone.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    println!("backup while a writer appends");
    let stop = Arc::new(AtomicBool::new(false));
    let (db2, stop2) = (ctx.db.clone(), stop.clone());
    let writer = std::thread::spawn(move || {
        let mut waits = Vec::new();
        let mut i = 0;
        while !stop2.load(Ordering::Relaxed) {
            let t = Instant::now();
            append(&db2, now, i);
            waits.push(t.elapsed().as_secs_f64() * 1000.0);
            i += 1;
        }
        waits
    });
    let out = dir.path().join("bench-backup.db");
    let t = Instant::now();
    let m = hourglass::service::backup::create(&ctx, &out, None).unwrap();
    let took = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut during = writer.join().unwrap();
    during.sort_by(|a, b| a.partial_cmp(b).unwrap());
    alone.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |v: &[f64], q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];

    let section = format!(
        "{SECTION}\n\n\
`hourglass backup` (`VACUUM INTO` on its own connection, `integrity_check`, audit-chain verify,\n\
signed manifest) of a {db_mb:.0} MB database ({} audit entries), while one writer appends audit\n\
entries back to back (each its own `synchronous=FULL` transaction).\n\n\
| backup took | writes during it | write p50 | write p99 | longest write | p99 without a backup |\n\
|---|---|---|---|---|---|\n\
| {took:.1} s | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |\n\n\
Target (BR-01): writers blocked < 100 ms.\n",
        m.audit_entries,
        during.len(),
        pct(&during, 0.5),
        pct(&during, 0.99),
        during.last().copied().unwrap_or(0.0),
        pct(&alone, 0.99),
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let kept = match old.find(SECTION) {
        Some(i) => old[..i].trim_end().to_string(),
        None => old.trim_end().to_string(),
    };
    std::fs::write(path, format!("{kept}\n\n{section}")).unwrap();
    println!("{section}");
}
