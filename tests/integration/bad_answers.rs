//! Bad answers fail (PRODUCT.md, the planner's rule 7): an HTTP 200 that lacks a requested indicator
//! is retried and then fails its window, and points off the stream's grid are dropped and counted.
//! Over real HTTP against the simulator's `empty`, `noindicators` and `offgrid` faults, into SQLite
//! and PostgreSQL.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rtc_quality_sync::api::wire::ListQualityRequest;
use rtc_quality_sync::domain::{Granularity, RunStatus, WindowState};
use rtc_quality_sync::report;
use rtc_quality_sync::simulator::data::{expand_indicators, off_grid_points_inside};
use rtc_quality_sync::simulator::{FaultKind, Faults, SimulatorConfig};
use rtc_quality_sync::store::Store;

use crate::helpers::{pg_store, sqlite_store};
use crate::pipeline::{config_text, dump, settings, simulator, sync_at};
use crate::sim_helpers::{self, Call};

/// A fixed instant (the simulator follows it as its data clock), so nothing depends on the hour.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T02:17:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

/// What a fault-free run stores, in a store of its own.
async fn fault_free_result(now: DateTime<Utc>) -> BTreeMap<String, String> {
    let sim = simulator(60, "", now).await;
    let (_dir, store) = sqlite_store().await;
    let s = settings(&config_text(&sim.endpoint(), 50.0, ""));
    let r = sync_at(&s, &store, now).await;
    assert_eq!(r.status, RunStatus::Ok, "{r:?}");
    let want = dump(&store).await;
    assert!(want.len() > 10_000, "{} points", want.len());
    sim.shutdown().await;
    want
}

/// Every answer lacks the requested indicators: each window is retried to the limit and then fails,
/// recorded as failed with what was missing; nothing is stored, nothing settled.
async fn answers_without_indicators_fail_their_windows(store: Store, fault: &str) {
    let now = now();
    let sim = simulator(60, &format!("{fault}=1"), now).await;
    let s = settings(&config_text(&sim.endpoint(), 50.0, ""));
    let report = sync_at(&s, &store, now).await;

    assert_eq!(report.status, RunStatus::Partial, "{report:?}");
    assert_eq!(report.exit_code(), 2);
    assert!(report.failed_jobs.is_empty(), "{:?}", report.failed_jobs);
    assert!(report.credentials_error.is_none());
    for st in &report.streams {
        assert!(st.windows_planned > 0, "{st:?}");
        assert_eq!(st.windows_ok, 0, "{st:?}");
        assert_eq!(st.windows_failed, st.windows_planned, "{st:?}");
        let e = st.error.as_deref().unwrap_or_default();
        // Every job asks for stall_rate; app-a for join_room_success_rate first.
        assert!(
            e.contains("the answer has no `stall_rate` (")
                || e.contains("the answer has no `join_room_success_rate`, `stall_rate` ("),
            "{e}"
        );
    }
    // Retried like any transient failure: every window cost 1 + max_retries calls.
    let windows: u64 = report.streams.iter().map(|st| st.windows_planned).sum();
    let attempts = 1 + u64::from(s.source.max_retries);
    assert_eq!(sim.requests().len() as u64, windows * attempts);
    assert!(
        sim.requests()
            .iter()
            .all(|r| r.status == 200 && r.fault.as_deref() == Some(fault))
    );

    let ledger = crate::helpers::windows(&store).await;
    assert_eq!(ledger.len() as u64, windows, "{ledger:?}");
    for e in &ledger {
        assert_eq!(e.state, WindowState::Failed, "{e:?}");
        assert_eq!(e.points, 0);
        assert_eq!(e.attempts as u64, attempts);
        let error = e.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("the answer has no `"), "{error}");
        assert!(error.contains("(returned: no indicator at all)"), "{error}");
        // The RequestId of the last answer, in the message and in its own column.
        let rid = e.request_id.as_deref().expect("a request id");
        assert!(error.contains(&format!("RequestId {rid}")), "{error}");
    }
    assert!(dump(&store).await.is_empty(), "no point is stored");
    sim.shutdown().await;
}

#[tokio::test]
async fn sqlite_empty_results_fail_their_windows() {
    let (_dir, store) = sqlite_store().await;
    answers_without_indicators_fail_their_windows(store, "empty").await;
}

#[tokio::test]
async fn postgres_empty_results_fail_their_windows() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    answers_without_indicators_fail_their_windows(store, "empty").await;
}

#[tokio::test]
async fn sqlite_answers_without_indicators_fail_their_windows() {
    let (_dir, store) = sqlite_store().await;
    answers_without_indicators_fail_their_windows(store, "noindicators").await;
}

#[tokio::test]
async fn postgres_answers_without_indicators_fail_their_windows() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    answers_without_indicators_fail_their_windows(store, "noindicators").await;
}

/// Now and then an answer lacks the indicators: retries (and, if a window runs out of them, the next
/// run) end with exactly the tables of a fault-free run.
async fn occasional_answers_without_indicators_give_the_fault_free_result(store: Store) {
    let now = now();
    let want = fault_free_result(now).await;

    let sim = simulator(60, "empty=0.3,noindicators=0.3", now).await;
    let s = settings(&config_text(&sim.endpoint(), 50.0, ""));
    for _ in 0..5 {
        let r = sync_at(&s, &store, now).await;
        if r.status == RunStatus::Ok {
            break;
        }
        assert_eq!(r.status, RunStatus::Partial, "{r:?}");
    }
    let faults = |kind: &str| {
        sim.requests()
            .iter()
            .filter(|r| r.fault.as_deref() == Some(kind))
            .count()
    };
    assert!(faults("empty") > 0 && faults("noindicators") > 0);
    assert_eq!(dump(&store).await, want);
    // Every window ended settled or provisional: no failed record is left over.
    let ledger = store.ledger(None).await.unwrap();
    assert!(
        ledger.iter().all(|e| e.state != WindowState::Failed),
        "{ledger:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn sqlite_occasional_answers_without_indicators_give_the_fault_free_result() {
    let (_dir, store) = sqlite_store().await;
    occasional_answers_without_indicators_give_the_fault_free_result(store).await;
}

#[tokio::test]
async fn postgres_occasional_answers_without_indicators_give_the_fault_free_result() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    occasional_answers_without_indicators_give_the_fault_free_result(store).await;
}

/// Answers with extra points off the grid store exactly what a fault-free run stores, and
/// `points_dropped` (in the report and in `sync --json`) counts exactly the injected points that lie
/// inside their windows.
async fn off_grid_points_are_dropped_and_counted(store: Store) {
    let now = now();
    let want = fault_free_result(now).await;

    // Not every answer: the count must come from the answers that had them.
    let sim = simulator(60, "offgrid=0.6", now).await;
    let s = settings(&config_text(&sim.endpoint(), 50.0, ""));
    let report = sync_at(&s, &store, now).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    assert_eq!(dump(&store).await, want);

    // What the simulator injected inside the windows, per stream.
    let mut injected: BTreeMap<String, u64> = BTreeMap::new();
    let mut faulted = 0;
    for r in sim.requests() {
        if r.fault.as_deref() != Some("offgrid") {
            continue;
        }
        faulted += 1;
        let req: ListQualityRequest = serde_json::from_str(&r.body).unwrap();
        let g = Granularity::parse(&req.aggregate_granularity).unwrap();
        let stream = s
            .streams()
            .into_iter()
            .find(|st| st.job.app_id == req.app_id && st.granularity == g)
            .expect("a configured stream");
        let n = expand_indicators(&req.indicator).len() * off_grid_points_inside(g);
        *injected.entry(stream.name).or_default() += n as u64;
    }
    assert!(
        faulted > 0 && faulted < sim.requests().len(),
        "{faulted} of {} answers had off-grid points",
        sim.requests().len()
    );
    let json = report::summary_json(&report);
    assert_eq!(json.streams.len(), report.streams.len());
    for (st, js) in report.streams.iter().zip(&json.streams) {
        let want = injected.get(&st.stream).copied().unwrap_or(0);
        assert_eq!(st.points_dropped, want, "{st:?}");
        assert_eq!(js.stream, st.stream);
        assert_eq!(js.points_dropped, want, "sync --json of {}", js.stream);
    }
    let total: u64 = report.streams.iter().map(|st| st.points_dropped).sum();
    assert_eq!(total, injected.values().sum::<u64>());
    assert!(total > 0);

    // A re-run that fetches the provisional windows again adds nothing beside the stored points.
    sync_at(&s, &store, now).await;
    assert_eq!(dump(&store).await, want);
    sim.shutdown().await;
}

#[tokio::test]
async fn sqlite_off_grid_points_are_dropped_and_counted() {
    let (_dir, store) = sqlite_store().await;
    off_grid_points_are_dropped_and_counted(store).await;
}

#[tokio::test]
async fn postgres_off_grid_points_are_dropped_and_counted() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    off_grid_points_are_dropped_and_counted(store).await;
}

/// The three faults' answers as they go over the wire.
#[tokio::test]
async fn the_simulator_serves_the_bad_answers_it_is_asked_for() {
    let call = |g: &str| {
        Call::new(sim_helpers::body(
            "app",
            "2026-03-01T00:00:00+08:00",
            "2026-03-03T00:00:00+08:00",
            &["stall_rate"],
            g,
        ))
    };
    let with = |kind: FaultKind| SimulatorConfig {
        faults: Faults::only(kind, 1.0),
        ..sim_helpers::config()
    };

    let sim = sim_helpers::start(with(FaultKind::Empty)).await;
    let a = call("1d").send(&sim).await;
    assert_eq!(a.status, 200);
    let v: serde_json::Value = serde_json::from_str(&a.text).unwrap();
    assert_eq!(v["Result"], serde_json::json!({}), "{}", a.text);
    assert!(v["ResponseMetadata"].get("Error").is_none());
    sim.shutdown().await;

    let sim = sim_helpers::start(with(FaultKind::NoIndicators)).await;
    let a = call("1d").send(&sim).await;
    let v: serde_json::Value = serde_json::from_str(&a.text).unwrap();
    assert_eq!(
        v["Result"]["Indicators"],
        serde_json::json!([]),
        "{}",
        a.text
    );
    sim.shutdown().await;

    // The right answer plus, per series, the first bucket + 17 s (and + 5 min in 1d) and EndTime + 17 s.
    let clean = sim_helpers::start(sim_helpers::config()).await;
    let sim = sim_helpers::start(with(FaultKind::OffGrid)).await;
    for (g, extra) in [
        (
            "1d",
            vec![
                "2026-03-01T00:00:17+08:00",
                "2026-03-01T00:05:00+08:00",
                "2026-03-03T00:00:17+08:00",
            ],
        ),
        (
            "5min",
            vec!["2026-03-01T00:00:17+08:00", "2026-03-03T00:00:17+08:00"],
        ),
    ] {
        let good = sim_helpers::points(&call(g).send(&clean).await.result());
        let got = sim_helpers::points(&call(g).send(&sim).await.result());
        let mut want = good.clone();
        for name in ["audio_stall_rate", "video_stall_rate"] {
            for t in &extra {
                want.push((name.to_string(), t.to_string(), Some(50.0)));
            }
        }
        want.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(got, want, "{g}");
        let g = Granularity::parse(g).unwrap();
        assert_eq!(extra.len() - 1, off_grid_points_inside(g));
    }
    clean.shutdown().await;
    sim.shutdown().await;
}
