-- Five-minute drill-down of the most recent complete day (+08:00 days; change the offset to yours).
-- date() takes the newest bucket to its local calendar day; the day before starts at its midnight minus 8 hours in UTC.
WITH day AS (
  SELECT strftime('%Y-%m-%dT%H:%M:%SZ', date(max(ts), '+8 hours', '-1 day'), '-8 hours') AS start_utc
  FROM quality_metrics WHERE granularity = '5min'
)
SELECT app_id, indicator, ts, value, settled
FROM quality_metrics, day
WHERE granularity = '5min'
  AND ts >= day.start_utc
  AND ts <  strftime('%Y-%m-%dT%H:%M:%SZ', day.start_utc, '+1 day')
ORDER BY app_id, indicator, ts;
