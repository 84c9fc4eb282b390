//! `rtc_rooms`: the calls discovery lists (`ListRoomInfo`), one row per `(app_id, call_id)`,
//! written once for both backends like `ledger` (`$N` placeholders, times bound as [`Instant`]).
//!
//! A listed range (one local day) is committed with its ledger row in one transaction
//! (`commit::commit_listing`): the calls are read back, [`decide`] sorts them into new, changed and
//! unchanged, the new ones are inserted, the changed ones updated, and the unchanged ones are not
//! written at all; then the range's ledger row (indicator [`CALLS`]) is recorded by
//! `ledger::replace_window`, which supersedes the failed rows it covers as a window of points does.
//!
//! [`worst_rooms`] runs the BI starter query `09_worst_rooms_yesterday.sql` of the backend, the
//! file itself, so `demo` names the worst room as a dashboard would.
//!
//! **Invariant:** an unchanged call is never written (no row write, no `updated_at` change); a
//! changed one keeps its `first_seen_at`.

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};

use super::decode;
use super::ledger::{self, Conn, Fetched, On, Pools, on, packed_sql};
use super::time::Instant;
use super::{Result, WorstRoom, db};
use crate::domain::{RoomCall, Window, WindowState};

/// The indicator of a listing's ledger rows: what a discovery stream asks is its calls.
pub const CALLS: &str = "calls";

/// One listed range of an app's calls, committed with its ledger row in one transaction.
#[derive(Debug, Clone)]
pub struct RoomListing<'a> {
    /// The discovery stream's key (the ledger's `stream`).
    pub stream: &'a str,
    pub app_id: &'a str,
    /// The listed range.
    pub window: Window,
    /// The ledger row is `settled` if the range is done (it had ended 10 minutes before it was
    /// listed and every call created in it had finished), else `provisional`: listed again next run.
    pub done: bool,
    /// The calls as listed; a call listed twice is written once (the later listing wins).
    pub calls: &'a [RoomCall],
    /// How many calls this range has cost, counting every run.
    pub attempts: i64,
    /// The API's RequestId of the last page, when there was one.
    pub request_id: Option<&'a str>,
    /// When the range was listed: a new or changed row's `updated_at` (and a new one's
    /// `first_seen_at`), and the ledger row's `fetched_at`.
    pub fetched_at: DateTime<Utc>,
}

/// What a listing did to `rtc_rooms`, counted in distinct calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// A row of `rtc_rooms`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCall {
    pub app_id: String,
    pub call: RoomCall,
    /// When a listing first returned the call.
    pub first_seen_at: DateTime<Utc>,
    /// When the row was last written: the listing that last changed it.
    pub updated_at: DateTime<Utc>,
}

/// What a listing writes, decided from the calls listed and those stored.
#[derive(Debug, PartialEq)]
pub(super) struct Decision {
    pub new: Vec<RoomCall>,
    pub changed: Vec<RoomCall>,
    pub unchanged: u64,
}

impl Decision {
    pub fn counts(&self) -> RoomCounts {
        RoomCounts {
            inserted: self.new.len() as u64,
            updated: self.changed.len() as u64,
            unchanged: self.unchanged,
        }
    }
}

/// The calls as they will be stored: each `call_id` once (the later listing winning, in the order
/// of first appearance), times cut to the microseconds both backends keep, so a call listed again
/// with nanoseconds does not look changed forever.
pub(super) fn normalize(calls: &[RoomCall]) -> Vec<RoomCall> {
    let mut out: Vec<RoomCall> = Vec::with_capacity(calls.len());
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(calls.len());
    for call in calls {
        let kept = RoomCall {
            created_at: call.created_at.trunc_subsecs(6),
            destroyed_at: call.destroyed_at.map(|t| t.trunc_subsecs(6)),
            ..call.clone()
        };
        match at.get(call.call_id.as_str()) {
            Some(&i) => out[i] = kept,
            None => {
                at.insert(&call.call_id, out.len());
                out.push(kept);
            }
        }
    }
    out
}

/// Sorts normalized calls (each `call_id` once) into new (not stored), changed (any of room,
/// creation, destruction, active users or finished differs from the stored row) and unchanged.
pub(super) fn decide(listed: Vec<RoomCall>, stored: &HashMap<String, RoomCall>) -> Decision {
    let mut decision = Decision {
        new: Vec::new(),
        changed: Vec::new(),
        unchanged: 0,
    };
    for call in listed {
        match stored.get(&call.call_id) {
            None => decision.new.push(call),
            Some(s) if *s == call => decision.unchanged += 1,
            Some(_) => decision.changed.push(call),
        }
    }
    decision
}

/// Call ids per statement that reads stored calls back; a shorter last chunk is padded with its
/// last id, so every chunk runs the one prepared statement.
const READ_CHUNK: usize = 100;

/// Binds `$1` to `$8` of [`INSERT_CALL`] and [`UPDATE_CALL`] to `$q`: the app `$app`, the call
/// `$c` (id, room, times, users, finished) and the listing's instant `$at`.
macro_rules! bind_call {
    ($q:expr, $app:expr, $c:expr, $at:expr) => {{
        let c: &RoomCall = $c;
        $q.bind($app)
            .bind(c.call_id.as_str())
            .bind(c.room_id.as_str())
            .bind(Instant(c.created_at))
            .bind(c.destroyed_at.map(Instant))
            .bind(c.active_user_num)
            .bind(c.finished)
            .bind(Instant($at))
    }};
}

const INSERT_CALL: &str = "INSERT INTO rtc_rooms (app_id, call_id, room_id, created_at, \
     destroyed_at, active_user_num, finished, first_seen_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";

// `first_seen_at` is kept: the row changed, the call is the one first seen then.
const UPDATE_CALL: &str = "UPDATE rtc_rooms SET room_id = $3, created_at = $4, destroyed_at = $5, \
     active_user_num = $6, finished = $7, updated_at = $8 WHERE app_id = $1 AND call_id = $2";

/// `SELECT` of the stored calls of `$1` among the ids `$2 ..= $(READ_CHUNK + 1)`.
fn stored_calls_sql() -> String {
    let ids: Vec<String> = (2..READ_CHUNK + 2).map(|i| format!("${i}")).collect();
    format!(
        "SELECT app_id, room_id, call_id, created_at, destroyed_at, active_user_num, finished, \
         first_seen_at, updated_at FROM rtc_rooms WHERE app_id = $1 AND call_id IN ({})",
        ids.join(", ")
    )
}

/// Inside a listing's transaction: the calls upserted (an unchanged one not written), then the
/// range's ledger row.
pub(super) async fn write_listing(mut conn: Conn<'_>, l: &RoomListing<'_>) -> Result<RoomCounts> {
    let listed = normalize(l.calls);
    let listed_count = listed.len() as i64;
    let sql = stored_calls_sql();
    let mut stored: HashMap<String, RoomCall> = HashMap::new();
    on!(conn.reborrow(), e => {
        for chunk in listed.chunks(READ_CHUNK) {
            let mut q = sqlx::query(&sql).bind(l.app_id);
            let pad = std::iter::repeat_n(&chunk[chunk.len() - 1], READ_CHUNK - chunk.len());
            for c in chunk.iter().chain(pad) {
                q = q.bind(c.call_id.as_str());
            }
            let rows = q.fetch_all(&mut *e).await.map_err(db("reading stored calls"))?;
            for r in &rows {
                let s = decode::stored_call(r)?;
                stored.insert(s.call.call_id.clone(), s.call);
            }
        }
    });
    let decision = decide(listed, &stored);
    on!(conn.reborrow(), e => {
        for c in &decision.new {
            bind_call!(sqlx::query(INSERT_CALL), l.app_id, c, l.fetched_at)
                .execute(&mut *e)
                .await
                .map_err(db("adding a listed call"))?;
        }
        for c in &decision.changed {
            bind_call!(sqlx::query(UPDATE_CALL), l.app_id, c, l.fetched_at)
                .execute(&mut *e)
                .await
                .map_err(db("updating a listed call"))?;
        }
    });
    let state = if l.done {
        WindowState::Settled
    } else {
        WindowState::Provisional
    };
    let indicators = [CALLS.to_string()];
    let fetched = Fetched {
        stream: l.stream,
        window: l.window,
        indicators: &indicators,
        attempts: l.attempts,
        request_id: l.request_id,
        fetched_at: l.fetched_at,
    };
    ledger::replace_window(conn, &fetched, &[(l.window, state, vec![listed_count])]).await?;
    Ok(decision.counts())
}

/// A call as a packed read of `rtc_rooms` holds it ([`decode::room_calls`]).
macro_rules! call_columns {
    () => {
        "call_id, created_at, destroyed_at, active_user_num, CASE WHEN finished THEN 1 ELSE 0 END, \
         first_seen_at, updated_at"
    };
}

/// Every call of `$1`, one row per room with its calls packed ([`decode::room_calls`] reads them).
const APP_CALLS: [&str; 2] = packed_sql!(
    "app_id, room_id",
    [call_columns!()],
    "rtc_rooms WHERE app_id = $1 GROUP BY app_id, room_id"
);

/// The calls of `$1` that can overlap `[$2, $3)`, packed as [`APP_CALLS`]: two index ranges of
/// `rtc_rooms_destroyed`, disjoint. The running calls are all read (they are few), and those created
/// after `$3` left out by the caller: a bound on `created_at` there makes SQLite walk
/// `rtc_rooms_created` instead, a table lookup per stored call.
const CALLS_BETWEEN: [&str; 2] = packed_sql!(
    "app_id, room_id",
    [call_columns!()],
    "(SELECT * FROM rtc_rooms WHERE app_id = $1 AND destroyed_at IS NULL \
     UNION ALL SELECT * FROM rtc_rooms WHERE app_id = $1 AND destroyed_at >= $2 AND created_at < $3) c \
     GROUP BY app_id, room_id"
);

const COUNTS: &str = "SELECT count(*), count(DISTINCT room_id) FROM rtc_rooms WHERE app_id = $1";

/// Reads calls with the query `$sql` (one text per backend, see [`packed_sql!`]) and the binds
/// `$bind`, and orders them by `(created_at, call_id)`, call ids in byte order on both backends.
macro_rules! read_calls {
    ($pools:expr, $sql:expr, |$q:ident| $bind:expr) => {{
        let sql = $pools.pick($sql);
        let mut out: Vec<StoredCall> = Vec::new();
        on!($pools, e => {
            use futures::TryStreamExt as _;
            let $q = sqlx::query(sql);
            let mut rows = ($bind).fetch(e);
            while let Some(row) = rows.try_next().await.map_err(db("reading rtc_rooms"))? {
                decode::room_calls(&row, &mut out)?;
            }
        });
        out.sort_by(|a, b| {
            (a.call.created_at, a.call.call_id.as_bytes())
                .cmp(&(b.call.created_at, b.call.call_id.as_bytes()))
        });
        Ok(out)
    }};
}

/// Every stored call of `app_id`, by `(created_at, call_id)`.
pub(super) async fn calls(pools: Pools<'_>, app_id: &str) -> Result<Vec<StoredCall>> {
    read_calls!(pools, APP_CALLS, |q| q.bind(app_id))
}

/// The stored calls of `app_id` that can overlap `range`, ordered as [`calls`].
pub(super) async fn calls_between(
    pools: Pools<'_>,
    app_id: &str,
    range: Window,
) -> Result<Vec<StoredCall>> {
    let mut calls: Vec<StoredCall> = read_calls!(pools, CALLS_BETWEEN, |q| q
        .bind(app_id)
        .bind(Instant(range.start))
        .bind(Instant(range.end)))?;
    calls.retain(|c| c.call.created_at < range.end);
    Ok(calls)
}

/// `(calls, rooms)` of `app_id`.
pub(super) async fn counts(pools: Pools<'_>, app_id: &str) -> Result<(u64, u64)> {
    let (calls, rooms): (i64, i64) = on!(pools, e => {
        sqlx::query_as(COUNTS)
            .bind(app_id)
            .fetch_one(e)
            .await
            .map_err(db("counting rtc_rooms"))?
    });
    Ok((calls.max(0) as u64, rooms.max(0) as u64))
}

// The BI starter query itself, so `demo` names the worst room exactly as the file ranks it.
const SQLITE_WORST_ROOMS: &str = include_str!("../../sql/sqlite/09_worst_rooms_yesterday.sql");
const POSTGRES_WORST_ROOMS: &str = include_str!("../../sql/postgres/09_worst_rooms_yesterday.sql");

/// The rows of `sql/<backend>/09_worst_rooms_yesterday.sql`, worst first (at most 10).
pub(super) async fn worst_rooms(pools: Pools<'_>) -> Result<Vec<WorstRoom>> {
    let sql = match pools {
        On::Sqlite(_) => SQLITE_WORST_ROOMS,
        On::Postgres(_) => POSTGRES_WORST_ROOMS,
    };
    on!(pools, e => {
        let rows = sqlx::query(sql)
            .fetch_all(e)
            .await
            .map_err(db("reading the worst rooms"))?;
        rows.iter().map(decode::worst_room).collect()
    })
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_714_521_600 + secs, 0).unwrap()
    }

    fn call(id: &str, room: &str, destroyed: Option<i64>) -> RoomCall {
        RoomCall {
            call_id: id.into(),
            room_id: room.into(),
            created_at: t(0) + Duration::milliseconds(125),
            destroyed_at: destroyed.map(t),
            active_user_num: 3,
            finished: destroyed.is_some(),
        }
    }

    #[test]
    fn a_call_listed_twice_is_kept_once_the_later_winning_in_first_order() {
        let listed = [
            call("a", "r1", None),
            call("b", "r1", None),
            call("a", "r1", Some(60)),
        ];
        let kept = normalize(&listed);
        assert_eq!(kept, [call("a", "r1", Some(60)), call("b", "r1", None)]);
    }

    #[test]
    fn times_are_cut_to_the_microseconds_both_backends_keep() {
        let mut c = call("a", "r1", Some(60));
        c.created_at = t(0) + Duration::nanoseconds(1_234_567);
        c.destroyed_at = Some(t(60) + Duration::nanoseconds(999));
        let kept = normalize(&[c]);
        assert_eq!(kept[0].created_at, t(0) + Duration::microseconds(1_234));
        assert_eq!(kept[0].destroyed_at, Some(t(60)));
        // Read back as stored, it is unchanged.
        let stored = HashMap::from([("a".to_string(), kept[0].clone())]);
        assert_eq!(decide(kept, &stored).unchanged, 1);
    }

    #[test]
    fn new_changed_and_unchanged_calls_are_told_apart() {
        let stored: HashMap<String, RoomCall> = [
            call("same", "r1", None),
            call("ends", "r1", None),
            call("moves", "r1", Some(60)),
            call("grows", "r1", None),
            call("stored-only", "r1", None),
        ]
        .into_iter()
        .map(|c| (c.call_id.clone(), c))
        .collect();
        let mut grows = call("grows", "r1", None);
        grows.active_user_num = 4;
        let mut created = call("created", "r1", Some(60));
        created.created_at += Duration::milliseconds(1);
        let listed = vec![
            call("same", "r1", None),
            call("ends", "r1", Some(60)),
            call("moves", "r2", Some(60)),
            grows.clone(),
            call("fresh", "r3", None),
        ];
        let d = decide(listed, &stored);
        assert_eq!(d.new, [call("fresh", "r3", None)]);
        assert_eq!(
            d.changed,
            [
                call("ends", "r1", Some(60)),
                call("moves", "r2", Some(60)),
                grows
            ]
        );
        assert_eq!(d.unchanged, 1);
        assert_eq!(
            d.counts(),
            RoomCounts {
                inserted: 1,
                updated: 3,
                unchanged: 1
            }
        );
        // A creation time a millisecond apart is a change too; finished alone is one as well.
        let mut stored_created = created.clone();
        stored_created.created_at -= Duration::milliseconds(1);
        let mut finished = call("f", "r1", None);
        finished.finished = true;
        let stored: HashMap<String, RoomCall> = [stored_created, call("f", "r1", None)]
            .into_iter()
            .map(|c| (c.call_id.clone(), c))
            .collect();
        let d = decide(vec![created, finished], &stored);
        assert_eq!((d.new.len(), d.changed.len(), d.unchanged), (0, 2, 0));
    }

    #[test]
    fn the_read_statement_has_one_placeholder_per_chunk_id() {
        let sql = stored_calls_sql();
        assert!(sql.contains("call_id IN ($2, $3, "));
        assert!(sql.ends_with(&format!("${})", READ_CHUNK + 1)));
    }
}
