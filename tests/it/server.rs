//! The real binary serving over TLS: pinning, listeners, graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::*;

/// `hourglass serve` as a child process; returns it with the address it printed.
fn spawn_serve(
    data_dir: &str,
    extra: &[&str],
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = hourglass()
        .args(["serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("HOURGLASS__LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    while addr.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server printed its address");
        if let Some(rest) = line.split("listening on https://").nth(1) {
            addr = Some(rest.trim().to_string());
        }
    }
    (child, addr.unwrap(), rx)
}

#[actix_web::test]
async fn the_real_server_answers_a_client_pinned_to_its_fingerprint_and_refuses_a_wrong_pin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let fp = run(&["cert", "fingerprint", "--data-dir", data]);
    assert!(fp.status.success(), "{}", text(&fp));
    let pin = String::from_utf8(fp.stdout).unwrap().trim().to_string();
    assert!(pin.starts_with("sha256:") && pin.len() == 71, "{pin}");
    assert_eq!(pin, pin.to_lowercase());

    let (mut child, addr, rx) = spawn_serve(data, &[]);
    let client = hourglass::agent::client::pinned_client(&pin).unwrap();
    let res = client
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok\n");
    // It says how many agents it can hold, with the open-file limit it raised itself.
    let said = (0..20)
        .filter_map(|_| rx.recv_timeout(Duration::from_secs(10)).ok())
        .find(|l| l.starts_with("Agent connections: up to "));
    assert!(
        said.is_some_and(|l| l.contains("open-file limit")),
        "no capacity line"
    );

    let wrong = format!("sha256:{}", "0".repeat(64));
    let bad = hourglass::agent::client::pinned_client(&wrong).unwrap();
    let err = bad
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("does not match the pinned"),
        "{err:?}"
    );

    // SIGTERM: graceful stop, exit 0.
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l == "Stopped"), "{rest:?}");

    // The fingerprint is the SHA-256 of the served certificate's DER, as openssl shows it.
    let db = rusqlite::Connection::open(dir.path().join("data/hourglass.db")).unwrap();
    let pem: String = db
        .query_row(
            "SELECT cert_pem FROM tls_certificates WHERE active = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(
        pin,
        format!("sha256:{}", hourglass::crypto::sha256_hex(der.as_ref()))
    );
}

#[actix_web::test]
async fn first_start_prints_what_an_operator_needs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut child, addr, rx) = spawn_serve(data.to_str().unwrap(), &[]);
    let lines: Vec<String> = (0..2)
        .filter_map(|_| rx.recv_timeout(Duration::from_secs(10)).ok())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("TLS certificate fingerprint (agents pin this): sha256:")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("new database created")),
        "{lines:?}"
    );
    assert!(addr.starts_with("127.0.0.1:"));
    child.kill().unwrap();
    let _ = child.wait();
    let key = std::fs::metadata(data.join("master.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    assert_eq!(key.len(), 32);
}

#[actix_web::test]
async fn agent_listener_serves_no_portal_and_http_only_redirects() {
    let mut s = TestServer::start_with(|c| {
        c.server.agent_listen = "127.0.0.1:0".into();
        c.server.redirect_listen = "127.0.0.1:0".into();
    })
    .await;
    let running = s.running.as_ref().unwrap();
    let agent = format!("https://{}", running.agent_addrs[0]);
    let plain = format!("http://{}", running.redirect_addrs[0]);
    let c = s.client();
    assert_eq!(
        c.get(format!("{agent}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{agent}/")).send().await.unwrap().status(),
        404
    );
    assert_eq!(c.get(s.url("/")).send().await.unwrap().status(), 200);

    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(format!("{plain}/some/page?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    let port = running.portal_addrs[0].port();
    assert_eq!(
        r.headers()["location"],
        format!("https://127.0.0.1:{port}/some/page?x=1").as_str()
    );
    s.stop().await;
}

#[actix_web::test]
async fn the_database_runs_in_wal_with_full_sync_and_foreign_keys() {
    let mut s = TestServer::start().await;
    let (mode, sync, fk) = s.ctx().db.pragmas().unwrap();
    assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
    s.stop().await;
}

#[actix_web::test]
async fn metrics_count_requests_in_prometheus_text() {
    let mut s = TestServer::start().await;
    let c = s.client();
    for _ in 0..3 {
        c.get(s.url("/healthz")).send().await.unwrap();
    }
    let body = metrics_text(&s).await;
    assert!(
        body.contains("# TYPE hourglass_http_requests_total counter"),
        "{body}"
    );
    assert!(
        body.contains(
            r#"hourglass_http_requests_total{method="GET",route="/healthz",status="200"}"#
        ),
        "{body}"
    );
    assert!(
        body.contains("hourglass_http_request_duration_seconds_bucket"),
        "{body}"
    );
    assert!(
        body.contains("hourglass_db_read_pool_connections"),
        "{body}"
    );
    // A workstation waiting in a long-poll is counted as connected while it waits.
    let (_, token, _) = crate::agent::tenant_and_admin(&s).await;
    let d = crate::requests::Device::enroll(&s, &token).await;
    let poll = d
        .c
        .post(format!("{}/agent/v1/poll", d.base))
        .header("x-device-id", &d.id)
        .bearer_auth(&d.secret)
        .json(&serde_json::json!({"agent_version": "0", "admin_members": [], "last_seq": 0, "wait_secs": 25}))
        .send();
    let held = tokio::spawn(poll);
    let device = hourglass::ids::DeviceId::parse(&d.id).unwrap();
    crate::agent::wait_until(10, "the poll is held", || s.ctx().wake.is_connected(device)).await;
    let body = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("hourglass_agents_connected 1"), "{body}");
    assert!(body.contains("hourglass_long_polls_held 1"), "{body}");
    s.ctx().wake.wake(device);
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
    s.stop().await;
}
