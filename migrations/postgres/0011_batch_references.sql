-- The batch's flush (store/postgres/batch.rs, FLUSH_SQL) made cheaper on the server (ADR 0016).
--
-- 1. The references written only by that statement are checked by it as a set, not row by
--    row by foreign-key triggers: the triggers were ~55 % of the flush's server time. Tickets
--    and inbound mail are never deleted, so a reference that held when written holds for
--    good. The other foreign keys (parent ticket, attachments, history, escalations,
--    watchers, tokens, outage links) stay.
ALTER TABLE inbound DROP CONSTRAINT IF EXISTS inbound_ticket_id_fkey;
ALTER TABLE articles DROP CONSTRAINT IF EXISTS articles_ticket_id_fkey,
                     DROP CONSTRAINT IF EXISTS articles_inbound_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_ticket_id_fkey,
                   DROP CONSTRAINT IF EXISTS outbox_inbound_id_fkey;
ALTER TABLE message_ids DROP CONSTRAINT IF EXISTS message_ids_ticket_id_fkey;
ALTER TABLE timers DROP CONSTRAINT IF EXISTS timers_ticket_id_fkey;

-- 2. Raw mail and rendered outbound mail over the TOAST threshold (~2 kB) compressed with
--    lz4, not pglz: the inbound rows' insert took about half the time. New values only; old
--    ones stay readable. A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE inbound ALTER COLUMN raw SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not supported by this server: raw mail stays compressed with pglz';
END
$$;
