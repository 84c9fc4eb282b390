-- Five-minute drill-down of the most recent complete day (+08:00 days; change the offset to yours).
-- The offset is an INTERVAL: a bare '+08:00' string is read as a POSIX zone, which means UTC-8.
WITH day AS (
  SELECT (date_trunc('day', max(ts) AT TIME ZONE INTERVAL '+08:00') - interval '1 day')
           AT TIME ZONE INTERVAL '+08:00' AS start_utc
  FROM quality_metrics WHERE granularity = '5min'
)
SELECT app_id, indicator, ts, value, settled
FROM quality_metrics, day
WHERE granularity = '5min'
  AND ts >= day.start_utc
  AND ts <  day.start_utc + interval '1 day'
ORDER BY app_id, indicator, ts;
