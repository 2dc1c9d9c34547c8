-- Sender authenticity: the verdict for each inbound mail's From domain (NULL: received
-- before this version), and the throttle of the internal alerts about forged agent mail.
ALTER TABLE inbound ADD COLUMN auth_result TEXT;
ALTER TABLE inbound ADD COLUMN auth_method TEXT;
ALTER TABLE inbound ADD COLUMN auth_detail TEXT;
CREATE TABLE alert_throttle (
    key     TEXT PRIMARY KEY,
    last_at TEXT NOT NULL
);
