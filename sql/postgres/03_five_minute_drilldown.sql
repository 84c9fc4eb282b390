-- Five-minute drill-down of the most recent complete day (+08:00 days; change the offset to yours).
WITH day AS (
  SELECT date_trunc('day', max(ts) AT TIME ZONE '+08:00') - interval '1 day' AS local_start
  FROM quality_metrics WHERE granularity = '5min'
)
SELECT app_id, indicator, ts, value, settled
FROM quality_metrics, day
WHERE granularity = '5min'
  AND ts >= (day.local_start AT TIME ZONE '+08:00')
  AND ts <  (day.local_start AT TIME ZONE '+08:00') + interval '1 day'
ORDER BY app_id, indicator, ts;
