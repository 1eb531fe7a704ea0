//! No standing administrators (DESIGN §2): a tenant may have the administrators its agents
//! found at enrollment removed, except named accounts (a break-glass account). The agent
//! carries it out and keeps them out afterwards like any other addition (PPAM); each removal
//! is audited per device when the agent reports it.

use std::collections::HashMap;

use super::Ctx;
use super::commands;
use crate::authz::{Permission, Principal, TenantScope};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::DeviceId;
use crate::model::commands::{Action, is_managed_account};
use crate::model::devices::Device;
use crate::model::tenants::{Settings, Tenant};
use crate::store::{self, WriteTx};

/// How long the order waits for a workstation that is away.
const ORDER_TTL_MS: i64 = 30 * 86_400_000;

/// In the tenant update's transaction: the order to every active workstation when the setting
/// was turned on or its exceptions changed. Returns the workstations to wake.
pub fn on_settings(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    (before, after): (&Settings, &Settings),
    now: Timestamp,
) -> Result<Vec<DeviceId>> {
    let changed = after.remove_standing_admins
        && (!before.remove_standing_admins
            || before.standing_admin_exceptions != after.standing_admin_exceptions);
    if !changed {
        return Ok(Vec::new());
    }
    let mut woken = Vec::new();
    for d in store::devices::list(&tx.reader(), scope)?
        .into_iter()
        .filter(|d| d.active)
    {
        order(tx, ctx, scope, d.id, after, now)?;
        woken.push(d.id);
    }
    Ok(woken)
}

/// In the enrollment's transaction: a new workstation of such a tenant gets the order too.
pub fn on_enroll(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    device: DeviceId,
    now: Timestamp,
) -> Result<()> {
    let t = store::tenants::get(&tx.reader(), scope)?;
    if t.settings.remove_standing_admins {
        order(tx, ctx, scope, device, &t.settings, now)?;
    }
    Ok(())
}

fn order(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    scope: &TenantScope,
    device: DeviceId,
    s: &Settings,
    now: Timestamp,
) -> Result<()> {
    let keep = Action::SetStandingAdmins {
        keep: s.standing_admin_exceptions.clone(),
    };
    commands::enqueue(tx, &ctx.crypto, scope, device, &keep, ORDER_TTL_MS, now)?;
    Ok(())
}

/// The standing administrators of each workstation (`devices.view`): members of its
/// administrators group that are neither Hourglass's own accounts nor holding a grant now.
pub async fn report(
    ctx: &Ctx,
    p: &Principal,
    t: &Tenant,
    devices: &[Device],
) -> Result<HashMap<DeviceId, Vec<String>>> {
    let scope = p.scope(t, Permission::DevicesView)?;
    let now = ctx.clock.now();
    let granted = ctx
        .db
        .read(move |r| store::requests::granted_accounts(r, &scope, now))
        .await?;
    Ok(devices
        .iter()
        .map(|d| {
            let standing = d
                .admin_members
                .iter()
                .filter(|a| {
                    !is_managed_account(a)
                        && !granted
                            .iter()
                            .any(|(g, acc)| *g == d.id && acc.eq_ignore_ascii_case(a))
                })
                .cloned()
                .collect();
            (d.id, standing)
        })
        .collect())
}
