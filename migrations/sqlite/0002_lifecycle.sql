-- Ticket lifecycle, SLA clock, timers, escalations (issue: lifecycle and service levels).

ALTER TABLE tickets ADD COLUMN profile TEXT NOT NULL DEFAULT 'exo';
ALTER TABLE tickets ADD COLUMN issue_type TEXT NOT NULL DEFAULT 'incident';
ALTER TABLE tickets ADD COLUMN reason TEXT;                 -- of the last resolve or close
ALTER TABLE tickets ADD COLUMN parent_id INTEGER REFERENCES tickets (id);
ALTER TABLE tickets ADD COLUMN missing_info TEXT NOT NULL DEFAULT '';   -- one item a line
-- Follow-up timer state while waiting on the customer or resolved: when the current wait
-- (or the last reminder) began, and how far the reminders got.
ALTER TABLE tickets ADD COLUMN followup_base_at TEXT;
ALTER TABLE tickets ADD COLUMN followup_stage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN survey_score INTEGER;
-- SLA clock for the first response, in working seconds of the plan's calendar.
ALTER TABLE tickets ADD COLUMN sla_target_secs INTEGER;
ALTER TABLE tickets ADD COLUMN sla_started_at TEXT;
ALTER TABLE tickets ADD COLUMN sla_running_since TEXT;
ALTER TABLE tickets ADD COLUMN sla_elapsed_secs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN sla_due_at TEXT;
ALTER TABLE tickets ADD COLUMN responded_at TEXT;
ALTER TABLE tickets ADD COLUMN breached_at TEXT;

-- One row per armed timer; the tick reads only rows due, through the index.
CREATE TABLE timers (
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    kind      TEXT    NOT NULL,           -- sla | followup
    due_at    TEXT    NOT NULL,
    PRIMARY KEY (ticket_id, kind)
) WITHOUT ROWID;
CREATE INDEX timers_due ON timers (due_at);

CREATE TABLE escalations (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    at          TEXT    NOT NULL,
    severity    INTEGER NOT NULL,
    due_at      TEXT    NOT NULL,
    target_secs INTEGER NOT NULL
);
CREATE INDEX escalations_ticket ON escalations (ticket_id);

CREATE TABLE status_history (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    at          TEXT    NOT NULL,
    from_status TEXT    NOT NULL,
    to_status   TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    reason      TEXT
);
CREATE INDEX status_history_ticket ON status_history (ticket_id, id);
