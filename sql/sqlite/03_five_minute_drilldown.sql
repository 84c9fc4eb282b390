-- Five-minute drill-down of the most recent complete local day: the day before the newest bucket's
-- `local_date` (the day in the series' offset, `timezone`), whose 288 buckets have all arrived.
WITH newest AS (SELECT max(local_date) AS day FROM quality_metrics WHERE granularity = '5min')
SELECT app_id, indicator, ts, local_date, value, settled
FROM quality_metrics, newest
WHERE granularity = '5min'
  AND local_date = date(newest.day, '-1 day')
ORDER BY app_id, indicator, ts;
