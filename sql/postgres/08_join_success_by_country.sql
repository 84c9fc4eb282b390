-- Join success rate by country over the last 7 settled local days, the weakest first.
-- Days are `local_date`s (in the stream's offset), and only settled (final) days count.
WITH last AS (SELECT max(local_date) AS day FROM quality_distribution WHERE settled)
SELECT app_id, product_type, indicator, dimension_value AS country,
       round(avg(value)::numeric, 2) AS avg_value, count(*) AS days
FROM quality_distribution, last
WHERE dimension = 'Country'
  AND indicator LIKE '%join_room_success_rate'
  AND settled
  AND local_date > last.day - 7
GROUP BY app_id, product_type, indicator, dimension_value
ORDER BY app_id, product_type, indicator, avg_value, country;
