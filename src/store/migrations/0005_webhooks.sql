-- Migration 5: outgoing webhooks to approvers and their delivery log (DESIGN §3, issue 5).

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
) STRICT;
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
