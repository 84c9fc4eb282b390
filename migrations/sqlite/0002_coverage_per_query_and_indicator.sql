-- Coverage per stream query and per requested indicator (PRODUCT.md, planner rules 5 to 7).
--
-- A ledger row now belongs to what a stream asks (its query: app, room, users, product type, os, access,
-- granularity, as a JSON object) and to one requested indicator, no longer to the job's name. Rows written
-- by the earlier version are kept, keyed 'legacy:<stream name>' with the indicator '*'; the next `sync`
-- adopts them for the configured stream of that name, one row per indicator it asks, without fetching again.
-- A failed row may sit beside a settled row of the same window (a `--refetch` that failed), so the state is
-- part of the key.

-- The streams, by query, with the label people read and what the last run assessed.
CREATE TABLE sync_streams (
    stream          TEXT PRIMARY KEY,   -- the query, or 'legacy:<name>'
    label           TEXT NOT NULL,      -- '<job name>/<granularity>'
    settled_through TEXT,               -- the settled range unbroken from the horizon start ends here
    missing_buckets INTEGER,            -- buckets of [horizon start, available end) no window covers
    assessed_at     TEXT                -- when the last run assessed the two columns above
) WITHOUT ROWID;

INSERT INTO sync_streams (stream, label, settled_through)
SELECT 'legacy:' || stream, stream, settled_through FROM sync_coverage;

DROP VIEW sync_coverage;

CREATE TABLE sync_ledger_v2 (
    stream       TEXT NOT NULL,
    indicator    TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('settled', 'provisional', 'failed')),
    points       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT,
    request_id   TEXT,
    fetched_at   TEXT NOT NULL,
    PRIMARY KEY (stream, indicator, window_start, window_end, state)
) WITHOUT ROWID;

INSERT INTO sync_ledger_v2
SELECT 'legacy:' || stream, '*', window_start, window_end, state, points, attempts, last_error,
       request_id, fetched_at
FROM sync_ledger;

DROP TABLE sync_ledger;
ALTER TABLE sync_ledger_v2 RENAME TO sync_ledger;

-- One row per stream. Windows are counted once however many indicators they asked; settled_through and
-- missing_buckets are as of the last run, the rest is read from the ledger as it is now.
CREATE VIEW sync_coverage AS
SELECT s.label AS stream,
       s.settled_through,
       (SELECT count(DISTINCT l.window_start || '/' || l.window_end) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state = 'provisional') AS provisional_windows,
       (SELECT count(DISTINCT l.window_start || '/' || l.window_end) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state = 'failed') AS failed_windows,
       (SELECT coalesce(sum(l.points), 0) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state <> 'failed') AS points,
       (SELECT max(l.fetched_at) FROM sync_ledger l WHERE l.stream = s.stream) AS last_run_at,
       s.missing_buckets
FROM sync_streams s
WHERE EXISTS (SELECT 1 FROM sync_ledger l WHERE l.stream = s.stream);
