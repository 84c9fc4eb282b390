-- Daily trend per series over the last 30 local days (whole-app streams), by `local_date`: the day in
-- the series' own offset (`timezone`), what a daily chart groups by. One row per app, filter set,
-- indicator and day: values of different apps or filters (os, access, users, product type) are never
-- averaged together, since their shares of traffic are unknown. `settled` says whether a day is final.
WITH newest AS (SELECT max(local_date) AS day FROM quality_metrics WHERE granularity = '1d')
SELECT app_id, product_type, os, access, user_ids, indicator, unit, local_date AS day,
       round(value, 2) AS value, settled
FROM quality_metrics, newest
WHERE granularity = '1d'
  AND room_id = ''
  AND local_date > date(newest.day, '-30 days')
ORDER BY app_id, product_type, os, access, user_ids, indicator, day;
