//! Issue 11: how a run ends when it is killed, loses its PostgreSQL lock, or loses its database.
//!
//! A killed run is marked `abandoned` by the next; a lost lock is taken again or stops the run with
//! exit 3; a database that fails mid-run ends it with exit 2 and the normal summary; a signal ends
//! it within 5 s even when the database does not answer. The shared PostgreSQL server is never
//! stopped: a restart is a `pg_terminate_backend` of the tool's sessions on its own test database,
//! an outage `ALLOW_CONNECTIONS false` on it, or a proxy in front of the server that stops answering.

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rtc_quality_sync::domain::RunStatus;
use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::Store;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::pipeline::{config_text, dump};

const BIN: &str = env!("CARGO_BIN_EXE_rtc-quality-sync");

/// The sync lock's key (`SYNC_LOCK_KEY` in `store/postgres.rs`), for a test that takes it itself.
const SYNC_LOCK_KEY: i64 = 0x7274_6373_796e_6331;

/// A fixed `now`, so that a reference run and the run under test store the same data.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T05:41:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

/// A simulator slow enough that a run lasts a few seconds (about 18 windows at 4 calls/s).
async fn slow_simulator() -> SimulatorHandle {
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 20,
        latency: Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .unwrap();
    sim.set_data_now(now());
    sim
}

/// `sync --json --log-format json` of the shared four-stream config at 4 calls/s, started.
fn spawn_sync(dir: &std::path::Path, sim: &SimulatorHandle, url: &str) -> tokio::process::Child {
    spawn_sync_with(dir, sim, url, &[])
}

/// [`spawn_sync`] with more `sync` arguments.
fn spawn_sync_with(
    dir: &std::path::Path,
    sim: &SimulatorHandle,
    url: &str,
    extra: &[&str],
) -> tokio::process::Child {
    let config = dir.join("config.toml");
    std::fs::write(&config, config_text(&sim.endpoint(), 4.0, "")).unwrap();
    tokio::process::Command::new(BIN)
        .current_dir(dir)
        .args(["sync", "--json", "--log-format", "json", "--config"])
        .arg(&config)
        .args(["--database-url", url, "--now", &now().to_rfc3339()])
        .args(extra)
        .env("VOLC_ACCESSKEY", simulator::DEMO_ACCESS_KEY)
        .env("VOLC_SECRETKEY", simulator::DEMO_SECRET_KEY)
        .env_remove("VOLCENGINE_ACCESS_KEY")
        .env_remove("VOLCENGINE_SECRET_KEY")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

/// Exit code, stdout and stderr of a finished child.
async fn finish(child: tokio::process::Child) -> (i32, String, String) {
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Committed ledger rows, read beside the run on a connection of the test's own (0 before the
/// schema exists).
async fn committed_rows(url: &str) -> i64 {
    const Q: &str = "SELECT count(*) FROM sync_ledger WHERE state <> 'failed'";
    if url.starts_with("sqlite:") {
        let Ok(mut c) = sqlx::SqliteConnection::connect(url).await else {
            return 0;
        };
        let n = sqlx::query_scalar(Q).fetch_one(&mut c).await.unwrap_or(0);
        let _ = c.close().await;
        n
    } else {
        let Ok(mut c) = sqlx::PgConnection::connect(url).await else {
            return 0;
        };
        let n = sqlx::query_scalar(Q).fetch_one(&mut c).await.unwrap_or(0);
        let _ = c.close().await;
        n
    }
}

/// Waits until the run has committed at least `n` ledger rows (while it is still running).
async fn wait_for_commits(url: &str, child: &mut tokio::process::Child, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed_rows(url).await < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it committed {n} rows"
        );
        assert!(Instant::now() < deadline, "no {n} commits within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run is still going after {n} commits"
    );
}

/// The `sync --json` object and the JSON log's `run finished` event.
fn summary_and_event(out: &str, err: &str) -> (serde_json::Value, serde_json::Value) {
    let summary: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("one JSON object: {e}: {out}"));
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["message"] == "run finished")
        .collect();
    assert_eq!(events.len(), 1, "one `run finished` event: {err}");
    (summary, events[0].clone())
}

fn windows_ok(summary: &serde_json::Value) -> u64 {
    summary["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["windows_ok"].as_u64().unwrap())
        .sum()
}

/// Windows whose ledger rows exist: a window committed in two parts is two rows with one
/// `fetched_at`.
async fn committed_windows(store: &Store) -> u64 {
    let ledger = store.ledger(None).await.unwrap();
    let windows: std::collections::BTreeSet<_> = ledger
        .iter()
        .filter(|e| e.state != rtc_quality_sync::domain::WindowState::Failed)
        .map(|e| (e.stream.clone(), e.fetched_at))
        .collect();
    windows.len() as u64
}

/// Item 6: SIGKILL mid-run, then run again: the killed run is `abandoned` (not `running` for good),
/// with the windows it committed, and `status` says so.
async fn a_killed_run_is_marked_abandoned(url: &str) {
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_sync(dir.path(), &sim, url);
    wait_for_commits(url, &mut child, 3).await;
    child.start_kill().unwrap(); // SIGKILL
    let _ = child.wait().await;

    let store = Store::connect(url).await.unwrap();
    let killed = store.last_run().await.unwrap().unwrap();
    assert_eq!(killed.status, RunStatus::Running, "{killed:?}");
    let committed = committed_windows(&store).await;
    assert!(committed > 0);
    store.close().await;

    // The killed process's lock goes with it; PostgreSQL may take a moment to end its session.
    let (code, out, err) = loop {
        let (code, out, err) = finish(spawn_sync(dir.path(), &sim, url)).await;
        if code != 3 {
            break (code, out, err);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("run {} did not finish", killed.id)),
        "{err}"
    );

    let store = Store::connect(url).await.unwrap();
    let abandoned = sqlx_run(&store, killed.id).await;
    assert_eq!(abandoned.0, "abandoned");
    assert_eq!(
        abandoned.1 as u64, committed,
        "the windows its ledger rows show"
    );
    assert!(abandoned.2.is_none(), "when it died is not known");
    let last = store.last_run().await.unwrap().unwrap();
    assert_eq!(last.status, RunStatus::Ok);
    assert!(last.id > killed.id);
    store.close().await;

    // `status` shows an abandoned last run as such: kill a third run (a refetch of everything,
    // which lasts seconds), then ask.
    let mut child = spawn_sync_with(dir.path(), &sim, url, &["--refetch"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(child.try_wait().unwrap().is_none(), "the refetch is going");
    child.start_kill().unwrap();
    let _ = child.wait().await;
    // Mark it as the next run would, without running one.
    let store = Store::connect(url).await.unwrap();
    let ids = store.abandon_unfinished_runs(&[]).await.unwrap();
    assert_eq!(ids.len(), 1, "the third run was killed while running");
    store.close().await;
    let out = tokio::process::Command::new(BIN)
        .args(["status", "--database-url", url])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("abandoned") && text.contains("never finished"),
        "{text}"
    );
    sim.shutdown().await;
}

/// `(status, windows_ok, finished_at)` of run `id`, read from the runs table.
async fn sqlx_run(store: &Store, id: i64) -> (String, i64, Option<String>) {
    const Q: &str =
        "SELECT status, windows_ok, CAST(finished_at AS TEXT) FROM sync_runs WHERE id = $1";
    match store {
        Store::Sqlite(s) => sqlx::query_as(Q)
            .bind(id)
            .fetch_one(s.pool())
            .await
            .unwrap(),
        Store::Postgres(s) => sqlx::query_as(Q)
            .bind(id)
            .fetch_one(s.pool())
            .await
            .unwrap(),
    }
}

#[tokio::test]
async fn a_killed_run_is_marked_abandoned_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    a_killed_run_is_marked_abandoned(&url).await;
}

#[tokio::test]
async fn a_killed_run_is_marked_abandoned_on_postgres() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    a_killed_run_is_marked_abandoned(&db.url()).await;
}

/// The database name in a PostgreSQL URL.
fn db_name(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string()
}

/// The backend pid that holds the sync lock on `url`'s database.
async fn lock_session(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
         AND classid::int8 = $1 AND objid::int8 = $2 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(SYNC_LOCK_KEY >> 32)
    .bind(SYNC_LOCK_KEY & 0xffff_ffff)
    .fetch_one(conn)
    .await
    .expect("the run holds the sync lock")
}

/// Item 7a: the lock's session ends mid-run (a restart, for that session) and nobody else takes
/// the lock: the run takes it again before its next commit and finishes with exactly the data of
/// an uninterrupted run.
#[tokio::test]
async fn a_lost_postgres_lock_is_taken_again_and_the_run_finishes_exactly() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let reference_url = format!("sqlite://{}", dir.path().join("reference.db").display());
    let (code, _, err) = finish(spawn_sync(dir.path(), &sim, &reference_url)).await;
    assert_eq!(code, 0, "{err}");

    let mut child = spawn_sync(dir.path(), &sim, &url);
    wait_for_commits(&url, &mut child, 2).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let pid = lock_session(&mut conn).await;
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(pid)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(ended);
    let (code, out, err) = finish(child).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("took the sync lock again"), "{err}");
    let (summary, _) = summary_and_event(&out, &err);
    assert_eq!(summary["status"], "ok", "{summary}");

    let reference = Store::connect(&reference_url).await.unwrap();
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(dump(&store).await, dump(&reference).await);
    store.close().await;
    reference.close().await;
    let _ = conn.close().await;
    sim.shutdown().await;
}

/// Item 7b: the lock's session ends and another session takes the lock before the run notices:
/// the run stops before its next commit and exits 3 naming the holder, with nothing committed
/// after the loss.
#[tokio::test]
async fn a_lost_postgres_lock_taken_by_another_stops_the_run_with_exit_3() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_sync(dir.path(), &sim, &url);
    wait_for_commits(&url, &mut child, 2).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let pid = lock_session(&mut conn).await;
    let me: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // One statement: the lock request queues before the run can take the lock again, and is
    // granted when the terminated session's lock goes.
    sqlx::query("SELECT pg_terminate_backend($1), pg_advisory_lock($2)")
        .bind(pid)
        .bind(SYNC_LOCK_KEY)
        .execute(&mut conn)
        .await
        .unwrap();
    // A commit that passed its check just before the loss may still be landing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_loss = committed_rows(&url).await;
    let (code, out, err) = finish(child).await;
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("another run holds the lock") && err.contains(&format!("backend pid {me}")),
        "the message names the holder: {err}"
    );
    let (summary, event) = summary_and_event(&out, &err);
    assert_eq!(summary["exit_code"], 3, "{summary}");
    assert_eq!(event["message"], "run finished", "{err}");
    assert_eq!(event["exit_code"], 3, "{err}");
    assert_eq!(
        committed_rows(&url).await,
        at_loss,
        "nothing committed after the loss"
    );
    let _ = conn.close().await;
    sim.shutdown().await;
}

/// Item 8a: another process holds SQLite's write lock for longer than the busy timeout after some
/// windows were committed: exit 2 with the summary, and the run's end is recorded once the file is
/// free again.
#[tokio::test]
async fn sqlite_locked_by_another_writer_mid_run_exits_2_with_the_summary() {
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut child = spawn_sync(dir.path(), &sim, &url);
    wait_for_commits(&url, &mut child, 2).await;
    let mut writer = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    // Longer than the tool's 5 s busy timeout, counted from its next commit.
    tokio::time::sleep(Duration::from_secs(7)).await;
    sqlx::query("ROLLBACK").execute(&mut writer).await.unwrap();
    let (code, out, err) = finish(child).await;
    assert_eq!(code, 2, "{out}{err}");
    let (summary, event) = summary_and_event(&out, &err);
    assert_eq!(summary["status"], "partial", "{summary}");
    assert_eq!(summary["exit_code"], 2);
    let ok = windows_ok(&summary);
    assert!(ok > 0, "{summary}");
    assert!(
        summary["error"].as_str().unwrap().contains("database"),
        "{summary}"
    );
    assert_eq!(event["message"], "run finished", "{err}");
    assert_eq!(event["exit_code"], 2, "{err}");
    let store = Store::connect(&url).await.unwrap();
    let run = store.last_run().await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Partial, "the run's end was recorded");
    assert_eq!(run.windows_ok, ok);
    store.close().await;
    sim.shutdown().await;
}

/// Item 8b: the PostgreSQL database refuses connections mid-run: exit 2 with the summary, which
/// says the run's end could not be recorded; the next run marks it abandoned.
#[tokio::test]
async fn postgres_refusing_connections_mid_run_exits_2_with_the_summary() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let name = db_name(&url);
    let admin_url = std::env::var("TEST_DATABASE_URL").unwrap();
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_sync(dir.path(), &sim, &url);
    wait_for_commits(&url, &mut child, 2).await;
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    set_allow_connections(&mut admin, &name, false).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&name)
    .execute(&mut admin)
    .await
    .unwrap();
    let (code, out, err) = finish(child).await;
    set_allow_connections(&mut admin, &name, true).await;
    assert_eq!(code, 2, "{out}{err}");
    let (summary, event) = summary_and_event(&out, &err);
    assert_eq!(summary["status"], "partial", "{summary}");
    assert!(windows_ok(&summary) > 0, "{summary}");
    assert_eq!(event["exit_code"], 2, "{err}");
    assert!(err.contains("cannot record the run's end"), "{err}");

    let (code, _, err) = finish(spawn_sync(dir.path(), &sim, &url)).await;
    assert_eq!(code, 0, "{err}");
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(sqlx_run(&store, 1).await.0, "abandoned");
    store.close().await;
    let _ = admin.close().await;
    sim.shutdown().await;
}

async fn set_allow_connections(admin: &mut sqlx::PgConnection, name: &str, allow: bool) {
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"))
        .execute(admin)
        .await
        .unwrap();
}

/// A TCP proxy in front of the PostgreSQL server that can stop answering, as a server that hangs
/// or a network that drops packets does: connections stay open, nothing comes back.
struct Proxy {
    port: u16,
    silent: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let silent = CancellationToken::new();
        let s = silent.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let (s, upstream) = (s.clone(), upstream.clone());
                tokio::spawn(async move {
                    if s.is_cancelled() {
                        // Accepted, never answered.
                        std::future::pending::<()>().await;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = s.cancelled() => {
                            // Both sockets stay open, and silent, until the proxy goes.
                            let _keep = (client, server);
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
        });
        Proxy { port, silent, task }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Item 8c: SIGTERM while the database does not answer: exit 130 within 5 s of the signal (the
/// product's bound; without it the pool's timeouts held the process for a minute).
#[tokio::test]
async fn sigterm_while_postgres_does_not_answer_exits_130_within_5_s() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let mut via = url::Url::parse(&url).unwrap();
    let upstream = format!("{}:{}", via.host_str().unwrap(), via.port().unwrap_or(5432));
    let proxy = Proxy::start(upstream).await;
    via.set_host(Some("127.0.0.1")).unwrap();
    via.set_port(Some(proxy.port)).unwrap();
    let sim = slow_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_sync(dir.path(), &sim, via.as_str());
    wait_for_commits(&url, &mut child, 2).await;
    proxy.silent.cancel();
    // Long enough that the run is waiting on the silent database.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(child.try_wait().unwrap().is_none(), "the run is waiting");
    let pid = child.id().unwrap().to_string();
    let signalled = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    // A process that hangs on the database fails the test rather than hanging it (dropping the
    // child kills it).
    let (code, out, err) = tokio::time::timeout(Duration::from_secs(20), finish(child))
        .await
        .expect("the process exits after SIGTERM");
    let elapsed = signalled.elapsed();
    eprintln!("SIGTERM to exit while the database did not answer: {elapsed:?}");
    assert_eq!(code, 130, "{out}{err}");
    assert!(
        elapsed < Duration::from_secs(5),
        "exited {elapsed:?} after SIGTERM"
    );
    let (summary, event) = summary_and_event(&out, &err);
    assert_eq!(summary["status"], "interrupted", "{summary}");
    assert_eq!(event["exit_code"], 130, "{err}");
    drop(proxy);
    sim.shutdown().await;
}
