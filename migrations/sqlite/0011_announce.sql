-- Announcements to distribution lists (issue 10): subscribers, announcements (outages,
-- maintenance, releases, information) and the mails each sent.

-- A list's subscribers. AUTOINCREMENT: an id is never used again, so an unsubscribe token
-- (which names the id) of a removed subscriber names nothing, even after a re-subscription.
CREATE TABLE subscribers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    list         TEXT    NOT NULL,
    address      TEXT    NOT NULL,           -- lower-case
    customer     TEXT    NOT NULL,
    state        TEXT    NOT NULL,           -- pending | confirmed
    shared       INTEGER NOT NULL DEFAULT 0, -- a distribution address the customer maintains
    added_by     TEXT    NOT NULL,           -- operator | mail | api | ...
    created_at   TEXT    NOT NULL,
    confirmed_at TEXT,
    expires_at   TEXT,                       -- a pending request lapses then
    UNIQUE (list, address)
);
CREATE INDEX subscribers_list_state ON subscribers (list, state);
CREATE INDEX subscribers_expiry ON subscribers (expires_at) WHERE state = 'pending';

CREATE TABLE announcements (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                 TEXT    NOT NULL,   -- outage | maintenance | release | information
    state                TEXT    NOT NULL,
    platform             TEXT    NOT NULL,   -- '' for an announcement to named lists only
    lists                TEXT    NOT NULL,   -- the lists it went to, newline-separated
    services             TEXT    NOT NULL,   -- newline-separated
    title                TEXT    NOT NULL,
    impact               TEXT    NOT NULL,
    body                 TEXT    NOT NULL,
    source               TEXT    NOT NULL,   -- operator | probe:NAME
    emergency            INTEGER NOT NULL DEFAULT 0,
    starts_at            TEXT,
    ends_at              TEXT,
    restoration_eta      TEXT,
    update_interval_secs INTEGER,
    reminder_before_secs INTEGER,
    pending_text         TEXT,               -- operator text not mailed yet
    created_at           TEXT    NOT NULL,
    scheduled_at         TEXT,
    communicated_at      TEXT,
    closed_at            TEXT,
    last_mail_at         TEXT,
    next_due_at          TEXT,
    thread_message_id    TEXT
);
CREATE INDEX announcements_due ON announcements (next_due_at) WHERE next_due_at IS NOT NULL;
CREATE INDEX announcements_platform ON announcements (platform, kind, state);
CREATE INDEX announcements_created ON announcements (created_at);

CREATE TABLE announcement_updates (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    announcement_id INTEGER NOT NULL REFERENCES announcements (id),
    at              TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    text            TEXT    NOT NULL,
    recipients      INTEGER NOT NULL
);
CREATE INDEX announcement_updates_of ON announcement_updates (announcement_id, id);
