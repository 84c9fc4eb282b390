-- Many accounts into one warehouse (PRODUCT.md, "Accounts and daily budgets"): runs that record their
-- account and the call log behind daily budgets; `sync_lock` keyed like PostgreSQL's. Every stored row is
-- kept but `sync_lock`'s (see below).

-- `sync_lock` in PostgreSQL's shape: one row per lock key. A SQLite file has one lock, `<database>.lock`,
-- whatever the account: its row has the key 0 (`backend_pid` stays NULL). SQLite cannot change a primary
-- key, so the table is made anew; a row that exists while this migration runs belongs to a run that died
-- (the migrating run holds the file lock and records itself after migrating): it is not carried over.
CREATE TABLE sync_lock_0007 (
    lock_key    INTEGER PRIMARY KEY,
    account     TEXT,
    holder      TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    hostname    TEXT NOT NULL,
    since       TEXT NOT NULL,
    run_id      INTEGER,
    backend_pid INTEGER
);
DROP TABLE sync_lock;
ALTER TABLE sync_lock_0007 RENAME TO sync_lock;

-- The account a run synced (a hash of its access key id); NULL for runs of earlier versions.
ALTER TABLE sync_runs ADD COLUMN account TEXT;

-- One row per request sent, written before it is sent, for daily budgets (`per_day`) and `status`: an
-- account's calls of an action in any 24 hours, across runs, restarts and processes. Times are
-- fixed-width UTC text with microseconds (`store::time`), so text order is time order. Rows older than
-- any budget can look at are deleted as runs start.
CREATE TABLE sync_calls (
    account TEXT NOT NULL,
    action  TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX sync_calls_by_account ON sync_calls (account, action, sent_at);
