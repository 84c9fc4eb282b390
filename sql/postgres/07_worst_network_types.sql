-- The network types (2g .. 5g, wifi) with the highest stall rates over the last 7 settled local days.
-- Days are `local_date`s (in the stream's offset), and only settled (final) days count.
WITH last AS (SELECT max(local_date) AS day FROM quality_distribution WHERE settled)
SELECT app_id, product_type, indicator, dimension_value AS access,
       round(avg(value)::numeric, 2) AS avg_value, count(*) AS days
FROM quality_distribution, last
WHERE dimension = 'Access'
  AND indicator LIKE '%stall_rate'
  AND settled
  AND local_date > last.day - 7
GROUP BY app_id, product_type, indicator, dimension_value
ORDER BY avg_value DESC, app_id, product_type, indicator, access
LIMIT 10;
