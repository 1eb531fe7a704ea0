//! Erasing a person (DESIGN §1, §6): the history outside the audit chain that still names
//! them — their workstation account in logins, passwords, commands and agent events; their
//! email and names in webhook deliveries — is rewritten to their pseudonym or removed.

use rusqlite::named_params;

use super::{Reader, WriteTx};
use crate::error::Result;
use crate::ids::{DeviceId, TenantId};

/// A person's workstation account before and after erasure. `tenant` limits the rewrite to
/// one tenant (a customer's `co-` names repeat across tenants); None is every tenant (MSP
/// staff's `msp-` accounts).
pub struct Account<'a> {
    pub old: &'a str,
    pub new: &'a str,
    pub tenant: Option<TenantId>,
}

/// The active workstations where the account was ever set up.
pub fn devices_with(r: &Reader<'_>, a: &Account<'_>) -> Result<Vec<(TenantId, DeviceId)>> {
    let mut st = r.conn.prepare_cached(
        "SELECT DISTINCT x.tenant_id, x.device_id FROM (
             SELECT tenant_id, device_id FROM credentials WHERE account = :a
             UNION SELECT tenant_id, device_id FROM logins WHERE account = :a
         ) x JOIN devices d ON d.id = x.device_id
         WHERE d.status = 'active' AND (:t IS NULL OR x.tenant_id = :t)
         ORDER BY x.tenant_id, x.device_id",
    )?;
    let rows = st.query_map(named_params! {":a": a.old, ":t": a.tenant}, |r| {
        Ok((r.get("tenant_id")?, r.get("device_id")?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Renames the account in every history row that holds it; returns the rows changed.
pub fn rename(tx: &WriteTx<'_>, a: &Account<'_>) -> Result<usize> {
    let mut n = 0;
    for sql in [
        "UPDATE logins SET account = :new WHERE account = :old AND (:t IS NULL OR tenant_id = :t)",
        "UPDATE credentials SET account = :new WHERE account = :old AND (:t IS NULL OR tenant_id = :t)",
        "UPDATE stray_logons SET account = :new WHERE account = :old AND (:t IS NULL OR tenant_id = :t)",
        "UPDATE commands SET args = json_set(args, '$.account', :new)
         WHERE json_extract(args, '$.account') = :old AND (:t IS NULL OR tenant_id = :t)",
        "UPDATE device_events SET data = json_set(data, '$.account', :new)
         WHERE json_extract(data, '$.account') = :old AND (:t IS NULL OR tenant_id = :t)",
    ] {
        n += tx
            .conn()
            .prepare_cached(sql)?
            .execute(named_params! {":old": a.old, ":new": a.new, ":t": a.tenant})?;
    }
    // The poll path's password-version lists name accounts.
    tx.note(super::hot::Note::Versions);
    Ok(n)
}

/// Drops the webhook deliveries whose payload holds any of `words` (email, names, account):
/// a notification about someone who was erased has nothing left to say.
pub fn forget_deliveries(tx: &WriteTx<'_>, words: &[&str]) -> Result<usize> {
    let mut n = 0;
    for w in words.iter().filter(|w| !w.is_empty()) {
        n += tx
            .conn()
            .prepare_cached("DELETE FROM webhook_deliveries WHERE instr(payload, :w) > 0")?
            .execute(named_params! {":w": w})?;
    }
    Ok(n)
}

/// A deleted account leaves the administrators a workstation last reported.
pub fn drop_admin_member(tx: &WriteTx<'_>, device: DeviceId, account: &str) -> Result<()> {
    tx.conn()
        .prepare_cached(
            "UPDATE devices SET admin_members =
                (SELECT coalesce(json_group_array(value), '[]') FROM json_each(admin_members) WHERE value != :a)
             WHERE id = :d",
        )?
        .execute(named_params! {":a": account, ":d": device})?;
    Ok(())
}
