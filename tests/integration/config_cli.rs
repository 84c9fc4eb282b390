//! The configuration and the messages as the binary shows them (issues 18 and 19): what is
//! refused, what is only warned about, and what each error tells the user to do.

use std::path::{Path, PathBuf};

use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};

use crate::cli::{cmd, run, with_demo_keys};

/// A simulator that admits both APIs at a pace no test waits for.
async fn fast_simulator() -> SimulatorHandle {
    simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        distribution_rate_limit_per_sec: 60,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// `[source]` against `sim` at test pace, then `blocks`, written to `DIR/config.toml`.
fn write_config(dir: &Path, sim: &SimulatorHandle, blocks: &str) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\n\
             distribution_requests_per_second = 50\ntimeout_secs = 2\n\n{blocks}",
            sim.endpoint()
        ),
    )
    .unwrap();
    config
}

/// Issue 18 item 7: an indicator listed twice in a `[[distributions]]` block made two streams of
/// one query, and the summary's "not attempted" count underflowed (exit 2 on every run). It is used
/// once, with a warning that names the file, the block and the indicator; the run is exact.
#[tokio::test]
async fn item_18_07_a_duplicated_distribution_indicator_syncs_once_and_exits_0() {
    let sim = fast_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim,
        "[[jobs]]\nname = \"app\"\napp_id = \"demo_app_0\"\nindicators = [\"stall_rate\"]\n\
         granularity = \"1d\"\n\n[[distributions]]\nname = \"where\"\napp_id = \"demo_app_0\"\n\
         indicators = [\"stall_rate\", \"join_room_success_rate\", \"stall_rate\"]\n\
         dimensions = [\"Province\"]\n",
    );
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (code, out, err) = run(cmd(dir.path())
        .args(["plan", "--json", "--database-url", &db, "--config"])
        .arg(&config))
    .await;
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let labels: Vec<&str> = plan["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "app/1d",
            "where/stall_rate/Province",
            "where/join_room_success_rate/Province"
        ]
    );
    let distribution_calls = plan["distribution_requests"].as_u64().unwrap();

    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--database-url", &db, "--config"])
            .arg(&config),
    ))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("WARN") && l.contains("distributions[0].indicators"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.contains("config.toml") && warning.contains("\"stall_rate\""),
        "{warning}"
    );
    let summary = out.lines().find(|l| l.starts_with("run 1 ")).unwrap();
    assert!(
        summary.starts_with("run 1 ok") && !summary.contains("not attempted"),
        "{summary}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("where/stall_rate/Province "))
            .count(),
        1,
        "{out}"
    );
    let asked = sim
        .requests()
        .iter()
        .filter(|r| r.action == "ListQualityDistribution")
        .count() as u64;
    assert_eq!(
        asked, distribution_calls,
        "each (indicator, day) asked once"
    );
    sim.shutdown().await;
}

/// Issue 19 item 9: a typo in an indicator name is warned about at load, and the simulator answers
/// it `InvalidParameter` as the real API may, so it fails in the demo too instead of inventing data.
#[tokio::test]
async fn item_19_09_an_undocumented_indicator_is_warned_about_and_the_simulator_refuses_it() {
    let sim = fast_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim,
        "[[jobs]]\nname = \"good\"\napp_id = \"demo_app_0\"\nindicators = [\"stall_rate\"]\n\
         granularity = \"1d\"\n\n[[jobs]]\nname = \"typo\"\napp_id = \"demo_app_0\"\n\
         indicators = [\"stall_rte\"]\ngranularity = \"1d\"\n",
    );
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let (code, out, err) = run(with_demo_keys(
        cmd(dir.path())
            .args(["sync", "--database-url", &db, "--config"])
            .arg(&config),
    ))
    .await;
    assert_eq!(
        code, 2,
        "the typo's job fails, the other is committed: {out}{err}"
    );
    let warning = err
        .lines()
        .find(|l| l.contains("WARN") && l.contains("not a documented indicator"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.contains("config.toml")
            && warning.contains("jobs[1].indicators")
            && warning.contains("\"stall_rte\"")
            && warning.contains("the API will judge"),
        "{warning}"
    );
    assert!(
        out.contains("InvalidParameter") && out.contains("stall_rte"),
        "the failure says why: {out}"
    );
    let refused: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.body.contains("stall_rte"))
        .collect();
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|r| r.status == 400 && r.code.as_deref() == Some("InvalidParameter")),
        "{refused:?}"
    );
    sim.shutdown().await;
}

/// Issue 19 item 7: `sync` and `plan` refused the placeholder app id only in `check`; now both
/// refuse it as a configuration error (exit 1) naming the file, the key and what to put there,
/// before any call. `status` still reads the database with it.
#[tokio::test]
async fn item_19_07_sync_and_plan_refuse_the_placeholder_app_id_and_status_works() {
    let sim = fast_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim,
        "[[jobs]]\nname = \"app\"\napp_id = \"demo_app_0\"\nindicators = [\"stall_rate\"]\n\n\
         [[distributions]]\nname = \"where\"\napp_id = \"Your_AppId\"\nindicators = [\"stall_rate\"]\n",
    );
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    for command in [
        &["plan"][..],
        &["plan", "--json"],
        &["sync"],
        &["sync", "--dry-run"],
        &["sync", "--json"],
    ] {
        let (code, out, err) = run(with_demo_keys(
            cmd(dir.path())
                .args(command)
                .args(["--database-url", &db, "--config"])
                .arg(&config),
        ))
        .await;
        assert_eq!(code, 1, "{command:?}: {out}{err}");
        assert!(
            err.contains("config.toml: distributions[0].app_id = \"Your_AppId\"")
                && err.contains("RTC console"),
            "{command:?}: {err}"
        );
    }
    assert!(sim.requests().is_empty(), "nothing was called");
    assert!(!dir.path().join("t.db").exists(), "nothing was written");
    for command in [&["status"][..], &["status", "--json"]] {
        let (code, out, err) = run(cmd(dir.path())
            .args(command)
            .args(["--database-url", &db, "--config"])
            .arg(&config))
        .await;
        assert_eq!(code, 0, "{command:?}: {out}{err}");
    }
    sim.shutdown().await;
}

/// Issue 18 item 10: at `-vv`, sqlx itself logged `?PassWord=...` and `?sslpassword=...` with their
/// values ("ignoring unrecognized connect parameter"). No parameter whose name holds `pass` reaches
/// the driver: the password is applied apart (trust authentication accepts it, so the command
/// works), an unsupported one is an error naming the parameter, and no secret is printed at any
/// verbosity, by the tool or by the driver.
#[tokio::test]
async fn item_18_10_url_passwords_never_reach_the_driver_logs() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let with = |query: &str| {
        let mut u = url::Url::parse(&db.url()).unwrap();
        u.set_query(Some(query));
        u.to_string()
    };
    let cases = [
        (with("PassWord=hunter2x"), 0),
        (with("sslmode=disable&Pass%57ord=hunter2x"), 0),
        (with("PassWord=hunter2x&sslpassword=hunter3x"), 1),
        (with("sslpassword=hunter3x"), 1),
    ];
    for (url, want) in &cases {
        for (verbosity, rust_log) in [("-vv", None), ("-vv", Some("trace")), ("-q", Some("trace"))]
        {
            for command in [&["migrate"][..], &["status", "--json"]] {
                let mut c = cmd(dir.path());
                c.args(command)
                    .args([verbosity, "--database-url", url.as_str()]);
                if let Some(filter) = rust_log {
                    c.env("RUST_LOG", filter);
                }
                let (code, out, err) = run(&mut c).await;
                let said = format!("{command:?} {verbosity} RUST_LOG={rust_log:?} {url}");
                assert_eq!(code, *want, "{said}: {out}{err}");
                assert!(
                    !out.contains("hunter") && !err.contains("hunter"),
                    "{said}: {out}{err}"
                );
                if *want == 1 {
                    assert!(
                        err.contains("\"sslpassword\"") && err.contains("not supported"),
                        "{said}: {err}"
                    );
                } else if rust_log.is_some() {
                    // Not vacuous: the driver's own lines are on stderr.
                    assert!(err.contains("sqlx"), "{said}: {err}");
                }
            }
        }
    }
}

/// Issue 19 item 8: a PostgreSQL database that does not exist was reported as a connection
/// problem ("check that it is running"); the error names the database and says `createdb NAME`.
#[tokio::test]
async fn item_19_08_a_missing_postgres_database_is_named_with_createdb() {
    let Some(existing) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let name = crate::helpers::unique_name("rqs_absent");
    let mut url = url::Url::parse(&existing.url()).unwrap();
    url.set_path(&format!("/{name}"));
    let dir = tempfile::tempdir().unwrap();
    for command in [&["migrate"][..], &["status"], &["status", "--json"]] {
        let (code, out, err) = run(cmd(dir.path())
            .args(command)
            .args(["--database-url", url.as_str()]))
        .await;
        assert_eq!(code, 1, "{command:?}: {out}{err}");
        assert!(
            err.contains(&format!("the database \"{name}\" does not exist"))
                && err.contains(&format!("`createdb {name}`"))
                && err.contains(&format!("-U postgres {name}`")),
            "{command:?}: {err}"
        );
        assert!(!err.contains("check that it is running"), "{err}");
    }
}

/// Issue 18 item 17c: a SQLite path that cannot be opened said "check that it is running"; the
/// error names the file (or its lock file, which writers take first) and says to check the path and
/// its directory, once.
#[tokio::test]
async fn item_18_17c_a_sqlite_file_that_cannot_be_opened_gets_file_advice() {
    let sim = fast_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim,
        "[[jobs]]\napp_id = \"demo_app_0\"\nindicators = [\"stall_rate\"]\n",
    );
    // A parent that is a regular file: no user, root included, can create anything under it.
    std::fs::write(dir.path().join("not-a-dir"), "").unwrap();
    let under_a_file = dir.path().join("not-a-dir").join("q.db");
    // A database path that is a directory: it exists, so every command opens it, and fails.
    let a_directory = dir.path().join("d.db");
    std::fs::create_dir(&a_directory).unwrap();
    let cases = [
        (
            &under_a_file,
            &["migrate"][..],
            format!("the lock file {}.lock", under_a_file.display()),
        ),
        (
            &under_a_file,
            &["sync"],
            format!("the lock file {}.lock", under_a_file.display()),
        ),
        (
            &a_directory,
            &["migrate"],
            format!("the SQLite database file {}", a_directory.display()),
        ),
        (
            &a_directory,
            &["status"],
            format!("the SQLite database file {}", a_directory.display()),
        ),
        (
            &a_directory,
            &["sync"],
            format!("the SQLite database file {}", a_directory.display()),
        ),
    ];
    for (file, command, names) in cases {
        let url = format!("sqlite://{}", file.display());
        let (code, out, err) = run(with_demo_keys(
            cmd(dir.path())
                .args(command)
                .args(["--database-url", &url, "--config"])
                .arg(&config),
        ))
        .await;
        assert_eq!(code, 1, "{command:?} {url}: {out}{err}");
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
        assert!(
            line.contains(&names) && line.contains("its directory exists"),
            "{command:?}: {line}"
        );
        let file_name = file.file_name().unwrap().to_str().unwrap();
        assert_eq!(line.matches(file_name).count(), 1, "said once: {line}");
        for server in ["running", "reachable", "server"] {
            assert!(!line.contains(server), "{command:?}: {line}");
        }
    }
    assert!(sim.requests().is_empty());
    sim.shutdown().await;
}

/// Issue 18 item 17a: `status --json` printed nothing on a bad configuration; it prints one JSON
/// object, `{"error": ..., "exit_code": 1}`, and exits 1, also for a database that cannot be opened.
#[tokio::test]
async fn item_18_17a_status_json_says_why_it_could_not_run_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[window]\nmax_lookback_dayz = 3\n").unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[jobs]]\napp_id = \"demo_app_0\"\nindicators = [\"stall_rate\"]\n",
    )
    .unwrap();
    let a_directory = dir.path().join("d.db");
    std::fs::create_dir(&a_directory).unwrap();
    let unopenable = format!("sqlite://{}", a_directory.display());
    let fine = format!("sqlite://{}", dir.path().join("absent.db").display());
    let cases = [
        (&bad, &fine, "max_lookback_dayz"),
        (&good, &unopenable, "d.db"),
    ];
    for (config, url, says) in cases {
        for extra in [&[][..], &["--check"]] {
            let (code, out, err) = run(cmd(dir.path())
                .args(["status", "--json"])
                .args(extra)
                .args(["--database-url", url, "--config"])
                .arg(config))
            .await;
            let said = format!("{extra:?} {config:?} {url}");
            assert_eq!(code, 1, "{said}: {out}{err}");
            let json: serde_json::Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("{said}: stdout is not JSON ({e}): {out:?}"));
            assert_eq!(json["exit_code"], 1, "{said}: {out}");
            let error = json["error"].as_str().unwrap();
            assert!(error.contains(says), "{said}: {error}");
            assert!(err.contains(error), "also on stderr: {err}");
        }
    }
}

/// Issue 18 item 17d: `--metrics-file` was renamed over whatever had the name (a device node, a
/// FIFO, a link). Only a regular file is replaced; anything else is an ERROR naming it, left as it
/// was, and the command's exit code is the one its work earned (PRODUCT.md: a metrics file that
/// cannot be written never changes the exit code), for `sync` and `status` alike.
#[tokio::test]
async fn item_18_17d_the_metrics_file_only_replaces_a_regular_file() {
    use std::os::unix::fs::FileTypeExt as _;

    let sim = fast_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim,
        "[[jobs]]\nname = \"app\"\napp_id = \"demo_app_0\"\nindicators = [\"stall_rate\"]\ngranularity = \"1d\"\n",
    );
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let textfile = dir.path().join("textfile");
    std::fs::create_dir(&textfile).unwrap();
    let fifo = textfile.join("fifo.prom");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let target = dir.path().join("elsewhere.txt");
    std::fs::write(&target, "not metrics").unwrap();
    let link = textfile.join("link.prom");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let directory = textfile.join("dir.prom");
    std::fs::create_dir(&directory).unwrap();
    let regular = textfile.join("rtc.prom");

    for command in ["sync", "status"] {
        for (path, kind) in [
            (&fifo, "a FIFO"),
            (&link, "a symbolic link"),
            (&directory, "a directory"),
        ] {
            let (code, out, err) = run(with_demo_keys(
                cmd(dir.path())
                    .args([command, "--database-url", &db, "--metrics-file"])
                    .arg(path)
                    .arg("--config")
                    .arg(&config),
            ))
            .await;
            assert_eq!(code, 0, "{command} {kind}: {out}{err}");
            let line = err
                .lines()
                .find(|l| l.contains("ERROR"))
                .unwrap_or_else(|| panic!("{command} {kind}: no ERROR: {err}"));
            assert!(
                line.contains(&path.display().to_string())
                    && line.contains(kind)
                    && line.contains("not a regular file"),
                "{command}: {line}"
            );
        }
        let (code, _, err) = run(with_demo_keys(
            cmd(dir.path())
                .args([command, "--database-url", &db, "--metrics-file"])
                .arg(&regular)
                .arg("--config")
                .arg(&config),
        ))
        .await;
        assert_eq!(code, 0, "{command}: {err}");
        let text = std::fs::read_to_string(&regular).unwrap();
        assert!(
            text.contains("rtc_quality_sync_stream_points{stream=\"app/1d\"}"),
            "{text}"
        );
        std::fs::remove_file(&regular).unwrap();
    }
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not metrics");
    assert!(directory.is_dir());
    let mut left: Vec<String> = std::fs::read_dir(&textfile)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["dir.prom", "fifo.prom", "link.prom"],
        "no temporary file is left"
    );
    sim.shutdown().await;
}

/// Issue 19 item 10: "1 jobs" in `check` and "credentials: credentials:" for half a key pair; counts
/// take the noun that fits them (`check`, `plan`, the run summary, `status`), and the credentials
/// problem is said once.
#[tokio::test]
async fn item_19_10_counts_fit_their_nouns_and_credentials_are_said_once() {
    let sim = fast_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim,
        "[window]\nmax_lookback_days = 3\n\n[[jobs]]\nname = \"app\"\napp_id = \"demo_app_0\"\n\
         indicators = [\"stall_rate\"]\ngranularity = \"1d\"\n",
    );
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let command = |args: &[&str]| {
        let mut c = cmd(dir.path());
        with_demo_keys(&mut c)
            .args(args)
            .args(["--database-url", &db, "--config"])
            .arg(&config);
        c
    };
    let (code, out, err) = run(&mut command(&["check"])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("config.toml: 1 job, 1 stream\n"), "{out}");

    let (code, out, _) = run(command(&["check"]).env_remove("VOLC_SECRETKEY")).await;
    assert_eq!(code, 1);
    let line = out.lines().find(|l| l.contains("credentials")).unwrap();
    assert!(
        line.starts_with("FAIL  credentials: VOLC_ACCESSKEY is set but VOLC_SECRETKEY is not;"),
        "{line}"
    );
    assert_eq!(line.matches("credentials").count(), 1, "{line}");

    let (code, out, err) = run(&mut command(&["plan"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  1 window\n") && out.contains("\n1 request, about"),
        "{out}"
    );

    let (code, out, err) = run(&mut command(&["sync"])).await;
    assert_eq!(code, 0, "{err}");
    let summary = out.lines().find(|l| l.starts_with("run 1 ")).unwrap();
    assert!(
        summary.contains(": 1 window ok, 0 failed;") && summary.contains("; 1 call, 0 retries,"),
        "{summary}"
    );
    let (code, out, _) = run(&mut command(&["status"])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(": 1 window ok, 0 failed; 1 call, 0 retries,"),
        "{out}"
    );
    sim.shutdown().await;
}
