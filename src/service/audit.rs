//! Building audit entries and reading the chain's state.

use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::AuditEntryId;
use crate::model::audit::{ActorKind, Entry, Event, Outcome, VerifyReport};
use crate::store::{self, Db, WriteTx};

/// Where a request came from, for audit entries.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// One audit entry under construction; `append` writes it inside the caller's transaction.
#[derive(Debug, Clone)]
pub struct Audit(Entry);

impl Audit {
    /// A successful event by the appliance itself; narrow it with the builders below.
    pub fn new(event: Event, now: Timestamp) -> Self {
        Audit(Entry {
            id: AuditEntryId::new().to_string(),
            at: now,
            event: event.code().to_string(),
            outcome: Outcome::Success,
            tenant_id: None,
            actor_kind: ActorKind::System,
            actor_id: None,
            target_kind: None,
            target_id: None,
            device_id: None,
            request_identifier: None,
            ticket_identifier: None,
            ip: None,
            http_request_id: None,
            details: "{}".to_string(),
        })
    }
    pub fn failure(mut self) -> Self {
        self.0.outcome = Outcome::Failure;
        self
    }
    pub fn tenant(mut self, tenant: impl ToString) -> Self {
        self.0.tenant_id = Some(tenant.to_string());
        self
    }
    pub fn actor(mut self, kind: ActorKind, id: Option<String>) -> Self {
        self.0.actor_kind = kind;
        self.0.actor_id = id;
        self
    }
    pub fn target(mut self, kind: &str, id: impl ToString) -> Self {
        self.0.target_kind = Some(kind.to_string());
        self.0.target_id = Some(id.to_string());
        self
    }
    pub fn device(mut self, id: impl ToString) -> Self {
        self.0.device_id = Some(id.to_string());
        self
    }
    pub fn request(mut self, request_identifier: impl ToString, ticket: Option<String>) -> Self {
        self.0.request_identifier = Some(request_identifier.to_string());
        self.0.ticket_identifier = ticket;
        self
    }
    /// The client's address and the HTTP request id, when the event came over HTTP.
    pub fn origin(mut self, ip: Option<String>, http_request_id: Option<String>) -> Self {
        self.0.ip = ip;
        self.0.http_request_id = http_request_id;
        self
    }
    /// Acting principal and where the request came from.
    pub fn by(self, p: &crate::authz::Principal, o: &Origin) -> Self {
        let a = match &p.api_token {
            Some(t) => self.actor(ActorKind::ApiToken, Some(format!("{}:{t}", p.user_id))),
            None => self.actor(ActorKind::User, Some(p.user_id.to_string())),
        };
        a.from(o)
    }
    pub fn from(mut self, o: &Origin) -> Self {
        self.0.ip = o.ip.clone();
        self.0.http_request_id = o.request_id.clone();
        self
    }
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.0.details = details.to_string();
        self
    }
    pub fn entry(&self) -> &Entry {
        &self.0
    }
    pub fn append(self, tx: &WriteTx<'_>) -> Result<i64> {
        store::audit::append(tx, &self.0)
    }
}

pub async fn verify(db: &Db) -> Result<VerifyReport> {
    db.read(store::audit::verify).await
}

pub use crate::store::audit::Query as ListFilter;

/// A tenant's entries, newest first (all tenants' for MSP admins who ask).
pub async fn list(
    ctx: &super::Ctx,
    scope: &crate::authz::TenantScope,
    all_tenants: bool,
    f: ListFilter,
) -> Result<Vec<(i64, Entry)>> {
    let scope = *scope;
    ctx.db
        .read(move |r| {
            store::audit::list_scoped(r, if all_tenants { None } else { Some(&scope) }, &f)
        })
        .await
}

/// Most entries the portal and API hand out in one export; the CLI has no limit.
pub const EXPORT_MAX: u64 = 50_000;

/// What an export covers: the scope (None = every tenant, MSP admins only) and the filter.
pub struct ExportRequest {
    pub scope: crate::authz::TenantScope,
    pub all_tenants: bool,
    pub filter: ListFilter,
    pub format: crate::model::audit_export::Format,
}

/// The matching entries as one CSV or NDJSON document, oldest first. The export is audited
/// before it is handed out: if that entry cannot be written, nothing is exported.
pub async fn export(
    ctx: &super::Ctx,
    p: &crate::authz::Principal,
    o: &Origin,
    req: ExportRequest,
) -> Result<Vec<u8>> {
    let ExportRequest {
        scope,
        all_tenants,
        filter,
        format,
    } = req;
    let f2 = filter.clone();
    let (doc, n) = ctx
        .db
        .read(move |r| {
            let mut doc = format.header();
            let mut names = NameCache::default();
            let n = store::audit::each(
                r,
                (!all_tenants).then_some(&scope),
                &f2,
                EXPORT_MAX,
                |seq, e| {
                    let n = names.of(r, e)?;
                    doc.push_str(&format.line(seq, e, &n));
                    Ok(())
                },
            )?;
            Ok((doc, n))
        })
        .await?;
    if n > EXPORT_MAX {
        return Err(crate::error::Error::validation(
            "range",
            format!(
                "more than {EXPORT_MAX} entries match: narrow the dates, or run `hourglass audit export` on the appliance"
            ),
        ));
    }
    let audit = Audit::new(Event::AuditExported, ctx.clock.now())
        .tenant(scope.tenant())
        .by(p, o)
        .details(serde_json::json!({
            "format": format.extension(), "entries": n, "all_tenants": all_tenants,
            "event": filter.event, "actor": filter.actor,
            "from": filter.since.map(|t| t.rfc3339()), "until": filter.until.map(|t| t.rfc3339()),
        }));
    ctx.db.write(move |tx| audit.append(tx).map(|_| ())).await?;
    Ok(doc.into_bytes())
}

/// The operator's export from the command line: every matching entry, streamed to `out`.
pub fn export_to(
    db: &Db,
    scope: Option<crate::authz::TenantScope>,
    filter: &ListFilter,
    format: crate::model::audit_export::Format,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    out.write_all(format.header().as_bytes())?;
    db.read_blocking(|r| {
        let mut names = NameCache::default();
        store::audit::each(r, scope.as_ref(), filter, u64::MAX, |seq, e| {
            let n = names.of(r, e)?;
            out.write_all(format.line(seq, e, &n).as_bytes())?;
            Ok(())
        })
    })
}

/// Names of the ids entries refer to, each looked up once per export.
#[derive(Default)]
pub struct NameCache {
    known: std::collections::HashMap<String, Option<String>>,
}

impl NameCache {
    fn name(&mut self, r: &store::Reader<'_>, id: &Option<String>) -> Result<Option<String>> {
        let Some(id) = id.as_deref().filter(|i| !i.is_empty()) else {
            return Ok(None);
        };
        if let Some(n) = self.known.get(id) {
            return Ok(n.clone());
        }
        let n = store::names::labels(r, &[id.to_string()])?.remove(id);
        self.known.insert(id.to_string(), n.clone());
        Ok(n)
    }

    pub fn of(
        &mut self,
        r: &store::Reader<'_>,
        e: &crate::model::audit::Entry,
    ) -> Result<crate::model::audit_export::Names> {
        let device = self.name(r, &e.device_id)?;
        Ok(crate::model::audit_export::Names {
            actor: self.name(r, &e.actor_id)?,
            target: self.name(r, &e.target_id)?,
            summary: summary(r, e, device.as_deref())?,
            device,
        })
    }
}

/// A technician-login entry in words, names joined in now (the chain holds ids only).
fn summary(
    r: &store::Reader<'_>,
    e: &crate::model::audit::Entry,
    device: Option<&str>,
) -> Result<Option<String>> {
    use crate::model::logins::{Names, named_account, offline_sentence, sentence};
    let details: serde_json::Value = serde_json::from_str(&e.details).unwrap_or_default();
    let Some(target) = e.target_id.as_deref() else {
        return Ok(None);
    };
    match (e.event.as_str(), e.target_kind.as_deref()) {
        ("login_offline", kind) => {
            let host = device.unwrap_or("a workstation");
            let code_time = details["code_time"].as_str().unwrap_or("");
            let person = match kind {
                Some("user") => store::names::person(r, target)?,
                _ => None,
            };
            Ok(Some(match person {
                Some((email, tenant_kind, username)) => {
                    let kind = crate::model::tenants::TenantKind::parse(&tenant_kind);
                    let account = kind.map_or(username.clone(), |k| named_account(k, &username));
                    offline_sentence(Some(&email), host, &account, code_time)
                }
                None => offline_sentence(None, host, target, code_time),
            }))
        }
        (event, Some("login")) => {
            let Some((who, hostname, account)) = store::names::login_names(r, target)? else {
                return Ok(None);
            };
            let shared = details["shared"] == true;
            let n = Names {
                who: &who,
                hostname: &hostname,
                account: &account,
            };
            Ok(sentence(event, shared, &n))
        }
        _ => Ok(None),
    }
}

/// Names for the ids of entries already read (the audit page).
pub async fn names(
    ctx: &super::Ctx,
    entries: &[(i64, crate::model::audit::Entry)],
) -> Result<std::collections::HashMap<String, String>> {
    let ids = entries
        .iter()
        .flat_map(|(_, e)| [&e.actor_id, &e.target_id, &e.device_id])
        .filter_map(|i| i.clone())
        .collect();
    labels(ctx, ids).await
}

/// The entries that have a sentence (technician logins), in words, by entry id.
pub async fn summaries(
    ctx: &super::Ctx,
    entries: &[(i64, crate::model::audit::Entry)],
) -> Result<std::collections::HashMap<String, String>> {
    let entries: Vec<_> = entries.iter().map(|(_, e)| e.clone()).collect();
    ctx.db
        .read(move |r| {
            let mut names = NameCache::default();
            let mut out = std::collections::HashMap::new();
            for e in &entries {
                if let Some(s) = names.of(r, e)?.summary {
                    out.insert(e.id.clone(), s);
                }
            }
            Ok(out)
        })
        .await
}

/// Names for ids the caller read from rows it may see (people, rules, policies, …).
pub async fn labels(
    ctx: &super::Ctx,
    mut ids: Vec<String>,
) -> Result<std::collections::HashMap<String, String>> {
    ids.sort();
    ids.dedup();
    ctx.db.read(move |r| store::names::labels(r, &ids)).await
}
