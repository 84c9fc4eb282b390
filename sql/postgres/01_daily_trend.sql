-- Daily trend per indicator over the last 30 days (whole-app streams, all filters).
SELECT indicator, unit, ts AS day, round(avg(value)::numeric, 2) AS value
FROM quality_metrics
WHERE granularity = '1d'
  AND room_id = ''
  AND ts >= now() - interval '30 days'
GROUP BY indicator, unit, ts
ORDER BY indicator, day;
