-- 0010_watchers of SQLite: a ticket's watchers, and how a follow-up found its ticket.
CREATE TABLE ticket_watchers (
    ticket_id  BIGINT      NOT NULL REFERENCES tickets (id),
    address    TEXT        NOT NULL,
    added_by   TEXT        NOT NULL,
    added_at   TIMESTAMPTZ NOT NULL,
    removed_by TEXT,
    removed_at TIMESTAMPTZ,
    PRIMARY KEY (ticket_id, address)
);

-- `tag` or `text` when a follow-up was not found by its headers; NULL: by its headers.
ALTER TABLE inbound ADD COLUMN threaded_by TEXT;
