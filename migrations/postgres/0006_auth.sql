-- 0008_auth of SQLite: the sender-authenticity verdict on each inbound mail, and the
-- throttle of the internal alerts about forged agent mail.
ALTER TABLE inbound ADD COLUMN auth_result TEXT;
ALTER TABLE inbound ADD COLUMN auth_method TEXT;
ALTER TABLE inbound ADD COLUMN auth_detail TEXT;
CREATE TABLE alert_throttle (
    key     TEXT PRIMARY KEY,
    last_at TIMESTAMPTZ NOT NULL
);
