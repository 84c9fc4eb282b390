-- Stall rate by province over the last 7 settled local days (distribution streams, ListQualityDistribution).
-- Each app's, product type's and indicator's days are averaged per province, never across apps.
-- Days are `local_date`s (in the stream's offset), and only settled (final) days count.
WITH last AS (SELECT max(local_date) AS day FROM quality_distribution WHERE settled)
SELECT app_id, product_type, indicator, dimension_value AS province,
       round(avg(value)::numeric, 2) AS avg_value, count(*) AS days
FROM quality_distribution, last
WHERE dimension = 'Province'
  AND indicator LIKE '%stall_rate'
  AND settled
  AND local_date > last.day - 7
GROUP BY app_id, product_type, indicator, dimension_value
-- Ties in byte order, as SQLite sorts: the same rows in the same order on both backends.
ORDER BY app_id, product_type, indicator, avg_value DESC, dimension_value COLLATE "C";
