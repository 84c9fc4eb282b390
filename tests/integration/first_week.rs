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
