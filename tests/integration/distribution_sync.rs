//! Distribution streams end to end (issue 13): `[[distributions]]` synced by the pipeline into
//! `quality_distribution`, one call per indicator, dimension and local day, on both backends.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rtc_quality_sync::api::client::Client;
use rtc_quality_sync::api::distribution::ListQualityDistributionRequest;
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::domain::{Granularity, RunStatus};
use rtc_quality_sync::metrics;
use rtc_quality_sync::planner;
use rtc_quality_sync::report::{self, Status};
use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::Store;

use crate::pipeline::{demo_credentials, now, settings, sync_at};

const DISTRIBUTION: &str = "ListQualityDistribution";

async fn spawn_simulator(faults: &str, now: DateTime<Utc>) -> SimulatorHandle {
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        distribution_rate_limit_per_sec: 60,
        faults: simulator::Faults::parse(faults).unwrap(),
        slow_delay: StdDuration::from_secs(5),
        ..Default::default()
    })
    .await
    .unwrap();
    sim.set_data_now(now);
    sim
}

fn config(sim: &SimulatorHandle) -> Settings {
    settings(&format!(
        r#"
[source]
endpoint = "{}"
requests_per_second = 50
distribution_requests_per_second = 50
max_in_flight = 4
timeout_secs = 2
max_retries = 8

[[jobs]]
name = "app-a"
app_id = "app_a"
indicators = ["stall_rate"]
granularity = "1d"

[[distributions]]
name = "where"
app_id = "app_a"
indicators = ["join_room_success_rate", "stall_rate"]
"#,
        sim.endpoint()
    ))
}

/// `quality_distribution` as `(app, indicator, dimension, value, ts)` → `(value, settled)`.
async fn stored(store: &Store) -> BTreeMap<(String, String, String, String, String), (f64, bool)> {
    store
        .distribution(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                (r.app_id, r.indicator, r.dimension, r.dimension_value, r.ts),
                (r.value, r.settled),
            )
        })
        .collect()
}

/// What the simulator serves for every distribution stream over the horizon, asked day by day
/// straight through the client, with the settled flag the settle rule gives at `now`.
async fn reference(
    settings: &Settings,
    now: DateTime<Utc>,
) -> BTreeMap<(String, String, String, String, String), (f64, bool)> {
    let client = Client::new(&settings.source, demo_credentials()).unwrap();
    let h = planner::horizon(&settings.window, Granularity::Day, now);
    let settled_until = planner::settled_until(&settings.window, Granularity::Day, now);
    let mut out = BTreeMap::new();
    for stream in settings.streams() {
        let Some(d) = &stream.distribution else {
            continue;
        };
        let mut start = h.start;
        while start < h.end {
            let day = rtc_quality_sync::domain::Window::new(start, start + Duration::days(1));
            let req = ListQualityDistributionRequest::for_window(
                &stream.job.app_id,
                day,
                settings.window.timezone,
                &stream.job.indicators[0],
                d.dimension,
                stream.job.product_type,
                None,
            );
            let fetched = loop {
                match client.call(&req).await {
                    Ok(f) => break f,
                    Err(e) if e.is_retryable() => {
                        tokio::time::sleep(StdDuration::from_millis(50)).await
                    }
                    Err(e) => panic!("reference fetch failed: {e}"),
                }
            };
            for s in fetched.series {
                for p in s.points.into_iter().filter(|p| day.contains(p.ts)) {
                    out.insert(
                        (
                            stream.job.app_id.clone(),
                            s.name.clone(),
                            d.dimension.as_str().to_string(),
                            p.dimension_value,
                            p.ts.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        ),
                        (p.value, day.end <= settled_until),
                    );
                }
            }
            start = day.end;
        }
    }
    out
}

async fn distribution_streams_are_synced_exactly(store: Store, faults: &str) {
    let now = now();
    let sim = spawn_simulator(faults, now).await;
    let settings = config(&sim);
    let report = sync_at(&settings, &store, now).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");

    // One call per indicator, dimension and local day of the horizon (retries aside).
    let days = planner::horizon(&settings.window, Granularity::Day, now)
        .duration()
        .num_days();
    let windows: u64 = report
        .streams
        .iter()
        .filter(|s| s.stream.starts_with("where/"))
        .map(|s| s.windows_ok)
        .sum();
    assert_eq!(windows as i64, 2 * 4 * days, "{report:?}");
    let requests = sim.requests();
    let distribution: Vec<_> = requests
        .iter()
        .filter(|r| r.action == DISTRIBUTION)
        .collect();
    let quality: Vec<_> = requests
        .iter()
        .filter(|r| r.action != DISTRIBUTION)
        .collect();
    if faults.is_empty() {
        assert_eq!(distribution.len() as i64, 2 * 4 * days);
    }
    // Both quotas were used at once: the two kinds of calls overlap in time.
    assert!(
        distribution.first().unwrap().at < quality.last().unwrap().at
            && quality.first().unwrap().at < distribution.last().unwrap().at,
        "the two APIs' calls interleave"
    );

    // Exactly what the API serves, settled as the settle rule says.
    let got = stored(&store).await;
    assert!(got.keys().any(|k| k.3 == "广东"));
    assert_eq!(got, reference(&settings, now).await);

    // A re-run fetches only the provisional days and writes nothing.
    let report = sync_at(&settings, &store, now + Duration::minutes(1)).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    for s in report
        .streams
        .iter()
        .filter(|s| s.stream.starts_with("where/"))
    {
        assert!(s.windows_planned <= 2, "{s:?}");
        assert_eq!((s.points.inserted, s.points.updated), (0, 0), "{s:?}");
    }
    assert_eq!(stored(&store).await, got);

    // `status` names the streams and finds nothing wrong.
    let mut status = Status::load(&store, Some(&settings)).await.unwrap();
    status.judge(&settings, now + Duration::minutes(1), Duration::hours(36));
    let names: Vec<&str> = status
        .streams
        .iter()
        .map(|s| s.coverage.stream.as_str())
        .collect();
    assert!(names.contains(&"where/stall_rate/Province"), "{names:?}");
    assert_eq!(names.len(), 1 + 2 * 4);
    assert_eq!(
        status.problems.as_deref().unwrap().len(),
        0,
        "{:?}",
        status.problems
    );
    // `sync --json` and the metrics file speak of them too.
    let summary = serde_json::to_value(report::summary_json(&report)).unwrap();
    let listed: Vec<&str> = summary["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"where/join_room_success_rate/Country"),
        "{listed:?}"
    );
    let text = metrics::render(&status.metrics_snapshot(None));
    for dimension in ["Province", "Country", "OS", "Access"] {
        assert!(
            text.contains(&format!(
                "rtc_quality_sync_stream_missing_buckets{{stream=\"where/stall_rate/{dimension}\"}} 0"
            )),
            "{text}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn sqlite_distribution_streams_are_synced_exactly() {
    let (_dir, store) = crate::helpers::sqlite_store().await;
    distribution_streams_are_synced_exactly(store, "").await;
}

#[tokio::test]
async fn postgres_distribution_streams_are_synced_exactly() {
    let Some((_db, store)) = crate::helpers::pg_store().await else {
        return;
    };
    distribution_streams_are_synced_exactly(store, "").await;
}

#[tokio::test]
async fn sqlite_distribution_faults_do_not_change_the_result() {
    let (_dir, store) = crate::helpers::sqlite_store().await;
    distribution_streams_are_synced_exactly(store, "500=0.1,429=0.05,garbage=0.05,empty=0.05")
        .await;
}

#[tokio::test]
async fn postgres_distribution_faults_do_not_change_the_result() {
    let Some((_db, store)) = crate::helpers::pg_store().await else {
        return;
    };
    distribution_streams_are_synced_exactly(store, "500=0.1,429=0.05,garbage=0.05,empty=0.05")
        .await;
}
