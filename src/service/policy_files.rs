//! A tenant's application policies as a JSON file: export, and import with a dry-run diff
//! (what would be created, changed, deleted) before anything is written.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Ctx;
use super::audit::{Audit, Origin};
use super::policies::{PolicyInput, RuleInput, build, push, wake};
use crate::authz::{Permission, Principal, TenantScope};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::model::audit::Event;
use crate::model::policies::{Access, Policy, Span};
use crate::model::tenants::Tenant;
use crate::model::zones;
use crate::store::{self, Reader};

pub const FORMAT: &str = "hourglass-policies/1";

/// The file: policies in the same shape the API takes, so a file can be edited by hand.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub format: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub exported_at: String,
    pub policies: Vec<PolicyInput>,
}

/// What an import does (or, in a dry run, would do), by policy name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub dry_run: bool,
    pub create: Vec<String>,
    /// Name and the fields that change.
    pub update: Vec<(String, Vec<&'static str>)>,
    pub delete: Vec<String>,
    pub unchanged: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

fn input_of(p: &Policy, zone: &str) -> PolicyInput {
    let (duration, hours, from, to) = match p.span {
        Span::Fixed { hours, .. } => ("fixed", Some(hours), None, None),
        Span::Window { from, to } => (
            "window",
            None,
            Some(zones::rfc3339(from, zone)),
            Some(zones::rfc3339(to, zone)),
        ),
    };
    PolicyInput {
        name: p.name.clone(),
        description: p.description.clone(),
        enabled: p.enabled,
        devices: p.devices.clone(),
        users: p.users.clone(),
        duration: duration.into(),
        hours,
        from,
        to,
        access: match p.access {
            Access::All => "all",
            Access::Specific => "specific",
        }
        .into(),
        rules: p
            .rules
            .iter()
            .map(|r| RuleInput {
                kind: r.kind.as_str().into(),
                value: r.value.clone(),
                deny: r.deny,
            })
            .collect(),
    }
}

/// `policies.view`: the tenant's policies as a file.
pub async fn export(ctx: &Ctx, p: &Principal, t: &Tenant) -> Result<PolicyFile> {
    let ps = super::policies::list(ctx, p, t).await?;
    Ok(PolicyFile {
        format: FORMAT.into(),
        tenant: t.slug.to_string(),
        exported_at: ctx.clock.now().rfc3339(),
        policies: ps
            .iter()
            .map(|p| input_of(p, &t.settings.time_zone))
            .collect(),
    })
}

fn changed(old: &Policy, new: &Policy) -> Vec<&'static str> {
    let mut out = Vec::new();
    let same_span = match (&old.span, &new.span) {
        // A fixed span keeps its deployment time; only the hours can change.
        (Span::Fixed { hours: a, .. }, Span::Fixed { hours: b, .. }) => a == b,
        (a, b) => a == b,
    };
    for (field, same) in [
        ("description", old.description == new.description),
        ("enabled", old.enabled == new.enabled),
        ("devices", old.devices == new.devices),
        ("users", old.users == new.users),
        ("duration", same_span),
        ("access", old.access == new.access),
        ("rules", old.rules == new.rules),
    ] {
        if !same {
            out.push(field);
        }
    }
    out
}

/// Checks every policy of the file and works out the plan; the built policies to write
/// (existing ids kept, matched by name) and the ids to delete.
fn plan(
    r: &Reader<'_>,
    scope: &TenantScope,
    file: PolicyFile,
    replace: bool,
    now: Timestamp,
) -> Result<(Plan, Vec<Policy>, Vec<String>)> {
    if file.format != FORMAT {
        return Err(Error::validation(
            "format",
            format!("must be {FORMAT:?} (a file exported by Hourglass)"),
        ));
    }
    let existing = store::policies::list(r, scope)?;
    let mut plan = Plan::default();
    let mut writes = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, input) in file.policies.into_iter().enumerate() {
        let name = input.name.trim().to_string();
        if !names.insert(name.clone()) {
            return Err(Error::validation(
                format!("policies[{i}]"),
                format!("{name:?} appears twice in the file"),
            ));
        }
        let old = existing.iter().find(|p| p.name == name);
        let (id, deployed) = match old {
            Some(o) => (
                o.id.clone(),
                match o.span {
                    Span::Fixed { from, .. } => from,
                    Span::Window { .. } => now.millis(),
                },
            ),
            None => (
                format!("pol-{}", uuid::Uuid::now_v7().simple()),
                now.millis(),
            ),
        };
        let new = build(r, scope, id, input, deployed)
            .map_err(|e| Error::validation(format!("policies[{i}]"), format!("{name:?}: {e}")))?;
        match old {
            None => plan.create.push(name),
            Some(o) => {
                let fields = changed(o, &new);
                if fields.is_empty() {
                    plan.unchanged.push(name);
                    continue;
                }
                plan.update.push((name, fields));
            }
        }
        writes.push(new);
    }
    let mut deletes = Vec::new();
    if replace {
        for p in existing.iter().filter(|p| !names.contains(&p.name)) {
            plan.delete.push(p.name.clone());
            deletes.push(p.id.clone());
        }
    }
    Ok((plan, writes, deletes))
}

/// `policies.manage` (step-up): imports a file — `replace` also deletes the policies the file
/// does not name. A dry run only answers the plan. Applied in one transaction, audited, one
/// new bundle version pushed.
pub async fn import(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    file: PolicyFile,
    replace: bool,
    dry_run: bool,
    origin: &Origin,
) -> Result<Plan> {
    let now = ctx.clock.now();
    let scope = p.scope(t, Permission::PoliciesManage)?;
    if dry_run {
        let (mut out, _, _) = ctx
            .db
            .read(move |r| plan(r, &scope, file, replace, now))
            .await?;
        out.dry_run = true;
        return Ok(out);
    }
    p.require_fresh_mfa(now)?;
    let (ctx2, p2, o) = (ctx.clone(), p.clone(), origin.clone());
    let (out, woken) = ctx
        .db
        .write(move |tx| {
            let (out, writes, deletes) = plan(&tx.reader(), &scope, file, replace, now)?;
            if out.is_empty() {
                return Ok((out, vec![]));
            }
            let mut version = 0;
            for policy in &writes {
                version = store::policies::put(tx, &scope, policy, now)?;
            }
            for id in &deletes {
                version = store::policies::delete(tx, &scope, id)?;
            }
            Audit::new(Event::PoliciesImported, now)
                .tenant(scope.tenant())
                .by(&p2, &o)
                .details(
                    json!({"plan": out, "version": version, "written": writes, "deleted": deletes}),
                )
                .append(tx)?;
            let woken = push(tx, &ctx2, &scope, version, now)?;
            Ok((out, woken))
        })
        .await?;
    wake(ctx, woken);
    Ok(out)
}
