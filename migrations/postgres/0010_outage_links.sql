-- 0014_outage_links of SQLite: tickets linked to the outage open when they were opened.
CREATE TABLE ticket_outages (
    ticket_id       BIGINT      NOT NULL REFERENCES tickets (id),
    announcement_id BIGINT      NOT NULL REFERENCES announcements (id),
    linked_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ticket_id, announcement_id)
);
CREATE INDEX ticket_outages_of ON ticket_outages (announcement_id, ticket_id);
CREATE INDEX announcements_open ON announcements (kind, state);
