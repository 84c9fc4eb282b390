-- Time zones as part of a day grid's identity, dates a dashboard can group by, refetch marks, deleted
-- points, and who owns a stream (PRODUCT.md, rules 4 and 6, "Tables that BI reads").
--
-- `series.grid_timezone` is the offset of a `1d` (or distribution) series' day grid: part of its unique key,
-- so a changed `window.timezone` makes new series beside the old grid's. It is '' for `5min`, whose buckets
-- are the same in every offset. `series.timezone` is what BI sees: the grid's offset for `1d`, the
-- configured one for `5min`. Both are '' for the series stored before this migration, until the first
-- `sync` after it gives them the configured offset.
--
-- SQLite cannot alter a UNIQUE constraint, so `series` is rebuilt with the same ids; its key is now a
-- unique index, which a later change can drop and create without rebuilding the table. `points` references
-- `series`: with the foreign keys deferred to the commit, dropping the old table counts each point as
-- orphaned and inserting its series again counts it back, so the commit finds none and `points` (the big
-- table) is left as it is.

PRAGMA defer_foreign_keys = ON;

DROP VIEW quality_metrics;
DROP VIEW quality_distribution;

CREATE TABLE series_v3 AS SELECT * FROM series;
DROP TABLE series;

CREATE TABLE series (
    id              INTEGER PRIMARY KEY,
    app_id          TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    indicator       TEXT NOT NULL,
    unit            TEXT NOT NULL,
    granularity     TEXT NOT NULL,
    product_type    TEXT NOT NULL,
    os              TEXT NOT NULL,
    access          TEXT NOT NULL,
    user_ids        TEXT NOT NULL,
    dimension       TEXT NOT NULL DEFAULT '',
    dimension_value TEXT NOT NULL DEFAULT '',
    grid_timezone   TEXT NOT NULL DEFAULT '',
    timezone        TEXT NOT NULL DEFAULT ''
);

INSERT INTO series (id, app_id, room_id, indicator, unit, granularity, product_type, os, access, user_ids,
                    dimension, dimension_value)
SELECT id, app_id, room_id, indicator, unit, granularity, product_type, os, access, user_ids, dimension,
       dimension_value
FROM series_v3;
DROP TABLE series_v3;

CREATE UNIQUE INDEX series_key ON series (app_id, room_id, indicator, granularity, product_type, os, access,
                                          user_ids, dimension, dimension_value, grid_timezone);
CREATE INDEX series_indicator ON series (indicator);

-- `refetch`: a window `sync --refetch` marked before its first call, fetched again until a fetch of it
-- succeeds. The state's CHECK cannot be altered either; the ledger has no foreign keys.
DROP VIEW sync_coverage;

CREATE TABLE sync_ledger_v4 (
    stream       TEXT NOT NULL,
    indicator    TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('settled', 'provisional', 'failed', 'refetch')),
    points       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT,
    request_id   TEXT,
    fetched_at   TEXT NOT NULL,
    PRIMARY KEY (stream, indicator, window_start, window_end, state)
) WITHOUT ROWID;

INSERT INTO sync_ledger_v4 SELECT * FROM sync_ledger;
DROP TABLE sync_ledger;
ALTER TABLE sync_ledger_v4 RENAME TO sync_ledger;

CREATE VIEW sync_coverage AS
SELECT s.label AS stream,
       s.settled_through,
       (SELECT count(DISTINCT l.window_start || '/' || l.window_end) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state = 'provisional') AS provisional_windows,
       (SELECT count(DISTINCT l.window_start || '/' || l.window_end) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state = 'failed') AS failed_windows,
       (SELECT coalesce(sum(l.points), 0) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state IN ('settled', 'provisional')) AS points,
       (SELECT max(l.fetched_at) FROM sync_ledger l WHERE l.stream = s.stream) AS last_run_at,
       s.missing_buckets
FROM sync_streams s
WHERE EXISTS (SELECT 1 FROM sync_ledger l WHERE l.stream = s.stream);

-- Points a re-fetched window no longer had (rule 4).
ALTER TABLE sync_runs ADD COLUMN points_deleted INTEGER NOT NULL DEFAULT 0;

-- Which account asked a stream: a hash of its access key id (never the key); NULL when it was stored
-- before this column existed. `prune` removes only its own account's streams.
ALTER TABLE sync_streams ADD COLUMN account TEXT;

-- What the last run assessed beside settled_through: the end of the covered (settled or provisional) range
-- unbroken from the horizon start, which the metrics show; one computation for status and the metrics.
ALTER TABLE sync_streams ADD COLUMN complete_through TEXT;

-- When each quota (an account's action) last sent a call, so the next run keeps the pace: the gateway
-- counts arrivals in any second, whichever run sent them.
CREATE TABLE sync_pacing (
    account      TEXT NOT NULL,
    action       TEXT NOT NULL,
    last_call_at TEXT NOT NULL,
    PRIMARY KEY (account, action)
);

-- The run that holds the lock, once it is recorded, so a refused run can name it.
ALTER TABLE sync_lock ADD COLUMN run_id INTEGER;

CREATE VIEW quality_metrics AS
SELECT s.app_id, s.room_id, s.indicator, s.unit, s.granularity, s.product_type, s.os, s.access, s.user_ids,
       p.ts, p.value, p.settled, p.updated_at, s.timezone,
       date(p.ts, s.timezone) AS local_date
FROM points p
JOIN series s ON s.id = p.series_id
WHERE s.dimension = '';

CREATE VIEW quality_distribution AS
SELECT s.app_id, s.indicator, s.dimension, s.dimension_value, s.product_type,
       p.ts, p.value, p.settled, p.updated_at, s.timezone,
       date(p.ts, s.timezone) AS local_date
FROM points p
JOIN series s ON s.id = p.series_id
WHERE s.dimension <> '';
