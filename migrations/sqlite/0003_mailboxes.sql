-- IMAP mailboxes and leases (issue: real mail servers and PostgreSQL).

-- Where the reading of each mailbox stands: the UIDVALIDITY its UIDs belong to and the
-- highest UID whose effects are committed. Written in the same transaction as the batch.
CREATE TABLE mailboxes (
    name         TEXT    NOT NULL PRIMARY KEY,
    uid_validity INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL
) WITHOUT ROWID;

-- Named leases: one holder at a time (one instance reads a mailbox); a lease that is not
-- renewed lapses and passes to another instance.
CREATE TABLE leases (
    name   TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
) WITHOUT ROWID;
