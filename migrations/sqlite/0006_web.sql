-- The web (issue 9): API tokens, the customers' ticket-page tokens, and the indexes the
-- listings and /metrics read through.

-- Bearer tokens of the JSON API and the ops pages: only the SHA-256 of each (hex) is kept.
CREATE TABLE api_tokens (
    name        TEXT NOT NULL PRIMARY KEY,
    scope       TEXT NOT NULL,             -- read | agent | admin
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- The customer's page of a ticket, /t/TOKEN: the SHA-256 (hex) of its 128-bit token.
CREATE TABLE ticket_tokens (
    ticket_id  INTEGER NOT NULL PRIMARY KEY REFERENCES tickets (id),
    token_hash TEXT    NOT NULL UNIQUE
);

-- Listings by status, newest first.
CREATE INDEX tickets_status ON tickets (status, id);
-- /metrics and /readyz: counts of unsent outbound mail per state and the oldest pending,
-- without reading the sent rows.
CREATE INDEX outbox_unsent ON outbox (state, created_at) WHERE state <> 'sent';
