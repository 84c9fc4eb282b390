-- Daily trend per series over the last 30 days (whole-app streams). One row per app, filter set,
-- indicator and day: values of different apps or filters (os, access, users, product type) are
-- never averaged together, since their shares of traffic are unknown.
SELECT app_id, product_type, os, access, user_ids, indicator, unit, ts AS day,
       round(value::numeric, 2) AS value
FROM quality_metrics
WHERE granularity = '1d'
  AND room_id = ''
  AND ts >= now() - interval '30 days'
ORDER BY app_id, product_type, os, access, user_ids, indicator, day;
