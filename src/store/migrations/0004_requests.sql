-- Migration 4: end-user JIT admin requests and sessions (DESIGN §3).

-- A local account on a workstation that asked for rights, optionally linked to a person.
CREATE TABLE endpoint_users (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    account    TEXT NOT NULL,
    user_id    TEXT REFERENCES users (id),
    created_at INTEGER NOT NULL,
    UNIQUE (device_id, account)
) STRICT;
CREATE INDEX endpoint_users_tenant ON endpoint_users (tenant_id, account);

-- Requests: `admin` opens a session, `extension` asks more time for a running one.
CREATE TABLE requests (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    device_id         TEXT NOT NULL REFERENCES devices (id),
    endpoint_user_id  TEXT NOT NULL REFERENCES endpoint_users (id),
    kind              TEXT NOT NULL CHECK (kind IN ('admin', 'extension')),
    parent_id         TEXT REFERENCES requests (id),
    minutes_requested INTEGER NOT NULL CHECK (minutes_requested BETWEEN 5 AND 1440),
    minutes_approved  INTEGER CHECK (minutes_approved BETWEEN 5 AND 1440),
    justification     TEXT NOT NULL,
    ticket            TEXT,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'cancelled', 'timed_out',
                          'declined', 'expired', 'ended_by_user', 'revoked')),
    version           INTEGER NOT NULL DEFAULT 1,
    decided_by        TEXT,
    decided_by_rule   TEXT,
    reason            TEXT,
    created_at        INTEGER NOT NULL,
    decided_at        INTEGER,
    expires_at        INTEGER,
    ended_at          INTEGER
) STRICT;
-- JIT-04: one open (pending or active) admin request per endpoint user, enforced here.
CREATE UNIQUE INDEX requests_one_open ON requests (tenant_id, endpoint_user_id)
    WHERE kind = 'admin' AND state IN ('pending', 'approved');
CREATE INDEX requests_tenant_state ON requests (tenant_id, state, created_at);
CREATE INDEX requests_due ON requests (state, expires_at);

-- Auto-approval rules (ManageEngine's autonomous approval); every set condition must hold.
CREATE TABLE auto_approval_rules (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    name             TEXT NOT NULL,
    account          TEXT,
    device_id        TEXT REFERENCES devices (id),
    max_minutes      INTEGER NOT NULL CHECK (max_minutes BETWEEN 5 AND 1440),
    from_minute      INTEGER CHECK (from_minute BETWEEN 0 AND 1439),
    to_minute        INTEGER CHECK (to_minute BETWEEN 0 AND 1440),
    created_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX auto_approval_rules_tenant ON auto_approval_rules (tenant_id);
