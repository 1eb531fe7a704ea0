//! Notifying approvers: outgoing webhooks (generic, Slack, Teams; HMAC-signed; retried with
//! back-off; delivery log) and email. Webhook deliveries are written to an outbox in the
//! transaction of the event, so a crash or restart loses none of them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use crate::authz::{Permission, Principal, system_scope};
use crate::clock::Timestamp;
use crate::crypto::{self, SealContext};
use crate::error::{Error, Result};
use crate::model::audit::Event;
use crate::model::requests::Request;
use crate::model::tenants::Tenant;
use crate::model::webhooks::{self as hooks, Format, Notice};
use crate::model::webhooks::{DeliveryState, Webhook};
use crate::store::{self, WriteTx, webhooks::Delivery};

/// How long a claimed delivery is reserved for its sender.
const LEASE_MS: i64 = 60_000;
const BATCH: u32 = 50;

fn seal_ctx<'a>(column: &'a str, w: &'a str, tenant: &'a str) -> SealContext<'a> {
    SealContext {
        table: "webhooks",
        column,
        row_id: w,
        tenant_id: tenant,
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub format: Option<String>,
    /// The events it hears (`model::webhooks::EVENTS`); none: all of them.
    #[serde(default)]
    pub events: Vec<String>,
}

/// Adds a webhook (`settings.manage`, step-up). Returns it and its signing secret, shown once.
pub async fn create(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    n: NewWebhook,
    origin: &Origin,
) -> Result<(Webhook, String)> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::SettingsManage)?;
    p.require_fresh_mfa(now)?;
    let name = crate::model::tenants::parse_name("name", &n.name)?;
    let host = hooks::check_url(&n.url, ctx.cfg.webhooks.allow_loopback, own_addresses())?;
    let format = Format::parse(n.format.as_deref().unwrap_or("generic"))
        .ok_or_else(|| Error::validation("format", "must be generic, slack or teams"))?;
    let events = hooks::check_events(&n.events)?;
    let id = format!("wh-{}", uuid::Uuid::now_v7().simple());
    let secret = crypto::random_token(32)?;
    let tenant = t.id.to_string();
    let w = Webhook {
        url_sealed: ctx.crypto.seal(
            &seal_ctx("url_sealed", &id, &tenant),
            n.url.trim().as_bytes(),
        )?,
        secret_sealed: ctx
            .crypto
            .seal(&seal_ctx("secret_sealed", &id, &tenant), secret.as_bytes())?,
        id,
        tenant_id: t.id,
        name,
        format,
        host,
        created_at: now,
        events,
    };
    let (p2, o, w2) = (p.clone(), origin.clone(), w.clone());
    ctx.db
        .write(move |tx| {
            store::webhooks::insert(tx, &scope, &w2)?;
            Audit::new(Event::WebhookCreated, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("webhook", &w2.id)
                .details(json!({"name": w2.name, "format": w2.format.as_str(), "host": w2.host, "events": w2.events}))
                .append(tx)?;
            Ok(())
        })
        .await?;
    Ok((w, secret))
}

pub async fn delete(ctx: &Ctx, p: &Principal, t: &Tenant, id: &str, origin: &Origin) -> Result<()> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::SettingsManage)?;
    p.require_fresh_mfa(now)?;
    let (p2, o, id) = (p.clone(), origin.clone(), id.to_string());
    ctx.db
        .write(move |tx| {
            store::webhooks::delete(tx, &scope, &id)?;
            Audit::new(Event::WebhookDeleted, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .target("webhook", &id)
                .append(tx)?;
            Ok(())
        })
        .await
}

/// A tenant's webhooks and their recent deliveries (`settings.view`).
pub async fn list(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<(Vec<Webhook>, Vec<Delivery>)> {
    let scope = p.scope(t, Permission::SettingsView)?;
    ctx.db
        .read(move |r| {
            Ok((
                store::webhooks::list(r, &scope)?,
                store::webhooks::deliveries(r, &scope, 100)?,
            ))
        })
        .await
}

/// The portal link approvers follow.
pub fn requests_link(ctx: &Ctx, t: &Tenant) -> String {
    format!("{}/t/{}/requests", ctx.links().portal, t.slug)
}

/// Inside the request's transaction: one outbox row per listening webhook.
pub fn announce(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    t: &Tenant,
    r: &Request,
    now: Timestamp,
) -> Result<()> {
    let event = if r.kind == crate::model::requests::Kind::Extension {
        "request.extension"
    } else {
        "request.created"
    };
    notify(tx, ctx, t, r, event, String::new(), now)
}

/// Inside the transaction of a request's change: the event for the webhooks that hear it —
/// decided (by whom or which rule), ended, expired, timed out, or failed on the workstation.
pub fn announce_change(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &crate::authz::TenantScope,
    r: &Request,
    event: &str,
    now: Timestamp,
) -> Result<()> {
    let t = store::tenants::get(&tx.reader(), scope)?;
    let on = format!("{} on {}", r.account, r.hostname);
    let by = match (&r.decided_by, &r.decided_by_rule) {
        (Some(u), _) => store::names::labels(&tx.reader(), &[u.to_string()])?
            .into_values()
            .next()
            .map(|n| format!(" by {n}"))
            .unwrap_or_default(),
        (None, Some(_)) => " by an auto-approval rule".into(),
        _ => String::new(),
    };
    let minutes = r.minutes_approved.unwrap_or(r.minutes_requested);
    let summary = match event {
        "request.approved" => format!("Approved{by}: {on}, {minutes} minutes"),
        "request.denied" => format!("Denied{by}: {on}"),
        "request.revoked" => format!("Revoked: {on}"),
        "request.ended" => format!("Ended early by its user: {on}"),
        "request.expired" => format!("Session over: {on}"),
        "request.timed_out" => format!("Timed out without a decision: {on}"),
        "request.failed" => format!("The workstation could not carry it out: {on}"),
        other => format!("{other}: {on}"),
    };
    notify(tx, ctx, &t, r, event, summary, now)
}

/// One outbox row per webhook of the tenant (or the MSP's) that hears `event`.
fn notify(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    t: &Tenant,
    r: &Request,
    event: &str,
    summary: String,
    now: Timestamp,
) -> Result<()> {
    let listeners: Vec<Webhook> = store::webhooks::listeners(&tx.reader(), t.id)?
        .into_iter()
        .filter(|w| w.events.iter().any(|e| e == event))
        .collect();
    if listeners.is_empty() {
        return Ok(());
    }
    let n = Notice {
        event: event.into(),
        subject: "request",
        summary,
        tenant: t.name.clone(),
        request_id: r.id.to_string(),
        ticket: r.ticket.clone(),
        account: r.account.clone(),
        hostname: r.hostname.clone(),
        minutes: r.minutes_requested,
        justification: r.justification.clone(),
        link: requests_link(ctx, t),
        at: now.rfc3339(),
    };
    for w in listeners {
        let f = w.format;
        let body = hooks::payload(f, &n).to_string();
        store::webhooks::enqueue(tx, &w, &n.event, Some(&n.request_id), &body, now)?;
    }
    Ok(())
}

/// A technician login's event (started, ended, revoked, expired, or an offline login), for
/// the webhooks that hear it: the login's id, account, workstation and ticket.
pub struct LoginNotice<'a> {
    pub event: &'a str,
    pub id: String,
    pub account: &'a str,
    pub hostname: &'a str,
    pub ticket: Option<String>,
    pub minutes: u32,
    pub summary: String,
}

/// Inside the login's transaction: one outbox row per webhook that hears the event.
pub fn announce_login(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &crate::authz::TenantScope,
    l: LoginNotice<'_>,
    now: Timestamp,
) -> Result<()> {
    let t = store::tenants::get(&tx.reader(), scope)?;
    let listeners: Vec<Webhook> = store::webhooks::listeners(&tx.reader(), t.id)?
        .into_iter()
        .filter(|w| w.events.iter().any(|e| e == l.event))
        .collect();
    let n = Notice {
        event: l.event.into(),
        subject: "login",
        summary: l.summary,
        tenant: t.name.clone(),
        request_id: l.id,
        ticket: l.ticket,
        account: l.account.into(),
        hostname: l.hostname.into(),
        minutes: l.minutes,
        justification: String::new(),
        link: format!("{}/t/{}/logins", ctx.links().portal, t.slug),
        at: now.rfc3339(),
    };
    for w in listeners {
        let body = hooks::payload(w.format, &n).to_string();
        store::webhooks::enqueue(tx, &w, &n.event, None, &body, now)?;
    }
    Ok(())
}

/// Inside the transaction of a tamper alert: the event for the webhooks that hear it.
pub fn announce_device(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    d: &crate::model::devices::Device,
    event: &str,
    summary: String,
    now: Timestamp,
) -> Result<()> {
    let t = store::tenants::get(&tx.reader(), &crate::authz::system_scope(d.tenant_id))?;
    let n = Notice {
        event: event.into(),
        subject: "device",
        summary,
        tenant: t.name.clone(),
        request_id: d.id.to_string(),
        ticket: None,
        account: String::new(),
        hostname: d.hostname.clone(),
        minutes: 0,
        justification: String::new(),
        link: format!("{}/t/{}/devices/{}", ctx.links().portal, t.slug, d.id),
        at: now.rfc3339(),
    };
    for w in store::webhooks::listeners(&tx.reader(), t.id)? {
        if w.events.iter().any(|e| e == event) {
            let body = hooks::payload(w.format, &n).to_string();
            store::webhooks::enqueue(tx, &w, &n.event, None, &body, now)?;
        }
    }
    Ok(())
}

/// Resolves names like the system does, then drops addresses a webhook may not reach, so a
/// name that points at the appliance itself (or a metadata service) cannot be used to probe it.
struct GuardedResolver {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| hooks::reachable(a.ip(), allow, own_addresses()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    format!("{host} resolves only to addresses a webhook may not reach").into(),
                );
            }
            let out: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(out)
        })
    }
}

fn http_client(allow_loopback: bool) -> Result<reqwest::Client> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(Error::internal)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(GuardedResolver { allow_loopback }))
        // Straight to the receiver: an environment proxy would resolve and fetch unchecked.
        .no_proxy()
        .build()
        .map_err(|e| Error::internal(format!("http client: {e}")))
}

/// One attempt: `Ok(status)` for any HTTP answer, `Err(text)` when none came.
async fn send(
    client: &reqwest::Client,
    ctx: &Ctx,
    d: &Delivery,
    now: Timestamp,
) -> std::result::Result<u16, String> {
    let w = ctx
        .db
        .read({
            let id = d.webhook_id.clone();
            move |r| store::webhooks::get_any(r, &id)
        })
        .await
        .map_err(|e| e.to_string())?;
    let tenant = w.tenant_id.to_string();
    let url = ctx
        .crypto
        .open(&seal_ctx("url_sealed", &w.id, &tenant), &w.url_sealed)
        .map_err(|e| e.to_string())?;
    let secret = ctx
        .crypto
        .open(&seal_ctx("secret_sealed", &w.id, &tenant), &w.secret_sealed)
        .map_err(|e| e.to_string())?;
    let url = String::from_utf8_lossy(&url).to_string();
    // Checked again at each send: the setting may have changed since the webhook was made.
    hooks::check_url(&url, ctx.cfg.webhooks.allow_loopback, own_addresses())
        .map_err(|e| e.to_string())?;
    let ts = now.millis() / 1000;
    let sig = crypto::hmac_sha256_hex(&secret, hooks::signed_content(ts, &d.payload).as_bytes());
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hourglass-event", &d.event)
        .header("x-hourglass-delivery", &d.id)
        .header("x-hourglass-timestamp", ts.to_string())
        .header("x-hourglass-signature", format!("sha256={sig}"))
        .body(d.payload.clone())
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    Ok(res.status().as_u16())
}

/// Job: sends due deliveries; failures wait 30 s, 2 min, 10 min, 1 h, 6 h, then stop.
pub async fn deliver_due(ctx: &Ctx) -> Result<u64> {
    let now = ctx.clock.now();
    let due = ctx
        .db
        .write(move |tx| store::webhooks::claim_due(tx, now, LEASE_MS, BATCH))
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let client = http_client(ctx.cfg.webhooks.allow_loopback)?;
    let mut delivered = 0;
    for d in due {
        let outcome = send(&client, ctx, &d, now).await;
        let attempt = d.attempts + 1;
        let (state, status, error) = match outcome {
            Ok(s) if (200..300).contains(&s) => (DeliveryState::Delivered, Some(s), None),
            Ok(s) => (
                DeliveryState::Pending,
                Some(s),
                Some(format!("answered HTTP {s}")),
            ),
            Err(e) => (DeliveryState::Pending, None, Some(e)),
        };
        let state = if state == DeliveryState::Pending && attempt >= hooks::MAX_ATTEMPTS {
            DeliveryState::Failed
        } else {
            state
        };
        if state == DeliveryState::Delivered {
            delivered += 1;
        }
        let retry = now.plus_secs(hooks::backoff_secs(attempt));
        let (id, tenant, hook) = (d.id.clone(), d.tenant_id, d.webhook_id.clone());
        ctx.db
            .write(move |tx| {
                store::webhooks::record(tx, &id, state, status, error.as_deref(), retry, now)?;
                if state == DeliveryState::Failed {
                    Audit::new(Event::WebhookFailed, now)
                        .tenant(tenant)
                        .failure()
                        .target("webhook", &hook)
                        .details(json!({"delivery": id, "attempts": attempt, "error": error}))
                        .append(tx)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(delivered)
}

/// Sends pending deliveries now instead of at the next sweep.
pub fn kick(ctx: &Ctx) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = deliver_due(&ctx).await {
            tracing::warn!(error = %e, "webhook delivery");
        }
    });
}

/// Mails the people who may approve in the request's tenant (when SMTP is configured).
pub fn mail_approvers(ctx: &Ctx, t: &Tenant, r: &Request) {
    let Some(mailer) = ctx.mail.clone() else {
        return;
    };
    let (ctx, t, r) = (ctx.clone(), t.clone(), r.clone());
    tokio::spawn(async move {
        let t2 = t.clone();
        let to = match ctx.db.read(move |rd| approver_emails(rd, &t2)).await {
            Ok(to) => to,
            Err(e) => return tracing::warn!(error = %e, "finding approvers"),
        };
        let subject = format!(
            "Hourglass: {} on {} asks for administrator rights",
            r.account, r.hostname
        );
        let body = format!(
            "{} on {} ({}) asks for administrator rights for {} minutes.\n\nJustification: {}\nTicket: {}\n\nReview: {}\n",
            r.account,
            r.hostname,
            t.name,
            r.minutes_requested,
            r.justification,
            r.ticket.clone().unwrap_or_default(),
            requests_link(&ctx, &t)
        );
        send_all(mailer, to, subject, body).await;
    });
}

async fn send_all(
    mailer: Arc<crate::notify::Mailer>,
    to: Vec<String>,
    subject: String,
    body: String,
) {
    for addr in to {
        if let Err(e) = mailer.send(&addr, &subject, body.clone()).await {
            tracing::warn!(error = %e, "mailing an approver");
        }
    }
}

/// Active people of the tenant and the MSP who hold `requests.approve` in `t`.
fn approver_emails(r: &store::Reader<'_>, t: &Tenant) -> Result<Vec<String>> {
    let mut people = store::users::list(r, &system_scope(t.id))?;
    if let Some(msp) = store::tenants::msp(r)?.filter(|m| m.id != t.id) {
        people.extend(store::users::list(r, &system_scope(msp.id))?);
    }
    let mut out = Vec::new();
    for u in people {
        let Some(p) = super::auth::principal(r, u.id, None, None)? else {
            continue;
        };
        if p.permissions_in(t)
            .is_some_and(|s| s.contains(Permission::RequestsApprove))
        {
            out.push(u.email);
        }
    }
    Ok(out)
}

/// This machine's own interface addresses (a webhook to them reaches the appliance itself),
/// read once.
fn own_addresses() -> &'static [std::net::IpAddr] {
    static OWN: std::sync::OnceLock<Vec<std::net::IpAddr>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| {
        if_addrs::get_if_addrs()
            .map(|all| all.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    #[tokio::test]
    async fn names_resolving_to_this_machine_are_dropped_unless_allowed() {
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        let guarded = GuardedResolver {
            allow_loopback: false,
        };
        let err = guarded
            .resolve(name("localhost"))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("may not reach"), "{err}");
        let open = GuardedResolver {
            allow_loopback: true,
        };
        let addrs: Vec<_> = open.resolve(name("localhost")).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
