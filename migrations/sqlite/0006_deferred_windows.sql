-- What the last run deferred of each stream (PRODUCT.md, "deferred": windows a cap or a daily budget
-- left for the next run, planned again then; not failed): how many, and why in plain words
-- (`max_room_calls_per_run`, later `daily budget of account X`), NULL when nothing was deferred.
-- A `[[rooms]]` block's deferred windows are the sum over its room streams and its listing.
-- Existing rows deferred nothing. This migration only adds.
ALTER TABLE sync_streams ADD COLUMN deferred_windows INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_streams ADD COLUMN deferred_reason TEXT;

-- The calls that can overlap a horizon (`Store::room_calls_between`): those still running and those
-- destroyed at or after its start, read without the app's older history.
CREATE INDEX rtc_rooms_destroyed ON rtc_rooms (app_id, destroyed_at);
