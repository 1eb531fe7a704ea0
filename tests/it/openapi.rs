//! The OpenAPI documents say what the server really accepts: for each documented limit, a
//! value at the limit is accepted and one past it is refused with 422 naming the field. The
//! limits are read from the documents the server itself serves, so a drift on either side
//! fails here.

use serde_json::{Value, json};

use crate::logins::api;
use crate::people::setup;
use crate::support::*;

async fn doc(s: &TestServer, path: &str) -> Value {
    s.client()
        .get(s.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn prop<'a>(d: &'a Value, schema: &str, path: &[&str]) -> &'a Value {
    let mut v = &d["components"]["schemas"][schema];
    for p in path {
        v = if *p == "[]" {
            &v["items"]
        } else {
            &v["properties"][p]
        };
    }
    assert!(v.is_object(), "{schema}.{path:?} is not documented");
    v
}

fn n(v: &Value, key: &str) -> usize {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}")) as usize
}

/// Sends `body(value)` at the documented limit (accepted) and past it (422 for `field`).
async fn limit(
    s: &TestServer,
    token: &str,
    (method, path): (&str, &str),
    field: &str,
    at: Value,
    past: Value,
) {
    let (st, v) = api(s, token, method, path, at).await;
    assert!(
        (200..300).contains(&st),
        "{method} {path} at the documented limit of {field}: {st} {v}"
    );
    let (st, v) = api(s, token, method, path, past).await;
    assert_eq!(
        st, 422,
        "{method} {path} past the documented limit of {field}: {v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains(&field.replace('_', " "))
            || v["message"].as_str().unwrap_or("").contains(field),
        "{v}"
    );
}

#[actix_web::test]
async fn the_documented_limits_are_the_servers_limits() {
    let mut s = TestServer::start().await;
    setup(&s).await;
    let token = crate::requests::api_token(&s).await;
    let m = doc(&s, "/api/v1/openapi.json").await;
    let a = doc(&s, "/agent/v1/openapi.json").await;
    let x = |len: usize| "x".repeat(len);

    // Tenants: name and slug.
    let max = n(prop(&m, "NewTenant", &["name"]), "maxLength");
    limit(
        &s,
        &token,
        ("POST", "/api/v1/tenants"),
        "name",
        json!({"name": x(max), "slug": "acme"}),
        json!({"name": x(max + 1), "slug": "acme-2"}),
    )
    .await;
    let max = n(prop(&m, "NewTenant", &["slug"]), "maxLength");
    limit(
        &s,
        &token,
        ("POST", "/api/v1/tenants"),
        "slug",
        json!({"name": "B", "slug": x(max)}),
        json!({"name": "C", "slug": x(max + 1)}),
    )
    .await;
    let pattern = prop(&m, "NewTenant", &["slug"])["pattern"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(pattern, "^[a-z][a-z0-9-]*[a-z0-9]$");
    let (st, _) = api(
        &s,
        &token,
        "POST",
        "/api/v1/tenants",
        json!({"name": "D", "slug": "ends-"}),
    )
    .await;
    assert_eq!(st, 422, "a slug outside the documented pattern");

    // Tenant settings: the pending timeout, seats, and shared mode's acknowledgement.
    let t = prop(&m, "TenantPatch", &["jit_pending_timeout_minutes"]);
    let (lo, hi) = (n(t, "minimum"), n(t, "maximum"));
    limit(
        &s,
        &token,
        ("PATCH", "/api/v1/tenants/acme"),
        "jit_pending_timeout_minutes",
        json!({"jit_pending_timeout_minutes": hi}),
        json!({"jit_pending_timeout_minutes": hi + 1}),
    )
    .await;
    limit(
        &s,
        &token,
        ("PATCH", "/api/v1/tenants/acme"),
        "jit_pending_timeout_minutes",
        json!({"jit_pending_timeout_minutes": lo}),
        json!({"jit_pending_timeout_minutes": lo - 1}),
    )
    .await;
    let hi = n(prop(&m, "TenantPatch", &["seats"]), "maximum");
    limit(
        &s,
        &token,
        ("PATCH", "/api/v1/tenants/acme"),
        "seats",
        json!({"seats": hi}),
        json!({"seats": hi + 1}),
    )
    .await;
    let any_of = &m["components"]["schemas"]["TenantPatch"]["anyOf"];
    assert!(
        any_of.to_string().contains("acknowledge_shared"),
        "{any_of}"
    );
    let shared = |ack: bool| json!({"login_mode": "shared", "acknowledge_shared": ack});
    let (st, _) = api(&s, &token, "PATCH", "/api/v1/tenants/acme", shared(false)).await;
    assert_eq!(
        st, 422,
        "shared mode without the documented acknowledgement"
    );
    let (st, v) = api(&s, &token, "PATCH", "/api/v1/tenants/acme", shared(true)).await;
    assert_eq!(st, 200, "{v}");

    // People: names and email.
    let max = n(prop(&m, "NewUser", &["first_name"]), "maxLength");
    limit(
        &s,
        &token,
        ("POST", "/api/v1/tenants/acme/users"),
        "first_name",
        json!({"first_name": x(max), "last_name": "L", "email": "a@acme.test"}),
        json!({"first_name": x(max + 1), "last_name": "L", "email": "b@acme.test"}),
    )
    .await;
    let max = n(prop(&m, "NewUser", &["email"]), "maxLength");
    let email = |len: usize| format!("{}@acme.test", x(len - "@acme.test".len()));
    limit(
        &s,
        &token,
        ("POST", "/api/v1/tenants/acme/users"),
        "email",
        json!({"first_name": "F", "last_name": "L", "email": email(max)}),
        json!({"first_name": "F", "last_name": "L", "email": email(max + 1)}),
    )
    .await;

    // Policies: name, description, hours, and what a duration requires.
    let name_max = n(prop(&m, "PolicyInput", &["name"]), "maxLength");
    let desc_max = n(prop(&m, "PolicyInput", &["description"]), "maxLength");
    let hours_max = n(prop(&m, "PolicyInput", &["hours"]), "maximum");
    let value_max = n(
        prop(&m, "PolicyInput", &["rules", "[]", "value"]),
        "maxLength",
    );
    let policy = |name: String, desc: String, hours: usize| json!({"name": name, "description": desc, "duration": "fixed", "hours": hours, "access": "all"});
    let path = ("POST", "/api/v1/tenants/acme/policies");
    limit(
        &s,
        &token,
        path,
        "name",
        policy(x(name_max), "".into(), 1),
        policy(x(name_max + 1), "".into(), 1),
    )
    .await;
    limit(
        &s,
        &token,
        path,
        "description",
        policy("P2".into(), x(desc_max), 1),
        policy("P3".into(), x(desc_max + 1), 1),
    )
    .await;
    limit(
        &s,
        &token,
        path,
        "hours",
        policy("P4".into(), "".into(), hours_max),
        policy("P5".into(), "".into(), hours_max + 1),
    )
    .await;
    let rule = |name: &str, len: usize| {
        json!({"name": name, "duration": "fixed", "hours": 1, "access": "specific",
            "rules": [{"kind": "path", "value": format!("/{}", x(len - 1))}]})
    };
    limit(
        &s,
        &token,
        path,
        "value",
        rule("P6", value_max),
        rule("P7", value_max + 1),
    )
    .await;
    let any_of = m["components"]["schemas"]["PolicyInput"]["anyOf"].to_string();
    assert!(
        any_of.contains("hours") && any_of.contains("from") && any_of.contains("to"),
        "{any_of}"
    );
    let (st, _) = api(
        &s,
        &token,
        "POST",
        path.1,
        json!({"name": "P8", "duration": "fixed", "access": "all"}),
    )
    .await;
    assert_eq!(st, 422, "fixed without hours");
    let (st, _) = api(
        &s,
        &token,
        "POST",
        path.1,
        json!({"name": "P9", "duration": "window", "access": "all"}),
    )
    .await;
    assert_eq!(st, 422, "a window without from and to");

    // The agent API: enrollment fields and the long-poll hold.
    let (st, e) = api(
        &s,
        &token,
        "POST",
        "/api/v1/tenants/acme/enrollment-tokens",
        json!({"hours": 1, "uses": 10}),
    )
    .await;
    assert_eq!(st, 201, "{e}");
    let enroll_token = e["token"].as_str().unwrap().to_string();
    let max = n(prop(&a, "EnrollRequest", &["hostname"]), "maxLength");
    let enroll = |host: String| json!({"token": enroll_token, "hostname": host, "os": "linux", "os_version": "1", "agent_version": "0"});
    limit(
        &s,
        "",
        ("POST", "/agent/v1/enroll"),
        "hostname",
        enroll(x(max)),
        enroll(x(max + 1)),
    )
    .await;
    let wait = prop(&a, "PollRequest", &["wait_secs"]);
    assert_eq!(
        n(wait, "maximum") as u64,
        hourglass::service::commands::MAX_POLL_HOLD_SECS
    );
    s.stop().await;
}

/// Every key of a documented answer is in its schema, and an enum value is one it lists.
fn conforms(d: &Value, schema: &str, v: &Value) {
    let props = &d["components"]["schemas"][schema]["properties"];
    for (k, x) in v.as_object().unwrap_or_else(|| panic!("{schema}: {v}")) {
        let p = &props[k];
        assert!(p.is_object(), "{schema}.{k} is answered but not documented");
        if let Some(allowed) = p["enum"].as_array() {
            assert!(
                allowed.contains(x),
                "{schema}.{k} = {x} is not one of {allowed:?}"
            );
        }
    }
}

/// The API says what the portal shows (a request's justification, device, times and who
/// decided, by name and id; a person's roles in every answer), and the OpenAPI document
/// describes exactly those answers.
#[actix_web::test]
async fn the_api_answers_what_the_portal_shows_as_documented() {
    let s = TestServer::start().await;
    let f = crate::fixture::Fleet::seed(&s).await;
    let d = doc(&s, "/api/v1/openapi.json").await;
    let (_, r) = f.acme_ws.ask("erin", 30, "install the scanner").await;
    let id = r["id"].as_str().unwrap().to_string();
    let approve = format!("/api/v1/tenants/acme/requests/{id}/approve");
    let (st, one) = api(
        &s,
        &f.approver.token,
        "POST",
        &approve,
        json!({"duration_minutes": 20}),
    )
    .await;
    assert_eq!(st, 200, "{one}");
    conforms(&d, "Request", &one);
    let (_, list) = api(
        &s,
        &f.admin.token,
        "GET",
        "/api/v1/tenants/acme/requests",
        Value::Null,
    )
    .await;
    let r = &list["requests"][0];
    conforms(&d, "Request", r);
    assert_eq!(r["justification"], "install the scanner");
    assert_eq!(r["ticket"], "INC-7");
    assert_eq!(r["account"], "erin");
    assert_eq!(r["device"]["hostname"], "ACME-LT-001");
    assert_eq!(r["device"]["id"], f.acme_ws.id.as_str());
    assert_eq!(r["decided_by"]["kind"], "person");
    assert_eq!(r["decided_by"]["id"], f.approver.id.to_string());
    assert!(
        r["decided_by"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "{r}"
    );
    let (created, decided, expires) = (
        r["created_at"].as_i64().unwrap(),
        r["decided_at"].as_i64().unwrap(),
        r["expires_at"].as_i64().unwrap(),
    );
    assert!(
        created <= decided && expires == decided + 20 * 60_000,
        "{r}"
    );

    // People: the list, a new person and the answer to an action all carry roles.
    let (_, users) = api(
        &s,
        &f.admin.token,
        "GET",
        "/api/v1/tenants/acme/users",
        Value::Null,
    )
    .await;
    for u in users["users"].as_array().unwrap() {
        conforms(&d, "User", u);
        assert!(u["roles"].is_array(), "{u}");
    }
    let new = json!({"first_name": "Pat", "last_name": "Lee", "email": "pat@acme.example"});
    let (st, pat) = api(
        &s,
        &f.admin.token,
        "POST",
        "/api/v1/tenants/acme/users",
        new,
    )
    .await;
    assert_eq!(st, 201, "{pat}");
    conforms(&d, "User", &pat);
    assert_eq!(pat["roles"], json!([]));
    let promote = format!(
        "/api/v1/tenants/acme/users/{}/make-admin",
        pat["id"].as_str().unwrap()
    );
    let (st, pat) = api(&s, &f.admin.token, "POST", &promote, Value::Null).await;
    assert_eq!(st, 200, "{pat}");
    conforms(&d, "User", &pat);
    assert_eq!(pat["roles"], json!(["co_managed"]));
}
