-- The references written only by a batch's flush (store/postgres/batch.rs, FLUSH_SQL) are
-- checked by that statement as a set, not row by row by foreign-key triggers: the triggers
-- were ~55 % of the flush's server time (ADR 0016). Tickets and inbound mail are never
-- deleted, so a reference that held when written holds for good. The other foreign keys
-- (parent ticket, attachments, history, escalations, watchers, tokens, outage links) stay.
ALTER TABLE inbound DROP CONSTRAINT IF EXISTS inbound_ticket_id_fkey;
ALTER TABLE articles DROP CONSTRAINT IF EXISTS articles_ticket_id_fkey,
                     DROP CONSTRAINT IF EXISTS articles_inbound_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_ticket_id_fkey,
                   DROP CONSTRAINT IF EXISTS outbox_inbound_id_fkey;
ALTER TABLE message_ids DROP CONSTRAINT IF EXISTS message_ids_ticket_id_fkey;
ALTER TABLE timers DROP CONSTRAINT IF EXISTS timers_ticket_id_fkey;
