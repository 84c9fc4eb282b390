-- ListQualityDistribution's points (PRODUCT.md, "Distribution streams"): the same series and points, with
-- what a series is grouped by.
--
-- A distribution series has `dimension` (Province | Country | OS | Access) and `dimension_value` (as the API
-- returned it); a ListQuality series has '' in both. The series' unique key takes both in (the constraint
-- keeps its name, which the store's insert names). `quality_metrics` shows the ListQuality rows as before,
-- `quality_distribution` the others. Every id and every row is kept.

ALTER TABLE series ADD COLUMN dimension text NOT NULL DEFAULT '';
ALTER TABLE series ADD COLUMN dimension_value text NOT NULL DEFAULT '';

ALTER TABLE series DROP CONSTRAINT series_key;
ALTER TABLE series ADD CONSTRAINT series_key
    UNIQUE (app_id, room_id, indicator, granularity, product_type, os, access, user_ids, dimension,
            dimension_value);

-- Same columns as 0001's, so the view can be replaced in place.
CREATE OR REPLACE VIEW quality_metrics AS
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
