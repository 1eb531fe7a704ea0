//! Sign-in, TOTP replay, CSRF, cookies, isolation and the management API over real HTTPS.

use hourglass::service;
use hourglass::service::users::Action;

use crate::support::*;

pub const PASSWORD: &str = "violet-anchor-lantern-42";

/// A browser-like client: keeps the session cookie and sends the CSRF token.
pub struct Http {
    pub c: reqwest::Client,
    pub base: String,
    pub cookie: String,
    /// The sign-in page's pre-auth cookie.
    pub pre: String,
    ctx: hourglass::service::Ctx,
}

impl Http {
    pub fn new(s: &TestServer) -> Http {
        let c = reqwest::Client::builder()
            .use_preconfigured_tls(
                hourglass::agent::client::pinned_tls_config(&s.fingerprint).unwrap(),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Http {
            c,
            base: s.base.clone(),
            cookie: String::new(),
            pre: String::new(),
            ctx: s.ctx().clone(),
        }
    }
    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("__Host-hg_session=") {
                self.cookie = rest.split(';').next().unwrap().to_string();
            }
            if let Some(rest) = v.strip_prefix("__Host-hg_pre=") {
                self.pre = rest.split(';').next().unwrap().to_string();
            }
        }
    }
    /// The session's CSRF token, as the page carries it.
    pub async fn csrf(&self) -> String {
        match service::auth::csrf_for(&self.ctx, &self.cookie)
            .await
            .unwrap()
        {
            Some(t) => t,
            None => service::auth::pre_auth_csrf(&self.ctx, &self.pre),
        }
    }
    /// The cookies a browser would send.
    pub fn cookies(&self) -> String {
        format!(
            "__Host-hg_session={}; __Host-hg_pre={}",
            self.cookie, self.pre
        )
    }
    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let r = self
            .c
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookies())
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_as(path, form, false).await
    }
    /// A form sent by htmx (`HX-Request`), as the portal's live pages send them.
    pub async fn htmx_post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.post_as(path, form, true).await
    }
    async fn post_as(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        htmx: bool,
    ) -> reqwest::Response {
        let mut b = self.c.post(format!("{}{path}", self.base));
        if htmx {
            b = b.header("hx-request", "true");
        }
        let r = b
            .header("cookie", self.cookies())
            .header("x-csrf-token", self.csrf().await)
            .header("origin", self.base.clone())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }
}

/// Completes an enrollment link over HTTP; returns the signed-in client and the TOTP secret.
pub async fn enroll(s: &TestServer, token: &str) -> (Http, Vec<u8>) {
    let mut h = Http::new(s);
    let page = h
        .get(&format!("/enroll/{token}"))
        .await
        .text()
        .await
        .unwrap();
    let key = page
        .split("by hand: <code>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let secret = totp_rs::Secret::try_from_base32(&key)
        .unwrap()
        .as_bytes()
        .to_vec();
    let code = hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap();
    let r = h
        .post(
            &format!("/enroll/{token}"),
            &[
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    (h, secret)
}

pub async fn setup(s: &TestServer) -> (Http, Vec<u8>) {
    let token =
        service::setup::headless_setup(s.ctx(), "Nikpot IT", "Nik", "Potter", "nik@nikpot.com")
            .unwrap();
    enroll(s, &token).await
}

async fn count(s: &TestServer, event: &str) -> usize {
    let e = event.to_string();
    s.ctx()
        .db
        .read(move |r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some(e),
                    limit: 1000,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap()
        .len()
}

#[actix_web::test]
async fn the_session_cookie_has_the_required_attributes_and_rotates_at_login() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = setup(&s).await;
    let r = admin.get("/").await;
    assert_eq!(r.status(), 200);
    let mut h = Http::new(&s);
    let r = h.get("/login").await;
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let attrs = ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"];
    assert!(set.starts_with("__Host-hg_pre="), "{set}");
    for attr in attrs {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.to_lowercase().contains("domain="), "{set}");
    let pre = h.pre.clone();
    let r = h
        .post(
            "/login",
            &[("email", "nik@nikpot.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-hg_session="), "{set}");
    for attr in attrs {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.to_lowercase().contains("domain="), "{set}");
    assert!(
        !h.cookie.is_empty() && h.cookie != pre,
        "a new id after the password"
    );
    use base64::Engine;
    assert!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&h.cookie)
            .unwrap()
            .len()
            >= 16
    );
    // A password-only session reaches nothing.
    assert_eq!(h.get("/t/nikpot-it/users").await.status(), 303);
    s.stop().await;
}

#[actix_web::test]
async fn a_totp_code_is_accepted_once_even_in_parallel() {
    let mut s = TestServer::start().await;
    let (_, secret) = setup(&s).await;
    s.clock.advance_secs(60);
    let code = hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut h = Http::new(&s);
        h.get("/login").await;
        let r = h
            .post(
                "/login",
                &[("email", "nik@nikpot.com"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status(), 303);
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            h.post("/login/mfa", &[("code", &code)])
                .await
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 303 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one of 20 parallel submissions wins");
    assert_eq!(count(&s, "authn_token_reuse").await, 19);
    s.stop().await;
}

#[actix_web::test]
async fn wrong_codes_are_rate_limited_and_the_password_locks_after_100_failures() {
    let mut s = TestServer::start().await;
    let (_, _) = setup(&s).await;
    let mut h = Http::new(&s);
    h.get("/login").await;
    h.post(
        "/login",
        &[("email", "nik@nikpot.com"), ("password", PASSWORD)],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..11 {
        statuses.push(
            h.post("/login/mfa", &[("code", "000000")])
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..10], &[422; 10]);
    assert_eq!(statuses[10], 429, "11 wrong codes in 15 minutes");
    assert_eq!(count(&s, "authn_mfa_fail").await, 10);

    // Password lockout: 100 consecutive failures, then even the right password gets 423.
    let mut g = Http::new(&s);
    g.get("/login").await;
    for i in 0..100 {
        s.clock.advance_secs(301);
        let r = g
            .post(
                "/login",
                &[
                    ("email", "nik@nikpot.com"),
                    ("password", "wrong-password-123"),
                ],
            )
            .await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    s.clock.advance_secs(301);
    let r = g
        .post(
            "/login",
            &[("email", "nik@nikpot.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), 423);
    assert_eq!(count(&s, "authn_login_lock").await, 1);
    // An admin unlocks (a second MSP admin would do this from the user's page).
    let p = admin_principal(&s).await;
    let msp = s
        .ctx()
        .db
        .read(hourglass::store::tenants::msp)
        .await
        .unwrap()
        .unwrap();
    service::users::act(
        s.ctx(),
        &p,
        &msp,
        p.user_id,
        Action::Unlock,
        &Default::default(),
    )
    .await
    .unwrap();
    let r = g
        .post(
            "/login",
            &[("email", "nik@nikpot.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), 303, "unlocked");
    assert_eq!(count(&s, "user_unlocked").await, 1);
    s.stop().await;
}

#[actix_web::test]
async fn cross_site_posts_are_refused_and_audited() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = setup(&s).await;
    let url = format!("{}/t/nikpot-it/users", s.base);
    let form = [
        ("first_name", "Eve"),
        ("last_name", "X"),
        ("email", "eve@x.io"),
    ];
    let cookie = format!("__Host-hg_session={}", admin.cookie);
    let c = admin.c.clone();
    let r = c
        .post(&url)
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", admin.csrf().await)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(&url)
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no token");
    let r = c
        .post(&url)
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .header("x-csrf-token", admin.csrf().await)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "foreign origin");
    // An opaque origin is only accepted with same-origin Fetch Metadata.
    let r = c
        .post(&url)
        .header("cookie", &cookie)
        .header("origin", "null")
        .header("x-csrf-token", admin.csrf().await)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "Origin: null without Fetch Metadata");
    assert_eq!(count(&s, "malicious_csrf").await, 4);
    let r = admin.post("/t/nikpot-it/users", &form).await;
    assert_eq!(r.status(), 200, "the same post with the token");
    s.stop().await;
}

#[actix_web::test]
async fn a_foreign_tenant_answers_404_like_a_missing_one_and_is_audited() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = setup(&s).await;
    for slug in ["acme", "globex"] {
        let r = admin
            .post("/tenants", &[("name", slug), ("slug", slug)])
            .await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    }
    let r = admin
        .post(
            "/t/acme/settings",
            &[
                ("co_management", "true"),
                ("seats", "2"),
                ("login_mode", "named"),
                ("jit_max_minutes", "240"),
                ("jit_pending_timeout_minutes", "1440"),
                ("active", "true"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // A customer user in acme, promoted to co-managed admin, signs in.
    let r = admin
        .post(
            "/t/acme/users",
            &[
                ("first_name", "Cora"),
                ("last_name", "Admin"),
                ("email", "cora@acme.com"),
            ],
        )
        .await;
    let body = r.text().await.unwrap();
    assert!(body.contains("(co-cora)"), "generated username: {body}");
    let token = body
        .split("/enroll/")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let (mut cora, _) = enroll(&s, &token).await;
    let acme = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "acme"))
        .await
        .unwrap()
        .unwrap();
    let users = service::users::list(s.ctx(), &admin_principal(&s).await, &acme)
        .await
        .unwrap();
    let cora_id = users
        .iter()
        .find(|(u, _)| u.username == "co-cora")
        .unwrap()
        .0
        .id;
    let r = admin
        .post(&format!("/t/acme/users/{cora_id}/make-admin"), &[])
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    assert_eq!(cora.get("/t/acme/users").await.status(), 200);
    let before = count(&s, "authz_fail").await;
    let foreign = cora.get("/t/globex/users").await;
    assert_eq!(foreign.status(), 404);
    let foreign_body = foreign.text().await.unwrap();
    let missing = cora.get("/t/no-such-tenant/users").await;
    assert_eq!(missing.status(), 404);
    let strip = |b: &str| b.split("Request id").next().unwrap().to_string();
    assert_eq!(
        strip(&foreign_body),
        strip(&missing.text().await.unwrap()),
        "same body for foreign and missing"
    );
    assert_eq!(count(&s, "authz_fail").await, before + 2);
    // A tenant id in the body is refused (no mass assignment).
    let r = cora
        .post(
            "/t/acme/users",
            &[
                ("first_name", "A"),
                ("last_name", "B"),
                ("email", "a@b.io"),
                ("tenant_id", &acme.id.to_string()),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    s.stop().await;
}

pub async fn admin_principal(s: &TestServer) -> hourglass::authz::Principal {
    admin_principal_of(s.ctx()).await
}

/// The MSP admin (nik@nikpot.com) as a principal, from the appliance's context.
pub async fn admin_principal_of(ctx: &hourglass::service::Ctx) -> hourglass::authz::Principal {
    let c = ctx
        .db
        .read(|r| hourglass::store::users::credentials_by_email(r, "nik@nikpot.com"))
        .await
        .unwrap()
        .unwrap();
    let uid = c.user.id;
    ctx.db
        .read(move |r| service::auth::principal(r, uid, None, None))
        .await
        .unwrap()
        .unwrap()
}

#[actix_web::test]
async fn api_tokens_act_as_their_user_and_erasure_keeps_the_chain_valid() {
    let mut s = TestServer::start().await;
    let (_, _) = setup(&s).await;
    let out = run(&[
        "admin",
        "create-token",
        "--data-dir",
        s.data_dir().to_str().unwrap(),
        "--email",
        "nik@nikpot.com",
        "--name",
        "ci",
        "--sensitive",
        "--expires-in-days",
        "7",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let c = s.client();
    let api = |p: &str| format!("{}/api/v1{p}", s.base);
    let r = c
        .post(api("/tenants"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Acme", "slug": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .post(api("/tenants/acme/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"first_name": "Dan", "last_name": "D", "email": "dan@acme.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["username"], "co-dan");
    assert!(v["enrollment_link"].as_str().unwrap().contains("/enroll/"));
    let id = v["id"].as_str().unwrap().to_string();
    let r = c
        .post(api(&format!("/tenants/acme/users/{id}/make-admin")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "co-management is off by default");
    let e: serde_json::Value = r.json().await.unwrap();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Co-management is off"),
        "{e}"
    );
    let r = c
        .post(api(&format!("/tenants/acme/users/{id}/erase")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: serde_json::Value = c
        .get(api("/tenants/acme/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw = list.to_string();
    assert!(
        !raw.contains("dan@acme.com") && raw.contains("erased"),
        "{raw}"
    );
    assert_eq!(
        c.get(api("/tenants/acme")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        c.get(api("/tenants/nope"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let (code, out) = {
        let o = run(&[
            "audit",
            "verify",
            "--data-dir",
            s.data_dir().to_str().unwrap(),
        ]);
        (o.status.code().unwrap(), text(&o))
    };
    assert_eq!(code, 0, "{out}");
    // Audit filters: event, day range; a bad date is a clear 422.
    let audit = |q: &str| {
        c.get(api(&format!("/tenants/acme/audit?{q}")))
            .bearer_auth(&token)
            .send()
    };
    let v: serde_json::Value = audit("event=user_created&from=2026-11-23&to=2026-11-23")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(entries[0]["entry"]["event"], "user_created");
    let v: serde_json::Value = audit("from=2026-11-24")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 0);
    assert_eq!(audit("from=yesterday").await.unwrap().status(), 422);
    // Every route of the management API is described in the OpenAPI file.
    let doc: serde_json::Value = c
        .get(api("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (method, path) in hourglass::web::ROUTES
        .iter()
        .filter(|(_, p)| p.starts_with("/api/v1"))
    {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from openapi.json"
        );
    }
    s.stop().await;
}

#[actix_web::test]
async fn sessions_end_after_15_idle_minutes_and_12_hours_in_all() {
    let mut s = TestServer::start().await;
    let (mut admin, secret) = setup(&s).await;
    assert_eq!(admin.get("/t/nikpot-it/users").await.status(), 200);
    s.clock.advance_secs(16 * 60);
    assert_eq!(
        admin.get("/t/nikpot-it/users").await.status(),
        303,
        "idle for 16 minutes"
    );

    // Sign in again and stay active every 5 minutes: the absolute limit still ends it at 12 h.
    let mut h = Http::new(&s);
    h.get("/login").await;
    h.post(
        "/login",
        &[("email", "nik@nikpot.com"), ("password", PASSWORD)],
    )
    .await;
    s.clock.advance_secs(30);
    let code = hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap();
    assert_eq!(h.post("/login/mfa", &[("code", &code)]).await.status(), 303);
    let mut last_ok = 0;
    for i in 1..=150 {
        s.clock.advance_secs(5 * 60);
        if h.get("/t/nikpot-it/users").await.status() == 200 {
            last_ok = i;
        } else {
            break;
        }
    }
    assert_eq!(
        last_ok, 143,
        "active requests every 5 minutes end at 12 hours"
    );
    // After logout the old cookie is dead.
    let mut g = Http::new(&s);
    g.get("/login").await;
    g.post(
        "/login",
        &[("email", "nik@nikpot.com"), ("password", PASSWORD)],
    )
    .await;
    s.clock.advance_secs(30);
    let code = hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap();
    g.post("/login/mfa", &[("code", &code)]).await;
    let stolen = g.cookie.clone();
    assert_eq!(g.post("/logout", &[]).await.status(), 303);
    g.cookie = stolen;
    assert_eq!(
        g.get("/t/nikpot-it/users").await.status(),
        303,
        "replayed cookie after logout"
    );
    s.stop().await;
}

#[actix_web::test]
async fn setup_and_enrollment_links_work_once_and_expire() {
    let mut s = TestServer::start().await;
    let users = || {
        s.ctx()
            .db
            .read_blocking(hourglass::store::users::count_all)
            .unwrap()
    };
    assert_eq!(users(), 0, "no default accounts");
    let token = service::setup::setup_link_if_needed(s.ctx())
        .await
        .unwrap()
        .unwrap();
    let mut h = Http::new(&s);
    let page = h
        .get(&format!("/setup/{token}"))
        .await
        .text()
        .await
        .unwrap();
    let key = page
        .split("by hand: <code>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let secret = totp_rs::Secret::try_from_base32(&key)
        .unwrap()
        .as_bytes()
        .to_vec();
    let code = hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap();
    let form = [
        ("msp_name", "Nikpot IT"),
        ("first_name", "Nik"),
        ("last_name", "Potter"),
        ("email", "nik@nikpot.com"),
        ("password", "Password123!"),
        ("password_confirm", "Password123!"),
        ("code", code.as_str()),
    ];
    let weak = h.post(&format!("/setup/{token}"), &form).await;
    assert_eq!(weak.status(), 422);
    assert!(weak.text().await.unwrap().contains("common password"));
    let mut form = form;
    form[4].1 = PASSWORD;
    form[5].1 = PASSWORD;
    assert_eq!(
        h.post(&format!("/setup/{token}"), &form).await.status(),
        303
    );
    assert_eq!(users(), 1);
    assert_eq!(
        Http::new(&s).get(&format!("/setup/{token}")).await.status(),
        410,
        "the setup link is single-use"
    );
    assert!(
        service::setup::setup_link_if_needed(s.ctx())
            .await
            .unwrap()
            .is_none(),
        "no new link once set up"
    );

    // Enrollment links: single use, and dead 72 h + 1 s after they were issued.
    let p = admin_principal(&s).await;
    let msp = s
        .ctx()
        .db
        .read(hourglass::store::tenants::msp)
        .await
        .unwrap()
        .unwrap();
    let new = |e: &str| service::users::NewUser {
        first_name: "A".into(),
        last_name: "B".into(),
        email: e.into(),
        username: String::new(),
    };
    let used = service::users::create(
        s.ctx(),
        &p,
        &msp,
        new("used@nikpot.com"),
        &Default::default(),
    )
    .await
    .unwrap();
    enroll(&s, &used.enrollment_token).await;
    assert_eq!(
        Http::new(&s)
            .get(&format!("/enroll/{}", used.enrollment_token))
            .await
            .status(),
        410
    );
    let late = service::users::create(
        s.ctx(),
        &p,
        &msp,
        new("late@nikpot.com"),
        &Default::default(),
    )
    .await
    .unwrap();
    s.clock.advance_secs(72 * 3600 + 1);
    assert_eq!(
        Http::new(&s)
            .get(&format!("/enroll/{}", late.enrollment_token))
            .await
            .status(),
        410
    );
    let raw = std::fs::read(s.data_dir().join("hourglass.db")).unwrap();
    let wal = std::fs::read(s.data_dir().join("hourglass.db-wal")).unwrap_or_default();
    for t in [&token, &used.enrollment_token, &late.enrollment_token] {
        let hay = [raw.as_slice(), wal.as_slice()].concat();
        assert!(
            !hay.windows(t.len()).any(|w| w == t.as_bytes()),
            "a link token is stored in the clear"
        );
    }
    s.stop().await;
}

#[actix_web::test]
async fn a_weaker_stored_hash_is_upgraded_at_login() {
    use argon2::PasswordHasher;
    let mut s = TestServer::start().await;
    setup(&s).await;
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password_with_salt(PASSWORD.as_bytes(), &[7u8; 16])
    .unwrap()
    .to_string();
    let db = rusqlite::Connection::open(s.data_dir().join("hourglass.db")).unwrap();
    db.execute(
        "UPDATE users SET password_hash = ?1 WHERE email = 'nik@nikpot.com'",
        [&weak],
    )
    .unwrap();
    let mut h = Http::new(&s);
    h.get("/login").await;
    assert_eq!(
        h.post(
            "/login",
            &[("email", "nik@nikpot.com"), ("password", PASSWORD)]
        )
        .await
        .status(),
        303
    );
    let stored: String = db
        .query_row(
            "SELECT password_hash FROM users WHERE email = 'nik@nikpot.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    s.stop().await;
}

#[actix_web::test]
async fn a_rejected_enrollment_form_is_shown_again_with_the_reason() {
    let mut s = TestServer::start().await;
    let token =
        service::setup::headless_setup(s.ctx(), "Nikpot IT", "Nik", "Potter", "nik@nikpot.com")
            .unwrap();
    let mut h = Http::new(&s);
    h.get(&format!("/enroll/{token}")).await;
    let r = h
        .post(
            &format!("/enroll/{token}"),
            &[
                ("password", "short"),
                ("password_confirm", "short"),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("at least 12 characters") && body.contains("data:image/png;base64,"),
        "{body}"
    );
    s.stop().await;
}

#[actix_web::test]
async fn replacing_the_authenticator_ends_other_sessions_and_retires_the_old_app() {
    let mut s = TestServer::start().await;
    let (mut admin, old) = setup(&s).await;
    let login = async |s: &TestServer, secret: &[u8]| {
        let mut h = Http::new(s);
        h.get("/login").await;
        h.post(
            "/login",
            &[("email", "nik@nikpot.com"), ("password", PASSWORD)],
        )
        .await;
        s.clock.advance_secs(30);
        let code = hourglass::crypto::totp::code_at(secret, s.clock.now()).unwrap();
        let st = h
            .post("/login/mfa", &[("code", &code)])
            .await
            .status()
            .as_u16();
        (h, st)
    };
    let (mut other, st) = login(&s, &old).await;
    assert_eq!(st, 303);
    let page = admin.get("/account/totp").await.text().await.unwrap();
    let key = page
        .split("by hand: <code>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let new = totp_rs::Secret::try_from_base32(&key)
        .unwrap()
        .as_bytes()
        .to_vec();
    assert_eq!(
        admin
            .post("/account/totp", &[("code", "000000")])
            .await
            .status(),
        422
    );
    s.clock.advance_secs(30);
    let code = hourglass::crypto::totp::code_at(&new, s.clock.now()).unwrap();
    assert_eq!(
        admin
            .post("/account/totp", &[("code", &code)])
            .await
            .status(),
        200
    );
    assert_eq!(
        other.get("/account").await.status(),
        303,
        "the other session ended"
    );
    assert_eq!(
        admin.get("/account").await.status(),
        200,
        "this one goes on"
    );
    assert_eq!(
        login(&s, &old).await.1,
        422,
        "the old app's codes no longer work"
    );
    assert_eq!(login(&s, &new).await.1, 303);
    assert_eq!(count(&s, "user_mfa_reenrolled").await, 1);
    s.stop().await;
}

/// With SMTP configured, a new user's enrollment link is mailed (to a real SMTP server:
/// in-process SMTP sink on loopback).
#[actix_web::test]
async fn enrollment_links_are_mailed_when_smtp_is_configured() {
    let smtp = SmtpSink::start().await;
    let port = smtp.port;
    let mut s = TestServer::start_with(|c| {
        c.smtp.host = "127.0.0.1".into();
        c.smtp.port = port;
        c.smtp.security = "none".into();
    })
    .await;
    let (_, _) = setup(&s).await;
    let token =
        service::tokens::create_for_email(s.ctx(), "nik@nikpot.com", "t", sensitive_scope())
            .unwrap();
    let body =
        serde_json::json!({"first_name": "Mia", "last_name": "Mail", "email": "mia@nikpot.com"});
    let mut v = serde_json::Value::Null;
    for _ in 0..50 {
        // The server may still be starting: retry until the relay accepted the mail.
        let r = s
            .client()
            .post(format!("{}/api/v1/tenants/nikpot-it/users", s.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            v = r.json().await.unwrap();
            break;
        }
    }
    assert_eq!(v["mailed"], true, "{v}");
    let link = v["enrollment_link"].as_str().unwrap().to_string();
    let mail = smtp.next_mail().await;
    assert!(mail.contains("To: mia@nikpot.com"), "{mail}");
    assert!(mail.contains(&link), "the mail carries the link: {mail}");
    s.stop().await;
}

#[actix_web::test]
async fn mfa_pauses_are_for_others_only_and_seats_limit_co_managed_admins() {
    let mut s = TestServer::start().await;
    let (mut admin, _) = setup(&s).await;
    let me = admin_principal(&s).await.user_id;
    assert_eq!(
        admin
            .post(&format!("/t/nikpot-it/users/{me}/pause-mfa-next"), &[])
            .await
            .status(),
        403,
        "never one's own"
    );

    // Someone else, paused for the next login: password alone signs them in, once.
    let p = admin_principal(&s).await;
    let msp = s
        .ctx()
        .db
        .read(hourglass::store::tenants::msp)
        .await
        .unwrap()
        .unwrap();
    let new = service::users::NewUser {
        first_name: "Pia".into(),
        last_name: "P".into(),
        email: "pia@nikpot.com".into(),
        username: String::new(),
    };
    let c = service::users::create(s.ctx(), &p, &msp, new, &Default::default())
        .await
        .unwrap();
    enroll(&s, &c.enrollment_token).await;
    assert_eq!(
        admin
            .post(
                &format!("/t/nikpot-it/users/{}/pause-mfa-next", c.user.id),
                &[]
            )
            .await
            .status(),
        200
    );
    let password_only = async |s: &TestServer| {
        let mut h = Http::new(s);
        h.get("/login").await;
        let r = h
            .post(
                "/login",
                &[("email", "pia@nikpot.com"), ("password", PASSWORD)],
            )
            .await;
        r.headers()["location"].to_str().unwrap().to_string()
    };
    assert_eq!(
        password_only(&s).await,
        "/",
        "paused: signed in after the password"
    );
    assert_eq!(
        password_only(&s).await,
        "/login/mfa",
        "the pause was for one login"
    );
    assert_eq!(
        admin
            .post(
                &format!("/t/nikpot-it/users/{}/pause-mfa-24h", c.user.id),
                &[]
            )
            .await
            .status(),
        200
    );
    assert_eq!(password_only(&s).await, "/");
    s.clock.advance_secs(24 * 3600 + 1);
    assert_eq!(
        password_only(&s).await,
        "/login/mfa",
        "the 24-hour pause has ended"
    );
    assert_eq!(count(&s, "user_mfa_paused").await, 2);

    // Seats: with co-management on and one seat, the second co-managed admin is refused.
    // (The admin's session is idle by now: sign in again.)
    let mut admin = relogin(&s).await;
    assert_eq!(
        admin
            .post("/tenants", &[("name", "Acme"), ("slug", "acme")])
            .await
            .status(),
        303
    );
    let form = [
        ("active", "true"),
        ("co_management", "true"),
        ("seats", "1"),
        ("login_mode", "named"),
        ("jit_enabled", "true"),
        ("jit_max_minutes", "240"),
        ("jit_pending_timeout_minutes", "1440"),
    ];
    assert_eq!(admin.post("/t/acme/settings", &form).await.status(), 200);
    let acme = s
        .ctx()
        .db
        .read(|r| hourglass::store::tenants::by_slug(r, "acme"))
        .await
        .unwrap()
        .unwrap();
    let mut ids = Vec::new();
    for e in ["one@acme.com", "two@acme.com"] {
        let new = service::users::NewUser {
            first_name: "C".into(),
            last_name: "M".into(),
            email: e.into(),
            username: String::new(),
        };
        ids.push(
            service::users::create(s.ctx(), &p, &acme, new, &Default::default())
                .await
                .unwrap()
                .user
                .id,
        );
    }
    assert_eq!(
        admin
            .post(&format!("/t/acme/users/{}/make-admin", ids[0]), &[])
            .await
            .status(),
        200
    );
    let r = admin
        .post(&format!("/t/acme/users/{}/make-admin", ids[1]), &[])
        .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("All 1 co-managed seats"));
    s.stop().await;
}

async fn relogin(s: &TestServer) -> Http {
    relogin_as(s, "nik@nikpot.com").await
}

/// A second sign-in (password and a fresh code) of someone who has enrolled.
pub async fn relogin_as(s: &TestServer, email: &str) -> Http {
    let e = email.to_string();
    let c = s
        .ctx()
        .db
        .read(move |r| hourglass::store::users::credentials_by_email(r, &e))
        .await
        .unwrap()
        .unwrap();
    let sealed = c.totp_sealed.unwrap();
    let secret = s
        .ctx()
        .crypto
        .open(
            &service::auth::totp_ctx(&c.user.id.to_string(), &c.user.tenant_id.to_string()),
            &sealed,
        )
        .unwrap();
    let mut h = Http::new(s);
    h.get("/login").await;
    h.post("/login", &[("email", email), ("password", PASSWORD)])
        .await;
    s.clock.advance_secs(30);
    let code = hourglass::crypto::totp::code_at(&secret, s.clock.now()).unwrap();
    assert_eq!(h.post("/login/mfa", &[("code", &code)]).await.status(), 303);
    h
}

/// Behind a trusted reverse proxy the audit (and the sign-in limiter) see the client it
/// forwarded; from anyone else `X-Forwarded-For` is ignored, so nobody picks their own address.
#[actix_web::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    async fn failed_login_ip(s: &TestServer, xff: &[&str]) -> Option<String> {
        let mut h = Http::new(s);
        h.get("/login").await;
        let mut rb =
            h.c.post(format!("{}/login", h.base))
                .header("cookie", h.cookies())
                .header("x-csrf-token", h.csrf().await)
                .header("origin", h.base.clone());
        for line in xff {
            rb = rb.header("x-forwarded-for", *line);
        }
        let r = rb
            .form(&[
                ("email", "nik@nikpot.com"),
                ("password", "wrong password here"),
            ])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
        s.ctx()
            .db
            .read(|r| {
                hourglass::store::audit::list(
                    r,
                    &hourglass::store::audit::Filter {
                        event: Some("authn_login_fail".into()),
                        limit: 1,
                        ..Default::default()
                    },
                )
            })
            .await
            .unwrap()
            .remove(0)
            .1
            .ip
    }
    let mut direct = TestServer::start().await;
    setup(&direct).await;
    assert_eq!(
        failed_login_ip(&direct, &["203.0.113.7"]).await.as_deref(),
        Some("127.0.0.1"),
        "not a trusted proxy: the header is ignored"
    );
    direct.stop().await;

    let mut proxied =
        TestServer::start_with(|c| c.server.trusted_proxies = "127.0.0.1".into()).await;
    setup(&proxied).await;
    assert_eq!(
        failed_login_ip(&proxied, &["198.51.100.1, 203.0.113.7"])
            .await
            .as_deref(),
        Some("203.0.113.7"),
        "the address the proxy appended, not one the client made up"
    );
    assert_eq!(
        failed_login_ip(&proxied, &["198.51.100.1", "203.0.113.8"])
            .await
            .as_deref(),
        Some("203.0.113.8"),
        "a proxy that adds its own header line"
    );
    proxied.stop().await;
}
