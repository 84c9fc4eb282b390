-- The calls of each `[[rooms]]` block's app, as `ListRoomInfo` lists them (PRODUCT.md, "Room streams").
--
-- One row per (app, call). A re-listing updates a changed row (`updated_at` moves, `first_seen_at` stays)
-- and leaves an unchanged one untouched. `destroyed_at` is NULL while the call runs. No statement names a
-- schema: `[storage] schema` is the search path. This migration only adds.
CREATE TABLE rtc_rooms (
    app_id          text NOT NULL,
    room_id         text NOT NULL,
    call_id         text NOT NULL,
    created_at      timestamptz NOT NULL,
    destroyed_at    timestamptz,
    active_user_num bigint NOT NULL CHECK (active_user_num >= 0),
    finished        boolean NOT NULL,
    first_seen_at   timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (app_id, call_id)
);

-- The calls of an app by room (a room stream's needed buckets), and the calls of an app created in a time
-- range (a listed day, the starter query's last settled day).
CREATE INDEX rtc_rooms_room ON rtc_rooms (app_id, room_id, created_at);
CREATE INDEX rtc_rooms_created ON rtc_rooms (app_id, created_at);
