//! Issue 19, "a user's first week": alerts that tell the truth, errors that say what to do, dates a
//! dashboard can group by, `prune` and a schema of its own. Tests are named after the items
//! (`item_12_…`), so the closing note maps an item to its test.

use chrono::{Duration, FixedOffset};
use rtc_quality_sync::domain::{Granularity, RunStatus};
use rtc_quality_sync::planner;
use rtc_quality_sync::report::Status;
use rtc_quality_sync::store::Store;

use crate::pipeline::{now, settings, simulator, sync_at};

#[tokio::test]
async fn item_12_settled_through_is_shown_as_an_exclusive_end_naming_the_last_whole_day() {
    let now = now();
    let sim = simulator(60, "", now).await;
    let cfg = settings(&format!(
        "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\n\n[[jobs]]\nname = \"lobby\"\n\
         app_id = \"app_a\"\nindicators = [\"stall_rate\"]\ngranularity = [\"1d\", \"5min\"]\n",
        sim.endpoint()
    ));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("q.db").display()))
        .await
        .unwrap();
    assert_eq!(sync_at(&cfg, &store, now).await.status, RunStatus::Ok);
    let mut status = Status::load(&store, Some(&cfg)).await.unwrap();
    status.judge(&cfg, now, Duration::hours(36));
    let day = status
        .streams
        .iter()
        .find(|s| s.coverage.stream == "lobby/1d")
        .unwrap();
    let through = day.coverage.settled_through.unwrap();
    // The settled range ends at a +08:00 midnight, exclusive: the last whole day is the one before.
    let local = through.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
    assert_eq!(local.format("%H:%M").to_string(), "00:00");
    let last = (local - Duration::days(1)).date_naive();
    assert_eq!(day.last_settled_day, Some(last));
    assert!(through <= planner::horizon(&cfg.window, Granularity::Day, now).end);
    let text = status.text();
    assert!(text.contains("settled until (exclusive)"), "{text}");
    let line = text.lines().find(|l| l.starts_with("lobby/1d")).unwrap();
    assert!(
        line.contains(&format!(
            "{} (through {last})",
            through.format("%Y-%m-%dT%H:%M:%SZ")
        )),
        "{line}"
    );
    // A 5min stream has no whole day to name.
    let five = text.lines().find(|l| l.starts_with("lobby/5min")).unwrap();
    assert!(!five.contains("through"), "{five}");
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(
        json["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == "lobby/1d")
            .unwrap()["last_settled_day"],
        last.to_string()
    );
    store.close().await;
    sim.shutdown().await;
}
