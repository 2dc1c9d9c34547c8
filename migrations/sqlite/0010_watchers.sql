-- Watchers and threading (issue 13: the email channel, complete).

-- A ticket's watchers: people of the customer who get its public updates in Cc and whose
-- replies count like the requester's. A row whose `removed_at` is set is no longer watching
-- (the watcher sent #unwatch, or an agent removed them): a later Cc does not bring it back,
-- only an agent's `#cc add` does.
CREATE TABLE ticket_watchers (
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    address    TEXT    NOT NULL,           -- lower-case
    added_by   TEXT    NOT NULL,           -- `cc` (from a customer's mail) or the agent
    added_at   TEXT    NOT NULL,
    removed_by TEXT,
    removed_at TEXT,
    PRIMARY KEY (ticket_id, address)
) WITHOUT ROWID;

-- How a follow-up found its ticket when not by In-Reply-To / References: `tag` (the
-- subject's [REF], e.g. when a provider rewrote our Message-ID) or `text`. NULL: by its
-- headers (the rule, so it costs no write), or not a follow-up.
ALTER TABLE inbound ADD COLUMN threaded_by TEXT;
