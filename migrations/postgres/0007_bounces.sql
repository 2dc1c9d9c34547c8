-- 0009_bounces of SQLite: suppression list, soft-bounce scores, bounce counters, outbox flag.
CREATE TABLE suppressions (
    address    TEXT        PRIMARY KEY,
    kind       TEXT        NOT NULL,
    reason     TEXT        NOT NULL,
    status     TEXT,
    outbox_id  BIGINT,
    ticket_id  BIGINT,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE bounce_scores (
    address  TEXT             PRIMARY KEY,
    score    DOUBLE PRECISION NOT NULL,
    bounces  BIGINT           NOT NULL,
    first_at TIMESTAMPTZ      NOT NULL,
    last_at  TIMESTAMPTZ      NOT NULL
);

CREATE TABLE bounce_counts (
    kind  TEXT   PRIMARY KEY,
    count BIGINT NOT NULL
);

ALTER TABLE outbox ADD COLUMN flag TEXT;
