-- Hourglass canonical schema. A new database is created from this file; older databases
-- reach it through src/store/migrations/NNNN_*.sql (a test proves both give the same schema).
-- Conventions: ids are UUIDv7 TEXT, timestamps INTEGER UTC milliseconds, enums TEXT + CHECK.

PRAGMA application_id = 1212632147; -- 'HGLS': marks the file as an Hourglass database
PRAGMA user_version = 15;

-- Appliance-wide key/value settings (last applied configuration, first-start markers).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- TLS certificates; exactly one is active. The private key is sealed with the master key.
CREATE TABLE tls_certificates (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL CHECK (source IN ('self_signed', 'imported')),
    cert_pem    TEXT NOT NULL,
    key_sealed  BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    active      INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX tls_certificates_one_active ON tls_certificates (active) WHERE active = 1;

-- Append-only, hash-chained audit log (DESIGN §6). Personal data lives in other tables;
-- entries reference ids, so erasing a person leaves the chain valid.
CREATE TABLE audit (
    seq                INTEGER PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    at                 INTEGER NOT NULL,
    event              TEXT NOT NULL,
    outcome            TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    tenant_id          TEXT,
    actor_kind         TEXT NOT NULL CHECK (actor_kind IN ('system', 'user', 'api_token', 'device', 'anonymous')),
    actor_id           TEXT,
    target_kind        TEXT,
    target_id          TEXT,
    device_id          TEXT,
    request_identifier TEXT,
    ticket_identifier  TEXT,
    ip                 TEXT,
    http_request_id    TEXT,
    details            TEXT NOT NULL,
    prev_hash          BLOB NOT NULL,
    hash               BLOB NOT NULL
) STRICT;
CREATE INDEX audit_tenant_at ON audit (tenant_id, at);
CREATE INDEX audit_event_at ON audit (event, at);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- The chain head, written with every append, so a deleted tail is noticed by `audit verify`.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
) STRICT;

-- One row rewritten by /healthz to prove the database accepts writes.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
) STRICT;

-- Tenants, people, roles, sign-in (DESIGN §1).
-- time_zone and offline_login_minutes came with migration 8, written as ALTER TABLE writes them.
CREATE TABLE tenants (
    id                       TEXT PRIMARY KEY,
    kind                     TEXT NOT NULL CHECK (kind IN ('msp', 'customer')),
    name                     TEXT NOT NULL,
    slug                     TEXT NOT NULL UNIQUE,
    status                   TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    co_management            INTEGER NOT NULL CHECK (co_management IN (0, 1)),
    login_mode               TEXT NOT NULL CHECK (login_mode IN ('named', 'shared')),
    jit_enabled              INTEGER NOT NULL CHECK (jit_enabled IN (0, 1)),
    jit_justification_required INTEGER NOT NULL CHECK (jit_justification_required IN (0, 1)),
    jit_max_minutes          INTEGER NOT NULL CHECK (jit_max_minutes BETWEEN 5 AND 1440),
    jit_pending_timeout_minutes INTEGER NOT NULL CHECK (jit_pending_timeout_minutes BETWEEN 5 AND 10080),
    seats                    INTEGER NOT NULL CHECK (seats >= 0),
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
    , time_zone TEXT NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64), offline_login_minutes INTEGER NOT NULL DEFAULT 60 CHECK (offline_login_minutes BETWEEN 5 AND 1440), silence_alert_minutes INTEGER NOT NULL DEFAULT 10 CHECK (silence_alert_minutes BETWEEN 1 AND 1440), remove_standing_admins INTEGER NOT NULL DEFAULT 0 CHECK (remove_standing_admins IN (0, 1)), standing_admin_exceptions TEXT NOT NULL DEFAULT '[]') STRICT;
CREATE UNIQUE INDEX tenants_one_msp ON tenants (kind) WHERE kind = 'msp';

-- Email is the login identifier, unique per appliance (stored lower-cased); the username is
-- the workstation account name, unique per tenant.
CREATE TABLE users (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    email             TEXT NOT NULL,
    first_name        TEXT NOT NULL,
    last_name         TEXT NOT NULL,
    username          TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('invited', 'active', 'disabled', 'erased')),
    password_hash     TEXT,
    totp_sealed       BLOB,
    totp_last_step    INTEGER NOT NULL DEFAULT 0,
    totp_failures     INTEGER NOT NULL DEFAULT 0,
    totp_window_start INTEGER NOT NULL DEFAULT 0,
    totp_window_count INTEGER NOT NULL DEFAULT 0,
    mfa_locked        INTEGER NOT NULL DEFAULT 0 CHECK (mfa_locked IN (0, 1)),
    login_failures    INTEGER NOT NULL DEFAULT 0,
    last_failure_at   INTEGER NOT NULL DEFAULT 0,
    login_locked      INTEGER NOT NULL DEFAULT 0 CHECK (login_locked IN (0, 1)),
    mfa_pause_until   INTEGER NOT NULL DEFAULT 0,
    mfa_pause_next    INTEGER NOT NULL DEFAULT 0 CHECK (mfa_pause_next IN (0, 1)),
    all_tenants       INTEGER NOT NULL DEFAULT 1 CHECK (all_tenants IN (0, 1)),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_email ON users (email);
CREATE UNIQUE INDEX users_tenant_username ON users (tenant_id, username);

-- Custom roles per tenant; built-in roles live in code and cannot be edited.
CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
) STRICT;

-- A user's roles: a built-in role key or a custom role id.
CREATE TABLE user_roles (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    user_id   TEXT NOT NULL REFERENCES users (id),
    role      TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
) STRICT;
CREATE INDEX user_roles_tenant ON user_roles (tenant_id, role);

-- Customer tenants an MSP technician is assigned to when not assigned to all.
CREATE TABLE technician_tenants (
    user_id   TEXT NOT NULL REFERENCES users (id),
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    PRIMARY KEY (user_id, tenant_id)
) STRICT;

-- One-time links (first-run setup, enrollment): only the token's hash is stored.
CREATE TABLE one_time_links (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('setup', 'enrollment')),
    token_hash BLOB NOT NULL UNIQUE,
    user_id    TEXT REFERENCES users (id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX one_time_links_user ON one_time_links (user_id);

-- Server-side portal sessions; the cookie holds the only copy of the id, stored here hashed.
CREATE TABLE web_sessions (
    id_hash       BLOB PRIMARY KEY,
    user_id       TEXT REFERENCES users (id),
    stage         TEXT NOT NULL CHECK (stage IN ('pre_auth', 'mfa', 'full')),
    pending_totp  BLOB,
    link_id       TEXT,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    mfa_at        INTEGER NOT NULL DEFAULT 0,
    ip            TEXT,
    user_agent    TEXT
    , csrf_seed BLOB) STRICT;
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- Management API tokens act as their user; only the hash is stored.
-- `sensitive` 1: may do sensitive actions (created after a step-up, always with an expiry).
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
    , sensitive INTEGER NOT NULL DEFAULT 0 CHECK (sensitive IN (0, 1)), expires_at INTEGER) STRICT;
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Workstations, the agent protocol's commands and events (DESIGN §2).
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
, alert TEXT, alert_at INTEGER, agent_hash TEXT NOT NULL DEFAULT '', next_secret_hash BLOB) STRICT;
CREATE INDEX devices_tenant ON devices (tenant_id, hostname);

-- Durable commands, bound to one device with a per-device sequence number and an expiry.
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

-- End-user JIT admin requests and sessions (DESIGN §3).
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

-- Requests: `admin` opens a session, `extension` asks more time for a running one.
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

-- A webhook of a tenant; one in the MSP tenant hears every tenant. The URL (Slack and Teams
-- URLs are bearer secrets) and the HMAC key are sealed; `host` is what the portal shows.
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    name          TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('generic', 'slack', 'teams')),
    host          TEXT NOT NULL,
    url_sealed    BLOB NOT NULL,
    secret_sealed BLOB NOT NULL,
    created_at    INTEGER NOT NULL
    , events TEXT NOT NULL DEFAULT 'request.created,request.extension') STRICT;
CREATE INDEX webhooks_tenant ON webhooks (tenant_id);

-- The outbox: written in the transaction of the event, sent and retried by the sweep.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    event           TEXT NOT NULL,
    request_id      TEXT,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, created_at);

-- A technician's login session on a workstation.
CREATE TABLE logins (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    account    TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('waiting', 'active', 'ended', 'expired', 'revoked', 'failed')),
    minutes    INTEGER NOT NULL CHECK (minutes BETWEEN 5 AND 1440),
    ticket     TEXT,
    revealed   INTEGER NOT NULL DEFAULT 0 CHECK (revealed IN (0, 1)),
    version    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER,
    ended_by   TEXT
    , failure TEXT) STRICT;
-- One open session per account and workstation: a second would change the first one's password.
CREATE UNIQUE INDEX logins_one_open ON logins (device_id, account) WHERE state IN ('waiting', 'active');
CREATE INDEX logins_tenant ON logins (tenant_id, created_at);
CREATE INDEX logins_due ON logins (state, expires_at);

-- Escrowed workstation passwords (CRED-01/02): sealed, `pending` until the agent acknowledges
-- the command that sets it, then `current`; three `old` versions keep their ciphertext, older
-- ones keep only the row (who, when), never the password.
CREATE TABLE credentials (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    device_id       TEXT NOT NULL REFERENCES devices (id),
    account         TEXT NOT NULL,
    login_id        TEXT REFERENCES logins (id),
    command_id      TEXT,
    reason          TEXT NOT NULL CHECK (reason IN ('login', 'rotation')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'current', 'old', 'failed')),
    password_sealed BLOB,
    created_at      INTEGER NOT NULL,
    activated_at    INTEGER
) STRICT;
CREATE INDEX credentials_device ON credentials (device_id, account, created_at);
CREATE INDEX credentials_command ON credentials (command_id);

-- Offline-code secrets (MFA-06/07): one per workstation (named mode) or per tenant (shared).
CREATE TABLE offline_secrets (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    device_id     TEXT REFERENCES devices (id),
    secret_sealed BLOB NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('current', 'old')),
    created_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX offline_secrets_current ON offline_secrets (tenant_id, coalesce(device_id, ''))
    WHERE state = 'current';

-- A tenant's shared account (`msp-` + four digits), unique on the appliance.
CREATE TABLE shared_accounts (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants (id),
    account    TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

-- A policy: its targets, span, access and rules live in `body` (JSON of model::policies),
-- the matching engine's own format, so the bundle an agent caches is exactly what is stored.
CREATE TABLE policies (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX policies_tenant ON policies (tenant_id, name);

-- The version of each tenant's policy bundle, raised by every change.
CREATE TABLE policy_versions (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    version   INTEGER NOT NULL
) STRICT;

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
