-- Migration 11: each webhook says which events it hears. Existing webhooks keep hearing what
-- they heard before: new requests and extensions.
ALTER TABLE webhooks ADD COLUMN events TEXT NOT NULL DEFAULT 'request.created,request.extension';
