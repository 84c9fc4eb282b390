-- The calls of each `[[rooms]]` block's app, as `ListRoomInfo` lists them (PRODUCT.md, "Room streams").
--
-- One row per (app, call). A re-listing updates a changed row (`updated_at` moves, `first_seen_at` stays)
-- and leaves an unchanged one untouched. Times are fixed-width UTC text with microseconds
-- (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, `store::time`), so text order is time order and a `CreatedTime` with
-- milliseconds is kept exactly; `destroyed_at` is NULL while the call runs. This migration only adds.
CREATE TABLE rtc_rooms (
    app_id          TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    destroyed_at    TEXT,
    active_user_num INTEGER NOT NULL CHECK (active_user_num >= 0),
    finished        BOOLEAN NOT NULL,
    first_seen_at   TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (app_id, call_id)
) WITHOUT ROWID;

-- The calls of an app by room (a room stream's needed buckets), and the calls of an app created in a time
-- range (a listed day, the starter query's last settled day).
CREATE INDEX rtc_rooms_room ON rtc_rooms (app_id, room_id, created_at);
CREATE INDEX rtc_rooms_created ON rtc_rooms (app_id, created_at);
