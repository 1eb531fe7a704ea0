//! `hourglass audit verify` on a log of 10⁶ entries, beside what this machine's SHA-256 can do:
//! the chain hash of an entry alone, and raw throughput.

use std::time::Instant;

use hourglass::app;
use hourglass::clock::Clock;
use hourglass::config::Config;
use hourglass::model::audit::{ActorKind, Event, chain_hash};
use hourglass::service::audit::Audit;

pub const ENTRIES: i64 = 1_000_000;

pub struct Verify {
    pub rows: u64,
    pub rows_per_sec: f64,
    /// `chain_hash` of an entry like these in a tight loop: the floor under verify.
    pub hash_rows_per_sec: f64,
    pub sha256_mb_per_sec: f64,
}

/// An elevation decision as a workstation's `decide` writes it (a typical, mid-sized entry).
fn entry(i: i64, tenant: hourglass::ids::TenantId, now: hourglass::clock::Timestamp) -> Audit {
    Audit::new(Event::ElevationAllowed, now)
        .tenant(tenant)
        .actor(ActorKind::Device, Some(format!("dev-{i}")))
        .target("policy", "bench-policy")
        .details(serde_json::json!({
            "user": "sim-user",
            "app": {"path": format!("/opt/tool{}/bin", i % 60), "sha256": "ab".repeat(32)},
            "decision": "allow",
        }))
}

/// Tops the bench's log up to `ENTRIES` (20,000 per transaction), then times the CLI.
pub fn measure(cfg: &Config) -> Verify {
    let appliance = app::open(cfg.clone(), Clock::system()).unwrap();
    let db = appliance.ctx.db.clone();
    let now = appliance.ctx.clock.now();
    let tenant = db
        .read_blocking(|r| Ok(hourglass::store::tenants::msp(r)?.unwrap().id))
        .unwrap();
    let have = db
        .read_blocking(|r| Ok(hourglass::store::audit::head(r)?.map_or(0, |h| h.0)))
        .unwrap();
    let mut next = have;
    while next < ENTRIES {
        let upto = (next + 20_000).min(ENTRIES);
        db.write_blocking(|tx| {
            for i in next..upto {
                entry(i, tenant, now).append(tx)?;
            }
            Ok(())
        })
        .unwrap();
        next = upto;
    }
    drop(db);
    drop(appliance);

    let t = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hourglass"))
        .args([
            "audit",
            "verify",
            "--data-dir",
            cfg.storage.data_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = ENTRIES.max(have) as u64;

    let sample = entry(1, tenant, now);
    let n = 200_000;
    let t = Instant::now();
    let mut prev = [0u8; 32];
    for seq in 0..n {
        prev = chain_hash(seq, &prev, sample.entry());
    }
    let hash_rows_per_sec = n as f64 / t.elapsed().as_secs_f64();
    std::hint::black_box(prev);

    let block = vec![7u8; 1 << 20];
    let t = Instant::now();
    for _ in 0..256 {
        std::hint::black_box(hourglass::crypto::sha256(&block));
    }
    Verify {
        rows,
        rows_per_sec: rows as f64 / secs,
        hash_rows_per_sec,
        sha256_mb_per_sec: 256.0 / t.elapsed().as_secs_f64(),
    }
}
