//! The binary as a user meets it: exit codes, messages, `--json` output, signals and the lock.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rtc_quality_sync::domain::RunStatus;
use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::Store;

use crate::pipeline::config_text;

const BIN: &str = env!("CARGO_BIN_EXE_rtc-quality-sync");

/// A command with no credentials or database URL inherited from the developer's shell.
fn cmd(dir: &Path) -> tokio::process::Command {
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

fn with_demo_keys(c: &mut tokio::process::Command) -> &mut tokio::process::Command {
    c.env("VOLC_ACCESSKEY", simulator::DEMO_ACCESS_KEY)
        .env("VOLC_SECRETKEY", simulator::DEMO_SECRET_KEY)
}

async fn run(c: &mut tokio::process::Command) -> (i32, String, String) {
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
fn setup(sim: &SimulatorHandle, rps: f64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&sim.endpoint(), rps, "")).unwrap();
    (dir, config)
}

async fn fast_simulator(latency_ms: u64) -> SimulatorHandle {
    simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        latency: Duration::from_millis(latency_ms),
        ..Default::default()
    })
    .await
    .unwrap()
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
    assert_eq!(sim.requests().len(), 1, "one small call");

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
    let ledger = store.ledger(None).await.unwrap();
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
    let (code, _, err) = run(with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--database-url", &url, "--config"])
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("another run holds the lock") && err.contains("pid"),
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
