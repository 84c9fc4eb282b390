//! The state model (issue 11), over real HTTP against the simulator, on both backends: coverage
//! belongs to what a stream asks and to each indicator, failed records heal, holes show.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::domain::{RunStatus, WindowState};
use rtc_quality_sync::health::Problem;
use rtc_quality_sync::pipeline::RunOptions;
use rtc_quality_sync::planner::{self, PlanOptions};
use rtc_quality_sync::report::Status;
use rtc_quality_sync::simulator::SimulatorHandle;
use rtc_quality_sync::store::{CoverageRow, Store};

use crate::helpers::windows;
use crate::pipeline::{dump, expected, now, settings, simulator, sync_at, sync_with, values};

/// A configuration with one job, `name`, asking `indicators` of `app` at both granularities.
fn one_job(sim: &SimulatorHandle, name: &str, app: &str, indicators: &[&str]) -> Settings {
    let indicators: Vec<String> = indicators.iter().map(|i| format!("\"{i}\"")).collect();
    settings(&format!(
        r#"
[source]
endpoint = "{}"
requests_per_second = 50
max_in_flight = 4
timeout_secs = 2
max_retries = 2

[[jobs]]
name = "{name}"
app_id = "{app}"
indicators = [{}]
granularity = ["1d", "5min"]
"#,
        sim.endpoint(),
        indicators.join(", ")
    ))
}

/// The indicators each request since `from` asked, in arrival order.
fn asked(sim: &SimulatorHandle, from: usize) -> Vec<Vec<String>> {
    sim.requests()[from..]
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            match &body["Indicator"] {
                serde_json::Value::Array(a) => {
                    a.iter().map(|v| v.as_str().unwrap().to_string()).collect()
                }
                v => vec![v.as_str().unwrap().to_string()],
            }
        })
        .collect()
}

async fn coverage(store: &Store) -> BTreeMap<String, CoverageRow> {
    store
        .coverage(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.stream.clone(), c))
        .collect()
}

async fn status(store: &Store, settings: &Settings, now: DateTime<Utc>) -> Status {
    let mut s = Status::load(store, Some(settings)).await.unwrap();
    s.judge(settings, now, Duration::hours(36));
    s
}

/// Only the points of `indicator` (the Name contains it).
fn of(points: &BTreeMap<String, f64>, indicator: &str) -> BTreeMap<String, f64> {
    points
        .iter()
        .filter(|(k, _)| k.split('|').nth(2).unwrap().contains(indicator))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

async fn an_edited_job_backfills_what_it_asks_anew(store: Store) {
    let now = now();
    let sim = simulator(60, "", now).await;
    let join = "join_room_success_rate";

    // Day 1: one indicator.
    let first = one_job(&sim, "lobby", "app_a", &[join]);
    assert_eq!(sync_at(&first, &store, now).await.status, RunStatus::Ok);

    // An indicator added under the same name: its whole horizon is fetched, the other one's only
    // its provisional tail, and each stream's tail is one call carrying both.
    let t = now + Duration::minutes(1);
    let both = one_job(&sim, "lobby", "app_a", &[join, "stall_rate"]);
    let ledger = store.ledger(None).await.unwrap();
    let plan = planner::plan(
        &both.window,
        &both.streams(),
        &ledger,
        t,
        PlanOptions::default(),
    )
    .unwrap();
    let fresh = planner::plan(
        &both.window,
        &both.streams(),
        &[],
        t,
        PlanOptions::default(),
    )
    .unwrap()
    .request_count();
    let before = sim.requests().len();
    let report = sync_at(&both, &store, t).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    let calls = asked(&sim, before);
    assert_eq!(calls.len(), plan.request_count());
    assert!(
        calls.len() <= fresh + 2,
        "the added indicator's backfill and at most one tail call per stream: {calls:?}"
    );
    let with_join = calls.iter().filter(|c| c.iter().any(|i| i == join)).count();
    assert!(
        with_join <= 2,
        "join is fetched only at its tails: {calls:?}"
    );
    assert!(calls.iter().all(|c| c.contains(&"stall_rate".to_string())) || with_join > 0);
    // Both indicators now hold exactly what the simulator serves over the horizon.
    let stored = values(&dump(&store).await);
    let reference = expected(&both, &sim, t).await;
    assert_eq!(of(&stored, "stall_rate"), of(&reference, "stall_rate"));
    assert_eq!(of(&stored, join), of(&reference, join));

    // From then on a run costs one call per stream, asking both.
    let t = t + Duration::minutes(1);
    let before = sim.requests().len();
    assert_eq!(sync_at(&both, &store, t).await.status, RunStatus::Ok);
    let calls = asked(&sim, before);
    assert!(calls.len() <= 2, "{calls:?}");
    assert!(calls.iter().all(|c| c.len() == 2), "{calls:?}");

    // An indicator removed: not fetched any more, its points stay.
    let t = t + Duration::minutes(1);
    let joins = of(&values(&dump(&store).await), join);
    let stall_only = one_job(&sim, "lobby", "app_a", &["stall_rate"]);
    let before = sim.requests().len();
    assert_eq!(sync_at(&stall_only, &store, t).await.status, RunStatus::Ok);
    assert!(asked(&sim, before).iter().all(|c| c == &["stall_rate"]));
    assert_eq!(of(&values(&dump(&store).await), join), joins);

    // Renamed: nothing is fetched again but the tails; the stream carries its new name.
    let t = t + Duration::minutes(1);
    let renamed = one_job(&sim, "lobby-renamed", "app_a", &["stall_rate"]);
    let before = sim.requests().len();
    assert_eq!(sync_at(&renamed, &store, t).await.status, RunStatus::Ok);
    assert!(sim.requests().len() - before <= 2);
    let names: Vec<String> = coverage(&store).await.into_keys().collect();
    assert_eq!(names, ["lobby-renamed/1d", "lobby-renamed/5min"]);
    let s = status(&store, &renamed, t).await;
    assert!(s.not_configured.is_empty(), "{:?}", s.not_configured);
    assert_eq!(s.problems.as_deref().unwrap().len(), 0, "{:?}", s.problems);

    // Another app under the same name is a new stream, backfilled; the old one's points stay and
    // `status` lists it as no longer configured.
    let t = t + Duration::minutes(1);
    let points_before = dump(&store).await.len();
    let other_app = one_job(&sim, "lobby-renamed", "app_b", &["stall_rate"]);
    let before = sim.requests().len();
    assert_eq!(sync_at(&other_app, &store, t).await.status, RunStatus::Ok);
    let fresh = planner::plan(
        &other_app.window,
        &other_app.streams(),
        &[],
        t,
        PlanOptions::default(),
    )
    .unwrap()
    .request_count();
    assert_eq!(sim.requests().len() - before, fresh);
    assert!(dump(&store).await.len() > points_before);
    let s = status(&store, &other_app, t).await;
    let replaced = format!(" (replaced {})", t.format("%Y-%m-%d"));
    assert_eq!(
        s.not_configured,
        [
            format!("lobby-renamed/1d{replaced}"),
            format!("lobby-renamed/5min{replaced}")
        ]
    );
    assert!(s.never_synced.is_empty());
    sim.shutdown().await;
}

async fn failed_records_heal_and_never_set_coverage_back(store: Store) {
    let now = now();
    let good = simulator(60, "", now).await;
    let broken = simulator(60, "500=1", now).await;
    let join = "join_room_success_rate";
    let ok = one_job(&good, "lobby", "app_a", &[join, "stall_rate"]);
    let failing = one_job(&broken, "lobby", "app_a", &[join, "stall_rate"]);
    assert_eq!(sync_at(&ok, &store, now).await.status, RunStatus::Ok);
    let settled_before: BTreeMap<String, Option<DateTime<Utc>>> = coverage(&store)
        .await
        .into_iter()
        .map(|(k, c)| (k, c.settled_through))
        .collect();

    // `--from/--to --refetch` runs of settled days fail, in two ranges.
    let t = now + Duration::minutes(1);
    let h = planner::horizon(&ok.window, rtc_quality_sync::domain::Granularity::Day, t);
    for (from, to, refetch) in [
        (
            h.start + Duration::days(3),
            h.start + Duration::days(6),
            true,
        ),
        (
            h.start + Duration::days(10),
            h.start + Duration::days(11),
            true,
        ),
    ] {
        let options = RunOptions {
            mode: "backfill".into(),
            plan: PlanOptions {
                from: Some(from),
                to: Some(to),
                refetch,
            },
            ..Default::default()
        };
        let report = sync_with(&failing, &store, t, &options).await;
        let planned: u64 = report.streams.iter().map(|s| s.windows_planned).sum();
        assert!(planned > 0, "{from} .. {to}: {report:?}");
        assert_eq!(report.status, RunStatus::Partial, "{report:?}");
    }
    let cov = coverage(&store).await;
    assert!(cov.values().all(|c| c.failed_windows >= 1), "{cov:?}");
    // The old values stay settled: the settled range does not go back.
    let settled_now: BTreeMap<String, Option<DateTime<Utc>>> = cov
        .iter()
        .map(|(k, c)| (k.clone(), c.settled_through))
        .collect();
    assert_eq!(settled_now, settled_before);
    let s = status(&store, &ok, t).await;
    assert!(
        s.problems
            .as_deref()
            .unwrap()
            .iter()
            .any(|p| matches!(p.problem, Problem::FailedWindows { .. })),
        "{:?}",
        s.problems
    );

    // The next plain run retries them and its successes supersede every failed record.
    let t = t + Duration::minutes(1);
    let before = good.requests().len();
    let report = sync_at(&ok, &store, t).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    assert!(
        good.requests().len() - before > 2,
        "the failed windows were fetched again"
    );
    let ledger = windows(&store).await;
    assert!(
        ledger.iter().all(|e| e.state != WindowState::Failed),
        "{ledger:?}"
    );
    let cov = coverage(&store).await;
    assert!(cov.values().all(|c| c.failed_windows == 0), "{cov:?}");
    assert!(
        cov.values().all(|c| c.missing_buckets == Some(0)),
        "{cov:?}"
    );
    let s = status(&store, &ok, t).await;
    assert_eq!(s.problems.as_deref().unwrap().len(), 0, "{:?}", s.problems);
    // And the tables are exact.
    assert_eq!(values(&dump(&store).await), expected(&ok, &good, t).await);
    good.shutdown().await;
    broken.shutdown().await;
}

async fn a_cut_short_first_backfill_shows_its_hole(store: Store) {
    let now = now();
    let sim = simulator(60, "", now).await;
    let cfg = one_job(&sim, "lobby", "app_a", &["stall_rate"]);
    // Windows run newest first: a backfill cut short holds the newest days only.
    let h = planner::horizon(&cfg.window, rtc_quality_sync::domain::Granularity::Day, now);
    let from = h.end - Duration::days(9);
    let options = RunOptions {
        mode: "backfill".into(),
        plan: PlanOptions {
            from: Some(from),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        sync_with(&cfg, &store, now, &options).await.status,
        RunStatus::Ok
    );
    let cov = coverage(&store).await;
    for stream in cfg.streams() {
        let c = &cov[&stream.name];
        let h = planner::horizon(&cfg.window, stream.granularity, now);
        assert_eq!(
            c.settled_through, None,
            "{}: the horizon start was never fetched",
            stream.name
        );
        let missing = (from.max(h.start) - h.start).num_seconds() / stream.granularity.seconds();
        assert!(
            c.missing_buckets.unwrap() >= missing,
            "{}: {c:?}, at least {missing}",
            stream.name
        );
    }
    let s = status(&store, &cfg, now).await;
    let holes = s
        .problems
        .as_deref()
        .unwrap()
        .iter()
        .filter(|p| matches!(p.problem, Problem::Holes { .. }))
        .count();
    assert_eq!(holes, 2, "{:?}", s.problems);

    // The next plain run fills it.
    let t = now + Duration::minutes(1);
    assert_eq!(sync_at(&cfg, &store, t).await.status, RunStatus::Ok);
    let cov = coverage(&store).await;
    for stream in cfg.streams() {
        let c = &cov[&stream.name];
        assert!(c.settled_through.is_some(), "{c:?}");
        assert_eq!(c.missing_buckets, Some(0), "{c:?}");
    }
    sim.shutdown().await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let (_dir, store) = crate::helpers::sqlite_store().await;
                    super::$name(store).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let Some((_db, store)) = crate::helpers::pg_store().await else {
                        return;
                    };
                    super::$name(store).await;
                }
            }
        )*
    };
}

on_both_backends!(
    an_edited_job_backfills_what_it_asks_anew,
    failed_records_heal_and_never_set_coverage_back,
    a_cut_short_first_backfill_shows_its_hole,
);
