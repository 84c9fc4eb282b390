-- Worst rooms of the last 7 settled local days by average stall rate (rooms configured as jobs with
-- room_id): days are `local_date`s, and only final (settled) days count, so a week is 7 whole days.
-- Each room's days are averaged within one series only (one filter set), never across filters.
WITH last AS (SELECT max(local_date) AS day FROM quality_metrics WHERE granularity = '1d' AND settled)
SELECT app_id, room_id, product_type, os, access, user_ids, indicator,
       round(avg(value)::numeric, 2) AS avg_value, count(*) AS days
FROM quality_metrics, last
WHERE granularity = '1d'
  AND settled
  AND room_id <> ''
  AND indicator LIKE '%stall_rate'
  AND local_date > last.day - 7
GROUP BY app_id, room_id, product_type, os, access, user_ids, indicator
ORDER BY avg_value DESC
LIMIT 10;
