-- The worst rooms of the last settled local day by stall rate, with their calls that day and peak users
-- from `rtc_rooms` (the rooms of `[[rooms]]` blocks asked at the `1d` granularity). The day is the newest
-- `local_date` on which a room's daily stall rate is settled (final). One row per room series and stall
-- indicator, its value for that day as the API gave it; `calls` are the room's calls that ran during the
-- day (created before it ended, not destroyed before it began; still running counts) and `peak_users`
-- the highest `active_user_num` among them. A room with no listed call that day (one asked only by a
-- `[[jobs]]` entry of an app no `[[rooms]]` block lists) is not shown: see 02 for those.
WITH last AS (
  SELECT max(local_date) AS day FROM quality_metrics
  WHERE granularity = '1d' AND settled AND room_id <> '' AND indicator LIKE '%stall_rate'
),
room_days AS (
  -- A `1d` bucket starts at local midnight: `ts` is the day's start in UTC, as `rtc_rooms` stores times.
  SELECT q.app_id, q.room_id, q.product_type, q.os, q.access, q.user_ids, q.indicator, q.unit, q.local_date,
         q.value,
         strftime('%Y-%m-%dT%H:%M:%S.000000Z', q.ts) AS day_start,
         strftime('%Y-%m-%dT%H:%M:%S.000000Z', q.ts, '+1 day') AS day_end
  FROM quality_metrics q, last
  WHERE q.granularity = '1d' AND q.settled AND q.room_id <> '' AND q.indicator LIKE '%stall_rate'
    AND q.local_date = last.day
)
SELECT d.app_id, d.room_id, d.product_type, d.os, d.access, d.user_ids, d.indicator, d.local_date AS day,
       round(d.value, 2) AS value, d.unit, count(*) AS calls, max(r.active_user_num) AS peak_users
FROM room_days d
JOIN rtc_rooms r
  ON r.app_id = d.app_id AND r.room_id = d.room_id
 AND r.created_at < d.day_end AND (r.destroyed_at IS NULL OR r.destroyed_at > d.day_start)
GROUP BY d.app_id, d.room_id, d.product_type, d.os, d.access, d.user_ids, d.indicator, d.unit, d.local_date,
         d.value
ORDER BY d.value DESC, d.app_id, d.room_id, d.indicator, d.product_type, d.os, d.access, d.user_ids
LIMIT 10;
