-- Join success rate by country over the last 7 days, the weakest first.
SELECT app_id, product_type, indicator, dimension_value AS country,
       round(avg(value)::numeric, 2) AS avg_value, count(*) AS days
FROM quality_distribution
WHERE dimension = 'Country'
  AND indicator LIKE '%join_room_success_rate'
  AND ts >= now() - interval '7 days'
GROUP BY app_id, product_type, indicator, dimension_value
ORDER BY app_id, product_type, indicator, avg_value, country;
