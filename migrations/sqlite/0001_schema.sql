-- The tables BI reads and the sync's own bookkeeping (PRODUCT.md, "Tables that BI reads").
-- Instants are TEXT `YYYY-MM-DDTHH:MM:SSZ` (bucket and window bounds) or `YYYY-MM-DDTHH:MM:SS.ffffffZ`
-- (wall-clock instants): fixed widths, so text order is time order and range filters use the keys.

-- One row per series: everything a point is unique by except its bucket start.
CREATE TABLE series (
    id           INTEGER PRIMARY KEY,
    app_id       TEXT NOT NULL,
    room_id      TEXT NOT NULL,
    indicator    TEXT NOT NULL,
    unit         TEXT NOT NULL,
    granularity  TEXT NOT NULL,
    product_type TEXT NOT NULL,
    os           TEXT NOT NULL,
    access       TEXT NOT NULL,
    user_ids     TEXT NOT NULL,
    UNIQUE (app_id, room_id, indicator, granularity, product_type, os, access, user_ids)
);
-- BI filters by app and by indicator, then by time. The unique key above already leads with app_id, this
-- index serves the indicator; the points primary key (series_id, ts) then serves the time range. Nothing
-- more: every further index would be paid on each of the millions of point writes.
CREATE INDEX series_indicator ON series (indicator);

-- One row per (series, bucket start). WITHOUT ROWID stores the rows in the primary key's b-tree itself,
-- so there is one b-tree to write per point instead of a table and an index.
CREATE TABLE points (
    series_id  INTEGER NOT NULL REFERENCES series (id),
    ts         TEXT NOT NULL,
    value      REAL NOT NULL,
    settled    BOOLEAN NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

-- The checkpoint ledger: one row per fetched window of a stream.
CREATE TABLE sync_ledger (
    stream       TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('settled', 'provisional', 'failed')),
    points       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT,
    request_id   TEXT,
    fetched_at   TEXT NOT NULL,
    PRIMARY KEY (stream, window_start, window_end)
) WITHOUT ROWID;

-- One row per run, written when it starts and completed when it ends.
CREATE TABLE sync_runs (
    id               INTEGER PRIMARY KEY,
    mode             TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    status           TEXT NOT NULL,
    requests         INTEGER NOT NULL DEFAULT 0,
    retries          INTEGER NOT NULL DEFAULT 0,
    throttled        INTEGER NOT NULL DEFAULT 0,
    points_inserted  INTEGER NOT NULL DEFAULT 0,
    points_updated   INTEGER NOT NULL DEFAULT 0,
    points_unchanged INTEGER NOT NULL DEFAULT 0,
    windows_ok       INTEGER NOT NULL DEFAULT 0,
    windows_failed   INTEGER NOT NULL DEFAULT 0
);

-- Who holds the sync lock. The lock itself is an OS lock on `<database>.lock`, which dies with the process;
-- this row mirrors it for people reading the database and is kept in the same shape as PostgreSQL's.
CREATE TABLE sync_lock (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    holder   TEXT NOT NULL,
    pid      INTEGER NOT NULL,
    hostname TEXT NOT NULL,
    since    TEXT NOT NULL
);

CREATE VIEW quality_metrics AS
SELECT s.app_id, s.room_id, s.indicator, s.unit, s.granularity, s.product_type, s.os, s.access, s.user_ids,
       p.ts, p.value, p.settled, p.updated_at
FROM points p
JOIN series s ON s.id = p.series_id;

-- settled_through is the end of the last settled window that no provisional or failed window precedes:
-- everything before it is final. points counts what the stream's current ledger rows stored.
CREATE VIEW sync_coverage AS
SELECT l.stream,
       max(l.window_end) FILTER (
           WHERE l.state = 'settled'
             AND l.window_start < coalesce(u.first_unsettled, '9999-12-31T23:59:59Z')) AS settled_through,
       count(*) FILTER (WHERE l.state = 'provisional') AS provisional_windows,
       count(*) FILTER (WHERE l.state = 'failed') AS failed_windows,
       coalesce(sum(l.points), 0) AS points,
       max(l.fetched_at) AS last_run_at
FROM sync_ledger l
LEFT JOIN (
    SELECT stream, min(window_start) AS first_unsettled
    FROM sync_ledger
    WHERE state <> 'settled'
    GROUP BY stream
) u ON u.stream = l.stream
GROUP BY l.stream;
