-- The whole size a source declared for a mail of which it handed over the header only (IMAP:
-- RFC822.SIZE of a mail over inbound.max_message_size). NULL: `raw` is the whole mail.
-- A replay reads it so that such a mail stays quarantined as too large; `quarantine list`
-- shows it instead of the header's size.
ALTER TABLE inbound ADD COLUMN declared_size BIGINT;
