-- Join success rate by country over the last 7 days, the weakest first.
SELECT app_id, product_type, indicator, dimension_value AS country,
       round(avg(value), 2) AS avg_value, count(*) AS days
FROM quality_distribution
WHERE dimension = 'Country'
  AND indicator LIKE '%join_room_success_rate'
  AND ts >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days')
GROUP BY app_id, product_type, indicator, dimension_value
ORDER BY app_id, product_type, indicator, avg_value, country;
