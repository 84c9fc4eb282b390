-- Values that are still provisional (the next run may change them), newest first.
SELECT app_id, room_id, indicator, granularity, ts, value, updated_at
FROM quality_metrics
WHERE NOT settled
ORDER BY ts DESC, app_id, indicator
LIMIT 200;
