//! `rtc_rooms` and the store API discovery writes through (`Store::commit_listing`,
//! `Store::room_calls`), each test run on SQLite and on PostgreSQL: a listed range of calls is
//! committed with its ledger row in one transaction, a changed call is updated, an unchanged one is
//! never written.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rtc_quality_sync::domain::{FailedWindow, PgSchema, RoomCall, Window, WindowState};
use rtc_quality_sync::store::{CALLS, RoomCounts, RoomListing, Store, StoredCall};

use crate::store::on_both_backends;

on_both_backends!(
    a_first_listing_inserts_every_call_read_back_exactly,
    a_relisting_updates_exactly_the_call_that_finished,
    an_identical_relisting_writes_nothing,
    the_ledger_row_follows_done_and_supersedes_a_failure,
    a_run_reads_only_the_calls_that_can_overlap_its_horizon,
    text_of_any_kind_reads_back_exactly,
);

// ---------------------------------------------------------------------------------------------
// Builders

/// 2024-05-01T16:00:00Z (a local day's start in +08:00) plus `minutes`.
fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 16, 0, 0).unwrap() + Duration::minutes(minutes)
}

/// The listed local day.
fn day() -> Window {
    Window::new(t(0), t(24 * 60))
}

/// A call created `minutes` (and 250 ms) into the day; running when `ended` is `None`.
fn call(id: &str, room: &str, minutes: i64, ended: Option<i64>, users: i64) -> RoomCall {
    RoomCall {
        call_id: id.into(),
        room_id: room.into(),
        created_at: t(minutes) + Duration::milliseconds(250),
        destroyed_at: ended.map(|m| t(m) + Duration::milliseconds(7)),
        active_user_num: users,
        finished: ended.is_some(),
    }
}

fn calls() -> Vec<RoomCall> {
    vec![
        call("c-3", "room-b", 30, None, 2),
        call("c-1", "room-a", 10, Some(40), 5),
        // Created at the same instant as c-3: ordered by call id.
        call("c-2", "room-a", 30, None, 0),
    ]
}

/// An instant with microseconds, as a run's clock gives it.
fn at(minutes: i64) -> DateTime<Utc> {
    t(minutes) + Duration::microseconds(123_456)
}

fn listing<'a>(calls: &'a [RoomCall], done: bool, fetched_at: DateTime<Utc>) -> RoomListing<'a> {
    RoomListing {
        stream: "rooms-key",
        app_id: "app1",
        window: day(),
        done,
        calls,
        attempts: 1,
        request_id: Some("req-1"),
        fetched_at,
    }
}

fn counts(inserted: u64, updated: u64, unchanged: u64) -> RoomCounts {
    RoomCounts {
        inserted,
        updated,
        unchanged,
    }
}

fn stored(c: &RoomCall, first_seen_at: DateTime<Utc>, updated_at: DateTime<Utc>) -> StoredCall {
    StoredCall {
        app_id: "app1".into(),
        call: c.clone(),
        first_seen_at,
        updated_at,
    }
}

/// Evidence of physical writes to `rtc_rooms`: PostgreSQL's row versions per call (a rewrite
/// changes them), or SQLite's count of rows changed by the writer connection (any table).
async fn write_evidence(store: &Store) -> (Vec<(String, String)>, i64) {
    match store {
        Store::Sqlite(s) => (Vec::new(), s.writer_total_changes().await.unwrap()),
        Store::Postgres(s) => {
            let v = sqlx::query_as(
                "SELECT call_id, ctid::text || '@' || xmin::text FROM rtc_rooms ORDER BY call_id",
            )
            .fetch_all(s.pool())
            .await
            .unwrap();
            (v, 0)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

async fn a_first_listing_inserts_every_call_read_back_exactly(store: &Store) {
    let listed = calls();
    // Another app's call is kept apart.
    let other = [call("c-1", "room-x", 5, None, 1)];
    store
        .commit_listing(&RoomListing {
            app_id: "app2",
            stream: "other-key",
            ..listing(&other, false, at(50))
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .commit_listing(&listing(&listed, false, at(60)))
            .await
            .unwrap(),
        counts(3, 0, 0)
    );
    let got = store.room_calls("app1").await.unwrap();
    let expected: Vec<StoredCall> = [&listed[1], &listed[2], &listed[0]]
        .into_iter()
        .map(|c| stored(c, at(60), at(60)))
        .collect();
    assert_eq!(got, expected, "every column, times to the microsecond");
    assert_eq!(got[0].call.created_at.timestamp_subsec_millis(), 250);
    assert_eq!(got[1].call.destroyed_at, None, "NULL while the call runs");
    let other_got = store.room_calls("app2").await.unwrap();
    assert_eq!(other_got.len(), 1);
    assert_eq!(other_got[0].call.room_id, "room-x");
    assert!(store.room_calls("app3").await.unwrap().is_empty());
}

/// The ledger and `rtc_rooms` are read packed (a JSON array per stream, per room): every text,
/// however it must be escaped, and every time to the microsecond comes back as it was written.
async fn text_of_any_kind_reads_back_exactly(store: &Store) {
    const HOSTILE: [&str; 6] = [
        "quote\" back\\slash",
        "new\nline\ttab\r",
        "ünï 漢字 🎉",
        "'); DROP TABLE rtc_rooms; --",
        "\u{7f}\u{1b}[31m\u{2028}",
        "%2F + / ? & =",
    ];
    let listed: Vec<RoomCall> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let minutes = 10 * i as i64;
            let ended = (i % 2 == 0).then_some(minutes + 200);
            let users = i as i64 * 1_000_000_007;
            call(
                &format!("{text} {i}"),
                &format!("{text} room"),
                minutes,
                ended,
                users,
            )
        })
        .collect();
    store
        .commit_listing(&RoomListing {
            stream: HOSTILE[0],
            ..listing(&listed, false, at(300))
        })
        .await
        .unwrap();
    let expected: Vec<StoredCall> = listed.iter().map(|c| stored(c, at(300), at(300))).collect();
    assert_eq!(store.room_calls("app1").await.unwrap(), expected);
    assert_eq!(
        store
            .room_calls_between("app1", Window::new(t(0), t(60)))
            .await
            .unwrap(),
        expected
    );
    // A failure under each hostile key, its error hostile too, beside the listing's row.
    for (i, text) in HOSTILE.iter().enumerate() {
        store
            .record_failure(&FailedWindow {
                stream: text,
                indicators: &[text.to_string()],
                window: Window::new(t(i as i64), t(i as i64 + 1)),
                error: text,
                request_id: Some(text),
                attempts: i as i64 + 1,
                fetched_at: at(400 + i as i64),
            })
            .await
            .unwrap();
    }
    let ledger = store.ledger(None).await.unwrap();
    let mut failures: Vec<_> = ledger
        .iter()
        .filter(|e| e.state == WindowState::Failed)
        .collect();
    failures.sort_by_key(|e| e.attempts);
    assert_eq!(failures.len(), HOSTILE.len());
    for (i, (e, text)) in failures.iter().zip(HOSTILE).enumerate() {
        assert_eq!(
            (
                &*e.stream,
                e.indicator.as_str(),
                e.window,
                e.last_error.as_deref(),
                e.request_id.as_deref(),
                e.fetched_at
            ),
            (
                text,
                text,
                Window::new(t(i as i64), t(i as i64 + 1)),
                Some(text),
                Some(text),
                at(400 + i as i64)
            )
        );
    }
    let listing_row = ledger
        .iter()
        .find(|e| e.state == WindowState::Provisional)
        .unwrap();
    assert_eq!(
        (
            &*listing_row.stream,
            listing_row.points,
            listing_row.fetched_at
        ),
        (HOSTILE[0], HOSTILE.len() as i64, at(300))
    );
    // One stream's rows read alone are the same rows.
    let one: Vec<_> = ledger
        .iter()
        .filter(|e| &*e.stream == HOSTILE[1])
        .cloned()
        .collect();
    assert_eq!(store.ledger(Some(HOSTILE[1])).await.unwrap(), one);
}

async fn a_relisting_updates_exactly_the_call_that_finished(store: &Store) {
    let first = calls();
    store
        .commit_listing(&listing(&first, false, at(60)))
        .await
        .unwrap();
    let (versions_before, changes_before) = write_evidence(store).await;

    // c-3 ended: its destroyed_at arrives and it is finished.
    let mut again = calls();
    again[0].destroyed_at = Some(t(90) + Duration::milliseconds(999));
    again[0].finished = true;
    assert_eq!(
        store
            .commit_listing(&listing(&again, false, at(120)))
            .await
            .unwrap(),
        counts(0, 1, 2)
    );
    let got = store.room_calls("app1").await.unwrap();
    assert_eq!(
        got,
        [
            stored(&first[1], at(60), at(60)),
            stored(&first[2], at(60), at(60)),
            stored(&again[0], at(60), at(120)),
        ],
        "first_seen_at kept, updated_at moved for c-3 only"
    );
    let (versions_after, changes_after) = write_evidence(store).await;
    if let Store::Sqlite(_) = store {
        // The one call updated, and the range's ledger row deleted and inserted.
        assert_eq!(changes_after - changes_before, 1 + 2);
    } else {
        let moved: Vec<&str> = versions_before
            .iter()
            .zip(&versions_after)
            .filter(|(b, a)| b != a)
            .map(|(b, _)| b.0.as_str())
            .collect();
        assert_eq!(moved, ["c-3"], "only the changed row was rewritten");
    }
}

async fn an_identical_relisting_writes_nothing(store: &Store) {
    let listed = calls();
    store
        .commit_listing(&listing(&listed, false, at(60)))
        .await
        .unwrap();
    let before = store.room_calls("app1").await.unwrap();
    let (versions_before, changes_before) = write_evidence(store).await;

    // The same calls listed again later, in another order: nothing to write, not even updated_at.
    let reordered: Vec<RoomCall> = listed.iter().rev().cloned().collect();
    assert_eq!(
        store
            .commit_listing(&listing(&reordered, false, at(120)))
            .await
            .unwrap(),
        counts(0, 0, 3)
    );
    assert_eq!(store.room_calls("app1").await.unwrap(), before);
    let (versions_after, changes_after) = write_evidence(store).await;
    assert_eq!(versions_after, versions_before, "no call row was rewritten");
    if let Store::Sqlite(_) = store {
        // The range's ledger row, deleted and inserted, is the only change.
        assert_eq!(changes_after - changes_before, 2);
    }
    // The ledger row did move on to the new listing.
    let ledger = store.ledger(Some("rooms-key")).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].fetched_at, at(120));
}

async fn the_ledger_row_follows_done_and_supersedes_a_failure(store: &Store) {
    let indicators = [CALLS.to_string()];
    let failed = |window: Window, fetched_at: DateTime<Utc>| FailedWindow {
        stream: "rooms-key",
        indicators: &indicators,
        window,
        error: "http 503: try later",
        request_id: Some("req-f"),
        attempts: 2,
        fetched_at,
    };
    let next_day = Window::new(t(24 * 60), t(48 * 60));
    // A failed listing of the day, and one of the next day, which no listing below covers.
    store.record_failure(&failed(day(), at(10))).await.unwrap();
    store
        .record_failure(&failed(next_day, at(10)))
        .await
        .unwrap();
    let ledger = store.ledger(Some("rooms-key")).await.unwrap();
    assert_eq!(ledger.len(), 2);
    assert!(ledger.iter().all(|e| e.state == WindowState::Failed));
    assert!(ledger.iter().all(|e| e.indicator == CALLS));

    // A listing that is not done: provisional, and it supersedes the day's failure. A call listed
    // twice (both ends of two ranges, say) is written once and counted once.
    let mut listed = calls();
    listed.push(listed[0].clone());
    assert_eq!(
        store
            .commit_listing(&listing(&listed, false, at(60)))
            .await
            .unwrap(),
        counts(3, 0, 0)
    );
    let ledger = store.ledger(Some("rooms-key")).await.unwrap();
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    let row = &ledger[0];
    assert_eq!(
        (row.window, row.state, row.points, row.attempts),
        (day(), WindowState::Provisional, 3, 1)
    );
    assert_eq!(row.indicator, CALLS);
    assert_eq!(row.request_id.as_deref(), Some("req-1"));
    assert_eq!(row.last_error, None);
    assert_eq!(row.fetched_at, at(60));
    assert_eq!(
        (ledger[1].window, ledger[1].state),
        (next_day, WindowState::Failed),
        "a failure the listing does not cover stays"
    );
    assert_eq!(store.room_calls("app1").await.unwrap().len(), 3);

    // It fails next time (the provisional row stays beside the failure), then is listed done.
    store.record_failure(&failed(day(), at(70))).await.unwrap();
    assert_eq!(store.ledger(Some("rooms-key")).await.unwrap().len(), 3);
    store
        .commit_listing(&RoomListing {
            attempts: 3,
            ..listing(&listed, true, at(80))
        })
        .await
        .unwrap();
    let ledger = store.ledger(Some("rooms-key")).await.unwrap();
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    assert_eq!(
        (ledger[0].window, ledger[0].state, ledger[0].points),
        (day(), WindowState::Settled, 3)
    );
    assert_eq!(ledger[0].attempts, 3);
    assert_eq!(ledger[1].state, WindowState::Failed);
}

/// Issue 20: a run plans its room streams from `Store::room_calls_between` over
/// `planner::rooms_range`: the calls running or destroyed at or after the range's start and created
/// before its end, never the app's older history; the plan is the one all the calls give.
async fn a_run_reads_only_the_calls_that_can_overlap_its_horizon(store: &Store) {
    use rtc_quality_sync::config::WindowSettings;
    use rtc_quality_sync::domain::{Granularity, ProductType, RoomsBlock};
    use rtc_quality_sync::planner;

    let settings = WindowSettings {
        max_lookback_days: 30,
        max_span_days: 7,
        data_delay_hours: 8,
        settle_hours: 24,
        timezone: chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
    };
    let block = RoomsBlock {
        name: "rooms".into(),
        app_id: "app1".into(),
        indicators: vec!["stall_rate".into()],
        granularities: vec![Granularity::FiveMin, Granularity::Day],
        product_type: ProductType::Native,
        min_active_users: 1,
        max_room_calls_per_run: 0,
    };
    let now = t(40 * 24 * 60 + 17);
    let range = planner::rooms_range(&settings, &block, now);
    assert_eq!(
        range.start,
        planner::horizon(&settings, Granularity::FiveMin, now).start,
        "the 5min horizon starts first"
    );
    let s = Duration::seconds;
    let call = |id: &str, room: &str, created, destroyed: Option<DateTime<Utc>>| RoomCall {
        call_id: id.into(),
        room_id: room.into(),
        created_at: created,
        destroyed_at: destroyed,
        active_user_num: 3,
        finished: destroyed.is_some(),
    };
    let (a, b) = (range.start, range.end);
    let all = vec![
        call(
            "old",
            "room-old",
            a - Duration::days(9),
            Some(a - Duration::days(8)),
        ),
        call("before", "room-a", a - Duration::hours(2), Some(a - s(1))),
        call("at-start", "room-b", a - Duration::hours(1), Some(a)),
        call("running", "room-c", a - Duration::days(10), None),
        call(
            "spanning",
            "room-a",
            a - s(90),
            Some(a + Duration::hours(1)),
        ),
        call(
            "inside",
            "room-d",
            a + Duration::days(3),
            Some(a + Duration::days(3) + s(600)),
        ),
        call("at-end", "room-e", b, None),
        call("after", "room-d", b + s(60), Some(b + s(120))),
    ];
    store
        .commit_listing(&listing(&all, true, at(60)))
        .await
        .unwrap();
    store
        .commit_listing(&RoomListing {
            app_id: "app2",
            ..listing(&all[3..5], true, at(60))
        })
        .await
        .unwrap();
    let read: Vec<RoomCall> = store
        .room_calls_between("app1", range)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call)
        .collect();
    let ids: Vec<&str> = read.iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(
        ids,
        ["running", "at-start", "spanning", "inside"],
        "by creation"
    );
    assert_eq!(read[0], all[3]);
    assert_eq!(store.room_counts("app1").await.unwrap(), (8, 6));

    // The plan from what was read is the plan from every call.
    let tz = settings.timezone;
    let planned = |calls: &[RoomCall]| {
        let streams = planner::room_streams(&block, calls, tz, now);
        let plan = planner::plan(&settings, &streams, &[], now, Default::default()).unwrap();
        plan.streams
            .into_iter()
            .filter(|p| !p.windows.is_empty())
            .map(|p| (p.stream, p.windows))
            .collect::<Vec<_>>()
    };
    let from_read = planned(&read);
    assert!(from_read.len() >= 4, "{from_read:?}");
    assert_eq!(from_read, planned(&all));
}

// ---------------------------------------------------------------------------------------------
// A database at 0004 (every earlier version's) upgrades to 0005 keeping its data

/// Rows written at 0004, in SQL both backends read (SQLite's time text is a `timestamptz` literal).
const DATA_0004: [&str; 4] = [
    "INSERT INTO series (app_id, room_id, indicator, unit, granularity, product_type, os, access, \
     user_ids, grid_timezone, timezone) \
     VALUES ('app1', '', 'stall_rate', '%', '5min', 'native', '', '', '', '', '+08:00')",
    "INSERT INTO points (series_id, ts, value, settled, updated_at) SELECT id, \
     '2024-05-01T00:05:00Z', 0.125, true, '2024-05-02T00:00:00.000000Z' FROM series",
    "INSERT INTO sync_ledger (stream, indicator, window_start, window_end, state, points, attempts, \
     last_error, request_id, fetched_at) VALUES ('k', 'stall_rate', '2024-05-01T00:00:00Z', \
     '2024-05-01T00:10:00Z', 'settled', 1, 1, NULL, 'r', '2024-05-02T00:00:00.000000Z')",
    "INSERT INTO sync_streams (stream, label, settled_through, missing_buckets, assessed_at, \
     complete_through) VALUES ('k', 'j/5min', '2024-05-01T00:10:00Z', 3, \
     '2024-05-02T00:00:00.000000Z', '2024-05-01T00:10:00Z')",
];

/// What the upgraded store must show: the 0004 rows as they were, and a working `rtc_rooms`.
async fn after_upgrade_to_0005(store: &Store) {
    let metrics = store.metrics(None).await.unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].value, 0.125);
    assert_eq!(metrics[0].ts, "2024-05-01T00:05:00Z");
    assert!(metrics[0].updated_at.starts_with("2024-05-02T00:00:00.000"));
    let ledger = store.ledger(None).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].state, WindowState::Settled);
    // 0006: a stream keeps what its last run assessed, and deferred nothing.
    let coverage = store.coverage(&[]).await.unwrap();
    assert_eq!(
        (
            coverage.len(),
            coverage[0].missing_buckets,
            coverage[0].settled_through
        ),
        (1, Some(3), Some(t(-16 * 60 + 10)))
    );
    let assessed = store.assessed().await.unwrap();
    assert_eq!(
        (
            assessed.len(),
            assessed[0].label.as_str(),
            assessed[0].missing_buckets
        ),
        (1, "j/5min", Some(3))
    );
    assert_eq!(assessed[0].complete_through, Some(t(-16 * 60 + 10)));
    assert_eq!(
        assessed[0].deferred,
        rtc_quality_sync::domain::Deferred::default()
    );
    assert!(store.room_calls("app1").await.unwrap().is_empty());
    let listed = calls();
    assert_eq!(
        store
            .commit_listing(&listing(&listed, true, at(60)))
            .await
            .unwrap(),
        counts(3, 0, 0)
    );
    assert_eq!(store.room_calls("app1").await.unwrap().len(), 3);
    assert_eq!(store.ledger(None).await.unwrap().len(), 2);
}

/// A database at 0004, with rows, upgrades to 0005 keeping them.
async fn upgrade_0004_to_0005(url: &str) {
    crate::helpers::database_before(url, "0005", &DATA_0004, "rtc_rooms").await;
    let store = Store::connect(url).await.unwrap();
    after_upgrade_to_0005(&store).await;
    store.close().await;
}

crate::helpers::on_both_urls!(upgrade_0004_to_0005);

/// `[storage] schema`: `rtc_rooms` is created in the configured schema, written there, and
/// `public` gets nothing.
#[tokio::test]
async fn rtc_rooms_lands_in_the_configured_schema() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let store = Store::connect_in(&db.url(), &PgSchema::parse("rtc_rooms_here").unwrap())
        .await
        .unwrap();
    let listed = calls();
    store
        .commit_listing(&listing(&listed, false, at(60)))
        .await
        .unwrap();
    let Store::Postgres(s) = &store else {
        unreachable!()
    };
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = 'rtc_rooms' AND c.relkind = 'r'",
    )
    .fetch_all(s.pool())
    .await
    .unwrap();
    assert_eq!(found, ["rtc_rooms_here"], "in the schema, not in public");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM rtc_rooms_here.rtc_rooms")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(rows, 3);
    store.close().await;
}

/// A SQLite file edited by hand: a value of the wrong shape in the ledger or in `rtc_rooms` is an
/// error that names it, for that read only, and the rest of the file still reads.
#[tokio::test]
async fn a_hand_edited_value_is_an_error_naming_it() {
    use rtc_quality_sync::store::StoreError;

    let (dir, store) = crate::helpers::sqlite_store().await;
    store
        .commit_listing(&listing(&calls(), true, at(60)))
        .await
        .unwrap();
    let raw = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("test.db").display()
    ))
    .await
    .unwrap();
    let edit = |sql: &'static str| {
        let raw = raw.clone();
        async move { sqlx::query(sql).execute(&raw).await.unwrap() }
    };
    let corrupt = |e: StoreError| match e {
        StoreError::Corrupt { what, value } => (what, value),
        other => panic!("not a corrupt value: {other}"),
    };
    assert_eq!(store.ledger(None).await.unwrap().len(), 1);

    edit("UPDATE sync_ledger SET fetched_at = 'yesterday'").await;
    let (what, value) = corrupt(store.ledger(None).await.unwrap_err());
    assert_eq!((what, value.as_str()), ("stored time", "yesterday"));
    // Another table's reads are untouched.
    assert_eq!(store.room_calls("app1").await.unwrap().len(), 3);

    edit("UPDATE sync_ledger SET fetched_at = '2024-05-02T00:00:00.000000Z', points = 'many'")
        .await;
    let (what, value) = corrupt(store.ledger(None).await.unwrap_err());
    assert_eq!(what, "ledger rows");
    assert!(
        value.starts_with("rooms-key: ") && value.contains("\"many\""),
        "names the stream and the value: {value}"
    );

    edit("UPDATE rtc_rooms SET created_at = '2024-05-01 16:10:00' WHERE call_id = 'c-1'").await;
    let (what, value) = corrupt(store.room_calls("app1").await.unwrap_err());
    assert_eq!(
        (what, value.as_str()),
        ("stored time", "2024-05-01 16:10:00")
    );
    edit(
        "UPDATE rtc_rooms SET created_at = '2024-05-01T16:10:00.250000Z', active_user_num = 2.5 \
          WHERE call_id = 'c-1'",
    )
    .await;
    let (what, value) = corrupt(store.room_calls("app1").await.unwrap_err());
    assert_eq!(what, "rtc_rooms rows");
    assert!(value.starts_with("room-a: "), "names the room: {value}");
}
