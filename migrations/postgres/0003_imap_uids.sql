-- 0005_imap_uids of SQLite: what became of each IMAP UID read but not yet finished.
CREATE TABLE imap_uids (
    mailbox      TEXT    NOT NULL,
    uid_validity BIGINT  NOT NULL,
    uid          BIGINT  NOT NULL,
    disposition  TEXT    NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (mailbox, uid_validity, uid)
);
