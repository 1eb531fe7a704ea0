//! Scheduler job bodies driven by the manual clock.

use hourglass::service::jobs;

use crate::support::*;

fn warnings(s: &TestServer) -> usize {
    s.ctx()
        .db
        .read_blocking(|r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some("cert_expiry_warning".into()),
                    ..Default::default()
                },
            )
        })
        .unwrap()
        .len()
}

#[actix_web::test]
async fn the_certificate_expiry_warning_is_audited_once_a_day_when_due() {
    let mut s = TestServer::start().await;
    let ctx = s.ctx().clone();
    assert_eq!(
        jobs::cert_expiry_warning(&ctx, s.clock.now())
            .await
            .unwrap(),
        0,
        "a new certificate is not due"
    );
    let not_after = hourglass::service::certificates::active(&ctx.db)
        .unwrap()
        .unwrap()
        .not_after;
    s.clock.set(not_after.plus_secs(-10 * 86_400));
    // Through the whole sweep (which also signs an audit checkpoint after the jump).
    jobs::sweep(&ctx, s.clock.now()).await.unwrap();
    assert_eq!(warnings(&s), 1);
    jobs::sweep(&ctx, s.clock.now()).await.unwrap();
    assert_eq!(warnings(&s), 1, "not twice in a day");
    s.clock.advance_secs(3600);
    assert_eq!(
        jobs::cert_expiry_warning(&ctx, s.clock.now())
            .await
            .unwrap(),
        0
    );
    s.clock.advance_secs(86_400);
    assert_eq!(
        jobs::cert_expiry_warning(&ctx, s.clock.now())
            .await
            .unwrap(),
        1
    );
    assert_eq!(warnings(&s), 2);
    s.stop().await;
}

#[actix_web::test]
async fn an_imported_certificate_is_served_after_the_next_sweep() {
    let mut s = TestServer::start().await;
    let ctx = s.ctx().clone();
    let dir = tempfile::tempdir().unwrap();
    let m = hourglass::tls::generate_self_signed("operator.example", s.clock.now()).unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, &m.cert_pem).unwrap();
    std::fs::write(&key, m.key_pem.as_str()).unwrap();
    let out = run(&[
        "cert",
        "import",
        "--data-dir",
        s.data_dir().to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&m.fingerprint));

    // Still the old certificate until the sweep notices; then the new pin works.
    let new_client = hourglass::agent::client::pinned_client(&m.fingerprint).unwrap();
    assert!(new_client.get(s.url("/healthz")).send().await.is_err());
    assert_eq!(jobs::sweep(&ctx, s.clock.now()).await.unwrap(), 1);
    assert_eq!(
        new_client
            .get(s.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let fp = run(&[
        "cert",
        "fingerprint",
        "--data-dir",
        s.data_dir().to_str().unwrap(),
    ]);
    assert_eq!(String::from_utf8_lossy(&fp.stdout).trim(), m.fingerprint);
    s.stop().await;
}

#[actix_web::test]
async fn the_sweep_forgets_dead_sessions_and_unusable_links() {
    let mut s = TestServer::start().await;
    let ctx = s.ctx().clone();
    let now = s.clock.now();
    let c2 = ctx.clone();
    ctx.db
        .write(move |tx| {
            hourglass::service::auth::new_session(
                tx,
                &c2,
                None,
                hourglass::model::sessions::Stage::PreAuth,
                None,
                None,
                &Default::default(),
                now,
            )
            .map(|_| ())
        })
        .await
        .unwrap();
    hourglass::service::setup::headless_setup(&ctx, "Msp", "A", "B", "a@b.io").unwrap();
    assert_eq!(
        jobs::prune_expired(&ctx, s.clock.now()).await.unwrap(),
        0,
        "nothing is due yet"
    );
    s.clock.advance_secs(16 * 60);
    assert_eq!(
        jobs::prune_expired(&ctx, s.clock.now()).await.unwrap(),
        1,
        "the idle session"
    );
    s.clock.advance_secs(80 * 3600 + 7 * 86_400);
    assert_eq!(
        jobs::prune_expired(&ctx, s.clock.now()).await.unwrap(),
        1,
        "the expired enrollment link, a week later"
    );
    s.stop().await;
}
