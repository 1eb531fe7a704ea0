-- Migration 3: workstations, the agent protocol's commands and events (DESIGN §2).

-- Tenant enrollment tokens: only the hash is stored; expiry, use count, revocation.
CREATE TABLE enrollment_tokens (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    token_hash BLOB NOT NULL UNIQUE,
    uses_left  INTEGER NOT NULL CHECK (uses_left >= 0),
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    created_by TEXT,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX enrollment_tokens_tenant ON enrollment_tokens (tenant_id, created_at);

-- Enrolled workstations; the device secret only as its SHA-256.
CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    hostname      TEXT NOT NULL,
    os            TEXT NOT NULL,
    os_version    TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    secret_hash   BLOB NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    admin_members TEXT NOT NULL DEFAULT '[]',
    next_seq      INTEGER NOT NULL DEFAULT 1,
    enrolled_at   INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    retired_at    INTEGER
) STRICT;
CREATE INDEX devices_tenant ON devices (tenant_id, hostname);

-- Durable commands, bound to one device with a per-device sequence number and an expiry.
CREATE TABLE commands (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('grant_admin', 'revoke_admin', 'ensure_account', 'rotate_password',
                   'disable_account', 'logoff', 'notify', 'set_offline_secret', 'policy_update')),
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

-- Agent events, deduplicated by their idempotent id.
CREATE TABLE device_events (
    device_id   TEXT NOT NULL REFERENCES devices (id),
    event_id    TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    kind        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    data        TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, event_id)
) STRICT;
CREATE INDEX device_events_tenant ON device_events (tenant_id, received_at);
