-- Time zones as part of a day grid's identity, dates a dashboard can group by, refetch marks, deleted
-- points, and who owns a stream (PRODUCT.md, rules 4 and 6, "Tables that BI reads").
--
-- `series.grid_timezone` is the offset of a `1d` (or distribution) series' day grid: part of its unique key,
-- so a changed `window.timezone` makes new series beside the old grid's. It is '' for `5min`, whose buckets
-- are the same in every offset. `series.timezone` is what BI sees: the grid's offset for `1d`, the
-- configured one for `5min`. Both are '' for the series stored before this migration, until the first
-- `sync` after it gives them the configured offset. Every id and every row is kept.

ALTER TABLE series ADD COLUMN grid_timezone text NOT NULL DEFAULT '';
ALTER TABLE series ADD COLUMN timezone text NOT NULL DEFAULT '';

ALTER TABLE series DROP CONSTRAINT series_key;
ALTER TABLE series ADD CONSTRAINT series_key
    UNIQUE (app_id, room_id, indicator, granularity, product_type, os, access, user_ids, dimension,
            dimension_value, grid_timezone);

-- `refetch`: a window `sync --refetch` marked before its first call, fetched again until a fetch of it
-- succeeds.
ALTER TABLE sync_ledger DROP CONSTRAINT sync_ledger_state_check;
ALTER TABLE sync_ledger ADD CONSTRAINT sync_ledger_state_check
    CHECK (state IN ('settled', 'provisional', 'failed', 'refetch'));

CREATE OR REPLACE VIEW sync_coverage AS
SELECT s.label AS stream,
       s.settled_through,
       (SELECT count(DISTINCT (l.window_start, l.window_end)) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state = 'provisional') AS provisional_windows,
       (SELECT count(DISTINCT (l.window_start, l.window_end)) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state = 'failed') AS failed_windows,
       (SELECT coalesce(sum(l.points), 0) FROM sync_ledger l
         WHERE l.stream = s.stream AND l.state IN ('settled', 'provisional'))::bigint AS points,
       (SELECT max(l.fetched_at) FROM sync_ledger l WHERE l.stream = s.stream) AS last_run_at,
       s.missing_buckets
FROM sync_streams s
WHERE EXISTS (SELECT 1 FROM sync_ledger l WHERE l.stream = s.stream);

-- Points a re-fetched window no longer had (rule 4).
ALTER TABLE sync_runs ADD COLUMN points_deleted bigint NOT NULL DEFAULT 0;

-- Which account asked a stream: a hash of its access key id (never the key); NULL when it was stored
-- before this column existed. `prune` removes only its own account's streams.
ALTER TABLE sync_streams ADD COLUMN account text;

-- What the last run assessed beside settled_through: the end of the covered (settled or provisional) range
-- unbroken from the horizon start, which the metrics show; one computation for status and the metrics.
ALTER TABLE sync_streams ADD COLUMN complete_through timestamptz;

-- When each quota (an account's action) last sent a call, so the next run keeps the pace: the gateway
-- counts arrivals in any second, whichever run sent them.
CREATE TABLE sync_pacing (
    account      text NOT NULL,
    action       text NOT NULL,
    last_call_at timestamptz NOT NULL,
    PRIMARY KEY (account, action)
);

-- The run that holds the lock, once it is recorded, so a refused run can name it.
ALTER TABLE sync_lock ADD COLUMN run_id bigint;

-- The local date a daily chart groups by. A text offset such as '+08:00' read as an interval is east of
-- UTC (AT TIME ZONE '+08:00' would read it as POSIX, west).
CREATE OR REPLACE VIEW quality_metrics AS
SELECT s.app_id, s.room_id, s.indicator, s.unit, s.granularity, s.product_type, s.os, s.access, s.user_ids,
       p.ts, p.value, p.settled, p.updated_at, s.timezone,
       CASE WHEN s.timezone = '' THEN NULL
            ELSE ((p.ts AT TIME ZONE 'UTC') + CAST(s.timezone AS interval))::date END AS local_date
FROM points p
JOIN series s ON s.id = p.series_id
WHERE s.dimension = '';

CREATE OR REPLACE VIEW quality_distribution AS
SELECT s.app_id, s.indicator, s.dimension, s.dimension_value, s.product_type,
       p.ts, p.value, p.settled, p.updated_at, s.timezone,
       CASE WHEN s.timezone = '' THEN NULL
            ELSE ((p.ts AT TIME ZONE 'UTC') + CAST(s.timezone AS interval))::date END AS local_date
FROM points p
JOIN series s ON s.id = p.series_id
WHERE s.dimension <> '';
