-- KPI reports (issue: operators and customers on the web): a customer's tickets of a period
-- are one range of this index; their history and escalations are found through the
-- per-ticket indexes that exist already.
CREATE INDEX tickets_customer_created ON tickets (customer, created_at);
