//! Erasure that erases (DESIGN §1, §6): after a person who logged in to a workstation is
//! erased, their email, names, username and workstation account are nowhere — not in the
//! database file or its WAL, not in an export, the portal or the API — the workstation has
//! deleted the account, and the audit chain still verifies.

use serde_json::{Value, json};

use hourglass::service;

use crate::agent::{enroll, eventually, tenant_and_admin};
use crate::logins::{api, shadow, wait_state};
use crate::support::*;

/// The first of `words` that occurs in `bytes`, with what surrounds it.
fn found(bytes: &[u8], words: &[&str]) -> Option<String> {
    words.iter().find_map(|w| {
        let at = bytes.windows(w.len()).position(|x| x == w.as_bytes())?;
        let around = &bytes[at.saturating_sub(120)..(at + w.len() + 120).min(bytes.len())];
        Some(format!("{w} in …{}…", String::from_utf8_lossy(around)))
    })
}

#[actix_web::test]
async fn an_erased_technician_is_nowhere_and_the_chain_still_verifies() {
    let mut s = TestServer::start().await;
    let (_, token, mut admin) = tenant_and_admin(&s).await;
    let tenant = |slug: &'static str| {
        let db = s.ctx().db.clone();
        async move {
            db.read(move |r| hourglass::store::tenants::by_slug(r, slug))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (msp, acme) = (tenant("nikpot-it").await, tenant("acme").await);
    // A technician with names nothing else in the appliance holds.
    let p = crate::fixture::fresh_admin(&s).await;
    let new = service::users::NewUser {
        first_name: "Quintessa".into(),
        last_name: "Vantablack".into(),
        email: "quintessa.v@nikpot.com".into(),
        username: "qvantablack".into(),
    };
    let created = service::users::create(s.ctx(), &p, &msp, new, &Default::default())
        .await
        .unwrap();
    let id = created.user.id;
    let (mut http, _) = crate::people::enroll(&s, &created.enrollment_token).await;
    for a in [
        service::users::Action::AddRole("technician".into()),
        service::users::Action::AssignTenants {
            all: false,
            tenants: vec![acme.id],
        },
    ] {
        service::users::act(s.ctx(), &p, &msp, id, a, &Default::default())
            .await
            .unwrap();
    }
    let q = service::tokens::create_for_email(
        s.ctx(),
        "quintessa.v@nikpot.com",
        "t",
        sensitive_scope(),
    )
    .unwrap();
    let nik = service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
        .unwrap();

    // She logs in to a workstation, ends it, logs in again and sees the offline code.
    let mut ws = enroll(&s, &token);
    ws.start();
    let path = format!("/api/v1/tenants/acme/devices/{}/logins", ws.device);
    for round in 0..2 {
        let (st, l) = api(&s, &q, "POST", &path, json!({"ticket": "T-77"})).await;
        assert_eq!(st, 201, "{l}");
        assert_eq!(l["account"], "msp-qvantablack");
        let login = l["id"].as_str().unwrap().to_string();
        wait_state(&s, &nik, &login, "active").await;
        if round == 0 {
            let end = format!("/api/v1/tenants/acme/logins/{login}/end");
            api(&s, &q, "POST", &end, Value::Null).await;
            wait_state(&s, &nik, &login, "ended").await;
        }
    }
    let code = http
        .get(&format!("/t/acme/devices/{}/offline-code", ws.device))
        .await;
    assert_eq!(code.status(), 200);
    let root = ws.root.path().to_path_buf();
    assert!(!shadow(&root, "msp-qvantablack").is_empty());

    // Erased from her page in the portal, in the middle of the second login.
    let r = admin
        .post(
            &format!("/t/nikpot-it/users/{id}/erase"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status(), 200);
    // A heartbeat from before the workstation acted still names the account: written now.
    service::jobs::sweep(s.ctx(), s.clock.now()).await.unwrap();
    let passwd = || std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        eventually(30, || !passwd().contains("msp-qvantablack")).await,
        "the workstation deleted her account: {}",
        passwd()
    );
    assert!(shadow(&root, "msp-qvantablack").is_empty());
    let acked = || {
        let scope = hourglass::authz::system_scope(acme.id);
        let (db, d) = (s.ctx().db.clone(), ws.device);
        async move {
            db.read(move |r| hourglass::store::commands::recent(r, &scope, d, 100))
                .await
                .unwrap()
                .into_iter()
                .any(|c| c.kind.as_str() == "delete_account" && c.state.as_str() == "done")
        }
    };
    for _ in 0..200 {
        if acked().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(acked().await, "the workstation acknowledged the deletion");
    ws.kill();

    let words = [
        "quintessa.v@nikpot.com",
        "Quintessa",
        "Vantablack",
        "qvantablack",
    ];
    // The portal and the API, as the MSP admin sees them.
    for page in [
        "/t/nikpot-it/users",
        &format!("/t/nikpot-it/users/{id}"),
        "/t/acme/logins",
        "/t/acme/audit",
        "/audit",
    ] {
        let body = admin.get(page).await.text().await.unwrap();
        assert_eq!(found(body.as_bytes(), &words), None, "{page}");
    }
    for path in [
        "/api/v1/tenants/nikpot-it/users",
        "/api/v1/tenants/acme/logins",
        "/api/v1/tenants/acme/audit",
    ] {
        let (_, v) = api(&s, &nik, "GET", path, Value::Null).await;
        assert_eq!(found(v.to_string().as_bytes(), &words), None, "{path}: {v}");
    }
    // The export names her by the pseudonym.
    let data = s.data_dir();
    let export = run(&[
        "audit",
        "export",
        "--format",
        "ndjson",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(export.status.success(), "{}", text(&export));
    assert_eq!(found(&export.stdout, &words), None, "in the export");
    assert!(
        String::from_utf8_lossy(&export.stdout).contains("msp-erased-"),
        "her logins read as the pseudonym's account"
    );
    // The files, while running (WAL present) and after the stop.
    let scan = || {
        for f in std::fs::read_dir(&data).unwrap() {
            let f = f.unwrap().path();
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert_eq!(found(&bytes, &words), None, "in {}", f.display());
        }
    };
    scan();
    s.stop().await;
    scan();
    let verify = run(&["audit", "verify", "--data-dir", data.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", text(&verify));
}
