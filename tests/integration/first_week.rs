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

/// `prune` on `url`: retired streams of this account go with their points; another account's, and
/// one stored before accounts were recorded (unless named), stay; a configured query's series never go.
async fn item_14_prune_removes_this_accounts_retired_streams_only(url: &str) {
    use crate::cli::{cmd, fast_simulator, run, with_demo_keys};
    let sim = fast_simulator(0).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let write = |apps: &[&str]| {
        let jobs: String = apps
            .iter()
            .map(|a| {
                format!(
                    "[[jobs]]\nname = \"{a}\"\napp_id = \"{a}\"\nindicators = [\"stall_rate\"]\n\
                     granularity = [\"1d\", \"5min\"]\n"
                )
            })
            .collect();
        std::fs::write(
            &config,
            format!(
                "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\n{jobs}",
                sim.endpoint()
            ),
        )
        .unwrap();
    };
    let sync = async || {
        run(with_demo_keys(&mut cmd(dir.path()))
            .args(["sync", "--quiet", "--database-url", url, "--config"])
            .arg(&config))
        .await
    };
    let prune = async |extra: &[&str], keys: bool| {
        let mut c = cmd(dir.path());
        if keys {
            with_demo_keys(&mut c);
        }
        run(c
            .args(["prune", "--database-url", url, "--config"])
            .arg(&config)
            .args(extra))
        .await
    };
    // Three apps synced, then two of them dropped from the configuration: four retired streams.
    write(&["app_a", "app_b", "app_c"]);
    assert_eq!(sync().await.0, 0);
    write(&["app_c"]);
    assert_eq!(sync().await.0, 0);
    let store = Store::connect(url).await.unwrap();
    let count = async |app: &str| {
        store
            .metrics(None)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.app_id == app)
            .count()
    };
    let (a, b, c) = (
        count("app_a").await,
        count("app_b").await,
        count("app_c").await,
    );
    assert!(a > 0 && b > 0 && c > 0);
    // app_b's 1d stream belongs to another account; its 5min one was stored before accounts were.
    let set = |account: &str, label: &str| {
        format!("UPDATE sync_streams SET account = {account} WHERE label = '{label}'")
    };
    for sql in [
        set("'0000000000000000'", "app_b/1d"),
        set("NULL", "app_b/5min"),
    ] {
        match &store {
            Store::Sqlite(s) => drop(sqlx::query(&sql).execute(s.pool()).await.unwrap()),
            Store::Postgres(s) => drop(sqlx::query(&sql).execute(s.pool()).await.unwrap()),
        }
    }

    // --dry-run lists what would go, with counts, and deletes nothing.
    let (code, out, err) = prune(&["--dry-run"], true).await;
    assert_eq!(code, 0, "{err}");
    let line = |label: &str| {
        out.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label}: {out}"))
            .to_string()
    };
    assert!(line("app_a/1d").ends_with("removed"), "{out}");
    assert!(line("app_b/1d").contains("another account"), "{out}");
    assert!(line("app_b/5min").contains("--stream"), "{out}");
    assert!(out.contains("would remove 2 retired streams"), "{out}");
    assert_eq!(count("app_a").await, a, "a dry run deletes nothing");

    // Without the account's key, nothing is removed.
    let (code, _, err) = prune(&[], false).await;
    assert_eq!(code, 1);
    assert!(err.contains("VOLC_ACCESSKEY"), "{err}");

    // For real: this account's retired streams and their points go; the rest stays.
    let (code, out, err) = prune(&[], true).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed 2 retired streams"), "{out}");
    assert_eq!(count("app_a").await, 0);
    assert_eq!(count("app_b").await, b);
    assert_eq!(count("app_c").await, c, "a configured query's series stay");
    let labels: Vec<String> = store
        .stream_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, label, _)| label)
        .collect();
    assert_eq!(labels, ["app_b/1d", "app_b/5min", "app_c/1d", "app_c/5min"]);
    // Named, the stream of unknown owner goes too; another account's never does.
    let (code, out, err) = prune(&["--stream", "app_b/5min"], true).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed 1 retired stream"), "{out}");
    let (code, out, _) = prune(&["--stream", "app_b/1d"], true).await;
    assert_eq!(code, 0);
    assert!(out.contains("removed 0 retired streams"), "{out}");
    assert!(count("app_b").await > 0);
    let (code, _, err) = prune(&["--stream", "app_c/1d"], true).await;
    assert_eq!(code, 64, "a configured stream is not retired: {err}");
    // The next sync fetches nothing that prune took from a configured stream.
    assert_eq!(sync().await.0, 0);
    assert_eq!(count("app_c").await, c);
    store.close().await;
    sim.shutdown().await;
}

mod item_14_prune {
    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        super::item_14_prune_removes_this_accounts_retired_streams_only(&url).await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(db) = crate::helpers::pg_empty_db().await else {
            return;
        };
        super::item_14_prune_removes_this_accounts_retired_streams_only(&db.url()).await;
    }
}

/// The metrics file as `name` → value, for unlabelled gauges, and `(name, stream)` → value.
fn scrape(path: &std::path::Path) -> std::collections::BTreeMap<(String, String), f64> {
    let text = std::fs::read_to_string(path).unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus text format")
        .samples
        .into_iter()
        .map(|s| {
            let prometheus_parse::Value::Gauge(v) = s.value else {
                panic!("{} is not a gauge", s.metric)
            };
            let stream = s.labels.get("stream").unwrap_or_default().to_string();
            (
                (
                    s.metric.trim_start_matches("rtc_quality_sync_").to_string(),
                    stream,
                ),
                v,
            )
        })
        .collect()
}

fn m(name: &str, stream: &str) -> (String, String) {
    (name.to_string(), stream.to_string())
}

#[tokio::test]
async fn item_03_a_run_that_fails_early_still_writes_the_metrics_file() {
    use crate::cli::{cmd, fast_simulator, run, setup, with_demo_keys};
    let sim = fast_simulator(0).await;
    let (dir, config) = setup(&sim, 50.0);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let prom = dir.path().join("rtc.prom");
    let sync = async |config: &std::path::Path, db: &str| {
        run(with_demo_keys(&mut cmd(dir.path()))
            .args(["sync", "--quiet", "--database-url", db, "--metrics-file"])
            .arg(&prom)
            .arg("--config")
            .arg(config))
        .await
    };
    let (code, _, err) = sync(&config, &db).await;
    assert_eq!(code, 0, "{err}");
    let good = scrape(&prom);
    assert_eq!(good[&m("last_run_exit_code", "")], 0.0);
    let success = good[&m("last_success_timestamp_seconds", "")];
    assert!(success > 0.0);

    // A configuration that cannot be read: exit 1, and the file says so; the last success, which
    // cannot be read now, is carried over.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[source\n").unwrap();
    let (code, _, err) = sync(&broken, &db).await;
    assert_eq!(code, 1, "{err}");
    let failed = scrape(&prom);
    assert_eq!(failed[&m("last_run_exit_code", "")], 1.0);
    assert_eq!(failed[&m("last_success_timestamp_seconds", "")], success);
    assert!(
        failed[&m("last_run_timestamp_seconds", "")] > good[&m("last_run_timestamp_seconds", "")]
    );
    assert_eq!(failed[&m("last_run_api_requests", "")], 0.0);

    // A database that cannot be opened: the same.
    let nowhere = format!("sqlite://{}", dir.path().join("no/such/dir/t.db").display());
    let (code, _, err) = sync(&config, &nowhere).await;
    assert_eq!(code, 1, "{err}");
    let failed = scrape(&prom);
    assert_eq!(failed[&m("last_run_exit_code", "")], 1.0);
    assert_eq!(failed[&m("last_success_timestamp_seconds", "")], success);

    // Another run holds the lock: exit 3, and the file is the holder's to write.
    let before = std::fs::read_to_string(&prom).unwrap();
    let store = Store::connect(&db).await.unwrap();
    let lock = store.try_lock("sync (the holder)").await.unwrap();
    let (code, _, err) = sync(&config, &db).await;
    assert_eq!(code, 3, "{err}");
    assert_eq!(std::fs::read_to_string(&prom).unwrap(), before);
    lock.release().await.unwrap();
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn item_04_status_the_metrics_and_sync_coverage_give_the_same_numbers() {
    use crate::cli::{cmd, fast_simulator, run, setup, with_demo_keys};
    let sim = fast_simulator(0).await;
    let (dir, config) = setup(&sim, 50.0);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
    let t0 = now();
    sim.set_data_now(t0);
    let (code, _, err) = run(with_demo_keys(&mut cmd(dir.path()))
        .args([
            "sync",
            "--quiet",
            "--database-url",
            &db,
            "--now",
            &at(t0),
            "--config",
        ])
        .arg(&config))
    .await;
    assert_eq!(code, 0, "{err}");
    // An hour later more buckets are available, and not fetched yet: what `status` shows, what
    // `sync_coverage` holds and what the metrics say are still the last run's numbers.
    let prom = dir.path().join("rtc.prom");
    let later = t0 + Duration::hours(1);
    let (code, out, err) = run(cmd(dir.path())
        .args([
            "status",
            "--json",
            "--database-url",
            &db,
            "--now",
            &at(later),
        ])
        .args(["--metrics-file"])
        .arg(&prom)
        .arg("--config")
        .arg(&config))
    .await;
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let metrics = scrape(&prom);
    let store = Store::connect(&db).await.unwrap();
    let coverage = store.coverage(&[]).await.unwrap();
    assert!(!coverage.is_empty());
    for c in &coverage {
        let shown = status["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stream"] == c.stream.as_str())
            .unwrap();
        assert_eq!(
            shown["missing_buckets"],
            c.missing_buckets.unwrap(),
            "{}",
            c.stream
        );
        assert_eq!(
            metrics[&m("stream_missing_buckets", &c.stream)],
            c.missing_buckets.unwrap() as f64,
            "{}",
            c.stream
        );
        assert_eq!(
            metrics[&m("stream_failed_windows", &c.stream)],
            c.failed_windows as f64
        );
        assert_eq!(metrics[&m("stream_points", &c.stream)], c.points as f64);
        assert_eq!(shown["points"], c.points);
    }
    // Staleness alone is judged at the current time.
    let five = coverage.iter().find(|c| c.stream == "app-a/5min").unwrap();
    assert_eq!(five.missing_buckets, Some(0));
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn item_06_back_to_back_runs_keep_the_pace_across_runs() {
    use crate::cli::{cmd, run, with_demo_keys};
    // The gateway's own limit, exactly: two calls in any second, whichever process sent them.
    let sim = rtc_quality_sync::simulator::spawn(rtc_quality_sync::simulator::SimulatorConfig {
        rate_limit_per_sec: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nendpoint = \"{}\"\nrequests_per_second = 2.0\nmax_retries = 0\n\n[[jobs]]\n\
             name = \"lobby\"\napp_id = \"app_a\"\nindicators = [\"stall_rate\"]\n",
            sim.endpoint()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let from = (rtc_quality_sync::clock::now() - Duration::days(12))
        .format("%Y-%m-%d")
        .to_string();
    let sync = async |extra: &[&str]| {
        run(with_demo_keys(&mut cmd(dir.path()))
            .args([
                "sync",
                "--json",
                "--quiet",
                "--database-url",
                &db,
                "--config",
            ])
            .arg(&config)
            .args(extra))
        .await
    };
    // A backfill, then at once a refetch, then at once another: each starts within a moment of the
    // previous one's last call.
    for extra in [
        &[][..],
        &["--refetch", "--from", &from][..],
        &["--refetch", "--from", &from][..],
    ] {
        let (code, out, err) = sync(extra).await;
        assert_eq!(code, 0, "{out}{err}");
        let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(summary["throttled"], 0, "{out}");
    }
    let requests = sim.requests();
    assert!(requests.len() >= 8, "{}", requests.len());
    assert!(
        requests.iter().all(|r| r.status == 200),
        "{:?}",
        requests
            .iter()
            .map(|r| (r.at, r.status))
            .collect::<Vec<_>>()
    );
    // And the arrivals never put three calls into one second.
    let at: Vec<_> = requests.iter().map(|r| r.at).collect();
    for w in at.windows(3) {
        assert!(w[2] - w[0] >= Duration::milliseconds(1000), "{w:?}");
    }
    sim.shutdown().await;
}
