-- The tables BI reads and the sync's own bookkeeping (PRODUCT.md, "Tables that BI reads").

-- One row per series: everything a point is unique by except its bucket start.
CREATE TABLE series (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id       text NOT NULL,
    room_id      text NOT NULL,
    indicator    text NOT NULL,
    unit         text NOT NULL,
    granularity  text NOT NULL,
    product_type text NOT NULL,
    os           text NOT NULL,
    access       text NOT NULL,
    user_ids     text NOT NULL,
    CONSTRAINT series_key UNIQUE (app_id, room_id, indicator, granularity, product_type, os, access, user_ids)
);
-- BI filters by app and by indicator, then by time. The unique key above already leads with app_id, this
-- index serves the indicator; the points primary key (series_id, ts) then serves the time range. Nothing
-- more: every further index would be paid on each of the millions of point writes.
CREATE INDEX series_indicator ON series (indicator);

-- One row per (series, bucket start). No foreign key to series on purpose: PostgreSQL checks one with a
-- trigger and a row lock on the series per inserted point, which would cost more than the insert itself,
-- and series rows are only ever added, in the same transaction as their first points.
CREATE TABLE points (
    series_id  bigint NOT NULL,
    ts         timestamptz NOT NULL,
    value      double precision NOT NULL,
    settled    boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (series_id, ts)
);

-- The checkpoint ledger: one row per fetched window of a stream.
CREATE TABLE sync_ledger (
    stream       text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    state        text NOT NULL CHECK (state IN ('settled', 'provisional', 'failed')),
    points       bigint NOT NULL,
    attempts     bigint NOT NULL,
    last_error   text,
    request_id   text,
    fetched_at   timestamptz NOT NULL,
    PRIMARY KEY (stream, window_start, window_end)
);

-- One row per run, written when it starts and completed when it ends.
CREATE TABLE sync_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mode             text NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    status           text NOT NULL,
    requests         bigint NOT NULL DEFAULT 0,
    retries          bigint NOT NULL DEFAULT 0,
    throttled        bigint NOT NULL DEFAULT 0,
    points_inserted  bigint NOT NULL DEFAULT 0,
    points_updated   bigint NOT NULL DEFAULT 0,
    points_unchanged bigint NOT NULL DEFAULT 0,
    windows_ok       bigint NOT NULL DEFAULT 0,
    windows_failed   bigint NOT NULL DEFAULT 0
);

-- Who holds the sync lock (the lock itself is an advisory lock); a refused run reads it to say who and since when.
CREATE TABLE sync_lock (
    id       integer PRIMARY KEY CHECK (id = 1),
    holder   text NOT NULL,
    pid      bigint NOT NULL,
    hostname text NOT NULL,
    since    timestamptz NOT NULL
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
             AND l.window_start < coalesce(u.first_unsettled, 'infinity'::timestamptz)) AS settled_through,
       count(*) FILTER (WHERE l.state = 'provisional') AS provisional_windows,
       count(*) FILTER (WHERE l.state = 'failed') AS failed_windows,
       coalesce(sum(l.points), 0)::bigint AS points,
       max(l.fetched_at) AS last_run_at
FROM sync_ledger l
LEFT JOIN (
    SELECT stream, min(window_start) AS first_unsettled
    FROM sync_ledger
    WHERE state <> 'settled'
    GROUP BY stream
) u ON u.stream = l.stream
GROUP BY l.stream;
