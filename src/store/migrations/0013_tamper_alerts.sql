-- Migration 13: tamper evidence and standing administrators. A tenant says how long a workstation holding open admin
-- rights or a technician login may stay silent; a device carries its open alert (shown as a
-- badge) until it checks in again.
ALTER TABLE tenants ADD COLUMN silence_alert_minutes INTEGER NOT NULL DEFAULT 10 CHECK (silence_alert_minutes BETWEEN 1 AND 1440);
-- Standing administrators (found at enrollment) removed by the agent, except those named.
ALTER TABLE tenants ADD COLUMN remove_standing_admins INTEGER NOT NULL DEFAULT 0 CHECK (remove_standing_admins IN (0, 1));
ALTER TABLE tenants ADD COLUMN standing_admin_exceptions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN alert TEXT;
ALTER TABLE devices ADD COLUMN alert_at INTEGER;
