-- Migration 8: application elevation requests (DESIGN §4), tenant time zones, and log-ons
-- of managed accounts seen outside a session.

-- A request may now be for one program (`application`, its attributes in `app`); approving
-- it creates a policy (`policy_id`) for just this request or as a rule (`grant_scope`).
-- SQLite cannot widen a CHECK in place: the table is copied out and rebuilt (no other table
-- references it; parents are copied before their extensions).
CREATE TABLE requests_before_8 AS SELECT * FROM requests;
DROP TABLE requests;
CREATE TABLE requests (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    device_id         TEXT NOT NULL REFERENCES devices (id),
    endpoint_user_id  TEXT NOT NULL REFERENCES endpoint_users (id),
    kind              TEXT NOT NULL CHECK (kind IN ('admin', 'extension', 'application')),
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
    ended_at          INTEGER,
    app               TEXT,
    grant_scope       TEXT CHECK (grant_scope IN ('once', 'user', 'device', 'tenant')),
    policy_id         TEXT
) STRICT;
INSERT INTO requests (id, tenant_id, device_id, endpoint_user_id, kind, parent_id, minutes_requested, minutes_approved, justification, ticket, state, version, decided_by, decided_by_rule, reason, created_at, decided_at, expires_at, ended_at)
    SELECT id, tenant_id, device_id, endpoint_user_id, kind, parent_id, minutes_requested, minutes_approved, justification, ticket, state, version, decided_by, decided_by_rule, reason, created_at, decided_at, expires_at, ended_at FROM requests_before_8 ORDER BY created_at, (parent_id IS NOT NULL);
DROP TABLE requests_before_8;
-- JIT-04: one open (pending or active) admin request per endpoint user, enforced here.
CREATE UNIQUE INDEX requests_one_open ON requests (tenant_id, endpoint_user_id)
    WHERE kind = 'admin' AND state IN ('pending', 'approved');
CREATE INDEX requests_tenant_state ON requests (tenant_id, state, created_at);
CREATE INDEX requests_due ON requests (state, expires_at);

-- Policy windows and auto-approval times are read in the tenant's time zone (IANA name).
ALTER TABLE tenants ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64);
-- How long an offline login lasts before the agent rotates and disables the account.
ALTER TABLE tenants ADD COLUMN offline_login_minutes INTEGER NOT NULL DEFAULT 60 CHECK (offline_login_minutes BETWEEN 5 AND 1440);

-- A managed account's log-on the agent saw outside any login session (CRED-03): its password
-- is rotated and the account disabled when the grace period ends, unless a session covers it.
CREATE TABLE stray_logons (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    account    TEXT NOT NULL,
    seen_at    INTEGER NOT NULL,
    due_at     INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'rotated', 'cleared'))
) STRICT;
CREATE UNIQUE INDEX stray_logons_one_pending ON stray_logons (device_id, account) WHERE state = 'pending';
CREATE INDEX stray_logons_due ON stray_logons (state, due_at);
