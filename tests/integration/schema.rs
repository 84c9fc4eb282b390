//! Issue 19 item 13, `[storage] schema`: every table and view of the tool, and the migrations' own
//! table, in a PostgreSQL schema of its own; a run lock per schema; tables left in `public` by an
//! earlier run are never silently started afresh beside. The binary is run as a user runs it.

use std::path::Path;
use std::time::Duration;

use rtc_quality_sync::domain::PgSchema;
use rtc_quality_sync::simulator::SimulatorHandle;
use rtc_quality_sync::store::{MetricRow, Store, postgres::sync_lock_key};
use sqlx::{Connection, PgConnection};

use crate::cli::{cmd, fast_simulator, run, with_demo_keys};
use crate::pipeline::config_text;

/// Every relation the tool creates, `_sqlx_migrations` included.
const TOOL_RELATIONS: [&str; 13] = [
    "_sqlx_migrations",
    "points",
    "quality_distribution",
    "quality_metrics",
    "rtc_rooms",
    "series",
    "sync_calls",
    "sync_coverage",
    "sync_ledger",
    "sync_lock",
    "sync_pacing",
    "sync_runs",
    "sync_streams",
];

/// `(name, kind)` of the tables and views in `schema`, by name.
async fn relations(conn: &mut PgConnection, schema: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'v') ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn names(conn: &mut PgConnection, schema: &str) -> Vec<String> {
    relations(conn, schema)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// The config of [`config_text`]'s two jobs (four streams) against `sim`, with `storage` as the
/// `[storage]` table's lines (none: the default schema).
fn write_config(path: &Path, sim: &SimulatorHandle, rps: f64, storage: &str) {
    std::fs::write(
        path,
        format!(
            "{}\n[storage]\n{storage}\n",
            config_text(&sim.endpoint(), rps, "")
        ),
    )
    .unwrap();
}

/// Runs the binary in `dir` with `args`, then `--database-url url --config config`, with the demo
/// account's keys.
async fn tool(dir: &Path, url: &str, config: &Path, args: &[&str]) -> (i32, String, String) {
    run(with_demo_keys(&mut cmd(dir))
        .args(args)
        .args(["--database-url", url, "--config"])
        .arg(config))
    .await
}

/// `sync`, `status`, `status --check`, `check`, `plan`, `prune --dry-run`, `prune` and `migrate` in a
/// schema of their own: everything lands there (the migrations' table too), `public` keeps exactly
/// what another team had in it (even tables named `points`, `series` and `_sqlx_migrations`), and
/// BI reads `quality_metrics` after `SET search_path`.
#[tokio::test]
async fn item_19_13_every_command_works_in_a_schema_of_its_own_and_public_is_untouched() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let mut conn = PgConnection::connect(&url).await.unwrap();
    // Another team's tables in public, with names the tool uses too: none of them is the tool's.
    sqlx::raw_sql(
        "CREATE TABLE public.points (id int PRIMARY KEY, score float8); \
         INSERT INTO public.points VALUES (1, 0.5), (2, 0.75); \
         CREATE TABLE public.series (name text); INSERT INTO public.series VALUES ('theirs'); \
         CREATE TABLE public._sqlx_migrations (version bigint PRIMARY KEY, description text); \
         INSERT INTO public._sqlx_migrations VALUES (20240101, 'their app'); \
         CREATE VIEW public.team_report AS SELECT count(*) FROM public.points;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let public_before = relations(&mut conn, "public").await;
    let public_rows = async |conn: &mut PgConnection| -> (i64, String, i64) {
        sqlx::query_as(
            "SELECT (SELECT sum(id) FROM public.points), (SELECT string_agg(name, ',') FROM public.series), \
             (SELECT sum(version)::bigint FROM public._sqlx_migrations)",
        )
        .fetch_one(conn)
        .await
        .unwrap()
    };
    let rows_before = public_rows(&mut conn).await;

    let sim = fast_simulator(0).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    write_config(&config, &sim, 50.0, "schema = \"rtc_bi\"");

    // `migrate` takes only the URL, and still reads the schema from the config file.
    let (code, out, err) = tool(dir.path(), &url, &config, &["migrate"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("schema \"rtc_bi\""), "{out}");
    assert_eq!(names(&mut conn, "rtc_bi").await, TOOL_RELATIONS);

    let (code, _, err) = tool(dir.path(), &url, &config, &["sync", "--quiet"]).await;
    assert_eq!(code, 0, "{err}");
    let calls = sim.requests().len();
    assert!(calls > 0);
    let (code, out, err) = tool(dir.path(), &url, &config, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("app-a/1d") && !out.contains("never synced"),
        "{out}"
    );
    let (code, out, err) = tool(dir.path(), &url, &config, &["status", "--check"]).await;
    assert_eq!(
        (code, out.trim()),
        (0, "ok: every configured stream is healthy"),
        "{err}"
    );
    let (code, out, err) = tool(dir.path(), &url, &config, &["check"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("(postgres, schema \"rtc_bi\")"),
        "check names the schema: {out}"
    );
    // `plan` reads the ledger of the schema: the backfill is not planned again.
    let (code, out, err) = tool(dir.path(), &url, &config, &["plan", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let planned = plan["requests"].as_u64().unwrap() as usize;
    assert!(planned < calls, "{planned} of {calls}: {out}");

    // BI reads the view with the schema on its search path.
    let store = Store::connect_in(&url, &PgSchema::parse("rtc_bi").unwrap())
        .await
        .unwrap();
    let stored = store.metrics(None).await.unwrap();
    let mut bi = PgConnection::connect(&url).await.unwrap();
    sqlx::query("SET search_path = rtc_bi")
        .execute(&mut bi)
        .await
        .unwrap();
    let (seen, apps): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT app_id) FROM quality_metrics")
            .fetch_one(&mut bi)
            .await
            .unwrap();
    assert_eq!((seen as usize, apps), (stored.len(), 2));
    assert!(seen > 0);

    // Dropping room-b's job retires its two streams; prune lists them, then removes them.
    std::fs::write(
        &config,
        format!(
            "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\n\n[storage]\nschema = \"rtc_bi\"\n\n\
             [[jobs]]\nname = \"app-a\"\napp_id = \"app_a\"\n\
             indicators = [\"join_room_success_rate\", \"stall_rate\"]\ngranularity = [\"1d\", \"5min\"]\n",
            sim.endpoint()
        ),
    )
    .unwrap();
    let (code, out, err) = tool(dir.path(), &url, &config, &["prune", "--dry-run"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would remove 2 retired streams"), "{out}");
    let (code, out, err) = tool(dir.path(), &url, &config, &["prune"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed 2 retired streams"), "{out}");
    let (left, apps): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT app_id) FROM quality_metrics")
            .fetch_one(&mut bi)
            .await
            .unwrap();
    assert_eq!(apps, 1);
    assert_eq!(
        left as usize,
        stored.iter().filter(|r| r.app_id == "app_a").count()
    );
    assert_eq!(
        store.metrics(None).await.unwrap().len(),
        left as usize,
        "the store reads the same schema"
    );
    store.close().await;

    // Everything is in rtc_bi, with its kinds; public holds exactly what the other team put there.
    let ours = relations(&mut conn, "rtc_bi").await;
    let views: Vec<&str> = ours
        .iter()
        .filter(|(_, k)| k == "v")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        views,
        ["quality_distribution", "quality_metrics", "sync_coverage"]
    );
    assert_eq!(names(&mut conn, "rtc_bi").await, TOOL_RELATIONS);
    assert_eq!(relations(&mut conn, "public").await, public_before);
    assert_eq!(public_rows(&mut conn).await, rows_before);
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM rtc_bi._sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .count() as i64;
    assert_eq!(migrations, files, "every migration applied there");
    sim.shutdown().await;
}

/// Two configurations, each in its own schema of one database, sync at the same time: the locks
/// are per schema. A second sync in the same schema exits 3 naming the holder, and so does one
/// that meets the schema's lock held by any session (`session_holder` finds a key whose top bit is
/// set, as most schemas' keys are).
#[tokio::test]
async fn item_19_13_two_schemas_sync_at_once_and_one_schema_keeps_one_sync() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    // Slow enough that each run holds its lock for seconds.
    let sim = fast_simulator(300).await;
    let dir = tempfile::tempdir().unwrap();
    let config = |schema: &str| {
        let path = dir.path().join(format!("{schema}.toml"));
        write_config(&path, &sim, 4.0, &format!("schema = \"{schema}\""));
        path
    };
    let (a, b, c) = (config("rtc_a"), config("rtc_b"), config("rtc_c"));
    let spawn = |config: &Path| {
        with_demo_keys(&mut cmd(dir.path()))
            .args(["sync", "--quiet", "--database-url", &url, "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first_a = spawn(&a);
    let mut first_b = spawn(&b);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        first_a.try_wait().unwrap().is_none() && first_b.try_wait().unwrap().is_none(),
        "both runs hold their schema's lock at once"
    );
    let (code, _, err) = tool(dir.path(), &url, &a, &["sync", "--quiet"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("another run holds the lock") && err.contains("rtc-quality-sync sync"),
        "{err}"
    );

    // Any session holding rtc_c's key: the refused run names it from the server.
    let schema_c = PgSchema::parse("rtc_c").unwrap();
    let key = sync_lock_key(&schema_c);
    assert!(key < 0, "the top bit is set: {key:#x}");
    assert_ne!(key, sync_lock_key(&PgSchema::public()));
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let mut holder = PgConnection::connect_with(&options.application_name("bi-maintenance"))
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(key)
        .execute(&mut holder)
        .await
        .unwrap();
    let (code, _, err) = tool(dir.path(), &url, &c, &["sync", "--quiet"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("another run holds the lock") && err.contains("application bi-maintenance"),
        "{err}"
    );
    holder.close().await.unwrap();

    for (child, schema) in [(first_a, "rtc_a"), (first_b, "rtc_b")] {
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{schema}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut conn = PgConnection::connect(&url).await.unwrap();
    for schema in ["rtc_a", "rtc_b"] {
        let points: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.points"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let runs: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT status FROM {schema}.sync_runs ORDER BY id"
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(points > 0, "{schema}");
        assert_eq!(runs, ["ok"], "{schema}: the refused run wrote nothing");
    }
    assert!(names(&mut conn, "public").await.is_empty());
    sim.shutdown().await;
}

/// A database an earlier run filled in `public`, and a configuration that asks for another schema:
/// every command is refused (exit 1) with the statements that move the tables, and nothing is
/// created. The statements, run as printed, move everything; the next sync keeps every row and
/// fetches only what a plan says (the usual provisional tail), not the horizon again.
#[tokio::test]
async fn item_19_13_tables_in_public_are_refused_for_another_schema_until_moved_as_printed() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let sim = fast_simulator(0).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    write_config(&config, &sim, 50.0, "");
    let (code, _, err) = tool(dir.path(), &url, &config, &["sync", "--quiet"]).await;
    assert_eq!(code, 0, "{err}");
    let backfill = sim.requests().len();
    let store = Store::connect(&url).await.unwrap();
    let before: Vec<MetricRow> = store.metrics(None).await.unwrap();
    let runs_before = store.last_run().await.unwrap().unwrap().id;
    store.close().await;
    assert!(!before.is_empty());

    write_config(&config, &sim, 50.0, "schema = \"rtc_moved\"");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut printed = String::new();
    for args in [
        &["sync", "--quiet"][..],
        &["sync", "--json"],
        &["status"],
        &["status", "--check"],
        &["plan"],
        &["prune", "--dry-run"],
        &["migrate"],
        // `check` still probes the API (so it goes last), and says it on stdout.
        &["check"],
    ] {
        if args[0] == "check" {
            assert_eq!(sim.requests().len(), backfill, "nothing was fetched");
        }
        let (code, out, err) = tool(dir.path(), &url, &config, args).await;
        let said = if args[0] == "check" { &out } else { &err };
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        for part in [
            "the schema \"rtc_moved\" of ",
            "holds none of rtc-quality-sync's tables, but the schema public does",
            "would fetch the whole horizon again",
            "  ALTER TABLE public.sync_ledger SET SCHEMA \"rtc_moved\";",
            "leave [storage] schema out",
        ] {
            assert!(said.contains(part), "{args:?}: {part}: {said}");
        }
        if args == ["sync", "--json"] {
            let json: serde_json::Value = serde_json::from_str(out.trim()).expect("one object");
            assert_eq!(json["exit_code"], 1, "{out}");
        }
        if args == ["sync", "--quiet"] {
            printed = err;
        }
    }
    let probes = sim.requests().len() - backfill;
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'rtc_moved'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(schemas.is_empty(), "a refused command creates nothing");
    assert_eq!(names(&mut conn, "public").await, TOOL_RELATIONS);

    // The statements as printed, from BEGIN; to COMMIT;, in the order printed.
    let statements: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "BEGIN;")
        .take_while(|l| *l != "COMMIT;")
        .chain(["COMMIT;"])
        .collect();
    assert_eq!(statements.len(), 2 + 1 + TOOL_RELATIONS.len(), "{printed}");
    assert_eq!(
        statements[statements.len() - 2],
        "ALTER TABLE public._sqlx_migrations SET SCHEMA \"rtc_moved\";",
        "the migrations' table goes last"
    );
    assert!(statements.contains(&"ALTER VIEW public.quality_metrics SET SCHEMA \"rtc_moved\";"));
    sqlx::raw_sql(&statements.join("\n"))
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(names(&mut conn, "public").await.is_empty());
    assert_eq!(names(&mut conn, "rtc_moved").await, TOOL_RELATIONS);

    // The next sync fetches what the plan says, the provisional tail, and keeps every row.
    let (code, out, err) = tool(dir.path(), &url, &config, &["plan", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let planned = plan["requests"].as_u64().unwrap() as usize;
    assert!(
        planned <= 4,
        "at most one tail window per stream, not the horizon ({backfill} calls): {out}"
    );
    let (code, _, err) = tool(dir.path(), &url, &config, &["sync", "--quiet"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(sim.requests().len() - backfill - probes, planned);
    let store = Store::connect_in(&url, &PgSchema::parse("rtc_moved").unwrap())
        .await
        .unwrap();
    let after = store.metrics(None).await.unwrap();
    let key = |r: &MetricRow| {
        (
            r.app_id.clone(),
            r.room_id.clone(),
            r.indicator.clone(),
            r.granularity.clone(),
            r.ts.clone(),
        )
    };
    let after_keys: std::collections::HashMap<_, &MetricRow> =
        after.iter().map(|r| (key(r), r)).collect();
    for row in &before {
        let kept = after_keys
            .get(&key(row))
            .unwrap_or_else(|| panic!("lost: {row:?}"));
        if row.settled {
            assert_eq!(*kept, row, "a settled point is untouched");
        }
    }
    let last = store.last_run().await.unwrap().unwrap();
    assert_eq!(last.id, runs_before + 1, "the run history moved along");
    store.close().await;
    assert!(names(&mut conn, "public").await.is_empty());
    sim.shutdown().await;
}

/// `demo` into an explicit PostgreSQL `--database-url` puts its tables in the configured schema
/// (a shared database is why one is configured), and its sample query reads them there.
#[tokio::test]
async fn item_19_13_demo_into_postgres_uses_the_configured_schema() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[storage]\nschema = \"rtc_demo\"\n\n[[jobs]]\napp_id = \"a\"\nindicators = [\"stall_rate\"]\n",
    )
    .unwrap();
    let (code, out, err) = run(cmd(dir.path())
        .args([
            "demo",
            "--quiet",
            "--streams",
            "1",
            "--database-url",
            &url,
            "--config",
        ])
        .arg(&config))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("-c 'SET search_path = \"rtc_demo\"' -c \"SELECT"),
        "the sample query reads the schema: {out}"
    );
    let mut conn = PgConnection::connect(&url).await.unwrap();
    assert_eq!(names(&mut conn, "rtc_demo").await, TOOL_RELATIONS);
    assert!(names(&mut conn, "public").await.is_empty());
    let points: i64 = sqlx::query_scalar("SELECT count(*) FROM rtc_demo.quality_metrics")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(points > 0);
}
