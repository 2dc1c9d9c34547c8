-- ticketgate schema, SQLite. Times are RFC 3339 UTC text with microseconds (text order is
-- time order). New columns must be NOT NULL with a DEFAULT, or nullable.

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY,
    customer        TEXT    NOT NULL,
    support_key     TEXT    NOT NULL,
    plan            TEXT    NOT NULL,
    language        TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    severity        INTEGER NOT NULL,
    stated_severity TEXT,
    subject         TEXT    NOT NULL,
    requester       TEXT    NOT NULL,
    requester_name  TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX tickets_customer ON tickets (customer, id);

-- Every inbound mail, raw, with what it did. dedup_key makes re-delivery a no-op; it is
-- found through dedup_hash (FNV-1a 64 of the key), a small integer index that stays cheap to
-- write however random the keys are. The single writer checks before it inserts.
CREATE TABLE inbound (
    id          INTEGER PRIMARY KEY,
    dedup_hash  INTEGER NOT NULL,
    dedup_key   TEXT    NOT NULL,
    message_id  TEXT,
    source      TEXT    NOT NULL,
    received_at TEXT    NOT NULL,
    from_addr   TEXT,
    subject     TEXT    NOT NULL DEFAULT '',
    size        INTEGER NOT NULL,
    raw         BLOB    NOT NULL,
    outcome     TEXT    NOT NULL,          -- created | appended | quarantined | replayed
    reason_code TEXT,
    reason      TEXT,
    ticket_id   INTEGER REFERENCES tickets (id)
);
CREATE INDEX inbound_dedup ON inbound (dedup_hash);
CREATE INDEX inbound_quarantined ON inbound (id) WHERE outcome = 'quarantined';

CREATE TABLE articles (
    id         INTEGER PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id),
    inbound_id INTEGER REFERENCES inbound (id),
    kind       TEXT    NOT NULL,           -- customer | agent | note | system
    author     TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    quoted     TEXT    NOT NULL DEFAULT '',
    created_at TEXT    NOT NULL
);
CREATE INDEX articles_ticket ON articles (ticket_id, id);

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    article_id   INTEGER NOT NULL REFERENCES articles (id),
    filename     TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL,
    data         BLOB                      -- NULL: over the size limit, not kept
);
CREATE INDEX attachments_article ON attachments (article_id);

-- Message-IDs we sent for a ticket: threading by In-Reply-To / References. (Message-IDs we
-- received are found through inbound.dedup_key.)
CREATE TABLE message_ids (
    message_id TEXT    NOT NULL PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets (id)
) WITHOUT ROWID;

-- Outbound mail, written in the same transaction as the change that caused it.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    ticket_id       INTEGER REFERENCES tickets (id),
    inbound_id      INTEGER REFERENCES inbound (id),
    kind            TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    recipient_hash  INTEGER NOT NULL,      -- FNV-1a 64 of recipient, for the cap's index
    subject         TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    automatic       INTEGER NOT NULL,      -- 1: counts toward the per-recipient auto-reply cap
    body            BLOB    NOT NULL,      -- the whole RFC 5322 message
    state           TEXT    NOT NULL,      -- pending | sending | retry | sent | failed | dead | suppressed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,      -- for 'sending': when the claim lapses
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state IN ('pending', 'retry', 'sending');
CREATE INDEX outbox_auto ON outbox (recipient_hash, created_at) WHERE automatic = 1 AND state <> 'suppressed';
