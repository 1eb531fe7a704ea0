//! Names for ids: what pages and exports show instead of internal ids (people by name,
//! workstations by host name; policies, rules, roles, tenants, webhooks and tokens by name;
//! requests and logins as "account on host"). The audit chain keeps ids only (DESIGN §6);
//! names are joined in here, when the log is shown or exported.
//!
//! Callers pass ids taken from rows they were allowed to read (ids are unguessable UUIDs), so
//! this lookup reveals nothing a tenant scope would hide.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, named_params};

use super::Reader;
use crate::error::Result;

pub fn labels(r: &Reader<'_>, ids: &[String]) -> Result<HashMap<String, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let json = serde_json::to_string(ids)?;
    let mut st = r.conn.prepare_cached(
        "WITH wanted(id) AS (SELECT value FROM json_each(:ids))
         SELECT id, first_name || ' ' || last_name FROM users WHERE id IN wanted
         UNION ALL SELECT id, hostname FROM devices WHERE id IN wanted
         UNION ALL SELECT id, name FROM policies WHERE id IN wanted
         UNION ALL SELECT id, name FROM auto_approval_rules WHERE id IN wanted
         UNION ALL SELECT id, name FROM roles WHERE id IN wanted
         UNION ALL SELECT id, name FROM tenants WHERE id IN wanted
         UNION ALL SELECT id, name FROM webhooks WHERE id IN wanted
         UNION ALL SELECT id, name FROM api_tokens WHERE id IN wanted
         UNION ALL SELECT c.id, c.kind || coalesce(' ' || json_extract(c.args, '$.account'), '')
             FROM commands c WHERE c.id IN wanted
         UNION ALL SELECT l.id, l.account || ' on ' || d.hostname FROM logins l
             JOIN devices d ON d.id = l.device_id WHERE l.id IN wanted
         UNION ALL SELECT q.id, e.account || ' on ' || d.hostname FROM requests q
             JOIN endpoint_users e ON e.id = q.endpoint_user_id JOIN devices d ON d.id = q.device_id
             WHERE q.id IN wanted",
    )?;
    let rows = st.query_map(named_params! {":ids": json}, |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let (id, label) = row?;
        out.insert(id, label);
    }
    Ok(out)
}

/// Who, where and with which account a technician login was, as they are called now.
pub fn login_names(r: &Reader<'_>, login: &str) -> Result<Option<(String, String, String)>> {
    let mut st = r.conn.prepare_cached(
        "SELECT u.email, d.hostname, l.account FROM logins l
         JOIN users u ON u.id = l.user_id JOIN devices d ON d.id = l.device_id WHERE l.id = :l",
    )?;
    Ok(st
        .query_row(named_params! {":l": login}, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?)
}

/// A person's email, the kind of their tenant and their username (from which their
/// workstation account is named).
pub fn person(r: &Reader<'_>, user: &str) -> Result<Option<(String, String, String)>> {
    let mut st = r.conn.prepare_cached(
        "SELECT u.email, t.kind, u.username FROM users u JOIN tenants t ON t.id = u.tenant_id
         WHERE u.id = :u",
    )?;
    Ok(st
        .query_row(named_params! {":u": user}, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?)
}
