//! The binary killed with SIGKILL at several points of a backfill: no window is ever half-written,
//! and a re-run ends with exactly the tables of an uninterrupted run.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rtc_quality_sync::domain::WindowState;
use rtc_quality_sync::simulator::{self, SimulatorConfig};
use rtc_quality_sync::store::Store;

use crate::pipeline::{config_text, dump};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T05:41:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

/// Runs `sync` as a child process at `now()`; returns it running.
fn spawn_sync(config: &std::path::Path, db_url: &str) -> tokio::process::Child {
    crate::helpers::spawn_sync(config, db_url, now())
}

/// Every stored point lies in a committed ledger window of its stream, and every committed ledger
/// row holds exactly the points it says: nothing is half-written.
async fn assert_consistent(store: &Store) {
    let points = dump(store).await;
    let ledger = crate::helpers::windows(store).await;
    let stream_of = |key: &str| -> (String, DateTime<Utc>) {
        let f: Vec<&str> = key.split('|').collect();
        let job = match f[0] {
            "app_a" => "app-a",
            "app_b" => "room-b",
            other => panic!("unexpected app {other}"),
        };
        let ts = DateTime::parse_from_rfc3339(f[8])
            .unwrap()
            .with_timezone(&Utc);
        (format!("{job}/{}", f[3]), ts)
    };
    // The distribution stream's points too (one indicator, one dimension: see `with_distribution`).
    let distribution: Vec<(String, DateTime<Utc>)> = store
        .distribution(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let ts = DateTime::parse_from_rfc3339(&r.ts)
                .unwrap()
                .with_timezone(&Utc);
            (
                format!(
                    "where/stall_rate/{}|{}|{}",
                    r.dimension, r.dimension_value, r.indicator
                ),
                ts,
            )
        })
        .collect();
    let mut counted: BTreeMap<usize, i64> = BTreeMap::new();
    let keys = points.keys().map(|k| (k.clone(), stream_of(k))).chain(
        distribution
            .iter()
            .map(|(k, ts)| (k.clone(), (k.split('|').next().unwrap().to_string(), *ts))),
    );
    for (key, (stream, ts)) in keys {
        let row = ledger
            .iter()
            .position(|e| {
                *e.stream == *stream && e.state != WindowState::Failed && e.window.contains(ts)
            })
            .unwrap_or_else(|| panic!("point {key} has no committed window"));
        *counted.entry(row).or_default() += 1;
    }
    for (i, e) in ledger.iter().enumerate() {
        if e.state != WindowState::Failed {
            assert_eq!(
                counted.get(&i).copied().unwrap_or(0),
                e.points,
                "ledger row {e:?} does not match its points"
            );
        }
    }
}

#[tokio::test]
async fn sigkill_at_any_point_loses_nothing_and_rerun_converges() {
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 20,
        distribution_rate_limit_per_sec: 20,
        latency: Duration::from_millis(40),
        ..Default::default()
    })
    .await
    .unwrap();
    sim.set_data_now(now());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        with_distribution(&config_text(&sim.endpoint(), 8.0, "")),
    )
    .unwrap();

    // The uninterrupted reference.
    let reference_url = format!("sqlite://{}", dir.path().join("reference.db").display());
    let out = spawn_sync(&config, &reference_url)
        .wait_with_output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = Store::connect(&reference_url).await.unwrap();
    let want = dump(&reference).await;
    assert!(!want.is_empty());
    let want_distribution = distribution_values(&reference).await;
    assert!(!want_distribution.is_empty());

    let url = format!("sqlite://{}", dir.path().join("killed.db").display());
    let mut kills = 0;
    for after_ms in [150u64, 700, 1300, 1900, 2600] {
        let mut child = spawn_sync(&config, &url);
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        if child.try_wait().unwrap().is_none() {
            child.start_kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let _ = child.wait().await;
        let store = Store::connect(&url).await.unwrap();
        assert_consistent(&store).await;
        store.close().await;
    }
    assert!(kills >= 3, "the backfill was killed mid-way {kills} times");

    let out = spawn_sync(&config, &url).wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::connect(&url).await.unwrap();
    assert_consistent(&store).await;
    assert_eq!(dump(&store).await, want);
    assert_eq!(distribution_values(&store).await, want_distribution);
    sim.shutdown().await;
}

/// The test config plus one distribution stream (stall rate by province), paced at 8 calls/s.
fn with_distribution(config: &str) -> String {
    let config = config.replace(
        "max_in_flight = 4\n",
        "max_in_flight = 4\ndistribution_requests_per_second = 8\n",
    );
    assert!(config.contains("distribution_requests_per_second"));
    format!(
        "{config}\n[[distributions]]\nname = \"where\"\napp_id = \"app_a\"\n\
         indicators = [\"stall_rate\"]\ndimensions = [\"Province\"]\n"
    )
}

/// `quality_distribution` without `updated_at`.
async fn distribution_values(store: &Store) -> Vec<(String, String, String, String, f64, bool)> {
    store
        .distribution(None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.indicator,
                r.dimension_value,
                r.ts,
                r.product_type,
                r.value,
                r.settled,
            )
        })
        .collect()
}
