//! Approvers hear about new requests: signed webhooks (retried, logged), mail over SMTP, and
//! the portal's counts, badge, cross-tenant queue, auto-approval rules and history filters.

use std::sync::{Arc, Mutex};

use hourglass::service;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::agent::tenant_and_admin;
use crate::requests::{Device, api_token, decide};
use crate::support::*;

/// One request a receiver got: its headers (lower-case names) and body.
#[derive(Clone, Debug)]
struct Hit {
    headers: Vec<(String, String)>,
    body: String,
}

impl Hit {
    fn header(&self, name: &str) -> String {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// A plain HTTP/1.1 receiver on loopback answering with `statuses` in turn (then 200).
async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Hit>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(Vec::new()));
    let seen = hits.clone();
    tokio::spawn(async move {
        let mut statuses = statuses.into_iter();
        loop {
            let Ok((mut sock, _)) = l.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse::<usize>().unwrap())
                        .unwrap_or(0);
                    break (i + 4, len);
                }
            };
            if head_end == 0 {
                continue;
            }
            while buf.len() < head_end + len {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
                .collect();
            let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
            seen.lock().unwrap().push(Hit { headers, body });
            let status = statuses.next().unwrap_or(200);
            let _ = sock
                .write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    (url, hits)
}

async fn wait_hits(hits: &Arc<Mutex<Vec<Hit>>>, n: usize) -> Vec<Hit> {
    for _ in 0..200 {
        if hits.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    hits.lock().unwrap().clone()
}

fn verify(h: &Hit, secret: &str) -> bool {
    let ts = h.header("x-hourglass-timestamp");
    let sig = h.header("x-hourglass-signature");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let Some(hex_sig) = sig.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(raw) = hex::decode(hex_sig) else {
        return false;
    };
    ring::hmac::verify(&key, format!("{ts}.{}", h.body).as_bytes(), &raw).is_ok()
}

async fn deliveries(s: &TestServer, slug: &str) -> Vec<hourglass::store::webhooks::Delivery> {
    let slug = slug.to_string();
    s.ctx()
        .db
        .read(move |r| {
            let t = hourglass::store::tenants::by_slug(r, &slug)?.unwrap();
            hourglass::store::webhooks::deliveries(r, &hourglass::authz::system_scope(t.id), 100)
        })
        .await
        .unwrap()
}

/// Adds a webhook in the portal; returns its signing secret, shown once.
async fn add_hook(
    admin: &mut crate::people::Http,
    slug: &str,
    name: &str,
    url: &str,
    format: &str,
) -> String {
    let r = admin
        .post(
            &format!("/t/{slug}/webhooks"),
            &[("name", name), ("url", url), ("format", format)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let i = html.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
    html[i..i + html[i..].find('<').unwrap()].to_string()
}

/// Webhooks added in the portal receive each new request signed with HMAC-SHA-256; a failed
/// delivery is retried after its back-off on the (manual) clock, and the log shows it all.
#[actix_web::test]
async fn webhooks_are_signed_retried_and_logged() {
    // The receivers run on this machine: a relay on the appliance's host must be allowed.
    let mut s = TestServer::start_with(|c| c.webhooks.allow_loopback = true).await;
    let (_, token, mut admin) = tenant_and_admin(&s).await;
    let (slack_url, slack) = receiver(vec![500]).await;
    let (msp_url, msp) = receiver(vec![]).await;

    // Bad input: a clear 422 naming the field, nothing stored.
    let r = admin
        .post(
            "/t/acme/webhooks",
            &[("name", "Bad"), ("url", "ftp://x/y"), ("format", "slack")],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("URL:"));
    let r = admin
        .post(
            "/t/acme/webhooks",
            &[("name", "Bad"), ("url", "https://x/y"), ("format", "pager")],
        )
        .await;
    assert_eq!(r.status(), 422);

    let slack_secret = add_hook(&mut admin, "acme", "Ops channel", &slack_url, "slack").await;
    // A webhook of the MSP tenant hears every tenant.
    let msp_secret = add_hook(&mut admin, "nikpot-it", "PSA", &msp_url, "generic").await;

    let d = Device::enroll(&s, &token).await;
    let (st, r) = d.ask("bob", 30, "install the printer driver").await;
    assert_eq!(st, 201);
    let id = r["id"].as_str().unwrap().to_string();

    // Sent at once: Slack's first attempt is answered 500, the MSP's is delivered.
    let first = wait_hits(&slack, 1).await;
    assert_eq!(first.len(), 1);
    assert!(
        verify(&first[0], &slack_secret),
        "signature: {:?}",
        first[0]
    );
    assert!(
        !verify(&first[0], &msp_secret),
        "each webhook has its own key"
    );
    let body: Value = serde_json::from_str(&first[0].body).unwrap();
    assert!(body["blocks"].is_array(), "Slack payload: {body}");
    assert!(body["text"].as_str().unwrap().contains("bob"));
    assert!(body["text"].as_str().unwrap().contains("/t/acme/requests"));
    let generic = wait_hits(&msp, 1).await;
    assert!(verify(&generic[0], &msp_secret));
    let g: Value = serde_json::from_str(&generic[0].body).unwrap();
    assert_eq!(g["event"], "request.created");
    assert_eq!(g["request"]["id"], id.as_str());
    assert_eq!(g["request"]["ticket"], "INC-7");

    let mut log = Vec::new();
    for _ in 0..100 {
        log = deliveries(&s, "acme").await;
        if log.first().is_some_and(|d| d.attempts == 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].state.as_str(), log[0].last_status),
        ("pending", Some(500))
    );

    // Not retried before its back-off; retried after it.
    service::webhooks::deliver_due(s.ctx()).await.unwrap();
    assert_eq!(slack.lock().unwrap().len(), 1, "waits 30 s");
    s.clock.advance_secs(31);
    service::webhooks::deliver_due(s.ctx()).await.unwrap();
    assert_eq!(wait_hits(&slack, 2).await.len(), 2);
    let log = deliveries(&s, "acme").await;
    assert_eq!((log[0].state.as_str(), log[0].attempts), ("delivered", 2));

    let page = admin.get("/t/acme/webhooks").await.text().await.unwrap();
    assert!(
        page.contains("Ops channel") && page.contains("delivered"),
        "{page}"
    );
    assert!(
        !page.contains("/hook"),
        "the URL (a secret for Slack and Teams) is not shown"
    );

    // A receiver that never answers: given up after the last back-off, audited.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", l.local_addr().unwrap())
    };
    add_hook(&mut admin, "acme", "Dead", &dead, "teams").await;
    d.ask("carol", 30, "needs a tool").await;
    for _ in 0..8 {
        s.clock.advance_secs(6 * 3600 + 1);
        service::webhooks::deliver_due(s.ctx()).await.unwrap();
    }
    let log = deliveries(&s, "acme").await;
    let dead_log: Vec<_> = log
        .iter()
        .filter(|d| d.state.as_str() == "failed")
        .collect();
    assert_eq!(dead_log.len(), 1, "{log:?}");
    assert_eq!(dead_log[0].attempts, 6);
    let failed = s
        .ctx()
        .db
        .read(|r| {
            hourglass::store::audit::list(
                r,
                &hourglass::store::audit::Filter {
                    event: Some("webhook_delivery_failed".into()),
                    limit: 10,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    s.stop().await;
}

/// With SMTP configured, the people who may approve in the tenant are mailed.
#[actix_web::test]
async fn approvers_are_mailed_about_new_requests() {
    let smtp = SmtpSink::start().await;
    let port = smtp.port;
    let mut s = TestServer::start_with(|c| {
        c.smtp.host = "127.0.0.1".into();
        c.smtp.port = port;
        c.smtp.security = "none".into();
        c.server.public_url = "https://hourglass.example".into();
    })
    .await;
    let (_, token, _) = tenant_and_admin(&s).await;
    let d = Device::enroll(&s, &token).await;
    let (st, _) = d.ask("bob", 30, "install the printer driver").await;
    assert_eq!(st, 201);
    let mail = smtp.next_mail().await;
    assert!(mail.contains("To: nik@nikpot.com"), "{mail}");
    assert!(mail.contains("bob on W11-REQ"), "{mail}");
    assert!(
        mail.contains("https://hourglass.example/t/acme/requests"),
        "{mail}"
    );
    s.stop().await;
}

/// The portal: counts on the dashboard, the badge, the cross-tenant queue, auto-approval
/// rules added in the portal, an extension shown as one, history filters, clear refusals.
#[actix_web::test]
async fn the_portal_shows_counts_rules_extensions_and_history() {
    let mut s = TestServer::start().await;
    let (_, token, mut admin) = tenant_and_admin(&s).await;
    let d = Device::enroll(&s, &token).await;
    let api = api_token(&s).await;
    let (_, bob) = d.ask("bob", 30, "install the printer driver").await;
    let bob_id = bob["id"].as_str().unwrap().to_string();

    let dash = admin.get("/").await.text().await.unwrap();
    assert!(
        dash.contains("<strong>1</strong> requests waiting"),
        "{dash}"
    );
    let badge = admin.get("/requests/badge").await.text().await.unwrap();
    assert!(badge.contains("1 waiting"), "{badge}");
    let all = admin.get("/requests").await.text().await.unwrap();
    assert!(
        all.contains("install the printer driver") && all.contains("Acme"),
        "{all}"
    );

    // Auto-approval in the portal: bad input first, then a rule for carol.
    for (form, field) in [
        (
            vec![("name", "R"), ("max_minutes", "soon")],
            "Longest session it approves:",
        ),
        (
            vec![("name", "R"), ("max_minutes", "60"), ("from", "08:00")],
            "To:",
        ),
        (
            vec![("name", "R"), ("max_minutes", "9999")],
            "Longest session it approves:",
        ),
    ] {
        let r = admin.post("/t/acme/auto-approval", &form).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains(field), "{form:?}");
    }
    let r = admin
        .post(
            "/t/acme/auto-approval",
            &[
                ("name", "Carol is trusted"),
                ("account", "carol"),
                ("max_minutes", "60"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "back to the list, which shows the rule");
    let rules = admin
        .get("/t/acme/auto-approval")
        .await
        .text()
        .await
        .unwrap();
    assert!(rules.contains("Carol is trusted"), "{rules}");
    let (_, carol) = d.ask("carol", 30, "update the driver").await;
    assert_eq!(carol["state"], "approved", "approved by the rule: {carol}");
    let (_, dave) = d.ask("dave", 30, "update the driver").await;
    assert_eq!(dave["state"], "pending", "the rule is for carol only");

    // Deny without a reason: refused, nothing changes. Approve in the portal.
    let r = admin
        .post(
            &format!("/t/acme/requests/{bob_id}/deny"),
            &[("reason", " ")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = admin
        .post(
            &format!("/t/acme/requests/{bob_id}/approve"),
            &[("duration_minutes", "many")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let r = admin
        .post(
            &format!("/t/acme/requests/{bob_id}/approve"),
            &[("duration_minutes", "20")],
        )
        .await;
    assert_eq!(r.status(), 303);

    // An extension is shown as one, with the running session's time left.
    let ext = d
        .c
        .post(format!("{}/agent/v1/requests", d.base))
        .header("x-device-id", &d.id)
        .bearer_auth(&d.secret)
        .json(&json!({"account": "bob", "minutes": 15, "reason": "not done", "kind": "extension"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ext.status(), 201);
    let q = admin
        .get("/t/acme/requests/queue")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        q.contains("Extension of the running session") && q.contains("20 min 0 s left"),
        "{q}"
    );
    assert!(
        q.contains("hx-preserve"),
        "typed reasons survive the refresh"
    );

    // History filters: by state, by account, and a clear refusal of an unknown state.
    decide(
        &s,
        &api,
        dave["id"].as_str().unwrap(),
        "deny",
        json!({"reason": "not today"}),
    )
    .await;
    let h = admin
        .get("/t/acme/requests?state=denied")
        .await
        .text()
        .await
        .unwrap();
    let history = &h[h.find("History").unwrap()..];
    assert!(
        history.contains("not today") && !history.contains(">carol<"),
        "{history}"
    );
    let h = admin
        .get("/t/acme/requests?who=carol")
        .await
        .text()
        .await
        .unwrap();
    let history = &h[h.find("History").unwrap()..];
    assert!(
        history.contains(">carol<") && !history.contains(">dave<"),
        "{history}"
    );
    assert_eq!(
        admin.get("/t/acme/requests?state=maybe").await.status(),
        422
    );
    let v: Value = s
        .client()
        .get(format!("{}/api/v1/tenants/acme/requests?who=carol", s.base))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["requests"].as_array().unwrap().len(), 1, "{v}");

    let dash = admin.get("/").await.text().await.unwrap();
    assert!(
        dash.contains("<strong>2</strong> active admin sessions"),
        "{dash}"
    );
    s.stop().await;
}

/// By default a webhook cannot point at the appliance itself (its loopback services, such as
/// /metrics) or at a link-local metadata service: refused with the reason, nothing stored.
#[actix_web::test]
async fn webhooks_cannot_reach_the_appliance_itself() {
    let s = TestServer::start().await;
    let (_, _, mut admin) = tenant_and_admin(&s).await;
    for url in [
        format!(
            "https://127.0.0.1:{}/metrics",
            s.base.rsplit(':').next().unwrap()
        ),
        "http://localhost:9090/".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let r = admin
            .post(
                "/t/acme/webhooks",
                &[
                    ("name", "Probe"),
                    ("url", url.as_str()),
                    ("format", "generic"),
                ],
            )
            .await;
        assert_eq!(r.status(), 422, "{url}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("must not point at this appliance itself"),
            "{body}"
        );
    }
    let page = admin.get("/t/acme/webhooks").await.text().await.unwrap();
    assert!(!page.contains("Probe"), "nothing stored");
}

/// A webhook hears the events it was given, each carrying the request's id and ticket, so a
/// PSA ticket can follow the request: created, approved (by whom), revoked. One that hears
/// only new requests gets only that; an unknown event is refused with the field named.
#[actix_web::test]
async fn webhooks_hear_the_request_events_they_were_given() {
    let s = TestServer::start_with(|c| c.webhooks.allow_loopback = true).await;
    let (_, token, mut admin) = tenant_and_admin(&s).await;
    let (psa_url, psa) = receiver(vec![]).await;
    let (chat_url, chat) = receiver(vec![]).await;
    let r = admin
        .post(
            "/t/acme/webhooks",
            &[
                ("name", "PSA"),
                ("url", &psa_url),
                ("format", "generic"),
                ("event", "request.flew"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("request.flew"));
    let everything = [
        "request.created",
        "request.approved",
        "request.revoked",
        "request.denied",
    ];
    let mut form = vec![
        ("name", "PSA"),
        ("url", psa_url.as_str()),
        ("format", "generic"),
    ];
    form.extend(everything.iter().map(|e| ("event", *e)));
    assert_eq!(admin.post("/t/acme/webhooks", &form).await.status(), 200);
    let chat_form = [
        ("name", "Chat"),
        ("url", chat_url.as_str()),
        ("format", "slack"),
        ("event", "request.created"),
    ];
    assert_eq!(
        admin.post("/t/acme/webhooks", &chat_form).await.status(),
        200
    );
    let page = admin.get("/t/acme/webhooks").await.text().await.unwrap();
    assert!(
        page.contains("request.approved"),
        "the list shows what each hears"
    );

    let d = Device::enroll(&s, &token).await;
    let (_, r) = d.ask("bob", 30, "install the printer driver").await;
    let id = r["id"].as_str().unwrap().to_string();
    let api = api_token(&s).await;
    let (st, v) = decide(&s, &api, &id, "approve", json!({"duration_minutes": 20})).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = decide(&s, &api, &id, "revoke", json!({})).await;
    assert_eq!(st, 200, "{v}");

    let hits = wait_hits(&psa, 3).await;
    let got: Vec<Value> = hits
        .iter()
        .map(|h| serde_json::from_str(&h.body).unwrap())
        .collect();
    let events: Vec<&str> = got.iter().map(|g| g["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["request.created", "request.approved", "request.revoked"]
    );
    for g in &got {
        assert_eq!(g["request"]["id"], id.as_str(), "{g}");
        assert_eq!(g["request"]["ticket"], "INC-7", "{g}");
    }
    let approved = got[1]["summary"].as_str().unwrap();
    assert!(
        approved.starts_with("Approved by ") && approved.contains("bob on W11-REQ, 20 minutes"),
        "{approved}"
    );
    // The chat webhook heard the new request only (its delivery log says so too).
    service::webhooks::deliver_due(s.ctx()).await.unwrap();
    assert_eq!(wait_hits(&chat, 1).await.len(), 1);
    let chat_log: Vec<_> = deliveries(&s, "acme")
        .await
        .into_iter()
        .filter(|d| d.event != "request.created")
        .collect();
    assert_eq!(chat_log.len(), 2, "only the PSA got approved and revoked");

    // Technician logins are events too: a webhook that hears them gets the start and the end,
    // each with the login's id and ticket.
    let (logins_url, logins) = receiver(vec![]).await;
    let form = [
        ("name", "Logins"),
        ("url", logins_url.as_str()),
        ("format", "generic"),
        ("event", "login.started"),
        ("event", "login.ended"),
    ];
    assert_eq!(admin.post("/t/acme/webhooks", &form).await.status(), 200);
    let start = format!("/api/v1/tenants/acme/devices/{}/logins", d.id);
    let (st, l) = crate::logins::api(&s, &api, "POST", &start, json!({"ticket": "T-9"})).await;
    assert_eq!(st, 201, "{l}");
    let lid = l["id"].as_str().unwrap().to_string();
    let end = format!("/api/v1/tenants/acme/logins/{lid}/end");
    let (st, v) = crate::logins::api(&s, &api, "POST", &end, Value::Null).await;
    assert_eq!(st, 200, "{v}");
    let got: Vec<Value> = wait_hits(&logins, 2)
        .await
        .iter()
        .map(|h| serde_json::from_str(&h.body).unwrap())
        .collect();
    let events: Vec<&str> = got.iter().map(|g| g["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["login.started", "login.ended"]);
    for g in &got {
        assert_eq!(g["login"]["id"], lid.as_str(), "{g}");
        assert_eq!(g["login"]["ticket"], "T-9", "{g}");
        assert_eq!(g["login"]["account"], "msp-nik", "{g}");
    }
}
