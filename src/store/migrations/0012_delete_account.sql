-- Migration 12: a workstation account can be deleted (erasing a person removes their msp-/co-
-- account from every workstation), and a tenant can have standing administrators removed. SQLite cannot widen a CHECK in place: the table is copied
-- out and rebuilt (no other table references it).
CREATE TABLE commands_before_12 AS SELECT * FROM commands;
DROP TABLE commands;
CREATE TABLE commands (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('grant_admin', 'revoke_admin', 'ensure_account', 'rotate_password',
                   'disable_account', 'delete_account', 'logoff', 'notify', 'set_offline_secret', 'policy_update',
                   'set_standing_admins')),
    -- Arguments with secrets (passwords, offline secrets) blanked; the full arguments sealed.
    args       TEXT NOT NULL,
    args_sealed BLOB,
    issued_at  INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('queued', 'done', 'failed', 'refused', 'expired')),
    acked_at   INTEGER,
    details    TEXT,
    UNIQUE (device_id, seq)
) STRICT;
CREATE INDEX commands_device_state ON commands (device_id, state, seq);
CREATE INDEX commands_tenant ON commands (tenant_id, issued_at);
INSERT INTO commands SELECT * FROM commands_before_12;
DROP TABLE commands_before_12;
