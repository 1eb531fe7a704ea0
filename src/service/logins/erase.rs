//! An erased person's workstation account: deleted on every workstation where it was set
//! up, and renamed to the pseudonym in the history that still named it (DESIGN §1).

use super::*;
use crate::model::logins::named_account;
use crate::model::tenants::TenantKind;
use crate::store::erasure::{self, Account};

/// What erasure did to a person's workstation account.
#[derive(Debug, Default)]
pub struct AccountErased {
    /// Workstations told to delete the account (woken after the commit).
    pub devices: Vec<DeviceId>,
    /// History rows renamed to the pseudonym.
    pub rows: usize,
}

/// In the erasure's transaction: `old_username` and `new_username` are the person's before
/// and after; their tenant's kind gives the account names (`msp-…` or `co-…`).
pub(in crate::service) fn erase_account(
    tx: &WriteTx<'_>,
    ctx: &Ctx,
    (tenant, kind): (TenantId, TenantKind),
    (old_username, new_username): (&str, &str),
    now: Timestamp,
) -> Result<AccountErased> {
    let (old, new) = (
        named_account(kind, old_username),
        named_account(kind, new_username),
    );
    let a = Account {
        old: &old,
        new: &new,
        // `co-` names repeat across customers; `msp-` ones belong to one person.
        tenant: (kind == TenantKind::Customer).then_some(tenant),
    };
    let mut out = AccountErased::default();
    for (t, d) in erasure::devices_with(&tx.reader(), &a)? {
        let delete = Action::DeleteAccount {
            account: old.clone(),
        };
        commands::enqueue(
            tx,
            &ctx.crypto,
            &system_scope(t),
            d,
            &delete,
            ORDER_TTL_MS,
            now,
        )?;
        out.devices.push(d);
    }
    out.rows = erasure::rename(tx, &a)?;
    Ok(out)
}

/// In the transaction of a done acknowledgement: when it was an erased person's account being
/// deleted, the workstation's reported administrators lose it too. Returns the account, so
/// the caller drops it from the pending heartbeat and empties the WAL after the commit.
pub(in crate::service) fn on_account_deleted(
    tx: &WriteTx<'_>,
    c: &crate::proto::Command,
) -> Result<Option<String>> {
    let Ok(Action::DeleteAccount { account }) = Action::parse(&c.kind, &c.args) else {
        return Ok(None);
    };
    erasure::drop_admin_member(tx, c.device_id, &account)?;
    Ok(Some(account))
}
