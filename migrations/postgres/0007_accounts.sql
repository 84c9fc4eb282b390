-- Many accounts into one warehouse (PRODUCT.md, "Accounts and daily budgets"): a lock per account, runs
-- that record their account, and the call log behind daily budgets. Every stored row is kept but
-- `sync_lock`'s (see below).

-- `sync_lock` records the holder of each lock held now, keyed by the lock's advisory key: one row per
-- account lock (or the schema-wide one an earlier version took). `backend_pid` is the holder's session, so a
-- refused run names only a holder whose session still holds the key. A row that exists while this migration
-- runs belongs to a run that died (a run of this version records itself after migrating, and a run of an
-- earlier version holds the schema-wide lock, which keeps this version from migrating): it is not carried over.
DELETE FROM sync_lock;
ALTER TABLE sync_lock DROP COLUMN id;
ALTER TABLE sync_lock ADD COLUMN lock_key bigint PRIMARY KEY;
-- The account the lock is for (a hash of its access key id, never the key); NULL for the schema-wide lock.
ALTER TABLE sync_lock ADD COLUMN account text;
ALTER TABLE sync_lock ADD COLUMN backend_pid integer;

-- The account a run synced (a hash of its access key id); NULL for runs of earlier versions.
ALTER TABLE sync_runs ADD COLUMN account text;

-- One row per request sent, written before it is sent, for daily budgets (`per_day`) and `status`: an
-- account's calls of an action in any 24 hours, across runs, restarts and processes. Rows older than any
-- budget can look at are deleted as runs start.
CREATE TABLE sync_calls (
    account text NOT NULL,
    action  text NOT NULL,
    sent_at timestamptz NOT NULL
);
CREATE INDEX sync_calls_by_account ON sync_calls (account, action, sent_at);
