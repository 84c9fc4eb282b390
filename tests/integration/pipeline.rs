//! End to end: the pipeline against the simulator over loopback, into SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rtc_quality_sync::api::client::Client;
use rtc_quality_sync::api::quality::request_for;
use rtc_quality_sync::config::{Credentials, Settings};
use rtc_quality_sync::domain::{RunStatus, Window};
use rtc_quality_sync::fetcher::{Fetcher, Quotas};
use rtc_quality_sync::pipeline::{self, RunOptions, RunReport};
use rtc_quality_sync::planner;
use rtc_quality_sync::progress::Progress;
use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::Store;
use tokio_util::sync::CancellationToken;

use crate::helpers::{pg_store, sqlite_store};

/// Two jobs, both granularities: four streams, each returning four series per call.
pub fn config_text(endpoint: &str, rps: f64, extra_jobs: &str) -> String {
    format!(
        r#"
[source]
endpoint = "{endpoint}"
requests_per_second = {rps}
max_in_flight = 4
timeout_secs = 2
max_retries = 8

[[jobs]]
name = "app-a"
app_id = "app_a"
indicators = ["join_room_success_rate", "stall_rate"]
granularity = ["1d", "5min"]

[[jobs]]
name = "room-b"
app_id = "app_b"
room_id = "room-1"
user_ids = ["u2", "u1"]
product_type = "web"
indicators = ["stall_rate"]
granularity = ["1d", "5min"]
{extra_jobs}"#
    )
}

pub fn settings(text: &str) -> Settings {
    Settings::parse(text, Path::new("test.toml")).expect("a valid test config")
}

/// A simulator fast enough for tests: the client is paced at `rps`, the simulator allows a bit more.
pub async fn simulator(rps: u32, faults: &str, now: DateTime<Utc>) -> SimulatorHandle {
    let config = SimulatorConfig {
        rate_limit_per_sec: rps,
        faults: simulator::Faults::parse(faults).expect("valid faults"),
        slow_delay: Duration::from_secs(5),
        ..Default::default()
    };
    let sim = simulator::spawn(config).await.expect("simulator");
    sim.set_data_now(now);
    sim
}

pub fn demo_credentials() -> Credentials {
    Credentials::new(simulator::DEMO_ACCESS_KEY, simulator::DEMO_SECRET_KEY, None)
}

pub async fn sync_at(settings: &Settings, store: &Store, now: DateTime<Utc>) -> RunReport {
    let options = RunOptions {
        mode: "sync".into(),
        ..Default::default()
    };
    sync_with(settings, store, now, &options).await
}

/// `sync_at` with the command line's options (`--from`/`--to`, `--refetch`, `--job`).
pub async fn sync_with(
    settings: &Settings,
    store: &Store,
    now: DateTime<Utc>,
    options: &RunOptions,
) -> RunReport {
    sync_as(settings, store, now, options, demo_credentials()).await
}

/// `sync_with` signing with `credentials` (a scripted server's pair instead of the simulator's).
pub async fn sync_as(
    settings: &Settings,
    store: &Store,
    now: DateTime<Utc>,
    options: &RunOptions,
    credentials: Credentials,
) -> RunReport {
    let client = Client::new(&settings.source, credentials).unwrap();
    // Short backoffs keep fault tests quick; the policy itself is tested in the fetcher's tests.
    let fetcher = Fetcher::with_backoff(
        client,
        &settings.source,
        Duration::from_millis(10),
        Duration::from_millis(200),
    );
    let fetcher = Quotas::new(fetcher, &settings.source);
    pipeline::run(
        settings,
        store,
        &fetcher,
        options,
        now,
        CancellationToken::new(),
        &Progress::hidden(),
    )
    .await
    .expect("the run completes")
}

/// Every point stored, keyed by everything but `updated_at`, as text.
pub async fn dump(store: &Store) -> BTreeMap<String, String> {
    store
        .metrics(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                format!(
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
                ),
                format!("{}|{}|{}", r.value, r.unit, r.settled),
            )
        })
        .collect()
}

/// What the simulator serves for every stream over the whole horizon, asked through windows cut
/// differently from the planner's (newest first, 3 days each), so the comparison cannot share a bug.
pub async fn expected(
    settings: &Settings,
    sim: &SimulatorHandle,
    now: DateTime<Utc>,
) -> BTreeMap<String, f64> {
    let _ = sim;
    let client = Client::new(&settings.source, demo_credentials()).unwrap();
    let mut out = BTreeMap::new();
    for stream in settings.streams() {
        let h = planner::horizon(&settings.window, stream.granularity, now);
        let mut end = h.end;
        while end > h.start {
            let start = (end - chrono::Duration::days(3)).max(h.start);
            let w = Window::new(start, end);
            let req = request_for(&stream, w, &stream.job.indicators, settings.window.timezone);
            let fetched = loop {
                tokio::time::sleep(Duration::from_millis(60)).await;
                match client.call(&req).await {
                    Ok(f) => break f,
                    Err(e) if e.is_retryable() => continue,
                    Err(e) => panic!("reference fetch failed: {e}"),
                }
            };
            let j = &stream.job;
            for ind in fetched.indicators {
                for p in ind.points.into_iter().filter(|p| w.contains(p.ts)) {
                    out.insert(
                        format!(
                            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
                            j.app_id,
                            j.room_id,
                            ind.name,
                            stream.granularity,
                            j.product_type.as_str(),
                            j.os.join(","),
                            j.access.join(","),
                            j.user_ids.join(","),
                            p.ts.format("%Y-%m-%dT%H:%M:%SZ")
                        ),
                        p.value,
                    );
                }
            }
            end = start;
        }
    }
    out
}

pub fn values(d: &BTreeMap<String, String>) -> BTreeMap<String, f64> {
    d.iter()
        .map(|(k, v)| (k.clone(), v.split('|').next().unwrap().parse().unwrap()))
        .collect()
}

pub fn now() -> DateTime<Utc> {
    // A fixed instant keeps runs comparable; the simulator follows it as its data clock.
    DateTime::parse_from_rfc3339("2026-11-20T02:17:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

async fn backfill_is_exact_and_reruns_are_cheap(store: Store) {
    let now = now();
    let sim = simulator(60, "", now).await;
    let s = settings(&config_text(&sim.endpoint(), 50.0, ""));

    let ledger = store.ledger(None).await.unwrap();
    let plan = planner::plan(&s.window, &s.streams(), &ledger, now, Default::default()).unwrap();
    let report = sync_at(&s, &store, now).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    // The call count equals the plan: ceil(span / 7 days) per stream, nothing retried.
    assert_eq!(sim.requests().len(), plan.request_count());
    assert_eq!(report.counts.requests as usize, plan.request_count());
    for sp in &plan.streams {
        let h = planner::horizon(&s.window, sp.granularity, now);
        let week = 7 * 86_400;
        assert_eq!(
            sp.windows.len() as i64,
            ((h.end - h.start).num_seconds() + week - 1) / week
        );
    }

    // Exactly the simulator's points for the whole horizon, and nothing outside it.
    let stored = dump(&store).await;
    let want = expected(&s, &sim, now).await;
    assert!(
        want.len() > 10_000,
        "the reference has {} points",
        want.len()
    );
    assert_eq!(values(&stored), want);
    assert_eq!(report.counts.points.inserted as usize, want.len());

    // An immediate re-run: at most one call per stream (none where nothing is provisional: at
    // 02:17 +08:00 every complete day is already settled), and no point rewritten.
    let before = sim.requests().len();
    let again = sync_at(&s, &store, now).await;
    for st in &again.streams {
        let expected = if st.stream.ends_with("/5min") { 1 } else { 0 };
        assert_eq!(st.calls, expected, "{st:?}");
    }
    assert_eq!(sim.requests().len() - before, 2);
    assert_eq!(
        again.counts.points.inserted + again.counts.points.updated,
        0,
        "{again:?}"
    );
    assert_eq!(dump(&store).await, stored);

    // A day later the provisional values have changed: the nightly run updates them.
    let later = now + chrono::Duration::days(1);
    sim.set_data_now(later);
    let before = sim.requests().len();
    let nightly = sync_at(&s, &store, later).await;
    assert_eq!(
        sim.requests().len() - before,
        s.streams().len(),
        "one call per stream"
    );
    assert!(nightly.counts.points.updated > 0, "{nightly:?}");
    let stored = values(&dump(&store).await);
    let want = expected(&s, &sim, later).await;
    for (k, v) in &want {
        assert_eq!(stored.get(k), Some(v), "{k}");
    }
    // Points that fell out of the moving horizon stay stored; nothing else differs.
    for k in stored.keys().filter(|k| !want.contains_key(*k)) {
        let f: Vec<&str> = k.split('|').collect();
        let g = rtc_quality_sync::domain::Granularity::parse(f[3]).unwrap();
        let ts = DateTime::parse_from_rfc3339(f[8]).unwrap();
        assert!(
            ts < planner::horizon(&s.window, g, later).start,
            "{k} is stored but not served"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn sqlite_backfill_is_exact_and_reruns_are_cheap() {
    let (_dir, store) = sqlite_store().await;
    backfill_is_exact_and_reruns_are_cheap(store).await;
}

#[tokio::test]
async fn postgres_backfill_is_exact_and_reruns_are_cheap() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    backfill_is_exact_and_reruns_are_cheap(store).await;
}

async fn faults_do_not_change_the_result(store: Store) {
    let now = now();
    let clean_sim = simulator(60, "", now).await;
    let (_d2, clean_store) = sqlite_store().await;
    let s = settings(&config_text(&clean_sim.endpoint(), 50.0, ""));
    sync_at(&s, &clean_store, now).await;
    let want = dump(&clean_store).await;
    clean_sim.shutdown().await;

    let sim = simulator(
        60,
        "500=0.05,429=0.05,200error=0.05,slow=0.02,close=0.05,garbage=0.05",
        now,
    )
    .await;
    let s = settings(&config_text(&sim.endpoint(), 50.0, ""));
    // Several runs may be needed when a window exhausts its retries; each must leave the tables exact.
    for _ in 0..5 {
        let r = sync_at(&s, &store, now).await;
        if r.status == RunStatus::Ok {
            break;
        }
        assert_eq!(r.status, RunStatus::Partial);
    }
    assert!(
        sim.requests().iter().any(|r| r.status >= 500),
        "faults were injected"
    );
    assert_eq!(dump(&store).await, want);
    sim.shutdown().await;
}

#[tokio::test]
async fn sqlite_faults_do_not_change_the_result() {
    let (_dir, store) = sqlite_store().await;
    faults_do_not_change_the_result(store).await;
}

#[tokio::test]
async fn postgres_faults_do_not_change_the_result() {
    let Some((_db, store)) = pg_store().await else {
        return;
    };
    faults_do_not_change_the_result(store).await;
}

#[tokio::test]
async fn an_unknown_app_fails_alone() {
    let now = now();
    let config = SimulatorConfig {
        rate_limit_per_sec: 60,
        apps: vec!["app_a".into(), "app_b".into()],
        ..Default::default()
    };
    let sim = simulator::spawn(config).await.unwrap();
    sim.set_data_now(now);
    let extra = "[[jobs]]\nname = \"ghost\"\napp_id = \"no_such_app\"\nindicators = [\"stall_rate\"]\ngranularity = [\"1d\", \"5min\"]\n";
    let s = settings(&config_text(&sim.endpoint(), 50.0, extra));
    let (_dir, store) = sqlite_store().await;
    let report = sync_at(&s, &store, now).await;
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(report.exit_code(), 2);
    // One clear message for the job, not one per window.
    assert_eq!(report.failed_jobs.len(), 1, "{:?}", report.failed_jobs);
    assert_eq!(report.failed_jobs[0].0, "ghost");
    assert!(
        report.failed_jobs[0].1.contains("NotExistAppId"),
        "{:?}",
        report.failed_jobs
    );
    let ghost_calls = sim
        .requests()
        .iter()
        .filter(|r| r.body.contains("no_such_app"))
        .count();
    assert!(
        ghost_calls <= 4,
        "the job stopped after its first refusals: {ghost_calls} calls"
    );
    // The other jobs completed.
    for st in report
        .streams
        .iter()
        .filter(|st| !st.stream.starts_with("ghost"))
    {
        assert_eq!(st.windows_ok, st.windows_planned, "{st:?}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_stop_every_job_with_exit_1() {
    let now = now();
    let sim = simulator(60, "", now).await;
    let s = settings(&config_text(&sim.endpoint(), 50.0, ""));
    let (_dir, store) = sqlite_store().await;
    let client = Client::new(
        &s.source,
        Credentials::new(simulator::DEMO_ACCESS_KEY, "not-the-secret", None),
    )
    .unwrap();
    let fetcher = Quotas::new(Fetcher::new(client, &s.source), &s.source);
    let report = pipeline::run(
        &s,
        &store,
        &fetcher,
        &RunOptions::default(),
        now,
        CancellationToken::new(),
        &Progress::hidden(),
    )
    .await
    .unwrap();
    assert_eq!(report.exit_code(), 1, "{report:?}");
    let e = report.credentials_error.unwrap();
    assert!(e.contains("SignatureDoesNotMatch"), "{e}");
    assert!(!e.contains("not-the-secret"));
    assert!(
        sim.requests().len() <= 4,
        "stopped after the first refusals"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_documented_pace_never_puts_three_calls_into_one_second() {
    let now = now();
    let sim = simulator(2, "", now).await;
    let text = config_text(&sim.endpoint(), 2.0, "").replace(
        "granularity = [\"1d\", \"5min\"]\n\n[[jobs]]",
        "granularity = [\"1d\"]\n\n[[jobs]]",
    );
    let s = settings(&text);
    let (_dir, store) = sqlite_store().await;
    let report = sync_at(&s, &store, now).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    assert_eq!(report.counts.throttled, 0);
    let at: Vec<DateTime<Utc>> = sim.requests().iter().map(|r| r.at).collect();
    assert!(at.len() >= 10);
    for (i, t) in at.iter().enumerate() {
        let in_second = at[i..]
            .iter()
            .take_while(|u| **u - *t < chrono::Duration::seconds(1))
            .count();
        assert!(in_second <= 2, "3 calls within one second from {t}");
    }
    sim.shutdown().await;
}
