//! The store against real databases: each test is written once and run on SQLite and on PostgreSQL.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rtc_quality_sync::domain::{
    Dimension, FailedWindow, Granularity, Point, RunCounts, RunStatus, SeriesKey, SeriesPoints,
    Window, WindowBatch, WindowState, WriteCounts,
};
use rtc_quality_sync::store::{CoverageRow, DistributionRow, Store, StoreError};
use sqlx::{Column, Row};

/// Generates `mod NAME { sqlite(), postgres() }` running `async fn NAME(&Store)` on each backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, store) = crate::helpers::sqlite_store().await;
                super::$name(&store).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some((_db, store)) = crate::helpers::pg_store().await else {
                    return;
                };
                super::$name(&store).await;
                store.close().await;
            }
        }
    )*};
}
pub(crate) use on_both_backends;

on_both_backends!(
    unchanged_reupsert_writes_nothing,
    changed_values_and_settling_are_updated,
    failed_write_leaves_no_trace,
    lock_refuses_a_second_holder,
    quality_metrics_is_exactly_the_stored_data,
    sync_coverage_is_derived_from_the_ledger,
    commit_replaces_contained_ledger_rows,
    record_failure_upserts_exactly_its_window,
    runs_round_trip,
    concurrent_commits_all_land,
    an_empty_window_still_gets_its_ledger_row,
    quality_distribution_is_exactly_the_distribution_points,
    unchanged_distribution_reupsert_writes_nothing,
);

// ---------------------------------------------------------------------------------------------
// Builders

/// 2024-05-01T00:00:00Z plus `minutes`.
pub(crate) fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
}

pub(crate) fn key(indicator: &str) -> SeriesKey {
    SeriesKey {
        app_id: "app1".into(),
        room_id: String::new(),
        indicator: indicator.into(),
        granularity: Granularity::FiveMin,
        product_type: "native".into(),
        os: String::new(),
        access: String::new(),
        user_ids: String::new(),
        dimension: String::new(),
        dimension_value: String::new(),
        grid_timezone: String::new(),
    }
}

/// The offset every batch here is fetched in.
const TZ: &str = "+08:00";

fn plus8() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).unwrap()
}

/// The settle instant of a window whose buckets are all settled, or none.
fn all_or_none(settled: bool, w: Window) -> DateTime<Utc> {
    if settled { w.end } else { w.start }
}

/// A window of `[start, start + 5 min * buckets)` with every series given a point per bucket.
pub(crate) fn batch(
    stream: &str,
    start: i64,
    buckets: i64,
    settled: bool,
    series: &[(SeriesKey, &str, f64)],
    fetched_at: DateTime<Utc>,
) -> WindowBatch {
    let mut indicators: Vec<String> = series.iter().map(|(k, _, _)| k.indicator.clone()).collect();
    indicators.dedup();
    let window = Window::new(t(start), t(start + 5 * buckets));
    WindowBatch {
        stream: stream.into(),
        owners: indicators.clone(),
        indicators,
        window,
        settled_until: all_or_none(settled, window),
        scope: key(""),
        timezone: TZ.into(),
        series: series
            .iter()
            .map(|(k, unit, base)| SeriesPoints {
                key: k.clone(),
                unit: unit.to_string(),
                points: (0..buckets)
                    .map(|i| Point {
                        ts: t(start + 5 * i),
                        value: base + i as f64 / 4.0,
                    })
                    .collect(),
            })
            .collect(),
        attempts: 1,
        request_id: Some(format!("req-{stream}-{start}")),
        fetched_at,
    }
}

fn counts(inserted: u64, updated: u64, unchanged: u64) -> WriteCounts {
    WriteCounts {
        inserted,
        updated,
        unchanged,
        deleted: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the BI tables as BI does: SELECT *

/// One `quality_metrics` row with `ts` as the text a SQLite reader sees (PostgreSQL's timestamptz is
/// formatted the same way to compare).
#[derive(Debug, Clone, PartialEq)]
struct Metric {
    app_id: String,
    room_id: String,
    indicator: String,
    unit: String,
    granularity: String,
    product_type: String,
    os: String,
    access: String,
    user_ids: String,
    ts: String,
    value: f64,
    settled: bool,
    updated_at: DateTime<Utc>,
    timezone: String,
    local_date: Option<String>,
}

const METRIC_COLUMNS: [&str; 15] = [
    "app_id",
    "room_id",
    "indicator",
    "unit",
    "granularity",
    "product_type",
    "os",
    "access",
    "user_ids",
    "ts",
    "value",
    "settled",
    "updated_at",
    "timezone",
    "local_date",
];

/// What the failures in these tests asked.
fn stall() -> [String; 1] {
    ["stall_rate".to_string()]
}

const COVERAGE_COLUMNS: [&str; 7] = [
    "stream",
    "settled_through",
    "provisional_windows",
    "failed_windows",
    "points",
    "last_run_at",
    "missing_buckets",
];

fn column_names<R: Row>(rows: &[R]) -> Vec<String> {
    rows.first()
        .map(|r| r.columns().iter().map(|c| c.name().to_string()).collect())
        .unwrap_or_default()
}

macro_rules! metric_from {
    ($r:expr, $ts:expr, $date:expr) => {
        Metric {
            app_id: $r.get(0),
            room_id: $r.get(1),
            indicator: $r.get(2),
            unit: $r.get(3),
            granularity: $r.get(4),
            product_type: $r.get(5),
            os: $r.get(6),
            access: $r.get(7),
            user_ids: $r.get(8),
            ts: $ts,
            value: $r.get(10),
            settled: $r.get(11),
            updated_at: $r.get(12),
            timezone: $r.get(13),
            local_date: $date,
        }
    };
}

/// `SELECT * FROM quality_metrics`: the column names and the rows, ordered by series and time.
async fn metrics(store: &Store) -> (Vec<String>, Vec<Metric>) {
    let sql = "SELECT * FROM quality_metrics ORDER BY app_id, room_id, indicator, os, access, user_ids, ts";
    match store {
        Store::Sqlite(s) => {
            let rows = sqlx::query(sql).fetch_all(s.pool()).await.unwrap();
            let out = rows
                .iter()
                .map(|r| metric_from!(r, r.get(9), r.get(14)))
                .collect();
            (column_names(&rows), out)
        }
        Store::Postgres(s) => {
            let rows = sqlx::query(sql).fetch_all(s.pool()).await.unwrap();
            let out = rows
                .iter()
                .map(|r| {
                    let ts: DateTime<Utc> = r.get(9);
                    let date: Option<chrono::NaiveDate> = r.get(14);
                    metric_from!(
                        r,
                        ts.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        date.map(|d| d.to_string())
                    )
                })
                .collect();
            (column_names(&rows), out)
        }
    }
}

/// `SELECT * FROM sync_coverage`: the column names and the rows.
async fn coverage_select_star(store: &Store) -> (Vec<String>, Vec<CoverageRow>) {
    let sql = "SELECT * FROM sync_coverage ORDER BY stream";
    macro_rules! row {
        ($r:expr) => {
            CoverageRow {
                stream: $r.get(0),
                settled_through: $r.get(1),
                provisional_windows: $r.get(2),
                failed_windows: $r.get(3),
                points: $r.get(4),
                last_run_at: $r.get(5),
                missing_buckets: $r.get(6),
            }
        };
    }
    match store {
        Store::Sqlite(s) => {
            let rows = sqlx::query(sql).fetch_all(s.pool()).await.unwrap();
            (column_names(&rows), rows.iter().map(|r| row!(r)).collect())
        }
        Store::Postgres(s) => {
            let rows = sqlx::query(sql).fetch_all(s.pool()).await.unwrap();
            (column_names(&rows), rows.iter().map(|r| row!(r)).collect())
        }
    }
}

/// Evidence of physical writes to `points`: PostgreSQL's row versions (a rewrite changes both), or
/// SQLite's count of rows changed by the writer connection.
async fn write_evidence(store: &Store) -> (Vec<String>, i64) {
    match store {
        Store::Sqlite(s) => (Vec::new(), s.writer_total_changes().await.unwrap()),
        Store::Postgres(s) => {
            let v = sqlx::query_scalar(
                "SELECT ctid::text || '@' || xmin::text FROM points ORDER BY series_id, ts",
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

async fn unchanged_reupsert_writes_nothing(store: &Store) {
    let series = [
        (key("stall_rate"), "%", 1.0),
        (key("join_room_success_rate"), "%", 90.0),
    ];
    let first = batch("job/5min", 0, 12, false, &series, t(100));
    assert_eq!(store.commit_window(&first).await.unwrap(), counts(24, 0, 0));
    let (_, before) = metrics(store).await;
    let (versions_before, changes_before) = write_evidence(store).await;

    // The same values fetched again later: nothing to write, not even updated_at.
    let again = WindowBatch {
        fetched_at: t(200),
        ..first.clone()
    };
    assert_eq!(store.commit_window(&again).await.unwrap(), counts(0, 0, 24));
    let (_, after) = metrics(store).await;
    assert_eq!(after, before);
    assert!(after.iter().all(|m| m.updated_at == t(100)));
    let (versions_after, changes_after) = write_evidence(store).await;
    assert_eq!(
        versions_after, versions_before,
        "no point row was rewritten"
    );
    if let Store::Sqlite(_) = store {
        // Each indicator's ledger row, deleted and inserted, is the only change.
        assert_eq!(
            changes_after - changes_before,
            2 * first.indicators.len() as i64
        );
    }
    // The ledger rows did move on to the new fetch, one per indicator.
    let ledger = store.ledger(None).await.unwrap();
    assert_eq!(ledger.len(), first.indicators.len());
    assert!(ledger.iter().all(|e| e.fetched_at == t(200)));
}

async fn changed_values_and_settling_are_updated(store: &Store) {
    let series = [(key("stall_rate"), "%", 1.0)];
    let first = batch("job/5min", 0, 6, false, &series, t(100));
    assert_eq!(store.commit_window(&first).await.unwrap(), counts(6, 0, 0));

    // One value changes, one bucket is new, the unit changes.
    let mut second = batch("job/5min", 0, 7, false, &series, t(200));
    second.series[0].points[2].value = 42.5;
    second.series[0].unit = "percent".into();
    assert_eq!(store.commit_window(&second).await.unwrap(), counts(1, 1, 5));
    let (_, rows) = metrics(store).await;
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[2].value, 42.5);
    assert_eq!(rows[2].updated_at, t(200));
    assert_eq!(rows[6].updated_at, t(200));
    for i in [0, 1, 3, 4, 5] {
        assert_eq!(rows[i].updated_at, t(100), "row {i} was not changed");
    }
    assert!(rows.iter().all(|m| m.unit == "percent"));
    assert!(rows.iter().all(|m| !m.settled));

    // The same values, now settled: every row changes its flag (counted as updated).
    let third = WindowBatch {
        settled_until: second.window.end,
        fetched_at: t(300),
        ..second.clone()
    };
    assert_eq!(store.commit_window(&third).await.unwrap(), counts(0, 7, 0));
    let (_, rows) = metrics(store).await;
    assert!(rows.iter().all(|m| m.settled && m.updated_at == t(300)));
    assert_eq!(rows[2].value, 42.5);
    let ledger = store.ledger(None).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].state, WindowState::Settled);
    assert_eq!(ledger[0].points, 7);

    // And once settled, the same again writes nothing.
    let fourth = WindowBatch {
        fetched_at: t(400),
        ..third
    };
    assert_eq!(store.commit_window(&fourth).await.unwrap(), counts(0, 0, 7));
}

async fn failed_write_leaves_no_trace(store: &Store) {
    let series: Vec<_> = (0..3)
        .map(|i| (key(&format!("ind{i}")), "%", i as f64))
        .collect();
    let a = batch("job/5min", 0, 10, true, &series, t(10_000));
    assert_eq!(store.commit_window(&a).await.unwrap(), counts(30, 0, 0));
    let (_, committed) = metrics(store).await;

    // 3 series x 600 buckets = 1,800 new points; the hook fires once 1,024 are written (SQLite's first
    // statement; PostgreSQL's COPY has written all of them by then), before the ledger row.
    let b = batch("job/5min", 50, 600, true, &series, t(10_000));
    store.set_fail_after_points(Some(1024));
    let err = store.commit_window(&b).await.unwrap_err();
    assert!(matches!(err, StoreError::Injected { .. }), "{err}");

    // Changing committed values and failing midway leaves the old values.
    let mut a2 = batch("job/5min", 0, 10, true, &series, t(20_000));
    for s in &mut a2.series {
        for p in &mut s.points {
            p.value += 100.0;
        }
    }
    store.set_fail_after_points(Some(1));
    assert!(matches!(
        store.commit_window(&a2).await,
        Err(StoreError::Injected { .. })
    ));
    store.set_fail_after_points(None);

    let (_, now) = metrics(store).await;
    assert_eq!(now, committed, "only window a's points, unchanged");
    let ledger = store.ledger(None).await.unwrap();
    assert_eq!(ledger.len(), 3, "one row per indicator");
    assert!(ledger.iter().all(|e| e.window == a.window));
    assert!(ledger.iter().all(|e| e.fetched_at == t(10_000)));

    // Nothing of the failed attempt stands in the way of the retry.
    assert_eq!(store.commit_window(&b).await.unwrap(), counts(1800, 0, 0));
    assert_eq!(store.ledger(None).await.unwrap().len(), 2 * 3);
}

async fn lock_refuses_a_second_holder(store: &Store) {
    let first = store.try_lock("sync (nightly)").await.unwrap();
    let err = match store.try_lock("sync (manual)").await {
        Err(e) => e,
        Ok(_) => panic!("a second holder got the lock"),
    };
    match &err {
        StoreError::Locked { holder, since } => {
            assert!(
                holder.starts_with("a run that is starting (sync (nightly), pid "),
                "{holder}"
            );
            assert!(since.starts_with("20"), "{since}");
        }
        other => panic!("expected Locked, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.starts_with(
            "another run holds the lock on this database: a run that is starting (sync (nightly)"
        ),
        "{message}"
    );
    assert!(
        message.ends_with("; wait for it to finish or stop it"),
        "{message}"
    );

    // Once the holder's run is recorded, a refused run names it (18.17b).
    store.record_lock_run(42).await.unwrap();
    match store.try_lock("sync (manual)").await {
        Err(StoreError::Locked { holder, .. }) => assert!(
            holder.starts_with("run 42 (sync (nightly), pid ")
                && holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        ),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }

    first.release().await.unwrap();
    let second = store.try_lock("sync (manual)").await.unwrap();
    assert!(matches!(
        store.try_lock("third").await,
        Err(StoreError::Locked { holder, .. }) if holder.contains("(sync (manual), pid")
    ));

    // Dropping the guard (as a crashing run would) frees the lock too; PostgreSQL notices the
    // session's end a moment later.
    drop(second);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match store.try_lock("after the crash").await {
            Ok(lock) => {
                lock.release().await.unwrap();
                break;
            }
            Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the dropped lock was not released: {e}"),
        }
    }
}

async fn quality_metrics_is_exactly_the_stored_data(store: &Store) {
    let web = SeriesKey {
        app_id: "app2".into(),
        room_id: "room-9".into(),
        indicator: "video_stall_rate".into(),
        granularity: Granularity::Day,
        product_type: "web".into(),
        os: String::new(),
        access: String::new(),
        user_ids: "u1,u2".into(),
        dimension: String::new(),
        dimension_value: String::new(),
        // West of UTC: its buckets' local dates are the day before their UTC dates.
        grid_timezone: "-05:00".into(),
    };
    let native = SeriesKey {
        os: "android,iOS".into(),
        access: "4g,wifi".into(),
        ..key("stall_rate")
    };
    let day = |d: i64| Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap() + Duration::days(d);
    let batch_a = WindowBatch {
        stream: "web/1d".into(),
        indicators: vec!["stall_rate".into()],
        owners: vec!["stall_rate".into()],
        window: Window::new(day(0), day(2)),
        settled_until: day(2),
        scope: SeriesKey {
            indicator: String::new(),
            ..web.clone()
        },
        timezone: TZ.into(),
        series: vec![SeriesPoints {
            key: web,
            unit: "%".into(),
            points: vec![
                Point {
                    ts: day(0),
                    value: 0.125,
                },
                Point {
                    ts: day(1),
                    value: -3.5e-7,
                },
            ],
        }],
        attempts: 2,
        request_id: None,
        fetched_at: t(5_000),
    };
    let batch_b = WindowBatch {
        stream: "native/5min".into(),
        indicators: vec!["stall_rate".into()],
        owners: vec!["stall_rate".into()],
        window: Window::new(t(0), t(10)),
        settled_until: t(0),
        scope: SeriesKey {
            indicator: String::new(),
            ..native.clone()
        },
        timezone: TZ.into(),
        series: vec![SeriesPoints {
            key: native,
            unit: "ms".into(),
            points: vec![Point {
                ts: t(5),
                value: 1e300,
            }],
        }],
        attempts: 1,
        request_id: Some("req".into()),
        fetched_at: t(6_000),
    };
    store.commit_window(&batch_a).await.unwrap();
    store.commit_window(&batch_b).await.unwrap();

    let (columns, rows) = metrics(store).await;
    assert_eq!(columns, METRIC_COLUMNS);
    let m = |app: &str,
             room: &str,
             ind: &str,
             unit: &str,
             gran: &str,
             pt: &str,
             os: &str,
             access: &str,
             users: &str,
             ts: &str,
             value: f64,
             settled: bool,
             at,
             tz: &str,
             date: &str| Metric {
        app_id: app.into(),
        room_id: room.into(),
        indicator: ind.into(),
        unit: unit.into(),
        granularity: gran.into(),
        product_type: pt.into(),
        os: os.into(),
        access: access.into(),
        user_ids: users.into(),
        ts: ts.into(),
        value,
        settled,
        updated_at: at,
        timezone: tz.into(),
        local_date: Some(date.into()),
    };
    assert_eq!(
        rows,
        vec![
            m(
                "app1",
                "",
                "stall_rate",
                "ms",
                "5min",
                "native",
                "android,iOS",
                "4g,wifi",
                "",
                "2024-05-01T00:05:00Z",
                1e300,
                false,
                t(6_000),
                "+08:00",
                "2024-05-01"
            ),
            m(
                "app2",
                "room-9",
                "video_stall_rate",
                "%",
                "1d",
                "web",
                "",
                "",
                "u1,u2",
                "2024-05-01T00:00:00Z",
                0.125,
                true,
                t(5_000),
                "-05:00",
                "2024-04-30"
            ),
            m(
                "app2",
                "room-9",
                "video_stall_rate",
                "%",
                "1d",
                "web",
                "",
                "",
                "u1,u2",
                "2024-05-02T00:00:00Z",
                -3.5e-7,
                true,
                t(5_000),
                "-05:00",
                "2024-05-01"
            ),
        ]
    );
}

async fn sync_coverage_is_derived_from_the_ledger(store: &Store) {
    let series = [
        (key("stall_rate"), "%", 1.0),
        (key("join_room_success_rate"), "%", 90.0),
    ];
    // Streams are keyed by what they ask; people read their labels.
    let labels: Vec<(String, String, Vec<String>)> = ["a", "b", "c"]
        .iter()
        .map(|k| (k.to_string(), format!("job-{k}/5min"), Vec::new()))
        .collect();
    store
        .register_streams(&labels, " (replaced)", Some("0123456789abcdef"))
        .await
        .unwrap();
    // Stream a: settled, settled, then a failure, then a provisional window.
    store
        .commit_window(&batch("a", 0, 12, true, &series, t(3_000)))
        .await
        .unwrap();
    store
        .commit_window(&batch("a", 60, 12, true, &series, t(3_001)))
        .await
        .unwrap();
    let both: Vec<String> = series.iter().map(|s| s.0.indicator.clone()).collect();
    store
        .record_failure(&FailedWindow {
            stream: "a",
            indicators: &both,
            window: Window::new(t(120), t(180)),
            error: "http 500",
            request_id: Some("req-x"),
            attempts: 3,
            fetched_at: t(3_002),
        })
        .await
        .unwrap();
    store
        .commit_window(&batch("a", 180, 6, false, &series, t(3_003)))
        .await
        .unwrap();
    // Stream b: only a provisional window.
    store
        .commit_window(&batch("b", 0, 3, false, &series[..1], t(3_004)))
        .await
        .unwrap();
    // Stream c: only a failure.
    store
        .record_failure(&FailedWindow {
            stream: "c",
            indicators: &stall(),
            window: Window::new(t(0), t(60)),
            error: "bad signature",
            request_id: None,
            attempts: 1,
            fetched_at: t(3_005),
        })
        .await
        .unwrap();
    // What a run assessed of stream a (the hole at the failure stops its settled range).
    store
        .assess_streams(
            &[(
                "a".to_string(),
                rtc_quality_sync::store::Assessment {
                    settled_through: Some(t(120)),
                    complete_through: Some(t(180)),
                    missing_buckets: 12,
                    deferred: Default::default(),
                },
            )],
            t(3_006),
        )
        .await
        .unwrap();

    let expected = vec![
        CoverageRow {
            stream: "job-a/5min".into(),
            settled_through: Some(t(120)),
            provisional_windows: 1,
            // One window, however many indicators it asked.
            failed_windows: 1,
            points: 24 + 24 + 12,
            last_run_at: Some(t(3_003)),
            missing_buckets: Some(12),
        },
        CoverageRow {
            stream: "job-b/5min".into(),
            settled_through: None,
            provisional_windows: 1,
            failed_windows: 0,
            points: 3,
            last_run_at: Some(t(3_004)),
            missing_buckets: None,
        },
        CoverageRow {
            stream: "job-c/5min".into(),
            settled_through: None,
            provisional_windows: 0,
            failed_windows: 1,
            points: 0,
            last_run_at: Some(t(3_005)),
            missing_buckets: None,
        },
    ];
    assert_eq!(store.coverage(&[]).await.unwrap(), expected);
    let (columns, rows) = coverage_select_star(store).await;
    assert_eq!(columns, COVERAGE_COLUMNS);
    assert_eq!(rows, expected);

    // A window committed over part of the failed one supersedes that part for each indicator; the
    // rest stays failed.
    store
        .commit_window(&batch("a", 120, 6, true, &series, t(4_000)))
        .await
        .unwrap();
    let ledger = store.ledger(Some("a")).await.unwrap();
    let failed: Vec<(&str, Window)> = ledger
        .iter()
        .filter(|e| e.state == WindowState::Failed)
        .map(|e| (e.indicator.as_str(), e.window))
        .collect();
    assert_eq!(
        failed,
        [
            ("join_room_success_rate", Window::new(t(150), t(180))),
            ("stall_rate", Window::new(t(150), t(180))),
        ]
    );
    store
        .commit_window(&batch("a", 150, 6, true, &series, t(4_001)))
        .await
        .unwrap();
    let a = &store.coverage(&[]).await.unwrap()[0];
    assert_eq!((a.provisional_windows, a.failed_windows), (1, 0));

    // A new query under a's label takes it; the old stream keeps its rows under another label.
    store
        .register_streams(
            &[("a2".into(), "job-a/5min".into(), Vec::new())],
            " (replaced 2024-05-02)",
            None,
        )
        .await
        .unwrap();
    store
        .commit_window(&batch("a2", 0, 3, true, &series, t(5_000)))
        .await
        .unwrap();
    let names: Vec<String> = store
        .coverage(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.stream)
        .collect();
    assert_eq!(
        names,
        [
            "job-a/5min",
            "job-a/5min (replaced 2024-05-02)",
            "job-b/5min",
            "job-c/5min"
        ]
    );
}

async fn commit_replaces_contained_ledger_rows(store: &Store) {
    let series = [(key("stall_rate"), "%", 1.0)];
    // Two provisional hours and a failure inside [0, 180); an overlapping and another stream's window.
    store
        .commit_window(&batch("s", 0, 12, false, &series, t(1_000)))
        .await
        .unwrap();
    store
        .commit_window(&batch("s", 60, 12, false, &series, t(1_000)))
        .await
        .unwrap();
    store
        .record_failure(&FailedWindow {
            stream: "s",
            indicators: &stall(),
            window: Window::new(t(120), t(180)),
            error: "timeout",
            request_id: None,
            attempts: 2,
            fetched_at: t(1_000),
        })
        .await
        .unwrap();
    store
        .commit_window(&batch("s", 150, 12, false, &series, t(1_000)))
        .await
        .unwrap();
    store
        .commit_window(&batch("other", 0, 12, false, &series, t(1_000)))
        .await
        .unwrap();

    let mut whole = batch("s", 0, 36, true, &series, t(2_000));
    whole.attempts = 4;
    let c = store.commit_window(&whole).await.unwrap();
    assert_eq!(c.inserted + c.updated + c.unchanged, 36);

    let ledger = store.ledger(Some("s")).await.unwrap();
    let windows: Vec<_> = ledger.iter().map(|e| (e.window, e.state)).collect();
    assert_eq!(
        windows,
        vec![
            (Window::new(t(0), t(180)), WindowState::Settled),
            (Window::new(t(150), t(210)), WindowState::Provisional),
        ],
        "rows within [0, 180) replaced, the overlapping one kept"
    );
    let row = &ledger[0];
    assert_eq!((row.points, row.attempts), (36, 4));
    assert_eq!(row.request_id.as_deref(), Some("req-s-0"));
    assert_eq!(row.last_error, None);
    assert_eq!(row.fetched_at, t(2_000));

    let all = store.ledger(None).await.unwrap();
    let streams: Vec<_> = all.iter().map(|e| &*e.stream).collect();
    assert_eq!(
        streams,
        ["other", "s", "s"],
        "ordered by stream, then start"
    );
}

async fn record_failure_upserts_exactly_its_window(store: &Store) {
    let series = [(key("stall_rate"), "%", 1.0)];
    let a = batch("s", 0, 12, false, &series, t(1_000));
    store.commit_window(&a).await.unwrap();
    store
        .commit_window(&batch("s", 60, 12, false, &series, t(1_000)))
        .await
        .unwrap();
    let (_, points_before) = metrics(store).await;

    // A refetch of window a fails: its row says so; window b's row and every point stay.
    store
        .record_failure(&FailedWindow {
            stream: "s",
            indicators: &stall(),
            window: a.window,
            error: "http 503: try later",
            request_id: Some("req-1"),
            attempts: 2,
            fetched_at: t(2_000),
        })
        .await
        .unwrap();
    store
        .record_failure(&FailedWindow {
            stream: "s",
            indicators: &stall(),
            window: a.window,
            error: "http 429: throttled",
            request_id: None,
            attempts: 3,
            fetched_at: t(3_000),
        })
        .await
        .unwrap();
    let ledger = store.ledger(Some("s")).await.unwrap();
    assert_eq!(
        ledger.len(),
        3,
        "the failure sits beside the window's provisional row"
    );
    let failed = &ledger[0];
    assert_eq!(failed.window, a.window);
    assert_eq!(failed.state, WindowState::Failed);
    assert_eq!(failed.points, 0);
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.last_error.as_deref(), Some("http 429: throttled"));
    assert_eq!(failed.request_id, None);
    assert_eq!(failed.fetched_at, t(3_000));
    assert_eq!(ledger[1].state, WindowState::Provisional);
    assert_eq!(ledger[1].window, a.window);
    assert_eq!(metrics(store).await.1, points_before);

    // A window that never succeeded gets its own row.
    store
        .record_failure(&FailedWindow {
            stream: "s",
            indicators: &stall(),
            window: Window::new(t(120), t(180)),
            error: "boom",
            request_id: Some("req-2"),
            attempts: 1,
            fetched_at: t(3_000),
        })
        .await
        .unwrap();
    let ledger = store.ledger(Some("s")).await.unwrap();
    assert_eq!(ledger.len(), 4);
    assert_eq!(ledger[3].request_id.as_deref(), Some("req-2"));
}

async fn runs_round_trip(store: &Store) {
    assert_eq!(store.last_run().await.unwrap(), None);
    let started =
        Utc.with_ymd_and_hms(2024, 5, 2, 1, 0, 0).unwrap() + Duration::microseconds(123_456);
    let id = store
        .start_run("sync", started, Some("0a1b2c3d4e5f6a7b"))
        .await
        .unwrap();
    let run = store.last_run().await.unwrap().unwrap();
    assert_eq!(
        (
            run.id,
            run.mode.as_str(),
            run.started_at,
            run.finished_at,
            run.status
        ),
        (id, "sync", started, None, RunStatus::Running)
    );
    assert_eq!(run.account.as_deref(), Some("0a1b2c3d4e5f6a7b"));
    assert_eq!(run.counts(), RunCounts::default());

    let counts = RunCounts {
        requests: 11,
        retries: 3,
        throttled: 1,
        points: WriteCounts {
            inserted: 1000,
            updated: 20,
            unchanged: 5,
            deleted: 4,
        },
        windows_ok: 9,
        windows_failed: 2,
    };
    let finished = started + Duration::seconds(90);
    store
        .finish_run(id, RunStatus::Partial, &counts, finished)
        .await
        .unwrap();
    let run = store.last_run().await.unwrap().unwrap();
    assert_eq!(run.finished_at, Some(finished));
    assert_eq!(run.status, RunStatus::Partial);
    assert_eq!(run.counts(), counts);
    assert_eq!((run.points_inserted, run.windows_failed), (1000, 2));

    let next = store.start_run("demo", finished, None).await.unwrap();
    assert!(next > id);
    let run = store.last_run().await.unwrap().unwrap();
    assert_eq!((run.mode.as_str(), run.account), ("demo", None));
    assert!(
        store
            .finish_run(next + 100, RunStatus::Ok, &counts, finished)
            .await
            .is_err()
    );
}

async fn concurrent_commits_all_land(store: &Store) {
    let series: Vec<_> = (0..5)
        .map(|i| (key(&format!("ind{i}")), "%", i as f64))
        .collect();
    let batches: Vec<_> = (0..8)
        .map(|w| batch("s", w * 60, 12, true, &series, t(9_000)))
        .collect();
    // SQLite queues them on its one writer; PostgreSQL runs them side by side.
    let results = futures::future::join_all(batches.iter().map(|b| store.commit_window(b))).await;
    for r in results {
        assert_eq!(r.unwrap(), counts(60, 0, 0));
    }
    assert_eq!(store.ledger(None).await.unwrap().len(), 8 * 5);
    assert_eq!(metrics(store).await.1.len(), 480);
}

async fn an_empty_window_still_gets_its_ledger_row(store: &Store) {
    // A window without traffic: the asked indicator came back without a point.
    let mut empty = batch("s", 0, 12, true, &[], t(500));
    empty.indicators = vec!["stall_rate".into()];
    assert_eq!(store.commit_window(&empty).await.unwrap(), counts(0, 0, 0));
    let ledger = store.ledger(None).await.unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(
        (
            ledger[0].indicator.as_str(),
            ledger[0].state,
            ledger[0].points
        ),
        ("stall_rate", WindowState::Settled, 0)
    );
    assert_eq!(ledger[0].window, empty.window);
}

// ---------------------------------------------------------------------------------------------
// Connecting

#[tokio::test]
async fn a_password_never_appears_in_an_error() {
    let err = match Store::connect("postgres://u:secretpw@127.0.0.1:1/x").await {
        Err(e) => e,
        Ok(_) => panic!("connected to port 1"),
    };
    let message = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{message}");
    assert!(!message.contains("secretpw"), "{message}");
    assert!(
        message.contains("postgres://u:***@127.0.0.1:1/x"),
        "{message}"
    );
    assert!(!format!("{err:?}").contains("secretpw"));

    // A store that did connect does not show the password either (in a fresh database: connecting
    // applies the migrations).
    if let Some((_db, store)) = crate::helpers::pg_store().await {
        let Store::Postgres(pg) = &store else {
            unreachable!()
        };
        let mut with_password = url::Url::parse(pg.redacted_url()).unwrap();
        if with_password.password().is_none() && with_password.set_password(Some("trustpw")).is_ok()
        {
            // Trust authentication ignores the password, so this connects; else the error is checked.
            let shown = match Store::connect(with_password.as_str()).await {
                Ok(other) => {
                    let shown = format!("{other:?}");
                    other.close().await;
                    shown
                }
                Err(e) => format!("{e} {e:?}"),
            };
            assert!(
                !shown.contains("trustpw") && shown.contains("***"),
                "{shown}"
            );
        }
        store.close().await;
    }

    let err = match Store::connect("mysql://u:secretpw@127.0.0.1/x").await {
        Err(e) => e,
        Ok(_) => panic!("accepted mysql"),
    };
    let message = err.to_string();
    assert!(!message.contains("secretpw"), "{message}");
    assert!(
        message.contains("sqlite://") && message.contains("postgres://"),
        "names the allowed schemes: {message}"
    );
}

#[tokio::test]
async fn sqlite_creates_a_missing_file_and_reopens_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    assert!(path.exists());
    let series = [(key("stall_rate"), "%", 1.0)];
    store
        .commit_window(&batch("s", 0, 3, true, &series, t(100)))
        .await
        .unwrap();
    store.close().await;
    drop(store);

    // Migrations are applied once; the data is still there.
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(metrics(&store).await.1.len(), 3);
    let mode: String = match &store {
        Store::Sqlite(s) => sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(s.pool())
            .await
            .unwrap(),
        Store::Postgres(_) => unreachable!(),
    };
    assert_eq!(mode, "wal");
}

// ---------------------------------------------------------------------------------------------
// Distribution points (ListQualityDistribution): the same series and points, their own view

/// Local (+08:00) midnight of 2024-05-01 plus `d` days, as UTC: a distribution day's `ts`.
fn day(d: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 4, 30, 16, 0, 0).unwrap() + Duration::days(d)
}

/// Two indicators by two dimensions, Chinese values among them, over two days: 12 points.
/// `(key, unit, [value of day 0, value of day 1])`.
fn distribution_series() -> Vec<(SeriesKey, &'static str, [f64; 2])> {
    let d = |ind: &str, dim: Dimension, v: &str| {
        SeriesKey::distribution("app1", "native", ind, dim, v, plus8())
    };
    vec![
        (
            d("stall_rate", Dimension::Province, "广东"),
            "%",
            [1.5, 2.25],
        ),
        (
            d("stall_rate", Dimension::Province, "北京"),
            "%",
            [0.5, 0.75],
        ),
        (d("stall_rate", Dimension::Os, "Android"), "%", [3.0, 3.125]),
        (
            d("5s_join_room_success_rate", Dimension::Province, "广东"),
            "%",
            [99.5, 98.0],
        ),
        (
            d("5s_join_room_success_rate", Dimension::Province, "香港"),
            "%",
            [97.25, 96.5],
        ),
        (
            d("5s_join_room_success_rate", Dimension::Os, "iOS"),
            "%",
            [95.0, 94.5],
        ),
    ]
}

fn distribution_batch(settled: bool, fetched_at: DateTime<Utc>) -> WindowBatch {
    let window = Window::new(day(0), day(2));
    let indicators = vec![
        "stall_rate".to_string(),
        "join_room_success_rate".to_string(),
    ];
    WindowBatch {
        stream: "where/distribution".into(),
        owners: indicators.clone(),
        indicators,
        window,
        settled_until: all_or_none(settled, window),
        // The rows of both dimensions are in one batch here; the scope names one of them.
        scope: SeriesKey::distribution("app1", "native", "", Dimension::Province, "", plus8()),
        timezone: TZ.into(),
        series: distribution_series()
            .into_iter()
            .map(|(key, unit, values)| SeriesPoints {
                key,
                unit: unit.into(),
                points: (0..2)
                    .map(|i| Point {
                        ts: day(i),
                        value: values[i as usize],
                    })
                    .collect(),
            })
            .collect(),
        attempts: 1,
        request_id: Some("req-dist".into()),
        fetched_at,
    }
}

/// What `quality_distribution` must hold after `distribution_batch(settled, at)`, in
/// `Store::distribution`'s order: newest day first, then the key in byte order.
fn expected_distribution(settled: bool, at: DateTime<Utc>) -> Vec<DistributionRow> {
    let mut rows: Vec<DistributionRow> = distribution_series()
        .into_iter()
        .flat_map(|(k, _, values)| {
            (0..2).map(move |i| DistributionRow {
                app_id: k.app_id.clone(),
                indicator: k.indicator.clone(),
                dimension: k.dimension.clone(),
                dimension_value: k.dimension_value.clone(),
                product_type: k.product_type.clone(),
                ts: day(i).format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                value: values[i as usize],
                settled,
                updated_at: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                timezone: TZ.into(),
                local_date: Some(format!("2024-05-0{}", i + 1)),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.ts.cmp(&a.ts).then_with(|| {
            (
                &a.app_id,
                &a.indicator,
                &a.dimension,
                &a.dimension_value,
                &a.product_type,
            )
                .cmp(&(
                    &b.app_id,
                    &b.indicator,
                    &b.dimension,
                    &b.dimension_value,
                    &b.product_type,
                ))
        })
    });
    rows
}

const DISTRIBUTION_COLUMNS: [&str; 11] = [
    "app_id",
    "indicator",
    "dimension",
    "dimension_value",
    "product_type",
    "ts",
    "value",
    "settled",
    "updated_at",
    "timezone",
    "local_date",
];

/// `SELECT * FROM quality_distribution` as BI reads it: the column names and the rows as
/// [`DistributionRow`]s (PostgreSQL's timestamptz formatted as SQLite stores them), sorted as
/// `Store::distribution` orders them.
async fn distribution_select_star(store: &Store) -> (Vec<String>, Vec<DistributionRow>) {
    let sql = "SELECT * FROM quality_distribution";
    macro_rules! row {
        ($r:expr, $ts:expr, $at:expr, $date:expr) => {
            DistributionRow {
                app_id: $r.get(0),
                indicator: $r.get(1),
                dimension: $r.get(2),
                dimension_value: $r.get(3),
                product_type: $r.get(4),
                ts: $ts,
                value: $r.get(6),
                settled: $r.get(7),
                updated_at: $at,
                timezone: $r.get(9),
                local_date: $date,
            }
        };
    }
    let (columns, mut rows) = match store {
        Store::Sqlite(s) => {
            let rows = sqlx::query(sql).fetch_all(s.pool()).await.unwrap();
            let out: Vec<_> = rows
                .iter()
                .map(|r| row!(r, r.get(5), r.get(8), r.get(10)))
                .collect();
            (column_names(&rows), out)
        }
        Store::Postgres(s) => {
            let rows = sqlx::query(sql).fetch_all(s.pool()).await.unwrap();
            let out: Vec<_> = rows
                .iter()
                .map(|r| {
                    let ts: DateTime<Utc> = r.get(5);
                    let at: DateTime<Utc> = r.get(8);
                    let date: Option<chrono::NaiveDate> = r.get(10);
                    row!(
                        r,
                        ts.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        date.map(|d| d.to_string())
                    )
                })
                .collect();
            (column_names(&rows), out)
        }
    };
    rows.sort_by(|a, b| {
        b.ts.cmp(&a.ts).then_with(|| {
            (
                &a.app_id,
                &a.indicator,
                &a.dimension,
                &a.dimension_value,
                &a.product_type,
            )
                .cmp(&(
                    &b.app_id,
                    &b.indicator,
                    &b.dimension,
                    &b.dimension_value,
                    &b.product_type,
                ))
        })
    });
    (columns, rows)
}

async fn quality_distribution_is_exactly_the_distribution_points(store: &Store) {
    // A ListQuality `1d` series of the same app, indicator and product type on the same days: its key
    // differs from the distribution series' only by the dimension, so only a key that includes the
    // dimension keeps them apart.
    let list_key = SeriesKey {
        granularity: Granularity::Day,
        grid_timezone: TZ.into(),
        ..key("stall_rate")
    };
    let list = WindowBatch {
        stream: "job/1d".into(),
        indicators: vec!["stall_rate".into()],
        owners: vec!["stall_rate".into()],
        window: Window::new(day(0), day(2)),
        settled_until: day(2),
        scope: SeriesKey {
            indicator: String::new(),
            ..list_key.clone()
        },
        timezone: TZ.into(),
        series: vec![SeriesPoints {
            key: list_key,
            unit: "%".into(),
            points: vec![
                Point {
                    ts: day(0),
                    value: 7.0,
                },
                Point {
                    ts: day(1),
                    value: 8.0,
                },
            ],
        }],
        attempts: 1,
        request_id: None,
        fetched_at: t(100),
    };
    assert_eq!(store.commit_window(&list).await.unwrap(), counts(2, 0, 0));
    let dist = distribution_batch(true, t(200));
    assert_eq!(store.commit_window(&dist).await.unwrap(), counts(12, 0, 0));

    // quality_metrics: exactly the ListQuality points, its columns as before.
    let (columns, rows) = metrics(store).await;
    assert_eq!(columns, METRIC_COLUMNS);
    let metric = |ts: DateTime<Utc>, value| Metric {
        app_id: "app1".into(),
        room_id: String::new(),
        indicator: "stall_rate".into(),
        unit: "%".into(),
        granularity: "1d".into(),
        product_type: "native".into(),
        os: String::new(),
        access: String::new(),
        user_ids: String::new(),
        ts: ts.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        value,
        settled: true,
        updated_at: t(100),
        timezone: TZ.into(),
        local_date: Some((ts + Duration::hours(8)).format("%Y-%m-%d").to_string()),
    };
    assert_eq!(rows, vec![metric(day(0), 7.0), metric(day(1), 8.0)]);
    assert_eq!(
        store.metrics(None).await.unwrap().len(),
        2,
        "Store::metrics reads only quality_metrics"
    );

    // quality_distribution: exactly the distribution points, as BI reads them and as the store does.
    let expected = expected_distribution(true, t(200));
    assert_eq!(expected.len(), 12);
    let (columns, rows) = distribution_select_star(store).await;
    assert_eq!(columns, DISTRIBUTION_COLUMNS);
    assert_eq!(rows, expected);
    assert_eq!(store.distribution(None).await.unwrap(), expected);
    assert_eq!(store.distribution(Some(3)).await.unwrap(), expected[..3]);
    // Byte order, not a locale's: 北 (E5 8C 97) < 广 (E5 B9 BF) < 香 (E9 A6 99).
    let provinces: Vec<&str> = expected[..6]
        .iter()
        .filter(|r| r.dimension == "Province")
        .map(|r| r.dimension_value.as_str())
        .collect();
    assert_eq!(provinces, ["广东", "香港", "北京", "广东"]);

    // The ledger counted the distribution points per requested indicator.
    let ledger = store.ledger(Some("where/distribution")).await.unwrap();
    let points: Vec<(String, i64)> = ledger
        .iter()
        .map(|e| (e.indicator.clone(), e.points))
        .collect();
    assert_eq!(
        points,
        [
            ("join_room_success_rate".to_string(), 6),
            ("stall_rate".to_string(), 6)
        ]
    );
}

async fn unchanged_distribution_reupsert_writes_nothing(store: &Store) {
    let first = distribution_batch(false, t(100));
    assert_eq!(store.commit_window(&first).await.unwrap(), counts(12, 0, 0));
    let before = store.distribution(None).await.unwrap();
    assert_eq!(before, expected_distribution(false, t(100)));
    let (versions_before, changes_before) = write_evidence(store).await;
    assert_eq!(
        versions_before.len(),
        if let Store::Postgres(_) = store {
            12
        } else {
            0
        }
    );

    // The same values fetched again later: nothing to write, not even updated_at.
    let again = distribution_batch(false, t(300));
    assert_eq!(store.commit_window(&again).await.unwrap(), counts(0, 0, 12));
    assert_eq!(store.distribution(None).await.unwrap(), before);
    let (versions_after, changes_after) = write_evidence(store).await;
    assert_eq!(
        versions_after, versions_before,
        "no point row was rewritten"
    );
    if let Store::Sqlite(_) = store {
        // Each indicator's ledger row, deleted and inserted, is the only change.
        assert_eq!(changes_after - changes_before, 2 * 2);
    }

    // Settling them is a write again: the flag and updated_at of every point.
    let settled = distribution_batch(true, t(400));
    assert_eq!(
        store.commit_window(&settled).await.unwrap(),
        counts(0, 12, 0)
    );
    assert_eq!(
        store.distribution(None).await.unwrap(),
        expected_distribution(true, t(400))
    );
}

// ---------------------------------------------------------------------------------------------
// Upgrading a database migrated to 0002 to 0003

/// What the store reads back after the upgrade, every id with every column.
type SeriesRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

const SERIES_SQL: &str = "SELECT id, app_id, room_id, indicator, unit, granularity, product_type, os, \
     access, user_ids, dimension, dimension_value FROM series ORDER BY id";

/// Rows written at 0002, with ids that are neither dense nor from 1, and the points that refer to them.
const SERIES_0002: &str = "INSERT INTO series (id, app_id, room_id, indicator, unit, granularity, \
     product_type, os, access, user_ids) VALUES \
     (3, 'app1', '', 'stall_rate', '%', '1d', 'native', '', '', ''), \
     (7, 'app1', 'room-1', 'stall_rate', 'ms', '5min', 'native', 'android,iOS', '4g,wifi', 'u1,u2'), \
     (42, 'app2', '', '5s_join_room_success_rate', '%', '1d', 'web', '', '', '')";

fn expected_series() -> Vec<SeriesRow> {
    let s = |id,
             app: &str,
             room: &str,
             ind: &str,
             unit: &str,
             g: &str,
             pt: &str,
             os: &str,
             ac: &str,
             u: &str| {
        (
            id,
            app.into(),
            room.into(),
            ind.into(),
            unit.into(),
            g.into(),
            pt.into(),
            os.into(),
            ac.into(),
            u.into(),
            String::new(),
            String::new(),
        )
    };
    vec![
        s(3, "app1", "", "stall_rate", "%", "1d", "native", "", "", ""),
        s(
            7,
            "app1",
            "room-1",
            "stall_rate",
            "ms",
            "5min",
            "native",
            "android,iOS",
            "4g,wifi",
            "u1,u2",
        ),
        s(
            42,
            "app2",
            "",
            "5s_join_room_success_rate",
            "%",
            "1d",
            "web",
            "",
            "",
            "",
        ),
    ]
}

/// `(series_id, ts, value, settled)` of the points written at 0002.
fn expected_points() -> Vec<(i64, String, f64, bool)> {
    vec![
        (3, "2024-04-30T16:00:00Z".into(), 1.5, true),
        (3, "2024-05-01T16:00:00Z".into(), 2.5, false),
        (7, "2024-05-01T00:05:00Z".into(), 0.125, true),
        (42, "2024-04-30T16:00:00Z".into(), 99.0, true),
    ]
}

/// After the upgrade: the same series ids keep their points, the same key finds the same id, a
/// distribution series of the same key gets a new one, and both views read what they should.
async fn after_upgrade(store: &Store, points: Vec<(i64, String, f64, bool)>) {
    assert_eq!(points, expected_points());
    let metrics = store.metrics(None).await.unwrap();
    assert_eq!(metrics.len(), 4);
    // Stored before time zones were recorded: none until a sync gives them the configured one.
    assert!(
        metrics
            .iter()
            .all(|m| m.timezone.is_empty() && m.local_date.is_none())
    );
    store.adopt_timezone(plus8()).await.unwrap();
    let metrics = store.metrics(None).await.unwrap();
    assert!(
        metrics
            .iter()
            .all(|m| m.timezone == TZ && m.local_date.is_some()),
        "{metrics:?}"
    );
    assert!(store.distribution(None).await.unwrap().is_empty());

    // The stored day of series 3 again, unchanged: found by its key, nothing written.
    let day_key = SeriesKey {
        granularity: Granularity::Day,
        grid_timezone: TZ.into(),
        ..key("stall_rate")
    };
    let same = WindowBatch {
        stream: "job/1d".into(),
        indicators: vec!["stall_rate".into()],
        owners: vec!["stall_rate".into()],
        window: Window::new(day(0), day(1)),
        settled_until: day(1),
        scope: SeriesKey {
            indicator: String::new(),
            ..day_key.clone()
        },
        timezone: TZ.into(),
        series: vec![SeriesPoints {
            key: day_key,
            unit: "%".into(),
            points: vec![Point {
                ts: day(0),
                value: 1.5,
            }],
        }],
        attempts: 1,
        request_id: None,
        fetched_at: t(900),
    };
    assert_eq!(store.commit_window(&same).await.unwrap(), counts(0, 0, 1));
    let dist = WindowBatch {
        stream: "where/distribution".into(),
        series: vec![SeriesPoints {
            key: SeriesKey::distribution(
                "app1",
                "native",
                "stall_rate",
                Dimension::Province,
                "广东",
                plus8(),
            ),
            unit: "%".into(),
            points: vec![Point {
                ts: day(0),
                value: 4.0,
            }],
        }],
        scope: SeriesKey::distribution("app1", "native", "", Dimension::Province, "", plus8()),
        ..same.clone()
    };
    assert_eq!(store.commit_window(&dist).await.unwrap(), counts(1, 0, 0));
    let got = store.distribution(None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (
            got[0].dimension.as_str(),
            got[0].dimension_value.as_str(),
            got[0].value
        ),
        ("Province", "广东", 4.0)
    );
    assert_eq!(store.metrics(None).await.unwrap().len(), 4);
}

mod upgrade_0002_to_0003 {
    use super::*;
    use crate::helpers::database_before;

    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("v2.db").display());
        let points = "INSERT INTO points (series_id, ts, value, settled, updated_at) VALUES \
             (3, '2024-04-30T16:00:00Z', 1.5, 1, '2024-05-02T00:00:00.000000Z'), \
             (3, '2024-05-01T16:00:00Z', 2.5, 0, '2024-05-02T00:00:00.000000Z'), \
             (7, '2024-05-01T00:05:00Z', 0.125, 1, '2024-05-02T00:00:00.000000Z'), \
             (42, '2024-04-30T16:00:00Z', 99.0, 1, '2024-05-02T00:00:00.000000Z')";
        database_before(&url, "0003", &[SERIES_0002, points], "quality_distribution").await;
        let store = Store::connect(&url).await.unwrap();
        let Store::Sqlite(s) = &store else {
            unreachable!()
        };
        let series: Vec<SeriesRow> = sqlx::query_as(SERIES_SQL)
            .fetch_all(s.pool())
            .await
            .unwrap();
        assert_eq!(series, expected_series());
        let points: Vec<(i64, String, f64, bool)> = sqlx::query_as(
            "SELECT series_id, ts, value, settled FROM points ORDER BY series_id, ts",
        )
        .fetch_all(s.pool())
        .await
        .unwrap();
        // The rebuilt tables keep their index, their foreign key (to the renamed table) and no orphan.
        let index: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'series_indicator'",
        )
        .fetch_all(s.pool())
        .await
        .unwrap();
        assert_eq!(
            index,
            ["CREATE INDEX series_indicator ON series (indicator)"]
        );
        let orphans: Vec<(String, Option<i64>, String, i64)> =
            sqlx::query_as("PRAGMA foreign_key_check")
                .fetch_all(s.pool())
                .await
                .unwrap();
        assert!(orphans.is_empty(), "{orphans:?}");
        let refers: String =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list('points')")
                .fetch_one(s.pool())
                .await
                .unwrap();
        assert_eq!(refers, "series");
        let orphan = sqlx::query(
            "INSERT INTO points (series_id, ts, value, settled, updated_at) \
             VALUES (999, '2024-05-01T00:00:00Z', 1.0, 1, 'x')",
        )
        .execute(s.pool())
        .await;
        assert!(orphan.is_err(), "the foreign key still holds");
        after_upgrade(&store, points).await;
        store.close().await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(db) = crate::helpers::pg_empty_db().await else {
            return;
        };
        let series = SERIES_0002.replace("VALUES", "OVERRIDING SYSTEM VALUE VALUES");
        let points = "INSERT INTO points (series_id, ts, value, settled, updated_at) VALUES \
             (3, '2024-04-30T16:00:00Z', 1.5, true, '2024-05-02T00:00:00Z'), \
             (3, '2024-05-01T16:00:00Z', 2.5, false, '2024-05-02T00:00:00Z'), \
             (7, '2024-05-01T00:05:00Z', 0.125, true, '2024-05-02T00:00:00Z'), \
             (42, '2024-04-30T16:00:00Z', 99.0, true, '2024-05-02T00:00:00Z')";
        database_before(
            &db.url(),
            "0003",
            &[&series, points],
            "quality_distribution",
        )
        .await;
        let store = Store::connect(&db.url()).await.unwrap();
        let Store::Postgres(s) = &store else {
            unreachable!()
        };
        let series: Vec<SeriesRow> = sqlx::query_as(SERIES_SQL)
            .fetch_all(s.pool())
            .await
            .unwrap();
        assert_eq!(series, expected_series());
        let points: Vec<(i64, String, f64, bool)> = sqlx::query_as(
            "SELECT series_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
             value, settled FROM points ORDER BY series_id, ts",
        )
        .fetch_all(s.pool())
        .await
        .unwrap();
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE tablename = 'series' ORDER BY indexname",
        )
        .fetch_all(s.pool())
        .await
        .unwrap();
        assert_eq!(indexes, ["series_indicator", "series_key", "series_pkey"]);
        after_upgrade(&store, points).await;
        // The old ids stayed; the distribution series is one more.
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM series ORDER BY id")
            .fetch_all(s.pool())
            .await
            .unwrap();
        assert_eq!(ids.len(), 4);
        assert!([3, 7, 42].iter().all(|id| ids.contains(id)), "{ids:?}");
        store.close().await;
    }
}
