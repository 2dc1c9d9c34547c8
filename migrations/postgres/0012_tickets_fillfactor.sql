-- Tickets are updated in place far more often than they are inserted (every follow-up,
-- every timer a tick fires). With room left on each page, an update that changes no indexed
-- column (a reminder, an escalation: not the status, customer, id or creation time) stays
-- on its page as a HOT update and touches none of the table's four indexes; on a full page
-- each such update writes a new entry into every index (ADR 0017). Applies to the pages
-- written from now on (a table rewrite, e.g. VACUUM FULL, applies it to the old ones).
ALTER TABLE tickets SET (fillfactor = 80);
