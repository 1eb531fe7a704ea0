-- Migration 9: what the portal shows must be what the workstation did, and step-up must not
-- break the page it happens on.

-- A grant the agent could not carry out ends `failed`, with the agent's reason in `failure`.
-- SQLite cannot widen a CHECK in place: the table is copied out and rebuilt (no other table
-- references it; parents are copied before their extensions).
CREATE TABLE requests_before_9 AS SELECT * FROM requests;
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
                          'declined', 'expired', 'ended_by_user', 'revoked', 'failed')),
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
    policy_id         TEXT,
    -- The workstation confirmed the grant (until then it is not shown as a running session).
    granted_at        INTEGER,
    -- Why the workstation could not carry the grant out (state `failed`).
    failure           TEXT
) STRICT;
INSERT INTO requests (id, tenant_id, device_id, endpoint_user_id, kind, parent_id, minutes_requested, minutes_approved, justification, ticket, state, version, decided_by, decided_by_rule, reason, created_at, decided_at, expires_at, ended_at, app, grant_scope, policy_id)
    SELECT id, tenant_id, device_id, endpoint_user_id, kind, parent_id, minutes_requested, minutes_approved, justification, ticket, state, version, decided_by, decided_by_rule, reason, created_at, decided_at, expires_at, ended_at, app, grant_scope, policy_id FROM requests_before_9 ORDER BY created_at, (parent_id IS NOT NULL);
DROP TABLE requests_before_9;
-- JIT-04: one open (pending or active) admin request per endpoint user, enforced here.
CREATE UNIQUE INDEX requests_one_open ON requests (tenant_id, endpoint_user_id)
    WHERE kind = 'admin' AND state IN ('pending', 'approved');
CREATE INDEX requests_tenant_state ON requests (tenant_id, state, created_at);
CREATE INDEX requests_due ON requests (state, expires_at);

-- A technician login the workstation refused keeps the agent's reason.
ALTER TABLE logins ADD COLUMN failure TEXT;

-- The CSRF token follows the sign-in, not the cookie value: step-up renews the session id
-- and the open page's token stays valid. Only a random seed is stored; the token is a MAC of
-- it under a key derived from master.key, so the database alone does not reveal it.
ALTER TABLE web_sessions ADD COLUMN csrf_seed BLOB;

-- Every person an endpoint user was linked to, and when (JIT-01): an approval is refused to
-- anyone linked to the requesting account at any time while the request was open, so
-- unlinking oneself does not open a way to approve one's own request.
CREATE TABLE endpoint_user_links (
    endpoint_user_id TEXT NOT NULL REFERENCES endpoint_users (id),
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    user_id          TEXT NOT NULL REFERENCES users (id),
    linked_at        INTEGER NOT NULL,
    unlinked_at      INTEGER
) STRICT;
CREATE INDEX endpoint_user_links_of ON endpoint_user_links (endpoint_user_id, user_id);
INSERT INTO endpoint_user_links (endpoint_user_id, tenant_id, user_id, linked_at)
    SELECT id, tenant_id, user_id, created_at FROM endpoint_users WHERE user_id IS NOT NULL;
