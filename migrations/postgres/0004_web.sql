-- 0006_web of SQLite: API tokens, ticket-page tokens, listing and metrics indexes.
CREATE TABLE api_tokens (
    name        TEXT        NOT NULL PRIMARY KEY,
    scope       TEXT        NOT NULL,
    token_hash  TEXT        NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

CREATE TABLE ticket_tokens (
    ticket_id  BIGINT NOT NULL PRIMARY KEY REFERENCES tickets (id),
    token_hash TEXT   NOT NULL UNIQUE
);

CREATE INDEX tickets_status ON tickets (status, id);
CREATE INDEX outbox_unsent ON outbox (state, created_at) WHERE state <> 'sent';
