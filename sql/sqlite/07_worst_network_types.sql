-- The network types (2g .. 5g, wifi) with the highest stall rates over the last 7 days.
SELECT app_id, product_type, indicator, dimension_value AS access,
       round(avg(value), 2) AS avg_value, count(*) AS days
FROM quality_distribution
WHERE dimension = 'Access'
  AND indicator LIKE '%stall_rate'
  AND ts >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days')
GROUP BY app_id, product_type, indicator, dimension_value
ORDER BY avg_value DESC, app_id, product_type, indicator, access
LIMIT 10;
