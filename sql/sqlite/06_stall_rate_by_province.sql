-- Stall rate by province over the last 7 days (distribution streams, ListQualityDistribution).
-- Each app's, product type's and indicator's days are averaged per province, never across apps.
SELECT app_id, product_type, indicator, dimension_value AS province,
       round(avg(value), 2) AS avg_value, count(*) AS days
FROM quality_distribution
WHERE dimension = 'Province'
  AND indicator LIKE '%stall_rate'
  AND ts >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days')
GROUP BY app_id, product_type, indicator, dimension_value
ORDER BY app_id, product_type, indicator, avg_value DESC, province;
