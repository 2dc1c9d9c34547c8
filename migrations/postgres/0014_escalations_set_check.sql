-- The tick's escalations (ADR 0020): their reference to the ticket is checked by the batch's
-- flush as a set (store/postgres/batch.rs, FLUSH_SQL), like the references of migration 0011
-- (ADR 0016), not row by row by a foreign-key trigger: 500 trigger calls in a tick that
-- escalates 500 tickets, each a query of its own. Only that statement writes `escalations`
-- (every PostgreSQL write transaction writes through it), and tickets are never deleted.
ALTER TABLE escalations DROP CONSTRAINT IF EXISTS escalations_ticket_id_fkey;
