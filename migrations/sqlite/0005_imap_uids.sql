-- What became of each IMAP UID read but not yet finished (issue: the core, rebuilt for
-- concurrency). Written in the batch's transaction: `stored` and `header_only` rows are the
-- only mail a catch-up may move, flag or delete, and they are removed once the after-action
-- is done; `given_up` rows (never stored) are never touched; `failing` rows count failed
-- fetches across restarts.
CREATE TABLE imap_uids (
    mailbox      TEXT    NOT NULL,
    uid_validity INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    disposition  TEXT    NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mailbox, uid_validity, uid)
) WITHOUT ROWID;
