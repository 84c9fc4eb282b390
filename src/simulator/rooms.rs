//! The simulator's rooms: a pure, seeded function from (seed, app, time) to the calls created then,
//! and the `ListRoomInfo` page a validated request gets.
//!
//! **Invariant:** no state. Time is cut into fixed [`SLOT`]s; the calls created in a slot follow from
//! a hash of (seed, app, slot start) alone, so any range, however it is asked, lists the same calls,
//! and tests can compute with [`room_calls`] exactly what a complete listing must return. What
//! depends on the data-now is only what has happened by then: a call is listed once it was created
//! [`LISTING_DELAY`] before it, and it is finished once its destroy time has passed.

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};

use super::data::{mix, unit_interval};
use crate::api::wire::{ListRoomInfoResult, RoomInfo};

/// Calls are drawn per slot of this length (slot starts are multiples of it since the epoch).
pub const SLOT: Duration = Duration::minutes(10);
/// The most calls one slot creates in the occasional rooms: about 0.18 per slot on average, some
/// 26 per app and day, beside the permanent rooms' 70 or so.
pub const MAX_CALLS_PER_SLOT: u64 = 2;
/// A call lasts from 3 minutes to this long.
pub const MAX_CALL_DURATION: Duration = Duration::minutes(4 * 60);
/// The documented delay before a new call is listed (volc-openapi.md section 6).
pub const LISTING_DELAY: Duration = Duration::seconds(20);
/// One `ListRoomInfo` call covers at most this much; a longer range is cut to `StartTime + 24 h`.
pub const MAX_RANGE: Duration = Duration::hours(24);

/// Every app's permanent rooms: never empty, each call handing over to the next (a lobby, a
/// classroom that runs all day), so their quality has no gap. Each lasts [`PERMANENT_CALL`] or a
/// little more; about 7 calls per room and day.
pub const PERMANENT_ROOMS: [&str; 10] = [
    "room-0", "room-1", "room-2", "room-3", "room-4", "room-5", "room-6", "room-7", "room-8",
    "room-9",
];

/// Every app's occasional rooms, busiest first: a call now and then, from the per-slot draw, and
/// nothing between. Five need escaping in a URL (a space, `+`, `/`, non-ASCII, `%`).
pub const OCCASIONAL_ROOMS: [&str; 20] = [
    "lobby 2",
    "a+b",
    "team/alpha",
    "房间-1",
    "room-10",
    "50%off",
    "room-12",
    "room-13",
    "room-14",
    "room-15",
    "room-16",
    "room-17",
    "room-18",
    "room-19",
    "room-20",
    "room-21",
    "room-22",
    "room-23",
    "room-24",
    "room-25",
];

/// A permanent room's calls start every 3 h or 3.5 h (per app and room), each ending 30 s after
/// the next one started.
const PERMANENT_CALL: [Duration; 2] = [Duration::minutes(180), Duration::minutes(210)];

/// Whether `room_id` is one of the app's rooms: a `ListQuality` for any other room has no data.
pub fn room_exists(room_id: &str) -> bool {
    PERMANENT_ROOMS.contains(&room_id) || OCCASIONAL_ROOMS.contains(&room_id)
}

/// One call as the simulator knows it, its whole life (whatever the data-now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCall {
    /// Unique per app: the slot and the call's place in it.
    pub call_id: String,
    pub room_id: String,
    pub created: DateTime<Utc>,
    /// When it ends; after `created`.
    pub destroyed: DateTime<Utc>,
    /// 1 to 50.
    pub active_user_num: i64,
}

impl SimCall {
    /// Whether it has ended at `data_now`.
    pub fn finished_at(&self, data_now: DateTime<Utc>) -> bool {
        self.destroyed <= data_now
    }

    /// Whether `ListRoomInfo` lists it at `data_now`.
    pub fn listed_at(&self, data_now: DateTime<Utc>) -> bool {
        self.created + LISTING_DELAY <= data_now
    }

    /// As `ListRoomInfo` lists it at `data_now`, its times in `tz`: `DestroyTime` `""` and
    /// `IsFinished` false while it runs.
    pub fn to_wire(&self, data_now: DateTime<Utc>, tz: FixedOffset) -> RoomInfo {
        let finished = self.finished_at(data_now);
        let stamp = |t: DateTime<Utc>| {
            t.with_timezone(&tz)
                .to_rfc3339_opts(SecondsFormat::Secs, false)
        };
        RoomInfo {
            call_id: self.call_id.clone(),
            room_id: self.room_id.clone(),
            created_time: stamp(self.created),
            destroy_time: if finished {
                stamp(self.destroyed)
            } else {
                String::new()
            },
            active_user_num: Some(self.active_user_num),
            is_finished: finished,
        }
    }
}

fn app_hash(seed: u64, app_id: &str) -> u64 {
    let mut words = vec![seed, app_id.len() as u64];
    words.extend(app_id.bytes().map(u64::from));
    mix(&words)
}

/// The calls created in one slot.
fn slot_calls(app: u64, slot_start: i64) -> Vec<SimCall> {
    let draw = |k: u64, what: u64| mix(&[app, slot_start as u64, k, what]);
    let u = unit_interval(draw(0, 0));
    let n = if u < 0.85 {
        0
    } else if u < 0.97 {
        1
    } else {
        MAX_CALLS_PER_SLOT
    };
    let slot_secs = SLOT.num_seconds() as u64;
    (0..n)
        .map(|k| {
            let created = slot_start + (draw(k, 1) % slot_secs) as i64;
            // Rooms at the front of the list are busier: a few rooms carry most calls.
            let r = unit_interval(draw(k, 2));
            let n = OCCASIONAL_ROOMS.len();
            let room = OCCASIONAL_ROOMS[((r * r) * n as f64) as usize % n];
            let d = unit_interval(draw(k, 3));
            // Under MAX_CALL_DURATION, seconds included.
            let minutes = 3 + (d * d * (MAX_CALL_DURATION.num_minutes() - 4) as f64) as i64;
            let seconds = minutes * 60 + (draw(k, 4) % 60) as i64;
            let a = unit_interval(draw(k, 5));
            let users = if a < 0.2 {
                1
            } else {
                2 + ((a - 0.2) / 0.8 * (a - 0.2) / 0.8 * 48.0) as i64
            };
            let at = |s: i64| DateTime::from_timestamp(s, 0).expect("slot times are in range");
            SimCall {
                call_id: format!("call-s{:x}-{k}-{:04x}", slot_start, draw(k, 6) & 0xffff),
                room_id: room.to_string(),
                created: at(created),
                destroyed: at(created + seconds),
                active_user_num: users.clamp(1, 50),
            }
        })
        .collect()
}

/// The calls of permanent room number `index` created in `[from, to]`. Its time is cut into
/// segments of its period from its phase (both drawn per app and room); segment `k`'s call starts up
/// to a minute into it and ends 30 s after segment `k + 1`'s starts, so some call always runs.
fn permanent_calls(app: u64, index: usize, from: i64, to: i64) -> Vec<SimCall> {
    let room = mix(&[app, 0x524f_4f4d, index as u64]);
    let period = PERMANENT_CALL[(room % 2) as usize].num_seconds();
    let phase = (mix(&[room, 1]) % period as u64) as i64;
    let start_of = |k: i64| phase + k * period + (mix(&[room, 2, k as u64]) % 60) as i64;
    let at = |s: i64| DateTime::from_timestamp(s, 0).expect("call times are in range");
    // The segment holding `from` may have started its call after `from`; the one before cannot
    // have started it at or after `from`.
    let mut k = (from - phase).div_euclid(period);
    let mut out = Vec::new();
    while start_of(k) <= to {
        let created = start_of(k);
        if created >= from {
            let a = unit_interval(mix(&[room, 3, k as u64]));
            out.push(SimCall {
                call_id: format!(
                    "call-r{index}-{k:x}-{:04x}",
                    mix(&[room, 4, k as u64]) & 0xffff
                ),
                room_id: PERMANENT_ROOMS[index].to_string(),
                created: at(created),
                destroyed: at(start_of(k + 1) + 30),
                active_user_num: 2 + (a * 48.0) as i64,
            });
        }
        k += 1;
    }
    out
}

/// Every call of `app_id` created in `[from, to]` (both ends included), whatever the data-now,
/// ordered by (created, call id).
pub fn calls_created(
    seed: u64,
    app_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<SimCall> {
    let app = app_hash(seed, app_id);
    let slot = SLOT.num_seconds();
    let mut t = from.timestamp().div_euclid(slot) * slot;
    let mut out = Vec::new();
    while t <= to.timestamp() {
        out.extend(
            slot_calls(app, t)
                .into_iter()
                .filter(|c| c.created >= from && c.created <= to),
        );
        t += slot;
    }
    for index in 0..PERMANENT_ROOMS.len() {
        out.extend(permanent_calls(
            app,
            index,
            from.timestamp(),
            to.timestamp(),
        ));
    }
    out.sort_by(|a, b| (a.created, &a.call_id).cmp(&(b.created, &b.call_id)));
    out
}

/// What `ListRoomInfo` lists for `app_id` over `[from, to]` at `data_now` (no 24 h cut: give the
/// range the API would use): the calls created in it and listed by then, ordered by (created, call
/// id), as [`SimCall`]s (see [`SimCall::to_wire`] for the listed form).
pub fn room_calls(
    seed: u64,
    app_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    data_now: DateTime<Utc>,
) -> Vec<SimCall> {
    calls_created(seed, app_id, from, to)
        .into_iter()
        .filter(|c| c.listed_at(data_now))
        .collect()
}

/// The spans `[created, destroyed)` of `room_id`'s calls that overlap `[from, to)`, created before
/// `cutoff` when given (a call not created by the data-now has not run yet).
pub fn room_spans(
    seed: u64,
    app_id: &str,
    room_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cutoff: Option<DateTime<Utc>>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let last = cutoff.map_or(to, |c| c.min(to));
    calls_created(seed, app_id, from - MAX_CALL_DURATION, to)
        .into_iter()
        .filter(|c| c.room_id == room_id && c.created < last && c.destroyed > from)
        .map(|c| (c.created, c.destroyed))
        .collect()
}

/// Whether one of `room_id`'s calls ran in `[from, to)` (see [`room_spans`]).
pub fn room_active(
    seed: u64,
    app_id: &str,
    room_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cutoff: Option<DateTime<Utc>>,
) -> bool {
    !room_spans(seed, app_id, room_id, from, to, cutoff).is_empty()
}

/// A validated `ListRoomInfo` request.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomQuery {
    pub app_id: String,
    pub start: DateTime<FixedOffset>,
    /// As asked; [`RoomQuery::clipped_end`] is the end the API uses.
    pub end: DateTime<FixedOffset>,
    /// From 1.
    pub page_num: i64,
    /// 1 to 100.
    pub page_size: i64,
}

impl RoomQuery {
    /// The end the API uses: `EndTime`, or `StartTime + 24 h` when that comes first.
    pub fn clipped_end(&self) -> DateTime<FixedOffset> {
        self.end.min(self.start + MAX_RANGE)
    }
}

/// The page a request gets at `data_now`. When the (clipped) range holds more than `max_matches`
/// calls, the answer is `HasMore: true` with the right `Total` and an **empty** `RoomList`: "too many
/// matches, narrow the query". Otherwise `HasMore: false` and the page `PageNum` of `PageSize` calls
/// ordered by (created, call id); a page past the end is empty.
pub fn list_page(
    seed: u64,
    q: &RoomQuery,
    data_now: DateTime<Utc>,
    max_matches: usize,
) -> ListRoomInfoResult {
    let calls = room_calls(
        seed,
        &q.app_id,
        q.start.with_timezone(&Utc),
        q.clipped_end().with_timezone(&Utc),
        data_now,
    );
    let total = calls.len();
    let has_more = total > max_matches;
    let room_list = if has_more {
        Vec::new()
    } else {
        let skip =
            usize::try_from((q.page_num - 1).saturating_mul(q.page_size)).unwrap_or(usize::MAX);
        calls
            .iter()
            .skip(skip)
            .take(q.page_size as usize)
            .map(|c| c.to_wire(data_now, *q.start.offset()))
            .collect()
    };
    ListRoomInfoResult {
        total: Some(total as i64),
        page_num: Some(q.page_num),
        page_size: Some(q.page_size),
        has_more,
        room_list,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn calls_do_not_depend_on_how_the_range_is_cut() {
        let from = t("2026-03-01T00:00:00Z");
        let to = t("2026-03-03T00:00:00Z");
        let whole = calls_created(7, "app", from, to);
        let mid = t("2026-03-01T13:37:11Z");
        let mut parts = calls_created(7, "app", from, mid);
        parts.extend(
            calls_created(7, "app", mid, to)
                .into_iter()
                .filter(|c| c.created != mid),
        );
        assert_eq!(whole, parts);
        // A few dozen per day, unique ids, sane lives and user counts, escaped rooms among them.
        assert!((120..300).contains(&whole.len()), "{}", whole.len());
        let ids: std::collections::BTreeSet<&str> =
            whole.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(ids.len(), whole.len());
        for c in &whole {
            assert!(c.destroyed > c.created + Duration::minutes(2), "{c:?}");
            assert!(c.destroyed < c.created + MAX_CALL_DURATION);
            assert!((1..=50).contains(&c.active_user_num), "{c:?}");
        }
        assert!(whole.iter().any(|c| c.active_user_num == 1));
        let month = calls_created(7, "app", from, from + Duration::days(30));
        assert!((2000..4000).contains(&month.len()), "{}", month.len());
        for special in ["lobby 2", "a+b", "team/alpha", "房间-1", "50%off"] {
            assert!(month.iter().any(|c| c.room_id == special), "{special}");
        }
        assert_ne!(whole, calls_created(8, "app", from, to));
        assert_ne!(whole, calls_created(7, "app2", from, to));
        // A permanent room always has a call running; an occasional one has gaps.
        let busy = |room: &str, t: DateTime<Utc>| {
            month
                .iter()
                .any(|c| c.room_id == room && c.created <= t && c.destroyed > t)
        };
        let minutes = (300..30 * 24 * 60 - 300)
            .step_by(7)
            .map(|m| from + Duration::minutes(m));
        for room in PERMANENT_ROOMS {
            assert!(minutes.clone().all(|t| busy(room, t)), "{room}");
        }
        assert!(!minutes.clone().all(|t| busy("a+b", t)));
    }

    #[test]
    fn a_page_of_too_many_matches_says_has_more_and_lists_nothing() {
        let q = RoomQuery {
            app_id: "app".into(),
            start: DateTime::parse_from_rfc3339("2026-03-01T00:00:00+08:00").unwrap(),
            end: DateTime::parse_from_rfc3339("2026-03-03T00:00:00+08:00").unwrap(),
            page_num: 1,
            page_size: 100,
        };
        let now = t("2026-03-10T00:00:00Z");
        let all = list_page(1, &q, now, 10_000);
        let n = all.total.unwrap() as usize;
        assert!(!all.has_more);
        assert_eq!(all.room_list.len(), n.min(100));
        let over = list_page(1, &q, now, n - 1);
        assert!(over.has_more);
        assert!(over.room_list.is_empty());
        assert_eq!(over.total, Some(n as i64));
    }
}
