//! The generated authorization matrix (AZ-05, TI-01): every route of `web::ROUTES` must be in
//! tests/authz_matrix.toml, and every role × route × {own, foreign, missing} cell is run over
//! HTTPS: foreign answers 404 with the same body as missing and writes one `authz_fail`.

use std::collections::BTreeSet;

use hourglass::authz::Principal;
use hourglass::ids::{DeviceId, UserId};
use hourglass::model::tenants::Tenant;
use hourglass::service::{self, users::Action};
use serde::Deserialize;

use crate::people::{Http, admin_principal, enroll, setup};
use crate::support::*;

#[derive(Deserialize)]
struct Matrix {
    route: Vec<Row>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Row {
    method: String,
    path: String,
    access: String,
    object: Option<String>,
    action: Option<String>,
    form: Option<String>,
    json: Option<String>,
}

/// The tenant every role works in, and one only the MSP admin reaches.
const OWN: &str = "acme";
const FOREIGN: &str = "globex";

fn matrix() -> Vec<Row> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/authz_matrix.toml"
    ))
    .unwrap();
    toml::from_str::<Matrix>(&text).unwrap().route
}

#[test]
fn every_route_is_in_the_matrix_and_every_row_is_a_route() {
    let served: BTreeSet<(String, String)> = hourglass::web::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let listed: BTreeSet<(String, String)> =
        matrix().into_iter().map(|r| (r.method, r.path)).collect();
    let missing: Vec<_> = served.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes missing from tests/authz_matrix.toml: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "matrix rows for routes that do not exist: {stale:?}"
    );
}

struct Actor {
    name: &'static str,
    http: Http,
    token: String,
    /// Permissions in tenant `a`, from DESIGN §1 (None = all).
    perms: Option<Vec<&'static str>>,
    msp_admin: bool,
}

impl Actor {
    fn may(&self, perm: &str) -> bool {
        self.perms.as_ref().is_none_or(|p| p.contains(&perm))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Allowed,
    Forbidden,
    Hidden,
    Missing,
}

struct Fixture {
    s: TestServer,
    admin: Principal,
    a: Tenant,
    foreign_user: UserId,
    foreign_role: String,
    foreign_device: String,
    seq: std::cell::Cell<u32>,
}

impl Fixture {
    fn next(&self) -> u32 {
        self.seq.set(self.seq.get() + 1);
        self.seq.get()
    }
    async fn fresh_user(&self, t: &Tenant) -> UserId {
        let n = self.next();
        let new = service::users::NewUser {
            first_name: "Obj".into(),
            last_name: format!("N{n}"),
            email: format!("obj{n}@{}.test", t.slug),
            username: String::new(),
        };
        service::users::create(self.s.ctx(), &self.admin, t, new, &Default::default())
            .await
            .unwrap()
            .user
            .id
    }
    async fn fresh_role(&self, t: &Tenant) -> String {
        let n = self.next();
        service::roles::create(
            self.s.ctx(),
            &self.admin,
            t,
            &format!("Obj role {n}"),
            &["audit.view".into()],
            &Default::default(),
        )
        .await
        .unwrap()
        .id
    }
    async fn fresh_device(&self, t: &Tenant) -> String {
        let o = Default::default();
        let n = service::devices::NewToken { hours: 1, uses: 1 };
        let (_, secret, _) =
            service::devices::create_token(self.s.ctx(), &self.admin, t, n, "https://x", &o)
                .await
                .unwrap();
        let req = hourglass::proto::EnrollRequest {
            token: secret,
            hostname: format!("ws{}", self.next()),
            os: "linux".into(),
            os_version: "12".into(),
            agent_version: "0".into(),
        };
        service::devices::enroll(self.s.ctx(), req, &o)
            .await
            .unwrap()
            .device_id
            .to_string()
    }
    async fn fresh_enrollment_token(&self, t: &Tenant) -> String {
        let n = service::devices::NewToken { hours: 1, uses: 1 };
        service::devices::create_token(
            self.s.ctx(),
            &self.admin,
            t,
            n,
            "https://x",
            &Default::default(),
        )
        .await
        .unwrap()
        .0
        .id
    }
    async fn fresh_request(&self, t: &Tenant) -> String {
        let id = DeviceId::parse(&self.fresh_device(t).await).unwrap();
        let d = self
            .s
            .ctx()
            .db
            .read(move |r| hourglass::store::devices::credentials(r, id))
            .await
            .unwrap()
            .unwrap()
            .device;
        let ask = service::requests::Ask {
            account: format!("u{}", self.next()),
            minutes: 30,
            reason: "matrix".into(),
            ticket: None,
            kind: "admin".into(),
            app: None,
        };
        service::requests::create(self.s.ctx(), &d, ask, &Default::default())
            .await
            .unwrap()
            .id
            .to_string()
    }
    async fn fresh_endpoint_user(&self, t: &Tenant) -> String {
        let id = DeviceId::parse(&self.fresh_device(t).await).unwrap();
        let d = self
            .s
            .ctx()
            .db
            .read(move |r| hourglass::store::devices::credentials(r, id))
            .await
            .unwrap()
            .unwrap()
            .device;
        let ask = service::requests::Ask {
            account: format!("u{}", self.next()),
            minutes: 30,
            reason: "matrix".into(),
            ticket: None,
            kind: "admin".into(),
            app: None,
        };
        service::requests::create(self.s.ctx(), &d, ask, &Default::default())
            .await
            .unwrap()
            .endpoint_user_id
    }
    async fn fresh_rule(&self, t: &Tenant) -> String {
        let n = service::requests::NewRule {
            name: format!("Rule {}", self.next()),
            account: None,
            device_id: None,
            max_minutes: 30,
            from: None,
            to: None,
        };
        service::requests::create_rule(self.s.ctx(), &self.admin, t, n, &Default::default())
            .await
            .unwrap()
            .id
    }
    /// A login session of the person with `email` (the admin's when they may not log in).
    async fn fresh_login(&self, t: &Tenant, email: &str) -> String {
        let ctx = self.s.ctx();
        let (e, now) = (email.to_string(), ctx.clock.now());
        let me = ctx
            .db
            .read(move |r| {
                let c = hourglass::store::users::credentials_by_email(r, &e)?.unwrap();
                service::auth::principal(r, c.user.id, Some(now), None)
            })
            .await
            .unwrap()
            .unwrap();
        let device = hourglass::ids::DeviceId::parse(&self.fresh_device(t).await).unwrap();
        let o: service::audit::Origin = Default::default();
        let l = match service::logins::start(ctx, &me, t, device, Some(30), None, &o).await {
            Ok(l) => l,
            Err(_) => service::logins::start(ctx, &self.admin, t, device, Some(30), None, &o)
                .await
                .unwrap(),
        };
        l.id.to_string()
    }
    /// A workstation the person has logged into online (the agent's confirmation is
    /// recorded directly: there is no agent here), so its offline code may be shown.
    async fn fresh_visited_device(&self, t: &Tenant, email: &str) -> String {
        let id = hourglass::ids::LoginId::parse(&self.fresh_login(t, email).await).unwrap();
        let (ctx, scope) = (self.s.ctx(), hourglass::authz::system_scope(t.id));
        let now = ctx.clock.now();
        ctx.db
            .write(move |tx| {
                let l = hourglass::store::logins::get(&tx.reader(), &scope, id)?;
                let active = hourglass::model::logins::State::Active;
                hourglass::store::logins::transition(tx, &scope, &l, active, None, now)?;
                Ok(l.device_id.to_string())
            })
            .await
            .unwrap()
    }
    async fn fresh_policy(&self, t: &Tenant) -> String {
        let input: service::policies::PolicyInput = serde_json::from_value(serde_json::json!({
            "name": format!("Policy {}", self.next()), "duration": "fixed", "hours": 8, "access": "all"
        }))
        .unwrap();
        service::policies::save(
            self.s.ctx(),
            &self.admin,
            t,
            None,
            input,
            &Default::default(),
        )
        .await
        .unwrap()
        .id
    }
    async fn fresh_webhook(&self, t: &Tenant) -> String {
        let n = service::webhooks::NewWebhook {
            name: format!("Hook {}", self.next()),
            url: "https://hooks.example/x".into(),
            format: None,
            events: Vec::new(),
        };
        service::webhooks::create(self.s.ctx(), &self.admin, t, n, &Default::default())
            .await
            .unwrap()
            .0
            .id
    }
    fn fresh_token(&self, email: &str) -> String {
        let secret = service::tokens::create_for_email(
            self.s.ctx(),
            email,
            &format!("obj{}", self.next()),
            sensitive_scope(),
        )
        .unwrap();
        let hash = service::auth::token_hash(&secret);
        self.s
            .ctx()
            .db
            .read_blocking(|r| hourglass::store::tokens::by_hash(r, &hash))
            .unwrap()
            .unwrap()
            .id
    }
    async fn authz_fails(&self) -> i64 {
        self.s
            .ctx()
            .db
            .read(|r| hourglass::store::audit::count_event(r, "authz_fail"))
            .await
            .unwrap()
    }
}

async fn person(
    f: &Fixture,
    t: &Tenant,
    email: &str,
    setup_roles: impl AsyncFnOnce(UserId),
) -> (Http, String, UserId) {
    let new = service::users::NewUser {
        first_name: "Matrix".into(),
        last_name: email.into(),
        email: email.into(),
        username: String::new(),
    };
    let c = service::users::create(f.s.ctx(), &f.admin, t, new, &Default::default())
        .await
        .unwrap();
    setup_roles(c.user.id).await;
    let (http, _) = enroll(&f.s, &c.enrollment_token).await;
    let token =
        service::tokens::create_for_email(f.s.ctx(), email, "matrix", sensitive_scope()).unwrap();
    (http, token, c.user.id)
}

async fn call(actor: &mut Actor, row: &Row, path: &str) -> (u16, String) {
    if path.starts_with("/api/") {
        let method = reqwest::Method::from_bytes(row.method.to_uppercase().as_bytes()).unwrap();
        let mut rb = actor
            .http
            .c
            .request(method, format!("{}{path}", actor.http.base))
            .bearer_auth(&actor.token);
        if let Some(j) = row.json.as_ref().filter(|j| !j.is_empty()) {
            rb = rb
                .header("content-type", "application/json")
                .body(j.clone());
        }
        let r = rb.send().await.unwrap();
        return (r.status().as_u16(), r.text().await.unwrap());
    }
    let r = if row.method == "get" {
        actor.http.get(path).await
    } else {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(row.form.clone().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        actor.http.post(path, &refs).await
    };
    (r.status().as_u16(), r.text().await.unwrap())
}

fn fill(row: &Row, slug: &str, id: &str) -> String {
    row.path
        .replace("{slug}", slug)
        .replace("{id}", id)
        .replace("{action}", row.action.as_deref().unwrap_or(""))
}

/// The error body without its request id, which differs on every request.
fn body_shape(b: &str) -> String {
    b.split("Request id").next().unwrap_or(b).to_string()
}

#[actix_web::test]
async fn every_role_route_and_tenant_cell_behaves_as_the_matrix_says() {
    let s = TestServer::start().await;
    let (admin_http, _) = setup(&s).await;
    let admin = admin_principal(&s).await;
    let ctx = s.ctx().clone();
    let o = Default::default();
    let mk = |n: &str| service::tenants::NewTenant {
        name: n.into(),
        slug: n.into(),
    };
    let a = service::tenants::create(&ctx, &admin, mk(OWN), &o)
        .await
        .unwrap();
    let b = service::tenants::create(&ctx, &admin, mk(FOREIGN), &o)
        .await
        .unwrap();
    let mut settings = a.settings.clone();
    settings.co_management = true;
    settings.seats = 10;
    let upd = service::tenants::TenantUpdate {
        name: None,
        slug: None,
        active: None,
        settings,
        acknowledge_shared: false,
    };
    let a = service::tenants::update(&ctx, &admin, &a, upd, &o)
        .await
        .unwrap();
    let msp = ctx
        .db
        .read(hourglass::store::tenants::msp)
        .await
        .unwrap()
        .unwrap();
    let f = Fixture {
        admin: admin.clone(),
        a: a.clone(),
        foreign_user: UserId::new(),
        foreign_role: String::new(),
        foreign_device: String::new(),
        seq: Default::default(),
        s,
    };
    let foreign_user = f.fresh_user(&b).await;
    let foreign_role = f.fresh_role(&b).await;
    let foreign_device = f.fresh_device(&b).await;
    let f = Fixture {
        foreign_user,
        foreign_role,
        foreign_device,
        ..f
    };
    let approvers = service::roles::create(
        &ctx,
        &admin,
        &a,
        "Approvers",
        &["requests.view".into(), "requests.approve".into()],
        &o,
    )
    .await
    .unwrap();

    let act = |t: Tenant, action: Action| {
        let (ctx, admin) = (ctx.clone(), admin.clone());
        async move |uid: UserId| {
            service::users::act(&ctx, &admin, &t, uid, action, &Default::default())
                .await
                .unwrap();
        }
    };
    let (tech_http, tech_token, _) = person(&f, &msp, "tech@nikpot.com", async |uid| {
        act(msp.clone(), Action::AddRole("technician".into()))(uid).await;
        act(
            msp.clone(),
            Action::AssignTenants {
                all: false,
                tenants: vec![a.id],
            },
        )(uid)
        .await;
    })
    .await;
    let (cm_http, cm_token, _) =
        person(&f, &a, "cm@a.test", act(a.clone(), Action::MakeAdmin)).await;
    let (ap_http, ap_token, _) = person(
        &f,
        &a,
        "approver@a.test",
        act(a.clone(), Action::AddRole(approvers.id.clone())),
    )
    .await;
    let (au_http, au_token, _) = person(
        &f,
        &a,
        "auditor@a.test",
        act(a.clone(), Action::AddRole("auditor".into())),
    )
    .await;
    let admin_token =
        service::tokens::create_for_email(&ctx, "nik@nikpot.com", "matrix", sensitive_scope())
            .unwrap();
    let mut actors = [
        Actor {
            name: "msp_admin",
            http: admin_http,
            token: admin_token,
            perms: None,
            msp_admin: true,
        },
        Actor {
            name: "technician(a)",
            http: tech_http,
            token: tech_token,
            perms: Some(vec![
                "requests.view",
                "requests.approve",
                "devices.view",
                "devices.login",
            ]),
            msp_admin: false,
        },
        Actor {
            name: "co_managed(a)",
            http: cm_http,
            token: cm_token,
            perms: None,
            msp_admin: false,
        },
        Actor {
            name: "approver(a)",
            http: ap_http,
            token: ap_token,
            perms: Some(vec!["requests.view", "requests.approve"]),
            msp_admin: false,
        },
        Actor {
            name: "auditor(a)",
            http: au_http,
            token: au_token,
            perms: Some(vec![
                "audit.view",
                "audit.export",
                "requests.view",
                "devices.view",
                "users.view",
                "settings.view",
                "policies.view",
            ]),
            msp_admin: false,
        },
    ];
    let emails = [
        "nik@nikpot.com",
        "tech@nikpot.com",
        "cm@a.test",
        "approver@a.test",
        "auditor@a.test",
    ];

    let rows = matrix();
    let mut cells = 0u32;
    let mut failures = Vec::new();
    for (ai, actor) in actors.iter_mut().enumerate() {
        for row in rows.iter().filter(|r| r.access != "public") {
            // (cell, slug, id, expectation)
            let mut plan: Vec<(&str, String, String, Want)> = Vec::new();
            let tenant_route = row.path.contains("{slug}");
            let perm_ok = match row.access.as_str() {
                "signed_in" | "tenant" => true,
                "msp_admin" => actor.msp_admin,
                p => actor.may(p),
            };
            if tenant_route {
                let own_want = if perm_ok {
                    Want::Allowed
                } else {
                    Want::Forbidden
                };
                let gated = |w: Want| if perm_ok { w } else { Want::Forbidden };
                match row.object.as_deref() {
                    Some("user") => {
                        plan.push((
                            "own",
                            OWN.into(),
                            f.fresh_user(&f.a).await.to_string(),
                            own_want,
                        ));
                        plan.push((
                            "foreign object",
                            OWN.into(),
                            f.foreign_user.to_string(),
                            gated(Want::Hidden),
                        ));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            UserId::new().to_string(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("role") => {
                        plan.push(("own", OWN.into(), f.fresh_role(&f.a).await, own_want));
                        plan.push((
                            "foreign object",
                            OWN.into(),
                            f.foreign_role.clone(),
                            gated(Want::Hidden),
                        ));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            "role-0000".into(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("enrollment_token") => {
                        plan.push((
                            "own",
                            OWN.into(),
                            f.fresh_enrollment_token(&f.a).await,
                            own_want,
                        ));
                        let foreign = f.fresh_enrollment_token(&b).await;
                        plan.push(("foreign object", OWN.into(), foreign, gated(Want::Hidden)));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            "enr-0000".into(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("request") => {
                        plan.push(("own", OWN.into(), f.fresh_request(&f.a).await, own_want));
                        let foreign = f.fresh_request(&b).await;
                        plan.push(("foreign object", OWN.into(), foreign, gated(Want::Hidden)));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            hourglass::ids::RequestId::new().to_string(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("endpoint_user") => {
                        let own = f.fresh_endpoint_user(&f.a).await;
                        plan.push(("own", OWN.into(), own, own_want));
                        let foreign = f.fresh_endpoint_user(&b).await;
                        plan.push(("foreign object", OWN.into(), foreign, gated(Want::Hidden)));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            "eu-0000".into(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("auto_rule") => {
                        plan.push(("own", OWN.into(), f.fresh_rule(&f.a).await, own_want));
                        let foreign = f.fresh_rule(&b).await;
                        plan.push(("foreign object", OWN.into(), foreign, gated(Want::Hidden)));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            "rule-0000".into(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("visited_device") => {
                        let own = f.fresh_visited_device(&f.a, emails[ai]).await;
                        plan.push(("own", OWN.into(), own, own_want));
                        plan.push((
                            "foreign object",
                            OWN.into(),
                            f.foreign_device.clone(),
                            gated(Want::Hidden),
                        ));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            DeviceId::new().to_string(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("policy") => {
                        plan.push(("own", OWN.into(), f.fresh_policy(&f.a).await, own_want));
                        let foreign = f.fresh_policy(&b).await;
                        plan.push(("foreign object", OWN.into(), foreign, gated(Want::Hidden)));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            "pol-0000".into(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("login") => {
                        let own = f.fresh_login(&f.a, emails[ai]).await;
                        plan.push(("own", OWN.into(), own, own_want));
                        let foreign = f.fresh_login(&b, "nik@nikpot.com").await;
                        plan.push(("foreign object", OWN.into(), foreign, gated(Want::Hidden)));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            hourglass::ids::LoginId::new().to_string(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("webhook") => {
                        plan.push(("own", OWN.into(), f.fresh_webhook(&f.a).await, own_want));
                        let foreign = f.fresh_webhook(&b).await;
                        plan.push(("foreign object", OWN.into(), foreign, gated(Want::Hidden)));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            "wh-0000".into(),
                            gated(Want::Missing),
                        ));
                    }
                    Some("device") => {
                        plan.push(("own", OWN.into(), f.fresh_device(&f.a).await, own_want));
                        plan.push((
                            "foreign object",
                            OWN.into(),
                            f.foreign_device.clone(),
                            gated(Want::Hidden),
                        ));
                        plan.push((
                            "missing object",
                            OWN.into(),
                            DeviceId::new().to_string(),
                            gated(Want::Missing),
                        ));
                    }
                    _ => plan.push(("own", OWN.into(), String::new(), own_want)),
                }
                let any_id = f.foreign_user.to_string();
                if !actor.msp_admin {
                    plan.push((
                        "foreign tenant",
                        FOREIGN.into(),
                        any_id.clone(),
                        Want::Hidden,
                    ));
                }
                plan.push((
                    "missing tenant",
                    "no-such-tenant".into(),
                    any_id,
                    Want::Missing,
                ));
            } else if row.object.as_deref() == Some("token") {
                let other = emails[(ai + 1) % emails.len()];
                plan.push((
                    "own",
                    String::new(),
                    f.fresh_token(emails[ai]),
                    Want::Allowed,
                ));
                plan.push((
                    "foreign object",
                    String::new(),
                    f.fresh_token(other),
                    Want::Hidden,
                ));
                plan.push((
                    "missing object",
                    String::new(),
                    "tok-0000".into(),
                    Want::Missing,
                ));
            } else {
                plan.push((
                    "own",
                    String::new(),
                    String::new(),
                    if perm_ok { Want::Allowed } else { Want::Hidden },
                ));
            }
            let mut missing_body: Option<String> = None;
            for (cell, slug, id, want) in plan.into_iter().rev() {
                cells += 1;
                let path = fill(row, &slug, &id);
                // The matrix probes ids on purpose: the guessing throttle is tested elsewhere.
                ctx.probes.forget_all();
                let before = f.authz_fails().await;
                let (status, body) = call(actor, row, &path).await;
                let audited = f.authz_fails().await - before;
                let ok = match want {
                    Want::Allowed => ![401, 403, 404].contains(&status) && status < 500,
                    Want::Forbidden => status == 403 && audited == 1,
                    Want::Hidden => {
                        status == 404
                            && audited == 1
                            && missing_body
                                .as_ref()
                                .is_none_or(|m| body_shape(m) == body_shape(&body))
                    }
                    Want::Missing => status == 404,
                };
                if want == Want::Missing && cell.ends_with("tenant") {
                    missing_body = Some(body.clone());
                }
                if !ok {
                    failures.push(format!("{} {} {path} [{cell}] as {}: want {want:?}, got {status} (+{audited} authz_fail)", row.method, row.path, actor.name));
                }
            }
        }
    }
    println!(
        "authorization matrix: {cells} cells over {} routes and {} roles",
        rows.len(),
        actors.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells > 300, "{cells}");
}
