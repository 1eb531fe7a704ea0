//! The portal's answers to what people (and forgers) send: MSP-owned settings, bad input
//! drawn inside the layout, forms that refuse duplicates and oversize, offline workstations.

use hourglass::service;
use hourglass::service::users::Action;

use crate::people::{Http, admin_principal, enroll, setup};
use crate::support::*;

/// Tenant `acme` with co-management on and `seats` seats.
async fn acme(s: &TestServer, seats: u32) -> hourglass::model::tenants::Tenant {
    let mut p = admin_principal(s).await;
    p.mfa_at = Some(s.clock.now());
    let t = service::tenants::create(
        s.ctx(),
        &p,
        service::tenants::NewTenant {
            name: "Acme".into(),
            slug: "acme".into(),
        },
        &Default::default(),
    )
    .await
    .unwrap();
    let settings = hourglass::model::tenants::Settings {
        co_management: true,
        seats,
        ..t.settings.clone()
    };
    service::tenants::update(
        s.ctx(),
        &p,
        &t,
        service::tenants::TenantUpdate {
            name: None,
            slug: None,
            active: None,
            settings,
            acknowledge_shared: false,
        },
        &Default::default(),
    )
    .await
    .unwrap()
}

/// A co-managed admin of acme, signed in over HTTP.
async fn co_admin(s: &TestServer, t: &hourglass::model::tenants::Tenant, email: &str) -> Http {
    let mut p = admin_principal(s).await;
    p.mfa_at = Some(s.clock.now());
    let c = service::users::create(
        s.ctx(),
        &p,
        t,
        service::users::NewUser {
            first_name: "Cora".into(),
            last_name: "Admin".into(),
            email: email.into(),
            username: String::new(),
        },
        &Default::default(),
    )
    .await
    .unwrap();
    let (h, _) = enroll(s, &c.enrollment_token).await;
    service::users::act(
        s.ctx(),
        &p,
        t,
        c.user.id,
        Action::MakeAdmin,
        &Default::default(),
    )
    .await
    .unwrap();
    h
}

async fn authz_fails(s: &TestServer) -> usize {
    s.ctx()
        .db
        .read(|r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some("authz_fail".into()),
                    limit: 1000,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap()
        .len()
}

/// Co-managed seats and the co-management switch are the MSP's: a customer's admin sees
/// them but has no field for them, a forged POST is refused (403, audited), and saving the
/// rest of the form leaves them as they were. Messages do not send customers to change them.
#[actix_web::test]
async fn a_co_managed_admin_cannot_change_seats() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    let t = acme(&s, 1).await;
    let mut cora = co_admin(&s, &t, "cora@acme.test").await;
    let page = cora.get("/t/acme/settings").await.text().await.unwrap();
    assert!(
        !page.contains("name=\"seats\"") && !page.contains("name=\"co_management\""),
        "no fields for what the MSP owns: {page}"
    );
    assert!(page.contains("Your MSP sets these"), "{page}");

    let form = |seats: Option<&'static str>| {
        let mut f = vec![
            ("login_mode", "named"),
            ("jit_enabled", "true"),
            ("jit_justification_required", "true"),
            ("jit_max_minutes", "120"),
            ("jit_pending_timeout_minutes", "1440"),
            ("offline_login_minutes", "60"),
            ("time_zone", "Europe/Berlin"),
        ];
        if let Some(n) = seats {
            f.push(("seats", n));
            f.push(("co_management", "true"));
        }
        f
    };
    let before = authz_fails(&s).await;
    let r = cora.post("/t/acme/settings", &form(Some("50"))).await;
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap());
    assert_eq!(authz_fails(&s).await, before + 1, "the forgery is audited");
    let r = cora.post("/t/acme/settings", &form(None)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let now = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.settings.seats, 1, "seats unchanged");
    assert!(now.settings.co_management, "co-management still on");
    assert_eq!(now.settings.jit_max_minutes, 120, "the rest was saved");

    // The only seat is taken (by Cora): the customer is told to ask the MSP.
    let mut p = admin_principal(&s).await;
    p.mfa_at = Some(s.clock.now());
    let dan = service::users::create(
        s.ctx(),
        &p,
        &t,
        service::users::NewUser {
            first_name: "Dan".into(),
            last_name: "Doe".into(),
            email: "dan@acme.test".into(),
            username: String::new(),
        },
        &Default::default(),
    )
    .await
    .unwrap();
    let r = cora
        .post(&format!("/t/acme/users/{}/make-admin", dan.user.id), &[])
        .await;
    let body = r.text().await.unwrap();
    assert!(
        body.contains("ask your MSP for more seats") && !body.contains("raise the seat count"),
        "{body}"
    );
    s.stop().await;
}

/// Bad input answers inside the normal layout, with the navigation still there, naming the
/// field as the form labels it; nothing changes.
#[actix_web::test]
async fn bad_input_is_answered_inside_the_layout() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = setup(&s).await;
    acme(&s, 1).await;
    for (path, status, says) in [
        ("/t/acme/requests?state=bogus", 422, "State: must be one of"),
        (
            "/t/acme/audit?from=garbage",
            422,
            "From: must be a date like",
        ),
        ("/t/acme/requests?nonsense=1", 422, "unknown field"),
    ] {
        let r = admin.get(path).await;
        assert_eq!(r.status(), status, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("nav class=\"side\""), "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    // A bogus one-time link: a page that says so (nobody is signed in with one).
    let mut anon = Http::new(&s);
    for link in ["/enroll/not-a-real-link", "/setup/not-a-real-link"] {
        let r = anon.get(link).await;
        assert_eq!(r.status(), 410, "{link}");
        assert!(r.text().await.unwrap().contains("cannot be used"));
    }
    // A form far over the limit: "too large", not a forgery.
    let big = "x".repeat(200 * 1024);
    let r = admin
        .post("/t/acme/users", &[("first_name", big.as_str())])
        .await;
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("too large"));
    s.stop().await;
}

/// Policies: a new one needs a duration chosen by the admin, and a name not yet taken.
#[actix_web::test]
async fn policies_need_a_chosen_duration_and_a_free_name() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = setup(&s).await;
    acme(&s, 1).await;
    let base = [
        ("name", "Network tools"),
        ("access", "specific"),
        ("rules", "path /usr/bin/wireshark"),
    ];
    let r = admin.post("/t/acme/policies", &base).await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("How long it applies: choose how long the policy applies")
    );
    let mut with = base.to_vec();
    with.extend([("duration", "fixed"), ("hours", "8")]);
    assert_eq!(admin.post("/t/acme/policies", &with).await.status(), 303);
    with[0] = ("name", "network TOOLS");
    let r = admin.post("/t/acme/policies", &with).await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("already exists in this tenant")
    );
    let p = admin_principal(&s).await;
    let t = service::tenants::resolve(s.ctx(), &p, "acme", &Default::default())
        .await
        .unwrap();
    assert_eq!(
        service::policies::list(s.ctx(), &p, &t)
            .await
            .unwrap()
            .len(),
        1
    );
    s.stop().await;
}

/// A technician login on a workstation that is offline is warned about and needs a yes.
#[actix_web::test]
async fn an_offline_workstation_warns_before_a_login() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = setup(&s).await;
    let t = acme(&s, 1).await;
    let p = admin_principal(&s).await;
    let (_, token, _) = service::devices::create_token(
        s.ctx(),
        &p,
        &t,
        service::devices::NewToken { hours: 1, uses: 1 },
        &s.base,
        &Default::default(),
    )
    .await
    .unwrap();
    let d = crate::requests::Device::enroll(&s, &token).await;
    s.clock.advance_secs(5 * 60);
    let page = admin
        .get(&format!("/t/acme/devices/{}", d.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("This workstation is offline") && page.contains("offline code"),
        "{page}"
    );
    let start = format!("/t/acme/devices/{}/logins", d.id);
    let r = admin.post(&start, &[("duration_minutes", "30")]).await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Workstation offline: this workstation is offline")
    );
    let r = admin
        .post(
            &start,
            &[("duration_minutes", "30"), ("offline_ack", "yes")],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    s.stop().await;
}
