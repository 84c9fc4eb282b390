//! Issue 18, "trust": what a hostile probe found, each hole shown closed over real HTTP, real SQLite
//! files and a real PostgreSQL. The tests are named after the issue's items (`item_01_…`), so the
//! closing note maps an item to its test.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::domain::{
    Granularity, Point, RunStatus, SeriesKey, SeriesPoints, Window, WindowBatch, WindowState,
};
use rtc_quality_sync::pipeline::{self, RunOptions};
use rtc_quality_sync::planner::{self, PlanOptions};
use rtc_quality_sync::report::Status;
use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::helpers::pg_empty_db;
use crate::pipeline::{dump, expected, now, settings, simulator, sync_at, values};

crate::helpers::on_both_urls!(
    item_02_a_changed_timezone_backfills_the_new_grid_and_retires_the_old,
    item_03_a_refetched_window_replaces_what_its_indicators_no_longer_have,
    item_03_a_window_and_its_tail_commit_in_one_transaction,
    item_04_an_interrupted_refetch_is_finished_by_the_next_run,
    item_17e_two_jobs_that_ask_the_same_query_are_planned_as_one,
);

/// `status` at `now` with the configuration, as the command reads it.
async fn status(store: &Store, settings: &Settings, now: DateTime<Utc>) -> Status {
    let mut s = Status::load(store, Some(settings)).await.unwrap();
    s.judge(settings, now, Duration::hours(36));
    s
}

/// The windows each request since `from` asked, per action.
fn asked_windows(sim: &SimulatorHandle, from: usize) -> Vec<(String, String)> {
    sim.requests()[from..]
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            (
                body["StartTime"].as_str().unwrap().to_string(),
                body["EndTime"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// How many calls a fresh backfill of `settings`' streams costs at `now`.
fn fresh_calls(settings: &Settings, now: DateTime<Utc>) -> usize {
    planner::plan(
        &settings.window,
        &settings.streams(),
        &[],
        now,
        PlanOptions::default(),
    )
    .unwrap()
    .request_count()
}

// -------------------------------------------------------------------------------------------------
// 1. Upgrade + edit: a database of the first version, its job edited in the same upgrade.

use crate::upgrade::{FIXTURE, postgres_fixture, sqlite_fixture};

/// The fixture's configuration, edited as a user would in the same upgrade: `room-b` now asks
/// another room, and `app-wide` one more indicator.
fn edited_fixture_settings(endpoint: &str) -> Settings {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("config.toml")).unwrap();
    let text = text
        .replace("http://127.0.0.1:18199", endpoint)
        .replace("room_id = \"room-1\"", "room_id = \"room-2\"")
        .replace(
            "indicators = [\"join_room_success_rate\", \"stall_rate\"]",
            "indicators = [\"join_room_success_rate\", \"stall_rate\", \"first_frame_send_success_rate\"]",
        );
    assert!(text.contains("room-2") && text.contains("first_frame_send"));
    Settings::parse(&text, Path::new("config.toml")).unwrap()
}

async fn upgrade_with_an_edited_job(url: &str) {
    let now = crate::upgrade::written_at() + Duration::minutes(1);
    let sim = simulator(60, "", now).await;
    let settings = edited_fixture_settings(&sim.endpoint());
    let store = Store::connect(url).await.unwrap();

    // Before the first sync, `status --check` is honest: nothing of the edited queries is there.
    let before = status(&store, &settings, now).await;
    assert!(!before.healthy(), "{:?}", before.problems);
    let troubled: std::collections::BTreeSet<&str> = before
        .problems
        .as_deref()
        .unwrap()
        .iter()
        .map(|p| p.stream.as_str())
        .collect();
    assert_eq!(
        troubled.into_iter().collect::<Vec<_>>(),
        ["app-wide/1d", "room-b/1d", "room-b/5min"]
    );
    assert!(before.never_synced.contains(&"room-b/1d".to_string()));

    // The plan: the new room is a full backfill; the added indicator its whole horizon; the
    // indicators the old rows prove only their tail.
    let (adopted, _) = pipeline::adopted_ledger(&settings, &store).await.unwrap();
    let (_, plan) = pipeline::make_plan(&settings, &adopted, &RunOptions::default(), now).unwrap();
    let fresh = planner::plan(
        &settings.window,
        &settings.streams(),
        &[],
        now,
        PlanOptions::default(),
    )
    .unwrap();
    for (sp, f) in plan.streams.iter().zip(&fresh.streams) {
        if sp.stream.starts_with("room-b") {
            assert_eq!(sp.windows, f.windows, "{}: a full backfill", sp.stream);
        } else {
            let added: i64 = sp
                .windows
                .iter()
                .filter(|w| {
                    w.indicators
                        .iter()
                        .any(|i| i == "first_frame_send_success_rate")
                })
                .map(|w| w.window.duration().num_seconds())
                .sum();
            assert_eq!(
                added,
                f.range.unwrap().duration().num_seconds(),
                "the added indicator's whole horizon"
            );
            let old: i64 = sp
                .windows
                .iter()
                .filter(|w| w.indicators.iter().any(|i| i == "stall_rate"))
                .map(|w| w.window.duration().num_days())
                .sum();
            assert!(old <= 2, "stall_rate: only its tail: {sp:?}");
        }
    }

    // The sync: exactly the plan's calls, then every configured stream complete and exact.
    let report = sync_at(&settings, &store, now).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    assert_eq!(sim.requests().len(), plan.request_count());
    let coverage: BTreeMap<String, Option<i64>> = store
        .coverage(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.stream, c.missing_buckets))
        .collect();
    for name in ["app-wide/1d", "room-b/1d", "room-b/5min"] {
        assert_eq!(coverage[name], Some(0), "{name}: {coverage:?}");
    }
    let stored = values(&dump(&store).await);
    let reference = expected(&settings, &sim, now).await;
    for (k, v) in &reference {
        assert_eq!(stored.get(k), Some(v), "{k}");
    }
    let new_room = |m: &BTreeMap<String, f64>| m.keys().filter(|k| k.contains("|room-2|")).count();
    assert_eq!(new_room(&stored), new_room(&reference));
    assert!(new_room(&reference) > 0);

    // After it, `status --check` is healthy, and what the old rows could not prove is kept apart,
    // listed as retired, never adopted by the new query.
    let after = status(&store, &settings, now).await;
    assert!(after.healthy(), "{:?}", after.problems);
    assert!(
        after
            .not_configured
            .iter()
            .any(|n| n == "room-b/5min (before the upgrade: not adopted)"),
        "{:?}",
        after.not_configured
    );
    let ledger = store.ledger(None).await.unwrap();
    assert!(
        ledger
            .iter()
            .filter(|e| e.stream.starts_with("legacy:"))
            .all(|e| e.stream.ends_with("#unproven"))
    );
    store.close().await;
    sim.shutdown().await;
}

mod item_01_an_upgrade_with_an_edited_job_backfills_the_new_query {
    use super::*;

    #[tokio::test]
    async fn sqlite() {
        let (_dir, url) = sqlite_fixture();
        upgrade_with_an_edited_job(&url).await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(db) = postgres_fixture().await else {
            return;
        };
        upgrade_with_an_edited_job(&db.url()).await;
    }
}

// -------------------------------------------------------------------------------------------------
// 2. A changed `window.timezone`: new streams on the new grid, the old grid's kept apart.

/// One job at both granularities in `timezone`, and with `distribution`, one distribution stream.
fn zoned(sim: &SimulatorHandle, timezone: &str, distribution: bool) -> Settings {
    let distribution = if distribution {
        "[[distributions]]\nname = \"where\"\napp_id = \"app_a\"\nindicators = [\"stall_rate\"]\n\
         dimensions = [\"Province\"]\n"
    } else {
        ""
    };
    settings(&format!(
        r#"
[source]
endpoint = "{}"
requests_per_second = 50
distribution_requests_per_second = 50
max_in_flight = 4
timeout_secs = 2
max_retries = 2

[window]
timezone = "{timezone}"

[[jobs]]
name = "lobby"
app_id = "app_a"
indicators = ["stall_rate"]
granularity = ["1d", "5min"]
{distribution}"#,
        sim.endpoint()
    ))
}

/// A simulator fast enough for tests on both APIs, its data at `now`.
async fn fast_simulator(now: DateTime<Utc>, latency_ms: u64) -> SimulatorHandle {
    simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        distribution_rate_limit_per_sec: 60,
        latency: StdDuration::from_millis(latency_ms),
        data_now: Some(now),
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn item_02_a_changed_timezone_backfills_the_new_grid_and_retires_the_old(url: &str) {
    let now = now();
    let sim = fast_simulator(now, 0).await;
    let store = Store::connect(url).await.unwrap();
    let shanghai = zoned(&sim, "+08:00", true);
    assert_eq!(sync_at(&shanghai, &store, now).await.status, RunStatus::Ok);
    let rows_5min = |rows: &[rtc_quality_sync::store::MetricRow]| {
        rows.iter().filter(|r| r.granularity == "5min").count()
    };
    let before = store.metrics(None).await.unwrap();

    // Tokyo: the day streams and the distribution stream are new queries, backfilled whole; the
    // 5min stream is the same one (its grid is the same in every offset).
    let t = now + Duration::minutes(1);
    let tokyo = zoned(&sim, "+09:00", true);
    let (adopted, _) = pipeline::adopted_ledger(&tokyo, &store).await.unwrap();
    let (_, plan) = pipeline::make_plan(&tokyo, &adopted, &RunOptions::default(), t).unwrap();
    let fresh = planner::plan(
        &tokyo.window,
        &tokyo.streams(),
        &[],
        t,
        PlanOptions::default(),
    )
    .unwrap();
    for (sp, f) in plan.streams.iter().zip(&fresh.streams) {
        match sp.stream.as_str() {
            "lobby/5min" => assert!(sp.windows.len() <= 1, "{sp:?}"),
            _ => assert_eq!(sp.windows, f.windows, "{}: the whole new grid", sp.stream),
        }
    }
    let calls = sim.requests().len();
    assert_eq!(sync_at(&tokyo, &store, t).await.status, RunStatus::Ok);
    assert_eq!(sim.requests().len() - calls, plan.request_count());

    // Both grids are stored, told apart by `timezone`; each row's local_date is its bucket's date
    // in that offset; the new grid's values are the API's.
    let after = store.metrics(None).await.unwrap();
    let day_rows = |tz: &str| -> Vec<&rtc_quality_sync::store::MetricRow> {
        after
            .iter()
            .filter(|r| r.granularity == "1d" && r.timezone == tz)
            .collect()
    };
    assert_eq!(
        day_rows("+08:00").len(),
        before.iter().filter(|r| r.granularity == "1d").count()
    );
    assert!(!day_rows("+09:00").is_empty());
    for r in day_rows("+09:00") {
        let ts = DateTime::parse_from_rfc3339(&r.ts).unwrap();
        assert_eq!(
            ts.with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
                .format("%H:%M")
                .to_string(),
            "00:00",
            "{r:?}: a +09:00 midnight"
        );
        let local = (ts + Duration::hours(9)).format("%Y-%m-%d").to_string();
        assert_eq!(r.local_date.as_deref(), Some(local.as_str()), "{r:?}");
    }
    let reference = expected(&zoned(&sim, "+09:00", false), &sim, t).await;
    for r in day_rows("+09:00") {
        let key = format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            r.app_id,
            r.room_id,
            r.indicator,
            r.granularity,
            r.product_type,
            r.os,
            r.access,
            r.user_ids,
            r.ts
        );
        assert_eq!(reference.get(&key), Some(&r.value), "{key}");
    }
    // The 5min series is one series, shown in the new offset; nothing was added beside it.
    assert!(
        after
            .iter()
            .filter(|r| r.granularity == "5min")
            .all(|r| r.timezone == "+09:00")
    );
    assert!(rows_5min(&after) >= rows_5min(&before));
    let dist = store.distribution(None).await.unwrap();
    assert!(dist.iter().any(|r| r.timezone == "+08:00"));
    assert!(dist.iter().any(|r| r.timezone == "+09:00"));
    // The old grid's streams are retired: listed, their points kept.
    let s = status(&store, &tokyo, t).await;
    assert!(s.healthy(), "{:?}", s.problems);
    let replaced = format!(" (replaced {})", t.format("%Y-%m-%d"));
    for old in ["lobby/1d", "where/stall_rate/Province"] {
        assert!(
            s.not_configured.contains(&format!("{old}{replaced}")),
            "{old}: {:?}",
            s.not_configured
        );
    }
    store.close().await;
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// 3. A fetched window replaces the points of the indicators it asked, in one transaction.

/// 2024-05-01T00:00:00Z plus `minutes`.
fn t(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(minutes)
}

fn scope() -> SeriesKey {
    SeriesKey {
        app_id: "app1".into(),
        room_id: String::new(),
        indicator: String::new(),
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

/// A 5min window from minute `start`, `buckets` long, asking `asked`, with `(name, [minutes])`.
fn window_batch(
    start: i64,
    buckets: i64,
    asked: &[&str],
    series: &[(&str, &[i64])],
    settled_until: DateTime<Utc>,
    fetched_at: DateTime<Utc>,
) -> WindowBatch {
    WindowBatch {
        stream: "q".into(),
        indicators: asked.iter().map(|s| s.to_string()).collect(),
        owners: vec!["join_room_success_rate".into(), "stall_rate".into()],
        window: Window::new(t(start), t(start + 5 * buckets)),
        settled_until,
        scope: scope(),
        timezone: "+08:00".into(),
        series: series
            .iter()
            .map(|(name, minutes)| SeriesPoints {
                key: SeriesKey {
                    indicator: name.to_string(),
                    ..scope()
                },
                unit: "%".into(),
                points: minutes
                    .iter()
                    .map(|&m| Point {
                        ts: t(m),
                        value: m as f64 / 10.0,
                    })
                    .collect(),
            })
            .collect(),
        attempts: 1,
        request_id: None,
        fetched_at,
    }
}

/// `(indicator, minute)` of every stored point.
async fn stored(store: &Store) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = store
        .metrics(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let ts = DateTime::parse_from_rfc3339(&r.ts)
                .unwrap()
                .with_timezone(&Utc);
            (r.indicator, (ts - t(0)).num_minutes())
        })
        .collect();
    out.sort();
    out
}

async fn item_03_a_refetched_window_replaces_what_its_indicators_no_longer_have(url: &str) {
    let store = Store::connect(url).await.unwrap();
    let every: Vec<i64> = (0..12).map(|i| 5 * i).collect();
    let names = [
        "5s_join_room_success_rate",
        "10s_join_room_success_rate",
        "80ms_audio_stall_rate",
    ];
    let first = window_batch(
        0,
        12,
        &["join_room_success_rate", "stall_rate"],
        &[(names[0], &every), (names[1], &every), (names[2], &every)],
        t(30),
        t(1_000),
    );
    let w = store.commit_window(&first).await.unwrap();
    assert_eq!((w.inserted, w.deleted), (36, 0));
    // A neighbour window: nothing of it is touched by the refetch below.
    let next = window_batch(
        60,
        2,
        &["join_room_success_rate"],
        &[(names[0], &[60, 65])],
        t(70),
        t(1_000),
    );
    store.commit_window(&next).await.unwrap();

    // Fetched again for join_room_success_rate alone: its 5s series lost two buckets (a null, an
    // absent one) and its 10s series is not returned at all; stall_rate was not asked.
    let kept: Vec<i64> = every
        .iter()
        .copied()
        .filter(|m| *m != 10 && *m != 40)
        .collect();
    let again = window_batch(
        0,
        12,
        &["join_room_success_rate"],
        &[(names[0], &kept)],
        t(60),
        t(2_000),
    );
    let w = store.commit_window(&again).await.unwrap();
    // Five settled points unchanged, five provisional ones settled now; 2 + 12 deleted.
    assert_eq!(
        (w.inserted, w.updated, w.unchanged, w.deleted),
        (0, 5, 5, 14),
        "{w:?}"
    );
    let now = stored(&store).await;
    let of = |name: &str| -> Vec<i64> {
        now.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, m)| *m)
            .collect()
    };
    let mut with_next = kept.clone();
    with_next.extend([60, 65]);
    assert_eq!(of(names[0]), with_next);
    assert!(
        of(names[1]).is_empty(),
        "a series the answer lacks loses the window's points"
    );
    assert_eq!(
        of(names[2]),
        every,
        "an indicator not asked keeps its points"
    );
    // The ledger counts what is stored now, per part.
    let ledger = store.ledger(Some("q")).await.unwrap();
    let join: Vec<(Window, WindowState, i64)> = ledger
        .iter()
        .filter(|e| e.indicator == "join_room_success_rate" && e.window.start < t(60))
        .map(|e| (e.window, e.state, e.points))
        .collect();
    assert_eq!(join, [(Window::new(t(0), t(60)), WindowState::Settled, 10)]);
    store.close().await;
}

async fn item_03_a_window_and_its_tail_commit_in_one_transaction(url: &str) {
    let store = Store::connect(url).await.unwrap();
    let every: Vec<i64> = (0..600).map(|i| 5 * i).collect();
    let many: Vec<String> = (0..3).map(|i| format!("{i}_stall_rate")).collect();
    let series: Vec<(&str, &[i64])> = many
        .iter()
        .map(|n| (n.as_str(), every.as_slice()))
        .collect();
    // Settled for the first half, provisional for the rest: two ledger rows, one transaction.
    let batch = window_batch(0, 600, &["stall_rate"], &series, t(1_500), t(10_000));
    assert_eq!(batch.parts().len(), 2);
    store.set_fail_after_points(Some(1024));
    assert!(matches!(
        store.commit_window(&batch).await,
        Err(StoreError::Injected { .. })
    ));
    store.set_fail_after_points(None);
    assert!(
        store.ledger(None).await.unwrap().is_empty(),
        "neither part's row"
    );
    assert!(stored(&store).await.is_empty(), "no point of either part");
    store.commit_window(&batch).await.unwrap();
    let states: Vec<WindowState> = store
        .ledger(None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(states, [WindowState::Settled, WindowState::Provisional]);
    store.close().await;
}

// -------------------------------------------------------------------------------------------------
// 4. An interrupted `--refetch` is finished by the next run.

async fn item_04_an_interrupted_refetch_is_finished_by_the_next_run(url: &str) {
    let now = now();
    let sim = fast_simulator(now, 150).await;
    let mut cfg = zoned(&sim, "+08:00", false);
    let store = Store::connect(url).await.unwrap();
    assert_eq!(sync_at(&cfg, &store, now).await.status, RunStatus::Ok);

    // `--refetch` of two weeks, cut short by a signal as its first call is answered: one call at a
    // time, so the rest of its windows cannot have arrived, whatever the machine's speed.
    cfg.source.max_in_flight = 1;
    let t1 = now + Duration::minutes(1);
    let h = planner::horizon(&cfg.window, Granularity::Day, t1);
    let options = RunOptions {
        mode: "backfill".into(),
        plan: PlanOptions {
            from: Some(h.start),
            to: Some(h.start + Duration::days(14)),
            refetch: true,
        },
        ..Default::default()
    };
    let client = rtc_quality_sync::api::client::Client::new(
        &cfg.source,
        crate::pipeline::demo_credentials(),
    )
    .unwrap();
    let fetcher = rtc_quality_sync::fetcher::Quotas::new(
        rtc_quality_sync::fetcher::Fetcher::new(client, &cfg.source),
        &cfg.source,
    );
    let token = CancellationToken::new();
    let answered = sim.requests().len();
    let progress = rtc_quality_sync::progress::Progress::hidden();
    let run = pipeline::run(
        &cfg,
        &store,
        &fetcher,
        &options,
        t1,
        token.clone(),
        &progress,
    );
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            report = &mut run => break report.unwrap(),
            () = tokio::time::sleep(StdDuration::from_millis(5)) => {
                if sim.requests().len() > answered {
                    token.cancel();
                }
            }
        }
    };
    assert_eq!(report.status, RunStatus::Interrupted, "{report:?}");
    let marked: Vec<Window> = store
        .ledger(None)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.state == WindowState::Refetch)
        .map(|e| e.window)
        .collect();
    assert!(!marked.is_empty(), "the unfinished part is marked");
    let s = status(&store, &cfg, t1).await;
    assert!(
        s.text().contains("unfinished --refetch"),
        "status says so: {}",
        s.text()
    );

    // A plain run (no --refetch) fetches exactly what is still marked, and clears the marks.
    let t2 = t1 + Duration::minutes(1);
    let from = sim.requests().len();
    assert_eq!(sync_at(&cfg, &store, t2).await.status, RunStatus::Ok);
    let asked = asked_windows(&sim, from);
    let tz = cfg.window.timezone;
    for w in &marked {
        let start = w.start.with_timezone(&tz).to_rfc3339();
        assert!(
            asked.iter().any(|(s, _)| *s == start),
            "{start} was fetched again: {asked:?}"
        );
    }
    assert!(
        store
            .ledger(None)
            .await
            .unwrap()
            .iter()
            .all(|e| e.state != WindowState::Refetch)
    );
    assert_eq!(values(&dump(&store).await), expected(&cfg, &sim, t2).await);
    store.close().await;
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// 17e. Two jobs that ask the same query are planned as one.

async fn item_17e_two_jobs_that_ask_the_same_query_are_planned_as_one(url: &str) {
    let now = now();
    let sim = fast_simulator(now, 0).await;
    let cfg = settings(&format!(
        r#"
[source]
endpoint = "{}"
requests_per_second = 50
max_in_flight = 4

[[jobs]]
name = "a"
app_id = "app_a"
indicators = ["stall_rate"]

[[jobs]]
name = "b"
app_id = "app_a"
indicators = ["join_room_success_rate", "stall_rate"]
"#,
        sim.endpoint()
    ));
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.contains("b/1d asks the same query as a/1d")),
        "{:?}",
        cfg.warnings
    );
    let streams = cfg.streams();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].aliases, ["b/1d"]);
    assert_eq!(
        streams[0].job.indicators,
        ["stall_rate", "join_room_success_rate"]
    );

    // Every window once, one call carrying both jobs' indicators, counted under the first.
    let store = Store::connect(url).await.unwrap();
    let report = sync_at(&cfg, &store, now).await;
    assert_eq!(report.status, RunStatus::Ok);
    let calls = sim.requests();
    assert_eq!(calls.len(), fresh_calls(&cfg, now));
    let h = planner::horizon(&cfg.window, Granularity::Day, now);
    assert_eq!(
        calls.len() as i64,
        (h.duration().num_seconds() + 7 * 86_400 - 1) / (7 * 86_400)
    );
    for c in &calls {
        let body: serde_json::Value = serde_json::from_str(&c.body).unwrap();
        assert_eq!(
            body["Indicator"],
            serde_json::json!(["stall_rate", "join_room_success_rate"])
        );
    }
    assert_eq!(
        report
            .streams
            .iter()
            .map(|s| (s.stream.as_str(), s.calls))
            .collect::<Vec<_>>(),
        [("a/1d", calls.len() as u64)]
    );
    assert_eq!(values(&dump(&store).await), expected(&cfg, &sim, now).await);

    // Each label shows the shared numbers.
    let s = status(&store, &cfg, now).await;
    assert!(s.healthy(), "{:?}", s.problems);
    assert_eq!(s.aliases, [("b/1d".to_string(), "a/1d".to_string())]);
    assert!(s.text().contains("the same query as a/1d"), "{}", s.text());
    let text = rtc_quality_sync::metrics::render(&s.metrics_snapshot(None));
    let line = |label: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(&format!("stream=\"{label}\"")))
            .map(|l| l.replace(label, "X"))
            .collect()
    };
    assert!(!line("a/1d").is_empty());
    assert_eq!(line("a/1d"), line("b/1d"));
    // A re-run right after: at most the provisional tail, still one call.
    let from = sim.requests().len();
    assert_eq!(
        sync_at(&cfg, &store, now + Duration::minutes(1))
            .await
            .status,
        RunStatus::Ok
    );
    assert!(sim.requests().len() - from <= 1);
    store.close().await;
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// 8. A SQLite file removed or replaced while a run writes it is a lost database.

/// Runs a sync of `cfg` into `store` while `meddle` runs once the first calls were answered.
async fn sync_while(
    cfg: &Settings,
    store: &Store,
    sim: &SimulatorHandle,
    now: DateTime<Utc>,
    meddle: impl FnOnce(),
) -> pipeline::RunReport {
    let client = rtc_quality_sync::api::client::Client::new(
        &cfg.source,
        crate::pipeline::demo_credentials(),
    )
    .unwrap();
    let fetcher = rtc_quality_sync::fetcher::Quotas::new(
        rtc_quality_sync::fetcher::Fetcher::new(client, &cfg.source),
        &cfg.source,
    );
    let options = RunOptions {
        mode: "sync".into(),
        ..Default::default()
    };
    let progress = rtc_quality_sync::progress::Progress::hidden();
    let run = pipeline::run(
        cfg,
        store,
        &fetcher,
        &options,
        now,
        CancellationToken::new(),
        &progress,
    );
    tokio::pin!(run);
    let mut meddle = Some(meddle);
    loop {
        tokio::select! {
            report = &mut run => return report.unwrap(),
            () = tokio::time::sleep(StdDuration::from_millis(20)) => {
                if sim.requests().len() >= 2
                    && let Some(m) = meddle.take()
                {
                    m();
                }
            }
        }
    }
}

#[tokio::test]
async fn item_08_a_sqlite_file_removed_during_a_run_is_a_lost_database() {
    let now = now();
    let sim = fast_simulator(now, 100).await;
    let cfg = zoned(&sim, "+08:00", false);
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("data");
    std::fs::create_dir(&sub).unwrap();
    let store = Store::connect(&format!("sqlite://{}", sub.join("q.db").display()))
        .await
        .unwrap();
    let report = sync_while(&cfg, &store, &sim, now, || {
        std::fs::remove_dir_all(&sub).unwrap();
    })
    .await;
    assert!(report.counts.windows_ok > 0, "it wrote: {report:?}");
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert_eq!(report.exit_code(), 1);
    let e = report.store_error.as_deref().unwrap();
    assert!(
        e.contains("removed or replaced") && e.contains("q.db"),
        "{e}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn item_08_a_sqlite_file_replaced_during_a_run_is_a_lost_database() {
    let now = now();
    let sim = fast_simulator(now, 100).await;
    let cfg = zoned(&sim, "+08:00", false);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let other = dir.path().join("other.db");
    std::fs::write(&other, b"").unwrap();
    let report = sync_while(&cfg, &store, &sim, now, || {
        std::fs::rename(&other, &path).unwrap();
    })
    .await;
    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert!(
        report
            .store_error
            .as_deref()
            .is_some_and(|e| e.contains("removed or replaced")),
        "{report:?}"
    );
    // Undisturbed, the same run ends ok: the check does not cry wolf.
    let dir2 = tempfile::tempdir().unwrap();
    let calm = Store::connect(&format!("sqlite://{}", dir2.path().join("q.db").display()))
        .await
        .unwrap();
    assert_eq!(sync_at(&cfg, &calm, now).await.status, RunStatus::Ok);
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// 14 and 15: the SQLite file's health, as the binary reports it.

/// A SQLite database synced once by the binary: its dir, the config, the URL and the simulator.
async fn synced_sqlite() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    String,
    SimulatorHandle,
) {
    let sim = crate::cli::fast_simulator(0).await;
    let (dir, config) = crate::cli::setup(&sim, 50.0);
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let (code, _, err) = crate::cli::run(
        crate::cli::with_demo_keys(&mut crate::cli::cmd(dir.path()))
            .args(["sync", "--quiet", "--database-url", &url, "--config"])
            .arg(&config),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    (dir, config, url, sim)
}

#[tokio::test]
async fn item_14_a_reader_that_blocks_the_final_checkpoint_is_waited_for_then_named() {
    use sqlx::Connection;
    let (dir, config, url, sim) = synced_sqlite().await;
    // Another process's reader in the middle of a read transaction (a BI tool, a sqlite3 shell).
    let mut reader = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM points")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert!(n > 0);
    let started = std::time::Instant::now();
    let (code, _, err) = crate::cli::run(
        crate::cli::with_demo_keys(&mut crate::cli::cmd(dir.path()))
            .args(["sync", "--database-url", &url, "--config"])
            .arg(&config),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(code, 0, "the rows are committed: {err}");
    assert!(
        err.contains("WARN") && err.contains("kept the write-ahead log"),
        "named at WARN: {err}"
    );
    assert!(
        took >= StdDuration::from_secs(5),
        "waited 5 s first: {took:?}"
    );
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    reader.close().await.unwrap();
    sim.shutdown().await;
}

/// Overwrites `len` bytes of `path` at `offset` with garbage.
fn scribble(path: &Path, offset: u64, len: usize) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&vec![0xA5; len]).unwrap();
}

#[tokio::test]
async fn item_15_a_damaged_file_is_reported_as_such_never_as_unreachable() {
    let (dir, config, url, sim) = synced_sqlite().await;
    let path = dir.path().join("q.db");
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 8 * 4096, "{size}");
    // A page in the middle: `check` and `status --check` read every page and find it.
    scribble(&path, (size / 4096 / 2) * 4096, 4096);
    let (code, out, err) = crate::cli::run(
        crate::cli::with_demo_keys(&mut crate::cli::cmd(dir.path()))
            .args(["check", "--database-url", &url, "--config"])
            .arg(&config),
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("FAIL  database") && out.contains("damaged"),
        "{out}"
    );
    let (code, out, err) = crate::cli::run(
        crate::cli::cmd(dir.path())
            .args(["status", "--check", "--database-url", &url, "--config"])
            .arg(&config),
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("damaged") && !err.contains("reachable"),
        "{err}"
    );

    // Its header: every command meets it, and says what it is.
    scribble(&path, 0, 100);
    let (code, out, err) = crate::cli::run(
        crate::cli::with_demo_keys(&mut crate::cli::cmd(dir.path()))
            .args(["sync", "--database-url", &url, "--config"])
            .arg(&config),
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("damaged") && !err.contains("reachable"),
        "{err}"
    );
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------------
// 17b. The PostgreSQL lock's loser names the holder, also before the holder has a record.

#[tokio::test]
async fn item_17b_the_lock_loser_names_a_holder_that_is_still_starting() {
    use sqlx::{ConnectOptions, Connection};
    let Some(db) = pg_empty_db().await else {
        return;
    };
    // What a holder that is still migrating a fresh database looks like: the advisory lock on a
    // session named as the store names it, and no `sync_lock` table yet.
    let options: sqlx::postgres::PgConnectOptions = db.url().parse().unwrap();
    let mut holder = options
        .application_name("rtc-quality-sync sync pid 4242 on box-a")
        .connect()
        .await
        .unwrap();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(0x7274_6373_796e_6331_i64)
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert!(got);
    let err = match Store::connect_locked(&db.url(), "rtc-quality-sync sync").await {
        Err(e) => e,
        Ok(_) => panic!("a second holder got the lock"),
    };
    let message = err.to_string();
    assert!(
        message.contains("a run that is starting (rtc-quality-sync sync pid 4242 on box-a"),
        "{message}"
    );
    assert!(!message.contains("unknown"), "{message}");
    holder.close().await.unwrap();
}
