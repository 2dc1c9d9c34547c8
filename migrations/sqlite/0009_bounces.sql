-- Bounces (issue 11): addresses we no longer write to automatically, the soft-bounce score
-- of each address (Mailman style: one point per day with a soft bounce, forgotten after a
-- quiet week), counters of the bounces read, and a flag on outbound mail written to a
-- suppressed address anyway (a person's answer).
CREATE TABLE suppressions (
    address    TEXT    PRIMARY KEY,       -- lower case
    kind       TEXT    NOT NULL,          -- hard | soft
    reason     TEXT    NOT NULL,
    status     TEXT,                      -- enhanced status code of the bounce, e.g. 5.1.1
    outbox_id  INTEGER,                   -- the message that bounced
    ticket_id  INTEGER,
    created_at TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE bounce_scores (
    address  TEXT    PRIMARY KEY,
    score    REAL    NOT NULL,
    bounces  INTEGER NOT NULL,            -- soft bounces read, all of them
    first_at TEXT    NOT NULL,            -- first soft bounce of this run
    last_at  TEXT    NOT NULL             -- the last one that counted
) WITHOUT ROWID;

CREATE TABLE bounce_counts (
    kind  TEXT    PRIMARY KEY,            -- hard | soft | forged | unverified
    count INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE outbox ADD COLUMN flag TEXT;
