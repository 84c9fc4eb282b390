-- Worst rooms of the last 7 days by average stall rate (rooms configured as jobs with room_id).
-- Each room's days are averaged within one series only (one filter set), never across filters.
SELECT app_id, room_id, product_type, os, access, user_ids, indicator,
       round(avg(value), 2) AS avg_value, count(*) AS days
FROM quality_metrics
WHERE granularity = '1d'
  AND room_id <> ''
  AND indicator LIKE '%stall_rate'
  AND ts >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days')
GROUP BY app_id, room_id, product_type, os, access, user_ids, indicator
ORDER BY avg_value DESC
LIMIT 10;
