//! The binary as a user meets it: exit codes, messages, `--json` output, signals and the lock.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rtc_quality_sync::domain::{RunStatus, WindowState};
use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::Store;
use sqlx::Connection;

use crate::pipeline::config_text;

const BIN: &str = env!("CARGO_BIN_EXE_rtc-quality-sync");

/// A command with no credentials or database URL inherited from the developer's shell.
pub(crate) fn cmd(dir: &Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    c.current_dir(dir)
        .env_remove("VOLC_ACCESSKEY")
        .env_remove("VOLC_SECRETKEY")
        .env_remove("VOLCENGINE_ACCESS_KEY")
        .env_remove("VOLCENGINE_SECRET_KEY")
        .env_remove("VOLCENGINE_SESSION_TOKEN")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    c
}

pub(crate) fn with_demo_keys(c: &mut tokio::process::Command) -> &mut tokio::process::Command {
    c.env("VOLC_ACCESSKEY", simulator::DEMO_ACCESS_KEY)
        .env("VOLC_SECRETKEY", simulator::DEMO_SECRET_KEY)
}

pub(crate) async fn run(c: &mut tokio::process::Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().await.expect("the binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A temp dir with `config.toml` pointing at `sim`, paced at `rps`.
pub fn setup(sim: &SimulatorHandle, rps: f64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&sim.endpoint(), rps, "")).unwrap();
    (dir, config)
}

pub async fn fast_simulator(latency_ms: u64) -> SimulatorHandle {
    simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        latency: Duration::from_millis(latency_ms),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A simulator that knows `app_a` only: the shared config's `room-b` job (app_b) fails.
async fn app_a_only_simulator() -> SimulatorHandle {
    simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        apps: vec!["app_a".into()],
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Windows per stream that `plan --json` says a run needs now (a 1d horizon is 28 or 29 days,
/// by the hour).
async fn planned_windows(
    dir: &Path,
    config: &Path,
    db: &str,
) -> std::collections::BTreeMap<String, u64> {
    let (code, out, err) = run(cmd(dir)
        .args(["plan", "--json", "--database-url", db, "--config"])
        .arg(config))
    .await;
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    plan["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let n = s["windows"].as_array().unwrap().len() as u64;
            (s["stream"].as_str().unwrap().to_string(), n)
        })
        .collect()
}

#[tokio::test]
async fn usage_errors_exit_64_and_help_teaches() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(cmd(dir.path()).arg("--no-such-flag")).await;
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = run(cmd(dir.path()).args(["sync", "--from", "last tuesday"])).await;
    assert_eq!(code, 64);
    assert!(err.contains("RFC 3339"), "{err}");
    let (code, out, _) = run(cmd(dir.path()).arg("--help")).await;
    assert_eq!(code, 0);
    for word in [
        "sync",
        "plan",
        "status",
        "check",
        "migrate",
        "simulate",
        "demo",
        "Exit codes",
    ] {
        assert!(out.contains(word), "--help lacks {word}: {out}");
    }
    let (code, out, _) = run(cmd(dir.path()).args(["sync", "--help"])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("--refetch") && out.contains("--dry-run"),
        "{out}"
    );
}

#[tokio::test]
async fn a_config_error_names_the_file_and_the_key_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[jobs]]\napp_id = \"a\"\nindicators = [\"stall_rate\"]\ngranularity = \"hourly\"\n",
    )
    .unwrap();
    let (code, _, err) = run(cmd(dir.path()).arg("plan").arg("--config").arg(&config)).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.toml") && err.contains("jobs[0].granularity") && err.contains("\"5min\""),
        "{err}"
    );
    // A missing file says how to get one.
    let (code, _, err) = run(cmd(dir.path()).args(["plan", "--config", "nope.toml"])).await;
    assert_eq!(code, 1);
    assert!(err.contains("nope.toml"), "{err}");
}

#[tokio::test]
async fn sync_without_credentials_says_what_to_set_and_exits_1() {
    let sim = fast_simulator(0).await;
    let (dir, config) = setup(&sim, 50.0);
    let (code, _, err) = run(cmd(dir.path()).arg("sync").arg("--config").arg(&config)).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("VOLC_ACCESSKEY") && err.contains("demo"),
        "{err}"
    );
    assert!(sim.requests().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn check_makes_one_real_call_and_names_what_is_wrong() {
    let sim = fast_simulator(0).await;
    let (dir, config) = setup(&sim, 50.0);
    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path()).arg("check").arg("--config").arg(&config),
    ))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok    api") && out.contains("RequestId"),
        "{out}"
    );
    assert_eq!(
        sim.requests().len(),
        2,
        "one small call per distinct app and product type"
    );

    let (code, out, _) = run(cmd(dir.path())
        .arg("check")
        .arg("--config")
        .arg(&config)
        .env("VOLC_ACCESSKEY", simulator::DEMO_ACCESS_KEY)
        .env("VOLC_SECRETKEY", "wrong-secret-value"))
    .await;
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  api") && out.contains("SignatureDoesNotMatch"),
        "{out}"
    );
    assert!(!out.contains("wrong-secret-value"));
    sim.shutdown().await;
}

#[tokio::test]
async fn plan_and_status_speak_json_and_sync_summarizes() {
    let sim = fast_simulator(0).await;
    let (dir, config) = setup(&sim, 50.0);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (code, out, err) = run(cmd(dir.path())
        .args(["plan", "--json", "--database-url", &db, "--config"])
        .arg(&config))
    .await;
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).expect("plan --json is JSON");
    let requests = plan["requests"].as_u64().unwrap();
    assert_eq!(plan["streams"].as_array().unwrap().len(), 4);
    assert!((16..=20).contains(&requests), "{requests}");
    assert!(sim.requests().is_empty(), "plan makes no call");
    assert!(
        !dir.path().join("t.db").exists(),
        "plan writes nothing, not even a new database"
    );
    let (code, out, _) = run(cmd(dir.path()).args(["status", "--database-url", &db])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("no database at") && out.contains("sync"),
        "{out}"
    );
    assert!(!dir.path().join("t.db").exists(), "status writes nothing");

    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--database-url", &db, "--config"])
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sim.requests().len() as u64,
        requests,
        "the call count equals the plan"
    );
    assert!(out.contains("run 1 ok"), "{out}");

    let (code, out, _) =
        run(cmd(dir.path()).args(["status", "--json", "--database-url", &db])).await;
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).expect("status --json is JSON");
    let streams = status["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 4);
    assert!(streams.iter().all(|s| s["points"].as_i64().unwrap() > 0));
    assert_eq!(status["last_run"]["status"], "ok");
    sim.shutdown().await;
}

#[tokio::test]
async fn sigterm_commits_what_finished_and_exits_130() {
    // Slow responses at a slow pace: the run is mid-way when the signal arrives.
    let sim = fast_simulator(300).await;
    let (dir, config) = setup(&sim, 4.0);
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let child = with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--database-url", &url, "--config"])
            .arg(&config),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");

    let store = Store::connect(&url).await.unwrap();
    let run = store.last_run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(
        run.windows_ok > 0,
        "windows that had arrived were committed: {run:?}"
    );
    let ledger = crate::helpers::windows(&store).await;
    let planned = 16;
    assert!(ledger.len() < planned, "the run stopped early");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_second_run_on_the_same_database_exits_3_naming_the_holder() {
    let sim = fast_simulator(300).await;
    let (dir, config) = setup(&sim, 4.0);
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut first = with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--database-url", &url, "--config"])
            .arg(&config),
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run is still going"
    );
    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--json", "--database-url", &url, "--config"])
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 3, "{err}");
    // `--json` still prints one object, with the exit code and why.
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(summary["exit_code"], 3, "{out}");
    assert_eq!(summary["status"], "failed");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("another run holds the lock"),
        "{out}"
    );
    assert!(
        err.contains("another run holds the lock") && err.contains("pid"),
        "{err}"
    );
    // The refused run ends with its `run finished` event too, for log-based alerts.
    assert!(
        err.lines()
            .any(|l| l.contains("run finished") && l.contains("exit_code=3")),
        "{err}"
    );
    let status = first.wait().await.unwrap();
    assert_eq!(status.code(), Some(0));
    sim.shutdown().await;
}

/// One small job: a sync of it holds the lock for about a second against `fast_simulator(200)`.
fn race_config(dir: &Path, sim: &SimulatorHandle) -> PathBuf {
    let config = dir.join("race.toml");
    let text = format!(
        "[source]\nendpoint = \"{}\"\nrequests_per_second = 8.0\nmax_in_flight = 2\n\n\
         [[jobs]]\nname = \"one\"\napp_id = \"app_a\"\nindicators = [\"stall_rate\"]\ngranularity = \"1d\"\n",
        sim.endpoint()
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// Starts `first`, then at once `second` (each `sync` or `migrate`) on `url`; their exit codes and stderr.
async fn start_pair(
    dir: &Path,
    config: &Path,
    url: &str,
    first: &str,
    second: &str,
) -> [(i32, String); 2] {
    let command = |name: &str| {
        let mut c = cmd(dir);
        with_demo_keys(&mut c)
            .args([name, "--quiet", "--database-url", url, "--config"])
            .arg(config);
        c
    };
    let (mut a, mut b) = (command(first), command(second));
    // `join!` polls in order, so `first` is spawned first and `second` right after it.
    let (a, b) = tokio::join!(a.output(), b.output());
    [a.unwrap(), b.unwrap()].map(|o| {
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    })
}

/// Issue 9: two writers started at the same instant on a fresh database. One runs; the other exits 3
/// with the lock message. Neither says "database is locked" or exits 1.
async fn two_writers_at_once_on_fresh_databases(fresh_url: impl AsyncFn(&Path) -> String) {
    let sim = fast_simulator(200).await;
    let pairs = [
        ("sync", "sync"),
        ("sync", "migrate"),
        ("migrate", "sync"),
        ("sync", "sync"),
    ];
    let mut refused = 0;
    for i in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let config = race_config(dir.path(), &sim);
        let url = fresh_url(dir.path()).await;
        let (first, second) = pairs[i % pairs.len()];
        let results = start_pair(dir.path(), &config, &url, first, second).await;
        let said = format!("#{i} {first} then {second}: {results:?}");
        for (code, err) in &results {
            assert!(!err.to_lowercase().contains("database is locked"), "{said}");
            assert!(*code == 0 || *code == 3, "{said}");
            if *code == 3 {
                assert!(err.contains("another run holds the lock"), "{said}");
                refused += 1;
            }
        }
        let codes = results.map(|(c, _)| c);
        if first == "sync" && second == "sync" {
            // A sync holds the lock far longer than a process takes to start.
            assert!(codes.contains(&0) && codes.contains(&3), "{said}");
        } else {
            // A migrate holds it for milliseconds: the sync may start after it and run too.
            assert!(codes.contains(&0), "{said}");
        }
        // The winner left a complete schema behind: a status read works and saw its run.
        let (code, out, err) =
            run(cmd(dir.path()).args(["status", "--json", "--database-url", &url])).await;
        assert_eq!(code, 0, "{said}: status: {err}");
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(status.is_object(), "{said}: {out}");
    }
    assert!(refused >= 10, "only {refused} of 20 pairs met the lock");
    sim.shutdown().await;
}

#[tokio::test]
async fn two_writers_at_once_on_a_fresh_sqlite_file_one_runs_one_exits_3() {
    two_writers_at_once_on_fresh_databases(async |dir: &Path| {
        format!("sqlite://{}", dir.join("fresh.db").display())
    })
    .await;
}

#[tokio::test]
async fn two_writers_at_once_on_a_fresh_postgres_database_one_runs_one_exits_3() {
    // The databases live until the test ends (dropping one drops the database).
    let dbs = std::sync::Mutex::new(Vec::new());
    if crate::helpers::pg_empty_db().await.is_none() {
        return;
    }
    two_writers_at_once_on_fresh_databases(async |_: &Path| {
        let db = crate::helpers::pg_empty_db().await.unwrap();
        let url = db.url();
        dbs.lock().unwrap().push(db);
        url
    })
    .await;
}

/// Issue 12: after `sync` ends, the `.db` file alone is complete: a copy of it without its `-wal` and
/// `-shm` files holds every row, also while another program (a BI tool, `status`) has the file open,
/// which keeps SQLite from checkpointing by itself when the run's last connection closes.
#[tokio::test]
async fn the_sqlite_file_alone_holds_every_row_after_a_run() {
    let sim = fast_simulator(0).await;
    let (dir, config) = setup(&sim, 50.0);
    let db = dir.path().join("t.db");
    let url = format!("sqlite://{}", db.display());
    let (code, _, err) = run(cmd(dir.path()).args(["migrate", "--database-url", &url])).await;
    assert_eq!(code, 0, "{err}");
    let mut reader = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (code, _, err) = run(with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--quiet", "--database-url", &url, "--config"])
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 0, "{err}");

    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    const COUNT: &str =
        "SELECT (SELECT count(*) FROM quality_metrics), (SELECT count(*) FROM sync_coverage)";
    let stored: (i64, i64) = sqlx::query_as(COUNT).fetch_one(&mut reader).await.unwrap();
    let mut copied = sqlx::SqliteConnection::connect(&format!("sqlite://{}", copy.display()))
        .await
        .unwrap();
    let in_copy: (i64, i64) = sqlx::query_as(COUNT).fetch_one(&mut copied).await.unwrap();
    assert!(stored.0 > 1000, "the run stored points: {stored:?}");
    assert_eq!(in_copy, stored, "the copy of the .db file alone");
    sim.shutdown().await;
}

/// Issue 12: `sync --json` prints one JSON object that says how the run ended, its counts agree
/// with the calls the API saw and the rows stored, and the JSON log ends with `run finished`.
#[tokio::test]
async fn sync_json_and_the_run_finished_event_say_how_a_partial_run_ended() {
    // `app_b` is unknown to this simulator: its job fails, `app_a`'s is committed.
    let sim = app_a_only_simulator().await;
    let (dir, config) = setup(&sim, 50.0);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    // How many windows each stream needs depends on the hour (a 1d horizon of 28 or 29 days).
    let planned = planned_windows(dir.path(), &config, &db).await;
    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path())
            .args([
                "sync",
                "--json",
                "--log-format",
                "json",
                "--database-url",
                &db,
            ])
            .arg("--config")
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 2, "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(out.trim()).expect("stdout is one JSON object");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert_eq!(summary["status"], "partial");
    assert_eq!(summary["exit_code"], 2);
    assert_eq!(summary["run_id"], 1);
    assert_eq!(
        summary["calls"].as_u64().unwrap(),
        sim.requests().len() as u64
    );
    assert!(summary["duration_s"].as_f64().unwrap() > 0.0);
    assert!(summary["started_at"].as_str().unwrap().ends_with('Z'));

    let store = Store::connect(&db).await.unwrap();
    let ledger = crate::helpers::windows(&store).await;
    let points = store.metrics(None).await.unwrap();
    let streams = summary["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 4, "{summary}");
    let mut calls = 0;
    for s in streams {
        let name = s["stream"].as_str().unwrap();
        let of_stream = || ledger.iter().filter(|e| &*e.stream == name);
        // A window is committed as up to two ledger rows (settled and provisional parts).
        let stored: i64 = of_stream().map(|e| e.points).sum();
        let failed = of_stream()
            .filter(|e| e.state == WindowState::Failed)
            .count() as u64;
        assert_eq!(s["points_inserted"].as_i64().unwrap(), stored, "{s}");
        assert_eq!(s["windows_failed"].as_u64().unwrap(), failed, "{s}");
        if name.starts_with("room-b") {
            assert_eq!(s["windows_ok"], 0, "{s}");
            assert!(failed > 0, "{s}");
        } else {
            assert_eq!(s["windows_ok"].as_u64().unwrap(), planned[name], "{s}");
            assert_eq!(failed, 0, "{s}");
        }
        calls += s["calls"].as_u64().unwrap();
    }
    let inserted: u64 = streams
        .iter()
        .map(|s| s["points_inserted"].as_u64().unwrap())
        .sum();
    assert_eq!(inserted, points.len() as u64);
    assert_eq!(calls, summary["calls"].as_u64().unwrap());
    store.close().await;

    // The JSON log's last event: `run finished`, with the status, the exit code and the counts.
    let last: serde_json::Value =
        serde_json::from_str(err.trim().lines().last().unwrap()).expect("a JSON log line");
    assert_eq!(last["message"], "run finished", "{err}");
    assert_eq!(last["status"], "partial");
    assert_eq!(last["exit_code"], 2);
    assert_eq!(last["points_inserted"].as_u64().unwrap(), inserted);
    sim.shutdown().await;
}

/// Issue 12: `status --check` says whether every configured stream is complete, for alerting.
async fn status_check_tells_an_operator_what_is_wrong(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let check = async |extra: &[&str]| {
        run(cmd(dir.path())
            .args(["status", "--check", "--database-url", url, "--config"])
            .arg(&config)
            .args(extra))
        .await
    };
    // `app_b` is unknown to the first simulator: its job's windows fail.
    let partial = app_a_only_simulator().await;
    std::fs::write(&config, config_text(&partial.endpoint(), 50.0, "")).unwrap();

    if url.starts_with("sqlite:") {
        // No database file yet: the health check says so (exit 1) and creates nothing (19.2).
        let (code, out, err) = check(&[]).await;
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains("no database at") && err.contains("run `sync` first"),
            "{err}"
        );
        let file = Path::new(url.trim_start_matches("sqlite://"));
        assert!(!file.exists());
        // Plain status says it is absent, lists every stream as never synced, and exits 0.
        let (code, out, err) = run(cmd(dir.path())
            .args(["status", "--json", "--database-url", url, "--config"])
            .arg(&config))
        .await;
        assert_eq!(code, 0, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).expect("always JSON");
        assert_eq!(json["database"], "absent", "{out}");
        assert_eq!(json["never_synced"].as_array().unwrap().len(), 4, "{out}");
        assert!(!file.exists());
    } else {
        // Before the first sync: every configured stream was never synced; --json is JSON even so.
        let (code, out, err) = check(&[]).await;
        assert_eq!(code, 2, "{out}{err}");
        assert_eq!(out.matches("never synced").count(), 4, "{out}");
        let (code, out, _) = check(&["--json"]).await;
        assert_eq!(code, 2);
        let json: serde_json::Value = serde_json::from_str(&out).expect("always JSON");
        assert_eq!(json["never_synced"].as_array().unwrap().len(), 4, "{out}");
        assert_eq!(json["database"], "present", "{out}");
    }

    let sync = async || {
        run(with_demo_keys(
            cmd(dir.path())
                .args(["sync", "--quiet", "--database-url", url, "--config"])
                .arg(&config),
        ))
        .await
    };
    assert_eq!(sync().await.0, 2);
    let (code, out, _) = check(&[]).await;
    assert_eq!(code, 2, "{out}");
    let room_b: Vec<&str> = out.lines().filter(|l| l.starts_with("room-b/")).collect();
    assert!(
        room_b.iter().any(|l| l.contains("failed window"))
            && room_b.iter().any(|l| l.contains("stale")),
        "{out}"
    );
    assert!(!out.contains("app-a/"), "app-a is complete: {out}");
    assert!(
        out.contains("the next `rtc-quality-sync sync` retries them"),
        "{out}"
    );
    partial.shutdown().await;

    // A run that can reach every app heals it.
    let full = fast_simulator(0).await;
    std::fs::write(&config, config_text(&full.endpoint(), 50.0, "")).unwrap();
    assert_eq!(sync().await.0, 0);
    let (code, out, err) = check(&[]).await;
    assert_eq!(
        (code, out.trim()),
        (0, "ok: every configured stream is healthy"),
        "{err}"
    );

    // A window lost from the middle of the ledger is a hole.
    let store = Store::connect(url).await.unwrap();
    let ledger: Vec<_> = crate::helpers::windows(&store)
        .await
        .into_iter()
        .filter(|e| &*e.stream == "app-a/1d")
        .collect();
    let lost = &ledger[1];
    let delete = "DELETE FROM sync_ledger WHERE stream IN \
         (SELECT stream FROM sync_streams WHERE label = 'app-a/1d') AND window_start = ";
    let deleted = match &store {
        Store::Sqlite(s) => sqlx::query(&format!("{delete}?"))
            .bind(lost.window.start.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .execute(s.pool())
            .await
            .unwrap()
            .rows_affected(),
        Store::Postgres(s) => sqlx::query(&format!("{delete}$1"))
            .bind(lost.window.start)
            .execute(s.pool())
            .await
            .unwrap()
            .rows_affected(),
    };
    assert_eq!(deleted, 2, "one row per indicator: {lost:?}");
    assert_eq!(
        crate::helpers::windows(&store)
            .await
            .iter()
            .filter(|e| &*e.stream == "app-a/1d")
            .count(),
        ledger.len() - 1
    );
    store.close().await;
    let (code, out, _) = check(&[]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("app-a/1d: 1 hole(s)"), "{out}");
    assert!(out.contains(&lost.window.to_string()), "{out}");
    assert_eq!(sync().await.0, 0, "the next sync fetches the hole");
    assert_eq!(check(&[]).await.0, 0);

    // Three days without a sync: stale past the default 36h, not past 4 days.
    let later = (rtc_quality_sync::clock::now() + chrono::Duration::days(3)).to_rfc3339();
    let (code, out, _) = check(&["--now", &later]).await;
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(": stale: covered until"))
            .count(),
        4,
        "{out}"
    );
    assert_eq!(check(&["--now", &later, "--max-age", "4d"]).await.0, 0);

    // A configuration that cannot be read: exit 1.
    std::fs::write(&config, "[source]\nendpoint = 5\n").unwrap();
    let (code, _, err) = check(&[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("config.toml"), "{err}");
    full.shutdown().await;
}

#[tokio::test]
async fn status_check_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    status_check_tells_an_operator_what_is_wrong(&format!(
        "sqlite://{}",
        dir.path().join("t.db").display()
    ))
    .await;
}

#[tokio::test]
async fn status_check_on_postgres() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    status_check_tells_an_operator_what_is_wrong(&db.url()).await;
}

/// `--metrics-file` parsed by a Prometheus text-format parser: metric name and `stream` label to value.
fn read_metrics(path: &Path) -> std::collections::BTreeMap<(String, String), f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("the Prometheus text format");
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let prometheus_parse::Value::Gauge(v) = s.value else {
                panic!("{} is not a gauge", s.metric)
            };
            let stream = s.labels.get("stream").unwrap_or_default().to_string();
            ((s.metric, stream), v)
        })
        .collect()
}

/// Issue 12: `sync --metrics-file` and `status --metrics-file` write PRODUCT.md's metrics.
#[tokio::test]
async fn metrics_files_say_how_the_last_run_ended_and_how_complete_each_stream_is() {
    let partial = app_a_only_simulator().await;
    let (dir, config) = setup(&partial, 50.0);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let prom = dir.path().join("textfile").join("rtc.prom");
    std::fs::create_dir(prom.parent().unwrap()).unwrap();
    let sync = async |config: &Path| {
        run(with_demo_keys(
            cmd(dir.path())
                .args(["sync", "--quiet", "--database-url", &db, "--metrics-file"])
                .arg(&prom)
                .arg("--config")
                .arg(config),
        ))
        .await
    };
    let m = |name: &str, stream: &str| (format!("rtc_quality_sync_{name}"), stream.to_string());

    let (code, _, err) = sync(&config).await;
    assert_eq!(code, 2, "{err}");
    let metrics = read_metrics(&prom);
    assert_eq!(metrics[&m("last_run_exit_code", "")], 2.0);
    assert_eq!(metrics[&m("last_success_timestamp_seconds", "")], 0.0);
    assert_eq!(
        metrics[&m("last_run_api_requests", "")],
        partial.requests().len() as f64
    );
    assert!(metrics[&m("last_run_duration_seconds", "")] > 0.0);
    let store = Store::connect(&db).await.unwrap();
    let last = store.last_run().await.unwrap().unwrap();
    assert_eq!(
        metrics[&m("last_run_timestamp_seconds", "")],
        last.started_at.timestamp_millis() as f64 / 1000.0
    );
    let points = store.metrics(None).await.unwrap();
    for stream in ["app-a/1d", "app-a/5min", "room-b/1d", "room-b/5min"] {
        let (failed, missing, stored) = (
            metrics[&m("stream_failed_windows", stream)],
            metrics[&m("stream_missing_buckets", stream)],
            metrics[&m("stream_points", stream)],
        );
        if stream.starts_with("room-b") {
            assert!(failed > 0.0 && missing > 0.0 && stored == 0.0, "{stream}");
            assert_eq!(
                metrics[&m("stream_complete_through_timestamp_seconds", stream)],
                0.0
            );
        } else {
            assert_eq!((failed, missing), (0.0, 0.0), "{stream}");
            let granularity = stream.split('/').nth(1).unwrap();
            let expected = points
                .iter()
                .filter(|p| p.app_id == "app_a" && p.granularity == granularity)
                .count();
            assert_eq!(stored, expected as f64, "{stream}");
            assert!(metrics[&m("stream_complete_through_timestamp_seconds", stream)] > 0.0);
        }
    }
    partial.shutdown().await;

    // A run that reaches every app: status writes the metrics of the healed database.
    let full = fast_simulator(0).await;
    std::fs::write(&config, config_text(&full.endpoint(), 50.0, "")).unwrap();
    assert_eq!(sync(&config).await.0, 0);
    std::fs::remove_file(&prom).unwrap();
    let (code, _, err) = run(cmd(dir.path())
        .args(["status", "--database-url", &db, "--metrics-file"])
        .arg(&prom)
        .arg("--config")
        .arg(&config))
    .await;
    assert_eq!(code, 0, "{err}");
    let metrics = read_metrics(&prom);
    let last = store.last_run().await.unwrap().unwrap();
    assert_eq!(metrics[&m("last_run_exit_code", "")], 0.0);
    assert_eq!(
        metrics[&m("last_success_timestamp_seconds", "")],
        last.started_at.timestamp_millis() as f64 / 1000.0
    );
    for stream in ["app-a/1d", "app-a/5min", "room-b/1d", "room-b/5min"] {
        assert_eq!(
            metrics[&m("stream_failed_windows", stream)],
            0.0,
            "{stream}"
        );
        assert_eq!(
            metrics[&m("stream_missing_buckets", stream)],
            0.0,
            "{stream}"
        );
        assert!(metrics[&m("stream_points", stream)] > 0.0, "{stream}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["rtc.prom"], "no temporary file is left behind");
    store.close().await;
    full.shutdown().await;
}

/// Issue 12: `demo` writes only into `./demo.db` (or its own `--database-url`), never into the
/// database an exported DATABASE_URL names, and `--streams N` backfills N streams.
#[tokio::test]
async fn demo_never_writes_into_the_database_url_of_the_environment() {
    let Some(prod) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(cmd(dir.path()).env("DATABASE_URL", prod.url()).args([
        "demo",
        "--quiet",
        "--streams",
        "3",
    ]))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let mut conn = sqlx::PgConnection::connect(&prod.url()).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables, 0,
        "the exported DATABASE_URL's database stays empty"
    );
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("demo.db").display()
    ))
    .await
    .unwrap();
    let (rooms, streams): (std::collections::BTreeSet<String>, _) = crate::helpers::windows(&store)
        .await
        .into_iter()
        .map(|e| e.stream.to_string())
        .partition(|s| s.starts_with("demo-rooms/"));
    assert_eq!(
        streams.into_iter().collect::<Vec<_>>(),
        [
            "demo-app-0/1d",
            "demo-app-0/5min",
            "demo-app-1/1d",
            "demo-where/stall_rate/Province"
        ],
        "--streams 3 is three ListQuality streams, and the demo's distribution stream"
    );
    // Beside them, the demo's `[[rooms]]` block: its listing and some of its rooms' daily streams.
    assert!(rooms.contains("demo-rooms/rooms"), "{rooms:?}");
    assert!(
        rooms
            .iter()
            .any(|r| r.ends_with("/1d") && r != "demo-rooms/rooms"),
        "{rooms:?}"
    );
    store.close().await;
}

/// Issue 12: a missing config names the absolute path it tried and suggests `init`; `init` writes the
/// commented default, which `plan` accepts, and never overwrites a file.
#[tokio::test]
async fn init_writes_a_config_and_the_missing_config_error_points_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let wanted = dir.path().join("config").join("default.toml");
    let (code, _, err) = run(cmd(dir.path()).arg("plan")).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&wanted.display().to_string()),
        "the absolute path: {err}"
    );
    assert!(
        err.contains("rtc-quality-sync init config/default.toml"),
        "{err}"
    );
    assert_eq!(
        err.matches("os error 2").count(),
        1,
        "the OS error once: {err}"
    );

    let (code, out, err) = run(cmd(dir.path()).arg("init")).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("check"), "{out}");
    let written = std::fs::read_to_string(&wanted).unwrap();
    assert_eq!(written, rtc_quality_sync::app::DEFAULT_CONFIG);
    // The default config plans once its placeholder app id is replaced (issue 19 item 7).
    let (code, _, err) = run(cmd(dir.path()).args(["plan", "--json"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("jobs[0].app_id"), "{err}");
    std::fs::write(&wanted, written.replace("\"Your_AppId\"", "\"my_app\"")).unwrap();
    let (code, out, err) = run(cmd(dir.path()).args(["plan", "--json"])).await;
    assert_eq!(code, 0, "the default config plans: {err}");
    assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());

    std::fs::write(&wanted, "# edited by hand\n").unwrap();
    let (code, _, err) = run(cmd(dir.path()).arg("init")).await;
    assert_eq!(code, 1);
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&wanted).unwrap(),
        "# edited by hand\n"
    );

    let elsewhere = dir.path().join("etc").join("rqs.toml");
    let (code, _, err) = run(cmd(dir.path()).arg("init").arg(&elsewhere)).await;
    assert_eq!(code, 0, "{err}");
    assert!(elsewhere.exists());
}

/// Issue 12: a database password is never printed, in any form of URL, on success or on error.
#[tokio::test]
async fn database_passwords_are_never_printed() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    const SECRET: &str = "S3cretPw9";
    let dir = tempfile::tempdir().unwrap();
    let mut with_userinfo = url::Url::parse(&db.url()).unwrap();
    with_userinfo.set_password(Some(SECRET)).unwrap();
    let mut in_query = url::Url::parse(&db.url()).unwrap();
    in_query.query_pairs_mut().append_pair("password", SECRET);
    let unreachable = |u: &url::Url| {
        let mut u = u.clone();
        u.set_port(Some(1)).unwrap();
        u.to_string()
    };
    let key_values = format!("host=127.0.0.1 user=postgres password={SECRET} dbname=x");
    let quoted = format!("host=127.0.0.1 password = '{SECRET}' dbname=x");
    let cases = [
        (with_userinfo.to_string(), 0),
        (in_query.to_string(), 0),
        (unreachable(&with_userinfo), 1),
        (unreachable(&in_query), 1),
        (key_values, 1),
        (quoted, 1),
    ];
    for (url, want) in cases {
        // The password reaches the server: trust authentication accepts it, so migrate succeeds.
        let (code, out, err) = run(cmd(dir.path()).args(["migrate", "--database-url", &url])).await;
        assert_eq!(code, want, "{url}: {out}{err}");
        assert!(
            !out.contains(SECRET) && !err.contains(SECRET),
            "{url}: {out}{err}"
        );
        assert!(
            out.contains("***") || err.contains("***"),
            "{url}: {out}{err}"
        );
        let (_, out, err) =
            run(cmd(dir.path()).args(["status", "--json", "--database-url", &url])).await;
        assert!(
            !out.contains(SECRET) && !err.contains(SECRET),
            "{url}: {out}{err}"
        );
    }
}

/// Issue 12: an endpoint that cannot be reached stops the run with one message and exit 1, not a
/// warning per attempt and a "partial" exit 2.
#[tokio::test]
async fn an_unreachable_endpoint_exits_1_with_one_message() {
    // A port that refuses connections: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        config_text(&format!("http://127.0.0.1:{port}"), 50.0, "")
            .replace("max_retries = 8", "max_retries = 2"),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--json", "--database-url", &db, "--config"])
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["status"], "failed");
    // The verdict is said once; every retry before it is a WARN of its own (issue 19 item 5), so
    // the run does not look idle while it tries.
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("ERROR") && l.contains("cannot reach the api"))
            .count(),
        1,
        "said once: {err}"
    );
    let retries = err
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("call failed (attempt "))
        .count() as u64;
    assert_eq!(retries, summary["retries"].as_u64().unwrap(), "{err}");
    assert!(retries > 0, "{err}");
    assert!(
        err.lines()
            .filter(|l| l.contains("WARN"))
            .all(|l| l.contains("call failed (attempt ") || l.contains("requests_per_second")),
        "no other warning per attempt: {err}"
    );
    let store = Store::connect(&db).await.unwrap();
    let ledger = crate::helpers::windows(&store).await;
    assert!(
        !ledger.is_empty() && ledger.len() <= 4,
        "only the windows in flight failed (max_in_flight = 4), each once: {ledger:?}"
    );
    assert!(
        ledger
            .iter()
            .all(|e| e.state == WindowState::Failed && e.attempts == 3)
    );
    store.close().await;
}

/// Issue 12: `check` probes every distinct app and product type once, reports per job, and refuses
/// the placeholder app id without calling.
#[tokio::test]
async fn check_probes_each_app_once_and_reports_per_job() {
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        apps: vec!["app_a".into(), "app_b".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let extra = r#"
[[jobs]]
name = "room-c"
app_id = "app_a"
room_id = "room-9"
indicators = ["stall_rate"]
granularity = "1d"

[[jobs]]
name = "typo"
app_id = "app_x"
indicators = ["stall_rate"]
granularity = "1d"

[[jobs]]
name = "fresh"
app_id = "Your_AppId"
indicators = ["stall_rate"]
granularity = "1d"
"#;
    std::fs::write(&config, config_text(&sim.endpoint(), 50.0, extra)).unwrap();
    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path()).arg("check").arg("--config").arg(&config),
    ))
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let line = |job: &str| {
        out.lines()
            .find(|l| l.contains(&format!("api job {job} ")))
            .unwrap_or_else(|| panic!("no line for job {job}: {out}"))
    };
    assert!(line("app-a").starts_with("ok "), "{out}");
    assert!(line("room-b").starts_with("ok "), "{out}");
    assert!(
        line("room-c").starts_with("ok ")
            && line("room-c").contains("same app and product type as job app-a"),
        "{out}"
    );
    assert!(
        line("typo").starts_with("FAIL") && line("typo").contains("NotExistAppId"),
        "{out}"
    );
    assert!(
        line("fresh").starts_with("FAIL") && line("fresh").contains("placeholder"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("FAIL  config: ")
            && l.contains("config.toml: jobs[4].app_id = \"Your_AppId\"")),
        "the placeholder is a configuration error too: {out}"
    );
    let mut apps: Vec<String> = sim
        .requests()
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            body["AppId"].as_str().unwrap().to_string()
        })
        .collect();
    apps.sort();
    assert_eq!(
        apps,
        ["app_a", "app_b", "app_x"],
        "one call per distinct app and product type"
    );
    sim.shutdown().await;
}

/// Issue 12: `--job` takes a job's name or a stream's name as `status` shows it.
#[tokio::test]
async fn job_takes_job_and_stream_names() {
    let sim = fast_simulator(0).await;
    let (dir, config) = setup(&sim, 50.0);
    let streams = async |names: &[&str]| -> Vec<String> {
        let mut c = cmd(dir.path());
        c.args(["plan", "--json", "--config"]).arg(&config);
        for n in names {
            c.args(["--job", n]);
        }
        let (code, out, err) = run(&mut c).await;
        assert_eq!(code, 0, "{names:?}: {err}");
        let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
        plan["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stream"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(streams(&["app-a/1d"]).await, ["app-a/1d"]);
    assert_eq!(streams(&["app-a"]).await, ["app-a/1d", "app-a/5min"]);
    assert_eq!(
        streams(&["app-a/5min", "room-b"]).await,
        ["app-a/5min", "room-b/1d", "room-b/5min"]
    );
    let (code, _, err) = run(cmd(dir.path())
        .args(["plan", "--job", "app-a/1h", "--config"])
        .arg(&config))
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("app-a/1h") && err.contains("app-a/5min"),
        "{err}"
    );
    sim.shutdown().await;
}

/// Issue 12: `--from`/`--to` dates (in the configured offset) are echoed as typed.
#[tokio::test]
async fn from_and_to_are_echoed_as_typed() {
    let sim = fast_simulator(0).await;
    let (dir, config) = setup(&sim, 50.0);
    let plan = async |from: &str, to: &str| {
        run(cmd(dir.path())
            .args(["plan", "--from", from, "--to", to, "--config"])
            .arg(&config))
        .await
    };
    let (code, _, err) = plan("2026-11-21", "2026-11-20").await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--from 2026-11-21 is not before --to 2026-11-20"),
        "{err}"
    );
    let (code, _, err) = plan("2020-01-01", "2020-01-05").await;
    assert_eq!(code, 1);
    assert!(
        err.contains("the range 2020-01-01 .. 2020-01-05 lies outside"),
        "{err}"
    );
    let (code, _, err) = plan("2020-01-01T00:00:00+08:00", "2020-01-05").await;
    assert_eq!(code, 1);
    assert!(
        err.contains("the range 2019-12-31T16:00:00Z .. 2020-01-05 lies outside"),
        "{err}"
    );
    sim.shutdown().await;
}

/// Issue 12: the summary counts the windows a stopped job never attempted, and says the call rate.
#[tokio::test]
async fn the_summary_counts_windows_not_attempted() {
    let sim = app_a_only_simulator().await;
    let (dir, config) = setup(&sim, 50.0);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    // room-b's windows: 9 or 10, depending on the hour (a 1d horizon of 28 or 29 days).
    let room_b: u64 = planned_windows(dir.path(), &config, &db)
        .await
        .iter()
        .filter(|(stream, _)| stream.starts_with("room-b/"))
        .map(|(_, n)| n)
        .sum();
    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--quiet", "--database-url", &db, "--config"])
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 2, "{err}");
    let store = Store::connect(&db).await.unwrap();
    let failed = crate::helpers::windows(&store)
        .await
        .iter()
        .filter(|e| e.state == WindowState::Failed)
        .count();
    store.close().await;
    // Those of room-b's windows that did not fail were never attempted.
    let line = out
        .lines()
        .find(|l| l.starts_with("run 1 partial"))
        .unwrap();
    assert!(
        line.contains(&format!(
            "{failed} failed, {} not attempted",
            room_b - failed as u64
        )),
        "{line}"
    );
    assert!(line.contains("/s,") && !line.contains("queued"), "{line}");
    sim.shutdown().await;
}

/// Issue 12: each command's `--help` lists only options it uses.
#[tokio::test]
async fn simulate_help_shows_only_its_own_options() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(cmd(dir.path()).args(["simulate", "--help"])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("--listen") && out.contains("--faults"),
        "{out}"
    );
    assert!(
        !out.contains("--config") && !out.contains("--database-url"),
        "{out}"
    );
    let (code, out, _) = run(cmd(dir.path()).args(["sync", "--help"])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("--config") && out.contains("--database-url"),
        "{out}"
    );
}

/// `sync --json` prints one JSON object also when the run cannot start.
#[tokio::test]
async fn sync_json_says_why_a_run_could_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(with_demo_keys(cmd(dir.path()).args([
        "sync",
        "--json",
        "--config",
        "missing.toml",
    ])))
    .await;
    assert_eq!(code, 1, "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["exit_code"], 1);
    assert!(
        summary["error"].as_str().unwrap().contains("missing.toml"),
        "{out}"
    );
    assert_eq!(summary["streams"].as_array().unwrap().len(), 0);
}

/// Issue 19 item 5: retries were logged at DEBUG, so a run that retried for a minute printed
/// nothing. Every retry is a WARN line with the action, the window (app and start), the attempt,
/// the reason (label and message) and the wait; the progress line counts them.
#[tokio::test]
async fn item_19_05_every_retry_is_a_warn_line_and_the_progress_line_counts_it() {
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        faults: simulator::Faults::parse("500=0.25,429=0.1").unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (dir, config) = setup(&sim, 50.0);
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path())
            .args([
                "sync",
                "--json",
                "--log-format",
                "json",
                "--database-url",
                &db,
            ])
            .arg("--config")
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("a JSON log line: {l:?}")))
        .collect();
    let warns: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" && l["action"].is_string())
        .collect();
    let retries = summary["retries"].as_u64().unwrap();
    assert!(retries > 0, "the faults made no retry: {summary}");
    assert_eq!(warns.len() as u64, retries, "one WARN per retry: {err}");
    for w in &warns {
        assert_eq!(w["action"], "ListQuality", "{w}");
        assert!(
            matches!(w["app_id"].as_str(), Some("app_a" | "app_b")),
            "{w}"
        );
        let start = w["window.start"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(start).is_ok() && start.ends_with('Z'),
            "{w}"
        );
        let attempt = w["attempt"].as_u64().unwrap();
        assert!((1..=8).contains(&attempt), "{w}");
        let reason = w["reason"].as_str().unwrap();
        assert!(
            matches!(reason, "InternalError" | "FlowLimitExceeded"),
            "{w}"
        );
        assert!(w["wait_ms"].as_u64().is_some(), "{w}");
        let message = w["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "ListQuality call failed (attempt {attempt} of 9); retrying in "
            )),
            "{message}"
        );
        assert!(
            message.contains("(injected fault)"),
            "the reason's message: {message}"
        );
    }
    // The progress line counts the same retries.
    let last_progress = lines
        .iter()
        .rev()
        .find(|l| l["message"] == "progress")
        .expect("a progress line");
    assert_eq!(last_progress["retries"].as_u64(), Some(retries), "{err}");
    sim.shutdown().await;
}
