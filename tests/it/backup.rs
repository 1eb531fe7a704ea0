//! Backups and restores (DUR-03, DUR-04, BR-02..BR-04) with a real agent and real files:
//! an online backup is checked and holds no readable secret; a restore needs its key, never
//! runs under a live appliance, and afterwards agents accept new orders and every escrowed
//! password is rotated.

use hourglass::service;
use serde_json::json;

use crate::agent::{enroll, eventually, tenant_and_admin, wait_until};
use crate::logins::{api, commands_of, opens, shadow, wait_state};
use crate::support::*;

fn hg(args: &[&str], data: &std::path::Path) -> (bool, String) {
    let mut a = args.to_vec();
    a.extend(["--data-dir", data.to_str().unwrap()]);
    let o = run(&a);
    (o.status.success(), text(&o))
}

fn db(data: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("hourglass.db")).unwrap()
}

fn queued(data: &std::path::Path, device: &str) -> i64 {
    db(data)
        .query_row(
            "SELECT count(*) FROM commands WHERE device_id = ?1 AND state = 'queued'",
            [device],
            |r| r.get(0),
        )
        .unwrap()
}

#[actix_web::test]
async fn a_backup_restores_with_its_key_and_agents_and_passwords_move_on() {
    let mut s = TestServer::start().await;
    let (t, token, _) = tenant_and_admin(&s).await;
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();
    let mut ws = enroll(&s, &token);
    ws.start();
    let root = ws.root.path().to_path_buf();
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    let (st, l) = api(&s, &nik, "POST", &path, json!({"duration_minutes": 30})).await;
    assert_eq!(st, 201, "{l}");
    let password = l["password"].as_str().unwrap().to_string();
    let id = l["id"].as_str().unwrap().to_string();
    wait_state(&s, &nik, &id, "active").await;

    // Online, while the appliance runs: a checked copy, private, with its manifest.
    let data = s.data_dir();
    let out = s.dir.path().join("nightly.db");
    let (ok, said) = hg(&["backup", "--out", out.to_str().unwrap()], &data);
    assert!(ok, "{said}");
    assert!(said.contains("master.key is not in it"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.dir.path().join("nightly.db.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["sha256"], sha256_file(&out));
    assert!(
        manifest["checkpoint"]
            .as_str()
            .unwrap()
            .starts_with("hourglass.test/hourglass-audit\n")
    );
    // BR-04: the revealed password (a canary) is nowhere in the file.
    let bytes = std::fs::read(&out).unwrap();
    assert!(
        !bytes
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    let (ok, said) = hg(&["backup", "--out", out.to_str().unwrap()], &data);
    assert!(!ok && said.contains("exists already"), "{said}");

    // After the backup the session ends: the password is rotated, the agent's sequence moves on.
    let (st, e) = api(
        &s,
        &nik,
        "POST",
        &format!("/api/v1/tenants/acme/logins/{id}/end"),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{e}");
    wait_until(30, "!opens(&root, \"msp-nik\", &password)", || {
        !opens(&root, "msp-nik", &password)
    })
    .await;
    wait_until(30, "queued(&data, &ws.device.to_string()) == 0", || {
        queued(&data, &ws.device.to_string()) == 0
    })
    .await;
    let after_end = shadow(&root, "msp-nik");

    // Never under a running appliance.
    let (ok, said) = hg(&["restore", "--from", out.to_str().unwrap()], &data);
    assert!(
        !ok && said.contains("in use by a running appliance"),
        "{said}"
    );
    s.stop().await;

    // BR-04: not without the key that belongs to it.
    let bare = tempfile::tempdir().unwrap();
    let (ok, said) = hg(&["restore", "--from", out.to_str().unwrap()], bare.path());
    assert!(!ok && said.contains("master.key is missing"), "{said}");
    std::fs::write(bare.path().join("master.key"), [7u8; 32]).unwrap();
    std::fs::set_permissions(
        bare.path().join("master.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let (ok, said) = hg(&["restore", "--from", out.to_str().unwrap()], bare.path());
    assert!(
        !ok && said.contains("does not belong to this backup"),
        "{said}"
    );
    // A damaged file is refused before anything is replaced.
    let damaged = s.dir.path().join("damaged.db");
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(&damaged, &b).unwrap();
    std::fs::copy(
        s.dir.path().join("nightly.db.manifest.json"),
        s.dir.path().join("damaged.db.manifest.json"),
    )
    .unwrap();
    let before = sha256_file(&data.join("hourglass.db"));
    let (ok, said) = hg(&["restore", "--from", damaged.to_str().unwrap()], &data);
    assert!(!ok && said.contains("SHA-256 differs"), "{said}");
    assert_eq!(
        sha256_file(&data.join("hourglass.db")),
        before,
        "nothing replaced"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("restore-") || n.contains("before-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The restore itself.
    let (ok, said) = hg(&["restore", "--from", out.to_str().unwrap()], &data);
    assert!(ok, "{said}");
    assert!(
        said.contains("1 escrowed password(s) will be rotated"),
        "{said}"
    );
    assert!(said.contains("hourglass.db.before-restore-"), "{said}");
    let (ok, said) = hg(&["audit", "verify"], &data);
    assert!(ok, "{said}");

    // Back up: the agent takes the new orders (numbers jumped ahead of what it has seen) and
    // the password the backup knew is replaced.
    s.restart().await;
    let orders: Vec<(i64, String)> = db(&data)
        .prepare(
            "SELECT seq, kind FROM commands WHERE device_id = ?1 AND state = 'queued' ORDER BY seq",
        )
        .unwrap()
        .query_map([ws.device.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(orders.iter().all(|(seq, _)| *seq > 1_000_000), "{orders:?}");
    // BR-03: the login the copy still shows open is ended again on the workstation (rights
    // removed, account disabled) and its password rotated.
    for kind in ["revoke_admin", "disable_account", "rotate_password"] {
        assert!(orders.iter().any(|(_, k)| k == kind), "{kind}: {orders:?}");
    }
    let (_, l) = api(
        &s,
        &nik,
        "GET",
        "/api/v1/tenants/acme/logins",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(l["logins"][0]["state"], "revoked", "{l}");
    assert!(
        eventually(40, || shadow(&root, "msp-nik") != after_end).await,
        "the rotation reached the agent"
    );
    let restored: Vec<serde_json::Value> = s
        .ctx()
        .db
        .read(|r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some("backup_restored".into()),
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0]["sessions_ended_again"], 1, "{:?}", restored[0]);
    assert!(
        eventually(30, || queued(&data, &ws.device.to_string()) == 0).await,
        "{:?}",
        commands_of(&s, t.id, ws.device).await
    );
    ws.kill();
    s.stop().await;
}

/// Scheduled backups: the first one a day after the first start (manual clock), then one a
/// day, the newest `keep` kept with their manifests, each one audited.
#[actix_web::test]
async fn scheduled_backups_are_taken_daily_and_kept_few() {
    let s = TestServer::start_with(|c| c.backup.keep = 2).await;
    let dir = s.data_dir().join("backups");
    let files = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    hourglass::service::jobs::sweep(s.ctx(), s.clock.now())
        .await
        .unwrap();
    assert!(files().is_empty(), "not on the first day");
    for day in 1..=3 {
        s.clock.advance_secs(24 * 3600);
        hourglass::service::jobs::sweep(s.ctx(), s.clock.now())
            .await
            .unwrap();
        let want = (day as usize).min(2) * 2;
        // The newest manifest is written last, after its database file is in place.
        let newest = format!(
            "hourglass-2026-11-{}T00-00-00.000Z.db.manifest.json",
            23 + day
        );
        assert!(
            eventually(20, || {
                let f = files();
                f.len() == want && f.contains(&newest) && !f.iter().any(|f| f.ends_with(".partial"))
            })
            .await,
            "day {day}: {:?}",
            files()
        );
    }
    let names = files();
    assert!(
        names[0].starts_with("hourglass-2026-11-25T")
            && names[2].starts_with("hourglass-2026-11-26T"),
        "{names:?}"
    );
    assert!(names[1].ends_with(".db.manifest.json"), "{names:?}");
    let audited = s
        .ctx()
        .db
        .read(|r| hourglass::store::audit::count_event(r, "backup_created"))
        .await
        .unwrap();
    assert_eq!(audited, 3);
}

/// A backup carries a checkpoint signed by the appliance it came from: restoring another
/// appliance's backup over this one is refused before anything is replaced.
#[test]
fn another_appliances_backup_is_refused() {
    let make = |name: &str| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cfg = test_config(&data);
        drop(hourglass::app::open(cfg, hourglass::clock::Clock::manual(T0)).unwrap());
        let out = dir.path().join(format!("{name}.db"));
        let (ok, said) = hg(&["backup", "--out", out.to_str().unwrap()], &data);
        assert!(ok, "{said}");
        (dir, data, out)
    };
    let (_a, _, backup_a) = make("a");
    let (_b, data_b, _) = make("b");
    let before = sha256_file(&data_b.join("hourglass.db"));
    let (ok, said) = hg(&["restore", "--from", backup_a.to_str().unwrap()], &data_b);
    assert!(!ok && said.contains("not signed by the key"), "{said}");
    assert_eq!(sha256_file(&data_b.join("hourglass.db")), before);
}

/// The MSP admin sees the backups on the MSP's settings page and can back up now; the copy
/// is written, listed and audited with who asked.
#[actix_web::test]
async fn an_msp_admin_backs_up_from_the_portal() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = crate::people::setup(&s).await;
    let page = admin
        .get("/t/nikpot-it/settings")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Back up now") && page.contains("the newest 7 kept"),
        "{page}"
    );
    let r = admin.post("/appliance/backup", &[]).await;
    assert_eq!(r.status(), 200);
    let said = r.text().await.unwrap();
    assert!(said.contains("Backup written: <code>hourglass-"), "{said}");
    let page = admin
        .get("/t/nikpot-it/settings")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(".db</code></td>"), "listed: {page}");
    let by: Vec<_> = s
        .ctx()
        .db
        .read(|r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some("backup_created".into()),
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(by.len(), 1);
    assert_eq!(by[0].1.actor_kind.as_str(), "user");
    s.stop().await;
}
