//! A disk that fills while the appliance runs (DUR-02, FLT-06): /healthz says so, writes are
//! refused with 503 `storage_full` (never a 500, never half-written), and freeing space is
//! enough to recover. The disk is a small tmpfs mounted for the test, which needs root; without
//! root the test is skipped with a message unless HOURGLASS_REQUIRE_ROOT=1 (set by CI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::people::setup;
use crate::support::*;

/// A tmpfs of `mb` MiB, unmounted when dropped.
struct SmallDisk {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SmallDisk {
    fn mount(mb: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if std::env::var("HOURGLASS_REQUIRE_ROOT").is_ok_and(|v| v == "1") {
                panic!("HOURGLASS_REQUIRE_ROOT=1 but a tmpfs could not be mounted (run as root)");
            }
            eprintln!("SKIPPED full-disk test: mounting a tmpfs needs root");
            return None;
        }
        Some(SmallDisk { _dir: dir, path })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes until the file system refuses another byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![7u8; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
}

#[actix_web::test]
async fn a_full_disk_is_reported_refused_and_recovered_from_without_a_restart() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let data = disk.path.join("data");
    let s = TestServer::start_with(|c| {
        c.storage.data_dir = data.clone();
        // Only the real write decides here; the free-space floor has its own test.
        c.storage.min_free_mb = 0;
    })
    .await;
    let _ = setup(&s).await;
    let token = hourglass::service::tokens::create_for_email(
        s.ctx(),
        "nik@nikpot.com",
        "disk",
        sensitive_scope(),
    )
    .unwrap();
    let c = s.client();
    let create = |i: usize| {
        c.post(s.url("/api/v1/tenants"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": format!("Customer {i}"), "slug": format!("customer-{i}")}))
            .send()
    };
    assert_eq!(c.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(create(0).await.unwrap().status(), 201);

    let filler = disk.path.join("filler");
    fill(&filler);
    let r = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("disk_full"), "{body}");

    // Writes may still fit into space SQLite already holds; once they do not, each is refused
    // whole with 503 storage_full.
    let mut refused = 0;
    let mut created = vec![0];
    for i in 1..400 {
        let r = create(i).await.unwrap();
        match r.status().as_u16() {
            201 => created.push(i),
            503 => {
                let e: serde_json::Value = r.json().await.unwrap();
                assert_eq!(e["code"], "storage_full", "{e}");
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            other => panic!(
                "a write on a full disk answered {other}: {}",
                r.text().await.unwrap()
            ),
        }
    }
    assert_eq!(refused, 3, "no write was refused on a full disk");
    let metrics = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"hourglass_health_failures_total{reason="disk_full"} 1"#),
        "{metrics}"
    );

    // Space back: healthy again, writes work, nothing acknowledged was lost, the chain holds.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(c.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(create(1000).await.unwrap().status(), 201);
    created.push(1000);
    let list: serde_json::Value = c
        .get(s.url("/api/v1/tenants"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slugs: Vec<&str> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["slug"].as_str())
        .filter(|s| s.starts_with("customer-"))
        .collect();
    assert_eq!(slugs.len(), created.len(), "{slugs:?} vs {created:?}");
    for i in created {
        assert!(
            slugs.contains(&format!("customer-{i}").as_str()),
            "customer-{i} lost"
        );
    }
    let verified = hourglass::service::system::verify_audit(&s.ctx().db).unwrap();
    assert!(verified.is_ok(), "audit chain broken: {verified:?}");
}

#[actix_web::test]
async fn health_fails_below_the_free_space_floor() {
    // A floor no disk meets: /healthz warns before writes start failing.
    let s = TestServer::start_with(|c| c.storage.min_free_mb = u64::MAX / (1 << 21)).await;
    let r = s.client().get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("disk_low") && body.contains("storage.min_free_mb"),
        "{body}"
    );
}
