-- Incident-aware intake (issue 10): a ticket opened while an outage is open on its
-- customer's platform is linked to it; the outage's restoration notice goes to the linked
-- tickets' requesters.
CREATE TABLE ticket_outages (
    ticket_id       INTEGER NOT NULL REFERENCES tickets (id),
    announcement_id INTEGER NOT NULL REFERENCES announcements (id),
    linked_at       TEXT    NOT NULL,
    PRIMARY KEY (ticket_id, announcement_id)
) WITHOUT ROWID;
-- The tickets of one outage (its restoration).
CREATE INDEX ticket_outages_of ON ticket_outages (announcement_id, ticket_id);
-- Intake reads the open outages of every platform (a few rows).
CREATE INDEX announcements_open ON announcements (kind, state);
