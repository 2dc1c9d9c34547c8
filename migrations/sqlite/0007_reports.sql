-- KPI reports (issue: operators and customers on the web): a customer's tickets of a period
-- are one range of this index; their history and escalations are found through the
-- per-ticket indexes that exist already.
CREATE INDEX tickets_customer_created ON tickets (customer, created_at);
-- The first resolution and whether a ticket was reopened, read from the index alone.
CREATE INDEX status_history_report ON status_history (ticket_id, to_status, from_status, at);
