-- Daily trend per indicator over the last 30 days (whole-app streams, all filters).
SELECT indicator, unit, ts AS day, round(avg(value), 2) AS value
FROM quality_metrics
WHERE granularity = '1d'
  AND room_id = ''
  AND ts >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-30 days')
GROUP BY indicator, unit, ts
ORDER BY indicator, day;
