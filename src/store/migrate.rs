//! schema.sql creates new databases; numbered migrations bring older ones up to it.

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The canonical schema (its `PRAGMA user_version` is `CURRENT_VERSION`).
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// Migration N turns a version N-1 database into version N. Migration 1 is the first released
/// schema, so an empty database migrated through all of them must equal `SCHEMA`.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_people.sql")),
    (3, include_str!("migrations/0003_devices.sql")),
    (4, include_str!("migrations/0004_requests.sql")),
    (5, include_str!("migrations/0005_webhooks.sql")),
    (6, include_str!("migrations/0006_logins.sql")),
    (7, include_str!("migrations/0007_policies.sql")),
    (8, include_str!("migrations/0008_applications.sql")),
    (9, include_str!("migrations/0009_portal.sql")),
    (10, include_str!("migrations/0010_token_scopes.sql")),
    (11, include_str!("migrations/0011_webhook_events.sql")),
    (12, include_str!("migrations/0012_delete_account.sql")),
    (13, include_str!("migrations/0013_tamper_alerts.sql")),
    (14, include_str!("migrations/0014_agent_hash.sql")),
    (
        15,
        include_str!("migrations/0015_device_secret_rotation.sql"),
    ),
];

pub const CURRENT_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Applies the canonical schema to an empty database in one transaction.
pub fn create(conn: &Connection) -> Result<()> {
    conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{SCHEMA}\nCOMMIT;"))
        .map_err(|e| Error::startup(format!("cannot create the database schema: {e}")))?;
    check_version(conn, CURRENT_VERSION)
}

/// Upgrades a database at `from` to `CURRENT_VERSION`, one transaction per step.
/// Returns the starting version when anything was applied.
pub fn upgrade(conn: &Connection, from: i64) -> Result<Option<i64>> {
    if from >= CURRENT_VERSION {
        return Ok(None);
    }
    apply_from(conn, from)?;
    Ok(Some(from))
}

/// Applies every migration above `from` (also used by the schema-equality test from 0).
pub fn apply_from(conn: &Connection, from: i64) -> Result<()> {
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > from) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK;");
            Error::startup(format!("migration {version} failed: {e}"))
        })?;
    }
    check_version(conn, CURRENT_VERSION)
}

fn check_version(conn: &Connection, want: i64) -> Result<()> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if v != want {
        return Err(Error::startup(format!(
            "schema version is {v} after setup, expected {want}"
        )));
    }
    Ok(())
}

/// A normalised description of a schema (objects, their SQL, the header values), for the
/// migration-equality test and `hourglass` diagnostics.
pub fn describe(conn: &Connection) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let app: i64 = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let ver: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    out.push(format!("application_id={app}"));
    out.push(format!("user_version={ver}"));
    let mut st = conn.prepare(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )?;
    let rows = st.query_map([], |r| {
        let (t, n, tb, sql): (String, String, String, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        Ok(format!(
            "{t} {n} on {tb}: {}",
            sql.split_whitespace().collect::<Vec<_>>().join(" ")
        ))
    })?;
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_the_oldest_schema_gives_exactly_schema_sql() {
        let fresh = Connection::open_in_memory().unwrap();
        create(&fresh).unwrap();
        let migrated = Connection::open_in_memory().unwrap();
        apply_from(&migrated, 0).unwrap();
        let a = describe(&fresh).unwrap();
        let b = describe(&migrated).unwrap();
        assert!(a.len() > 5, "{a:?}");
        assert_eq!(a, b);
    }

    #[test]
    fn migration_8_keeps_every_request_and_its_extension() {
        let c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", true).unwrap();
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 7) {
            c.execute_batch(&format!("{sql}\nPRAGMA user_version = {v};"))
                .unwrap();
        }
        c.execute_batch(
            "INSERT INTO tenants VALUES ('t', 'msp', 'M', 'm', 'active', 0, 'named', 1, 0, 60, 60, 0, 1, 1);
             INSERT INTO devices (id, tenant_id, hostname, os, os_version, agent_version, secret_hash, status,
                 enrolled_at, last_seen_at) VALUES ('d', 't', 'h', 'linux', '1', '1', x'00', 'active', 1, 1);
             INSERT INTO endpoint_users (id, tenant_id, device_id, account, created_at) VALUES ('e', 't', 'd', 'ann', 1);
             INSERT INTO requests (id, tenant_id, device_id, endpoint_user_id, kind, minutes_requested, justification,
                 state, created_at) VALUES ('r1', 't', 'd', 'e', 'admin', 30, 'why', 'approved', 1);
             INSERT INTO requests (id, tenant_id, device_id, endpoint_user_id, kind, parent_id, minutes_requested,
                 justification, state, created_at) VALUES ('r2', 't', 'd', 'e', 'extension', 'r1', 15, 'more', 'pending', 2);",
        )
        .unwrap();
        apply_from(&c, 7).unwrap();
        let rows: Vec<(String, Option<String>, String)> = c
            .prepare("SELECT id, parent_id, state FROM requests ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("r1".into(), None, "approved".into()),
                ("r2".into(), Some("r1".into()), "pending".into())
            ]
        );
        let tz: String = c
            .query_row("SELECT time_zone FROM tenants", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tz, "UTC");
        // The one-open index came back with the table.
        assert!(
            c.execute_batch(
                "INSERT INTO requests (id, tenant_id, device_id, endpoint_user_id, kind, minutes_requested,
                    justification, state, created_at) VALUES ('r3', 't', 'd', 'e', 'admin', 30, '', 'pending', 3);"
            )
            .is_err()
        );
    }

    #[test]
    fn versions_are_numbered_without_gaps() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i as i64 + 1);
        }
        assert!(SCHEMA.contains(&format!("PRAGMA user_version = {CURRENT_VERSION};")));
    }
}
