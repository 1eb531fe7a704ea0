//! One call seeds what most tests need (`Fleet::seed`): the MSP with its admin signed in over
//! HTTP, two customers (acme with co-management, globex without), a person per role — each
//! signed in, with a sensitive API token — and an enrolled workstation per customer. Built
//! through the services and the real HTTP endpoints, as the product itself would be.

use hourglass::authz::Principal;
use hourglass::ids::UserId;
use hourglass::model::tenants::{Settings, Tenant};
use hourglass::service;
use hourglass::service::users::Action;

use crate::people::{Http, admin_principal, enroll, setup};
use crate::requests::Device;
use crate::support::*;

/// A person of the fleet: their id, a signed-in portal client, their TOTP secret and an API
/// token with the sensitive scope.
pub struct Person {
    pub id: UserId,
    pub http: Http,
    pub secret: Vec<u8>,
    pub token: String,
}

pub struct Fleet {
    /// nik@nikpot.com, the MSP admin who set the appliance up.
    pub admin: Person,
    pub acme: Tenant,
    pub globex: Tenant,
    /// MSP staff assigned to acme only.
    pub technician: Person,
    /// acme's own IT admin (co-managed).
    pub co_managed: Person,
    /// In acme.
    pub approver: Person,
    /// In acme.
    pub auditor: Person,
    /// An enrolled workstation per customer (hostnames ACME-LT-001, GLOBEX-WS-001).
    pub acme_ws: Device,
    pub globex_ws: Device,
}

impl Fleet {
    pub async fn seed(s: &TestServer) -> Fleet {
        let (http, secret) = setup(s).await;
        let p = fresh_admin(s).await;
        let admin_id = p.user_id;
        let admin = Person {
            id: admin_id,
            http,
            secret,
            token: service::tokens::create_for_email(
                s.ctx(),
                "nik@nikpot.com",
                "fixture",
                sensitive_scope(),
            )
            .unwrap(),
        };
        let acme = customer(s, "Acme", "acme", true).await;
        let globex = customer(s, "Globex", "globex", false).await;
        let msp = s
            .ctx()
            .db
            .read(hourglass::store::tenants::msp)
            .await
            .unwrap()
            .unwrap();
        let technician = person(s, &msp, "tess@nikpot.com", &["technician"]).await;
        service::users::act(
            s.ctx(),
            &fresh_admin(s).await,
            &msp,
            technician.id,
            Action::AssignTenants {
                all: false,
                tenants: vec![acme.id],
            },
            &Default::default(),
        )
        .await
        .unwrap();
        let co_managed = person(s, &acme, "cora@acme.example", &["co_managed"]).await;
        let approver = person(s, &acme, "april@acme.example", &["approver"]).await;
        let auditor = person(s, &acme, "otto@acme.example", &["auditor"]).await;
        let acme_ws = workstation(s, &acme, "ACME-LT-001").await;
        let globex_ws = workstation(s, &globex, "GLOBEX-WS-001").await;
        Fleet {
            admin,
            acme,
            globex,
            technician,
            co_managed,
            approver,
            auditor,
            acme_ws,
            globex_ws,
        }
    }
}

/// The MSP admin as a principal whose last code is from now (no step-up asked).
pub async fn fresh_admin(s: &TestServer) -> Principal {
    let mut p = admin_principal(s).await;
    p.mfa_at = Some(s.clock.now());
    p
}

async fn customer(s: &TestServer, name: &str, slug: &str, co_managed: bool) -> Tenant {
    let p = fresh_admin(s).await;
    let new = service::tenants::NewTenant {
        name: name.into(),
        slug: slug.into(),
    };
    let t = service::tenants::create(s.ctx(), &p, new, &Default::default())
        .await
        .unwrap();
    let settings = Settings {
        co_management: co_managed,
        seats: 3,
        ..t.settings.clone()
    };
    let u = service::tenants::TenantUpdate {
        name: None,
        slug: None,
        active: None,
        settings,
        acknowledge_shared: false,
    };
    service::tenants::update(s.ctx(), &p, &t, u, &Default::default())
        .await
        .unwrap()
}

/// A person of `t` with `roles`, enrolled through their link and signed in.
pub async fn person(s: &TestServer, t: &Tenant, email: &str, roles: &[&str]) -> Person {
    let p = fresh_admin(s).await;
    let (first, _) = email.split_once('@').unwrap();
    let new = service::users::NewUser {
        first_name: first.into(),
        last_name: t.name.clone(),
        email: email.into(),
        username: String::new(),
    };
    let c = service::users::create(s.ctx(), &p, t, new, &Default::default())
        .await
        .unwrap();
    let (http, secret) = enroll(s, &c.enrollment_token).await;
    for r in roles {
        let a = if *r == "co_managed" {
            Action::MakeAdmin
        } else {
            Action::AddRole(r.to_string())
        };
        service::users::act(s.ctx(), &p, t, c.user.id, a, &Default::default())
            .await
            .unwrap();
    }
    let token =
        service::tokens::create_for_email(s.ctx(), email, "fixture", sensitive_scope()).unwrap();
    Person {
        id: c.user.id,
        http,
        secret,
        token,
    }
}

/// A workstation of `t`, enrolled over the agent API with a one-use token.
async fn workstation(s: &TestServer, t: &Tenant, hostname: &str) -> Device {
    let p = fresh_admin(s).await;
    let n = service::devices::NewToken { hours: 1, uses: 1 };
    let (_, token, _) =
        service::devices::create_token(s.ctx(), &p, t, n, &s.base, &Default::default())
            .await
            .unwrap();
    Device::enroll_as(s, &token, hostname).await
}

async fn status(h: &mut Http, path: &str) -> u16 {
    h.get(path).await.status().as_u16()
}

/// The fleet is what it says: roles where they belong, each person's reach as DESIGN §1
/// draws it, and the workstations in their tenants.
#[actix_web::test]
async fn the_fleet_seeds_a_person_per_role_and_a_workstation_per_customer() {
    let s = TestServer::start().await;
    let mut f = Fleet::seed(&s).await;
    assert_eq!(status(&mut f.admin.http, "/t/globex/requests").await, 200);
    assert_eq!(status(&mut f.technician.http, "/t/acme/devices").await, 200);
    assert_eq!(
        status(&mut f.technician.http, "/t/globex/devices").await,
        404
    );
    assert_eq!(status(&mut f.co_managed.http, "/t/acme/users").await, 200);
    assert_eq!(status(&mut f.co_managed.http, "/t/globex/users").await, 404);
    assert_eq!(status(&mut f.approver.http, "/t/acme/requests").await, 200);
    assert_eq!(status(&mut f.auditor.http, "/t/acme/audit").await, 200);
    let (code, r) = f.acme_ws.ask("erin", 30, "install the scanner").await;
    assert_eq!(code, 201);
    // The auditor reads, but does not decide.
    let approve = format!("/t/acme/requests/{}/approve", r["id"].as_str().unwrap());
    let r = f
        .auditor
        .http
        .post(&approve, &[("duration_minutes", "30")])
        .await;
    assert_eq!(r.status(), 403);
    let (code, _) = f.globex_ws.ask("finn", 30, "update the firmware").await;
    assert_eq!(code, 201);
    assert_eq!(
        (f.acme.slug.as_str(), f.globex.slug.as_str()),
        ("acme", "globex")
    );
    assert!(!f.globex.settings.co_management && f.acme.settings.co_management);
    for p in [
        &f.admin,
        &f.technician,
        &f.co_managed,
        &f.approver,
        &f.auditor,
    ] {
        assert!(!p.secret.is_empty() && !p.token.is_empty());
    }
    // Each request waits in its workstation's tenant only.
    let acme = crate::requests::pending_accounts(&s).await;
    assert_eq!(acme, vec!["erin".to_string()]);
}

/// A decision from the live queue (htmx) answers with the queue as it now is and a notice,
/// not a new page: the approved request has left the waiting rows and shows as a session
/// waiting for the workstation; the history is told to fetch itself (HX-Trigger). The same
/// form without htmx still gets a 303 to the queue.
#[actix_web::test]
async fn a_decision_in_the_queue_answers_with_the_queue_and_a_notice() {
    let s = TestServer::start().await;
    let mut f = Fleet::seed(&s).await;
    let (_, r) = f.acme_ws.ask("erin", 30, "install the scanner").await;
    let erin = r["id"].as_str().unwrap().to_string();
    let (_, r) = f.acme_ws.ask("finn", 15, "update the firmware").await;
    let finn = r["id"].as_str().unwrap().to_string();
    let approver = &mut f.approver.http;
    let r = approver
        .htmx_post(
            &format!("/t/acme/requests/{erin}/approve"),
            &[("duration_minutes", "20"), ("back", "tenant")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header("hx-retarget"), "#request-queue");
    assert!(!header("x-fragment-version").is_empty());
    let trigger: serde_json::Value = serde_json::from_str(&header("hx-trigger")).unwrap();
    assert_eq!(
        trigger["hg-notice"],
        "Approved: 20 minutes for erin on ACME-LT-001."
    );
    assert_eq!(trigger["hg-requests-changed"], true);
    let body = r.text().await.unwrap();
    assert!(!body.contains("<html"), "a fragment, not a page");
    assert!(
        body.contains(&format!("class=\"session\" data-request=\"{erin}\""))
            && body.contains("waiting for the workstation to confirm"),
        "{body}"
    );
    assert!(
        !body.contains(&format!("class=\"request\" data-request=\"{erin}\""))
            && body.contains(&format!("class=\"request\" data-request=\"{finn}\"")),
        "erin left the waiting rows, finn still waits: {body}"
    );

    // Without htmx (no script): the same decision is a redirect to the queue.
    let r = approver
        .post(
            &format!("/t/acme/requests/{finn}/deny"),
            &[("reason", "not on a Friday"), ("back", "tenant")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/t/acme/requests");
}

/// Adding and deleting on a list page (roles, auto-approval rules) answers htmx with the page
/// of which only the list is swapped in (`HX-Reselect`), and a notice; without htmx, 303.
#[actix_web::test]
async fn list_pages_answer_htmx_with_their_list_and_a_notice() {
    let s = TestServer::start().await;
    let mut f = Fleet::seed(&s).await;
    let h = &mut f.co_managed.http;
    let r = h
        .htmx_post(
            "/t/acme/roles",
            &[("name", "Helpdesk"), ("permission", "users.view")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let get = |r: &reqwest::Response, n: &str| {
        r.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(
        (
            get(&r, "hx-retarget"),
            get(&r, "hx-reselect"),
            get(&r, "hx-reswap")
        ),
        (
            "#roles-table".into(),
            "#roles-table".into(),
            "outerHTML".into()
        )
    );
    let t: serde_json::Value = serde_json::from_str(&get(&r, "hx-trigger")).unwrap();
    assert_eq!(t["hg-notice"], "Role \u{201c}Helpdesk\u{201d} created.");
    let body = r.text().await.unwrap();
    let table = body.split("id=\"roles-table\"").nth(1).unwrap_or_default();
    assert!(
        table.contains("Helpdesk"),
        "the new role is in the list: {body}"
    );

    let admin = &mut f.admin.http;
    let r = admin
        .htmx_post(
            "/t/acme/auto-approval",
            &[("name", "Routine"), ("max_minutes", "30")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(get(&r, "hx-reselect"), "#rules-table");
    let body = r.text().await.unwrap();
    let id = body
        .split("/t/acme/auto-approval/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    let delete = format!("/t/acme/auto-approval/{id}/delete");
    let r = admin.htmx_post(&delete, &[("confirm", "yes")]).await;
    let t: serde_json::Value = serde_json::from_str(&get(&r, "hx-trigger")).unwrap();
    assert_eq!(t["hg-notice"], "Rule deleted.");
    let body = r.text().await.unwrap();
    assert!(!body.contains(&delete), "the rule left the list");
    let r = admin
        .post(
            "/t/acme/auto-approval",
            &[("name", "Night"), ("max_minutes", "30")],
        )
        .await;
    assert_eq!(r.status(), 303);
}
