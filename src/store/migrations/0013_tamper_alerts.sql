-- Migration 13: tamper evidence. A tenant says how long a workstation holding open admin
-- rights or a technician login may stay silent; a device carries its open alert (shown as a
-- badge) until it checks in again.
ALTER TABLE tenants ADD COLUMN silence_alert_minutes INTEGER NOT NULL DEFAULT 10 CHECK (silence_alert_minutes BETWEEN 1 AND 1440);
ALTER TABLE devices ADD COLUMN alert TEXT;
ALTER TABLE devices ADD COLUMN alert_at INTEGER;
