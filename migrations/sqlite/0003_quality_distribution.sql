-- ListQualityDistribution's points (PRODUCT.md, "Distribution streams"): the same series and points, with
-- what a series is grouped by.
--
-- A distribution series has `dimension` (Province | Country | OS | Access) and `dimension_value` (as the API
-- returned it); a ListQuality series has '' in both. The series' unique key takes both in. `quality_metrics`
-- shows the ListQuality rows as before, `quality_distribution` the others.
--
-- SQLite cannot alter a UNIQUE constraint, so `series` is rebuilt with the same ids. `points` references it,
-- and with foreign keys on (the store's connections turn them on, and a migration runs inside a transaction,
-- where that cannot be switched off) the old `series` cannot be dropped while a table references it: so
-- `points` is rebuilt too, referencing the new table, and renaming the new table to `series` carries the
-- reference along. Every id and every row is kept.

DROP VIEW quality_metrics;

CREATE TABLE series_v3 (
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
    UNIQUE (app_id, room_id, indicator, granularity, product_type, os, access, user_ids, dimension,
            dimension_value)
);

INSERT INTO series_v3 (id, app_id, room_id, indicator, unit, granularity, product_type, os, access, user_ids)
SELECT id, app_id, room_id, indicator, unit, granularity, product_type, os, access, user_ids FROM series;

CREATE TABLE points_v3 (
    series_id  INTEGER NOT NULL REFERENCES series_v3 (id),
    ts         TEXT NOT NULL,
    value      REAL NOT NULL,
    settled    BOOLEAN NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

INSERT INTO points_v3 (series_id, ts, value, settled, updated_at)
SELECT series_id, ts, value, settled, updated_at FROM points;

DROP TABLE points;
DROP TABLE series;
ALTER TABLE series_v3 RENAME TO series;
ALTER TABLE points_v3 RENAME TO points;

-- Dropped with the old table; the same index as 0001.
CREATE INDEX series_indicator ON series (indicator);

CREATE VIEW quality_metrics AS
SELECT s.app_id, s.room_id, s.indicator, s.unit, s.granularity, s.product_type, s.os, s.access, s.user_ids,
       p.ts, p.value, p.settled, p.updated_at
FROM points p
JOIN series s ON s.id = p.series_id
WHERE s.dimension = '';

CREATE VIEW quality_distribution AS
SELECT s.app_id, s.indicator, s.dimension, s.dimension_value, s.product_type,
       p.ts, p.value, p.settled, p.updated_at
FROM points p
JOIN series s ON s.id = p.series_id
WHERE s.dimension <> '';
