//! A database written by the previous version (checkpoints keyed by stream name, `tests/fixtures/v1`,
//! made by `make.sh` with the code of commit 8531da1) upgrades in place: the 0002 migration keeps its
//! rows, `plan` and `status` read them as the configured streams', and the first `sync` adopts them and
//! fetches nothing again but the provisional tails.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::domain::{LEGACY_PREFIX, RunStatus, WindowState};
use rtc_quality_sync::pipeline::{self, RunOptions};
use rtc_quality_sync::report::Status;
use rtc_quality_sync::store::Store;
use sqlx::Connection;

use crate::helpers::{pg_empty_db, windows};
use crate::pipeline::{dump, expected, simulator, sync_at, values};

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1");

/// When the fixture was written.
pub fn written_at() -> DateTime<Utc> {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("now.txt")).unwrap();
    DateTime::parse_from_rfc3339(text.trim())
        .unwrap()
        .with_timezone(&Utc)
}

fn fixture_settings(endpoint: &str) -> Settings {
    let text = std::fs::read_to_string(Path::new(FIXTURE).join("config.toml")).unwrap();
    let text = text.replace("http://127.0.0.1:18199", endpoint);
    Settings::parse(&text, Path::new("config.toml")).unwrap()
}

async fn upgrades_in_place_without_fetching_again(url: &str) {
    let now = written_at() + Duration::minutes(1);
    let sim = simulator(60, "", now).await;
    let settings = fixture_settings(&sim.endpoint());
    let store = Store::connect(url).await.unwrap();

    // The old rows are kept under their stream names, and the view still shows each stream.
    let ledger = store.ledger(None).await.unwrap();
    assert!(!ledger.is_empty());
    assert!(ledger.iter().all(|e| e.stream.starts_with(LEGACY_PREFIX)));
    let old_windows = windows(&store).await;
    let coverage_before: BTreeMap<String, Option<DateTime<Utc>>> = store
        .coverage(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.stream, c.settled_through))
        .collect();
    assert_eq!(
        coverage_before.keys().collect::<Vec<_>>(),
        ["app-wide/1d", "room-b/1d", "room-b/5min"]
    );
    assert!(coverage_before.values().all(Option::is_some));

    // Before any sync, `plan` and `status` read them as the configured streams' checkpoints.
    let (adopted, _) = pipeline::adopted_ledger(&settings, &store).await.unwrap();
    let (_, plan) = pipeline::make_plan(&settings, &adopted, &RunOptions::default(), now).unwrap();
    for sp in &plan.streams {
        let provisional_from = old_windows
            .iter()
            .filter(|e| *e.stream == *sp.stream && e.state == WindowState::Provisional)
            .map(|e| e.window.start)
            .min()
            .unwrap();
        assert!(sp.windows.len() <= 1, "{sp:?}");
        assert!(
            sp.windows
                .iter()
                .all(|w| w.window.start >= provisional_from),
            "only the provisional tail: {sp:?}"
        );
    }
    let mut status = Status::load(&store, Some(&settings)).await.unwrap();
    status.judge(&settings, now, Duration::hours(36));
    assert!(status.never_synced.is_empty(), "{:?}", status.never_synced);
    assert!(
        status.not_configured.is_empty(),
        "{:?}",
        status.not_configured
    );
    assert_eq!(status.problems.as_deref().unwrap().len(), 0);

    // The first sync adopts them: the plan's calls and nothing more.
    let points_before = dump(&store).await.len();
    let report = sync_at(&settings, &store, now).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    assert_eq!(sim.requests().len(), plan.request_count());
    assert_eq!(
        report.counts.points.inserted as usize + points_before,
        dump(&store).await.len()
    );
    let ledger = store.ledger(None).await.unwrap();
    assert!(ledger.iter().all(|e| !e.stream.starts_with(LEGACY_PREFIX)));
    // One row per indicator the stream asks; `app-wide` asks two.
    let rows_per_window = |label: &str| if label == "app-wide/1d" { 2 } else { 1 };
    let upgraded = windows(&store).await;
    assert_eq!(
        ledger.len(),
        upgraded
            .iter()
            .map(|e| rows_per_window(&e.stream))
            .sum::<usize>()
    );
    // The adopted settled windows are the old ones.
    for old in old_windows
        .iter()
        .filter(|e| e.state == WindowState::Settled)
    {
        assert!(
            upgraded.iter().any(|e| e.stream == old.stream
                && e.window == old.window
                && e.points == old.points),
            "{old:?} kept"
        );
    }
    let coverage: BTreeMap<String, (Option<DateTime<Utc>>, Option<i64>)> = store
        .coverage(&[])
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.stream, (c.settled_through, c.missing_buckets)))
        .collect();
    for (stream, settled) in &coverage_before {
        let (now_settled, missing) = coverage[stream];
        assert!(
            now_settled >= *settled,
            "{stream}: {now_settled:?} < {settled:?}"
        );
        assert_eq!(missing, Some(0), "{stream}");
    }
    // The tables are exactly what the API serves.
    assert_eq!(
        values(&dump(&store).await),
        expected(&settings, &sim, now).await
    );

    // And the next run is an ordinary one: one call per stream at most.
    let before = sim.requests().len();
    let report = sync_at(&settings, &store, now + Duration::minutes(1)).await;
    assert_eq!(report.status, RunStatus::Ok);
    assert!(sim.requests().len() - before <= 3);
    store.close().await;
    sim.shutdown().await;
}

/// A copy of the SQLite fixture in a temp dir, and its URL.
pub fn sqlite_fixture() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    std::fs::copy(Path::new(FIXTURE).join("v1.db"), &path).unwrap();
    let url = format!("sqlite://{}", path.display());
    (dir, url)
}

/// A new PostgreSQL database loaded from the fixture's dump, or `None` as for `pg_empty_db`.
pub async fn postgres_fixture() -> Option<crate::helpers::PgDb> {
    let db = pg_empty_db().await?;
    let dump = std::fs::read_to_string(Path::new(FIXTURE).join("v1-postgres.sql")).unwrap();
    // The dump empties the search path for its session: a connection of its own.
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    sqlx::raw_sql(&dump).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    Some(db)
}

#[tokio::test]
async fn a_sqlite_database_of_the_previous_version_upgrades_in_place() {
    let (_dir, url) = sqlite_fixture();
    upgrades_in_place_without_fetching_again(&url).await;
}

#[tokio::test]
async fn a_postgres_database_of_the_previous_version_upgrades_in_place() {
    let Some(db) = postgres_fixture().await else {
        return;
    };
    upgrades_in_place_without_fetching_again(&db.url()).await;
}
