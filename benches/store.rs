//! Store benchmark: 1,000,000 points through the store's own interface, against each backend's ceiling.
//!
//! 200 series, 50 windows of 20,000 points, each window one `commit_window` transaction with its
//! ledger row. Per backend and per round (three rounds, medians reported): the ceiling (PostgreSQL:
//! plain binary `COPY` into the emptied keyed `points` table; SQLite: plain multi-row `INSERT` into an
//! empty `points` table, both in the same window-sized transactions), then the store's first load, a
//! re-run with unchanged values and a re-run with every value changed. Rows actually rewritten are
//! measured beside the store's own counts: PostgreSQL by row versions newer than the run's start
//! (and WAL bytes), SQLite by `total_changes()` of the writer minus the ledger's rows.
//!
//! Run with `cargo bench --bench store`. PostgreSQL comes from `BENCH_DATABASE_URL`, else
//! `TEST_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`; a fresh database is created
//! and dropped. The last two lines are the summary, one per backend. `BENCH_BACKENDS=sqlite` runs one.

use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use rtc_quality_sync::domain::{
    Granularity, Point, SeriesKey, SeriesPoints, Window, WindowBatch, WriteCounts,
};
use rtc_quality_sync::store::postgres::CopyEncoder;
use rtc_quality_sync::store::sqlite::format_bucket;
use rtc_quality_sync::store::{PgStore, SqliteStore, Store};
use sqlx::Connection;

const SERIES: usize = 200;
const TOTAL_POINTS: usize = 1_000_000;
const WINDOW_POINTS: usize = 20_000;
const BUCKETS_PER_WINDOW: usize = WINDOW_POINTS / SERIES;
const WINDOWS: usize = TOTAL_POINTS / WINDOW_POINTS;
const ROUNDS: usize = 3;
/// Rows per statement of the SQLite ceiling's plain INSERT (5 binds a row, under the bind limit).
const SQLITE_CEILING_CHUNK: usize = 1024;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run());
}

/// One round's measurements: seconds and rows rewritten.
#[derive(Default, Clone, Copy)]
struct Round {
    ceiling: f64,
    first: f64,
    unchanged: f64,
    changed: f64,
    rewritten_unchanged: i64,
    rewritten_changed: i64,
}

struct Summary {
    name: &'static str,
    rounds: Vec<Round>,
}

impl Summary {
    fn median(&self, f: impl Fn(&Round) -> f64) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    fn report(&self) -> String {
        let rate = |secs: f64| TOTAL_POINTS as f64 / secs;
        let ceiling = rate(self.median(|r| r.ceiling));
        let first = rate(self.median(|r| r.first));
        let unchanged = rate(self.median(|r| r.unchanged));
        let changed = rate(self.median(|r| r.changed));
        println!(
            "{}: ceiling {:.2} M rows/s, first load {:.2} M rows/s, unchanged re-run {:.2} M rows/s, \
             changed re-run {:.2} M rows/s (medians of {})",
            self.name,
            ceiling / 1e6,
            first / 1e6,
            unchanged / 1e6,
            changed / 1e6,
            self.rounds.len()
        );
        let worst_rewritten = self.rounds.iter().map(|r| r.rewritten_unchanged).max();
        format!(
            "store/{} first_load_ratio={:.2} unchanged_ratio={:.2} changed_ratio={:.2} rewritten_unchanged={}",
            self.name,
            first / ceiling,
            unchanged / ceiling,
            changed / ceiling,
            worst_rewritten.unwrap_or(-1)
        )
    }
}

async fn run() {
    println!(
        "store bench: {TOTAL_POINTS} points, {SERIES} series, {WINDOWS} windows of {WINDOW_POINTS} points, {ROUNDS} rounds"
    );
    let data = Data::new();
    // `BENCH_BACKENDS=sqlite` (or `postgres`) runs one backend only, for quicker iterations.
    let only = std::env::var("BENCH_BACKENDS").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|b| b.trim() == name);
    let mut lines = Vec::new();
    if wanted("postgres")
        && let Some(pg) = bench_postgres(&data).await
    {
        lines.push(pg.report());
    }
    if wanted("sqlite") {
        lines.push(bench_sqlite(&data).await.report());
    }
    for l in lines {
        println!("{l}");
    }
}

/// The windows to write: the original values and every value changed.
struct Data {
    original: Vec<WindowBatch>,
    changed: Vec<WindowBatch>,
}

impl Data {
    fn new() -> Data {
        let keys: Vec<SeriesKey> = (0..SERIES)
            .map(|i| SeriesKey {
                app_id: format!("app{}", i % 4),
                room_id: String::new(),
                indicator: format!("indicator_{i:03}"),
                granularity: Granularity::FiveMin,
                product_type: "native".into(),
                os: if i % 2 == 0 {
                    "android,iOS".into()
                } else {
                    String::new()
                },
                access: String::new(),
                user_ids: String::new(),
                dimension: String::new(),
                dimension_value: String::new(),
                grid_timezone: String::new(),
            })
            .collect();
        let base = Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap();
        let make = |offset: f64, fetched_at: DateTime<Utc>| -> Vec<WindowBatch> {
            (0..WINDOWS)
                .map(|w| {
                    let start =
                        base + chrono::Duration::minutes((w * BUCKETS_PER_WINDOW * 5) as i64);
                    let end = start + chrono::Duration::minutes((BUCKETS_PER_WINDOW * 5) as i64);
                    WindowBatch {
                        stream: "bench/5min".into(),
                        indicators: vec!["stall_rate".into()],
                        owners: vec!["stall_rate".into()],
                        window: Window::new(start, end),
                        // Every bucket settled.
                        settled_until: end,
                        scope: keys[0].clone(),
                        timezone: "+08:00".into(),
                        series: keys
                            .iter()
                            .enumerate()
                            .map(|(s, key)| SeriesPoints {
                                key: key.clone(),
                                unit: "%".into(),
                                points: (0..BUCKETS_PER_WINDOW)
                                    .map(|b| Point {
                                        ts: start + chrono::Duration::minutes((b * 5) as i64),
                                        value: ((s * 7919 + w * 104_729 + b * 31) % 10_007) as f64
                                            / 100.0
                                            + offset,
                                    })
                                    .collect(),
                            })
                            .collect(),
                        attempts: 1,
                        request_id: Some(format!("bench-{w}")),
                        fetched_at,
                    }
                })
                .collect()
        };
        Data {
            original: make(0.0, base + chrono::Duration::days(60)),
            changed: make(0.5, base + chrono::Duration::days(61)),
        }
    }
}

/// Commits every window through the store; returns seconds and the summed counts.
async fn load(store: &Store, batches: &[WindowBatch]) -> (f64, WriteCounts) {
    let mut total = WriteCounts::default();
    let started = Instant::now();
    for b in batches {
        total += store.commit_window(b).await.expect("commit_window");
    }
    (started.elapsed().as_secs_f64(), total)
}

fn check(counts: WriteCounts, expected: WriteCounts, what: &str) {
    assert_eq!(counts, expected, "{what}: the store's counts");
}

const ALL_NEW: WriteCounts = WriteCounts {
    inserted: TOTAL_POINTS as u64,
    updated: 0,
    unchanged: 0,
    deleted: 0,
};
const ALL_SAME: WriteCounts = WriteCounts {
    inserted: 0,
    updated: 0,
    unchanged: TOTAL_POINTS as u64,
    deleted: 0,
};
const ALL_CHANGED: WriteCounts = WriteCounts {
    inserted: 0,
    updated: TOTAL_POINTS as u64,
    unchanged: 0,
    deleted: 0,
};

// -------------------------------------------------------------------------------------------------
// PostgreSQL

async fn bench_postgres(data: &Data) -> Option<Summary> {
    let admin_url = std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(e) => {
            println!("postgres: skipped, cannot connect: {e}");
            return None;
        }
    };
    let name = format!("rqs_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    let mut url = url::Url::parse(&admin_url).expect("a database url");
    url.set_path(&format!("/{name}"));
    let store = Store::connect(url.as_str()).await.expect("connect");
    let Store::Postgres(pg) = &store else {
        unreachable!()
    };

    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let mut r = Round::default();
        reset_pg(pg).await;
        r.ceiling = pg_ceiling(pg, &data.original).await;
        reset_pg(pg).await;

        let (secs, c) = load(&store, &data.original).await;
        check(c, ALL_NEW, "first load");
        r.first = secs;

        checkpoint(pg).await;
        let before = pg_marks(pg).await;
        let (secs, c) = load(&store, &data.original).await;
        check(c, ALL_SAME, "unchanged re-run");
        r.unchanged = secs;
        let (rewritten, wal) = pg_written_since(pg, before).await;
        r.rewritten_unchanged = rewritten;
        let wal_unchanged = wal;

        checkpoint(pg).await;
        let before = pg_marks(pg).await;
        let (secs, c) = load(&store, &data.changed).await;
        check(c, ALL_CHANGED, "changed re-run");
        r.changed = secs;
        let (rewritten, wal) = pg_written_since(pg, before).await;
        r.rewritten_changed = rewritten;

        println!(
            "postgres round {}: ceiling {:.3}s, first load {:.3}s, unchanged {:.3}s ({} rows rewritten, {} WAL bytes \
             for {WINDOWS} ledger rows), changed {:.3}s ({} rows rewritten, {} WAL bytes)",
            round + 1,
            r.ceiling,
            r.first,
            r.unchanged,
            r.rewritten_unchanged,
            wal_unchanged,
            r.changed,
            r.rewritten_changed,
            wal
        );
        rounds.push(r);
    }
    store.close().await;
    drop(store);
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    Some(Summary {
        name: "postgres",
        rounds,
    })
}

async fn reset_pg(pg: &PgStore) {
    sqlx::query("TRUNCATE points, series, sync_ledger RESTART IDENTITY")
        .execute(pg.pool())
        .await
        .expect("truncate");
    checkpoint(pg).await;
}

/// Starts each timed phase with no dirty pages left from the one before.
async fn checkpoint(pg: &PgStore) {
    let _ = sqlx::query("CHECKPOINT").execute(pg.pool()).await;
}

/// Plain binary COPY of the same rows into the keyed `points` table, one transaction per window.
async fn pg_ceiling(pg: &PgStore, batches: &[WindowBatch]) -> f64 {
    let mut conn = pg.pool().acquire().await.expect("a connection");
    let started = Instant::now();
    for b in batches {
        let mut enc = CopyEncoder::with_capacity(WINDOW_POINTS * 55);
        for (s, series) in b.series.iter().enumerate() {
            for p in &series.points {
                enc.row(5);
                enc.int8(s as i64 + 1);
                enc.timestamptz(p.ts);
                enc.float8(p.value);
                enc.bool(true);
                enc.timestamptz(b.fetched_at);
            }
        }
        let mut tx = conn.begin().await.expect("begin");
        let mut copy = tx
            .copy_in_raw(
                "COPY points (series_id, ts, value, settled, updated_at) FROM STDIN (FORMAT binary)",
            )
            .await
            .expect("copy");
        copy.send(enc.finish()).await.expect("copy data");
        copy.finish().await.expect("copy finish");
        tx.commit().await.expect("commit");
    }
    started.elapsed().as_secs_f64()
}

/// The next transaction id and the WAL position.
async fn pg_marks(pg: &PgStore) -> (i64, String) {
    sqlx::query_as(
        "SELECT (pg_current_xact_id()::text::bigint % 4294967296), pg_current_wal_insert_lsn()::text",
    )
    .fetch_one(pg.pool())
    .await
    .expect("marks")
}

/// Point rows written (row versions created) since the marks, and WAL bytes written since.
async fn pg_written_since(pg: &PgStore, (xid, lsn): (i64, String)) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM points WHERE xmin::text::bigint > $1), \
         pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $2::pg_lsn)::bigint",
    )
    .bind(xid)
    .bind(lsn)
    .fetch_one(pg.pool())
    .await
    .expect("rewritten rows")
}

// -------------------------------------------------------------------------------------------------
// SQLite

async fn bench_sqlite(data: &Data) -> Summary {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let mut r = Round::default();
        let fresh = |name: String| {
            let url = format!("sqlite://{}", dir.path().join(name).display());
            async move { Store::connect(&url).await.expect("sqlite store") }
        };

        let ceiling_store = fresh(format!("ceiling{round}.db")).await;
        let Store::Sqlite(s) = &ceiling_store else {
            unreachable!()
        };
        r.ceiling = sqlite_ceiling(s, &data.original).await;
        ceiling_store.close().await;

        let store = fresh(format!("store{round}.db")).await;
        let Store::Sqlite(s) = &store else {
            unreachable!()
        };
        let (secs, c) = load(&store, &data.original).await;
        check(c, ALL_NEW, "first load");
        r.first = secs;

        // Each re-run's commits delete one ledger row and insert one per window.
        let ledger_changes = 2 * WINDOWS as i64;
        let before = s.writer_total_changes().await.expect("total_changes");
        let (secs, c) = load(&store, &data.original).await;
        check(c, ALL_SAME, "unchanged re-run");
        r.unchanged = secs;
        r.rewritten_unchanged =
            s.writer_total_changes().await.expect("total_changes") - before - ledger_changes;

        let before = s.writer_total_changes().await.expect("total_changes");
        let (secs, c) = load(&store, &data.changed).await;
        check(c, ALL_CHANGED, "changed re-run");
        r.changed = secs;
        r.rewritten_changed =
            s.writer_total_changes().await.expect("total_changes") - before - ledger_changes;
        store.close().await;

        println!(
            "sqlite round {}: ceiling {:.3}s, first load {:.3}s, unchanged {:.3}s ({} rows rewritten), \
             changed {:.3}s ({} rows rewritten)",
            round + 1,
            r.ceiling,
            r.first,
            r.unchanged,
            r.rewritten_unchanged,
            r.changed,
            r.rewritten_changed
        );
        rounds.push(r);
    }
    Summary {
        name: "sqlite",
        rounds,
    }
}

/// Plain multi-row INSERT of the same rows into the empty `points` table, one transaction per window.
async fn sqlite_ceiling(s: &SqliteStore, batches: &[WindowBatch]) -> f64 {
    let mut conn = s.pool().acquire().await.expect("a connection");
    // The series the points refer to (the foreign key), untimed.
    for i in 0..SERIES {
        sqlx::query(
            "INSERT INTO series (id, app_id, room_id, indicator, unit, granularity, product_type, os, \
             access, user_ids) VALUES (?1, 'a', '', ?2, '%', '5min', 'native', '', '', '')",
        )
        .bind(i as i64 + 1)
        .bind(format!("i{i}"))
        .execute(&mut *conn)
        .await
        .expect("series");
    }
    let sql = |rows: usize| {
        let mut sql =
            String::from("INSERT INTO points (series_id, ts, value, settled, updated_at) VALUES ");
        for r in 0..rows {
            sql.push_str(if r == 0 {
                "(?,?,?,?,?)"
            } else {
                ",(?,?,?,?,?)"
            });
        }
        sql
    };
    let full = sql(SQLITE_CEILING_CHUNK);
    let started = Instant::now();
    for b in batches {
        let updated_at = b
            .fetched_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let rows: Vec<(i64, i64, f64)> = b
            .series
            .iter()
            .enumerate()
            .flat_map(|(s, series)| {
                series
                    .points
                    .iter()
                    .map(move |p| (s as i64 + 1, p.ts.timestamp(), p.value))
            })
            .collect();
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.expect("begin");
        for chunk in rows.chunks(SQLITE_CEILING_CHUNK) {
            let text;
            let mut q = sqlx::query(if chunk.len() == SQLITE_CEILING_CHUNK {
                full.as_str()
            } else {
                text = sql(chunk.len());
                text.as_str()
            });
            for &(id, ts, value) in chunk {
                q = q
                    .bind(id)
                    .bind(format_bucket(ts))
                    .bind(value)
                    .bind(true)
                    .bind(updated_at.as_str());
            }
            q.execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    let secs = started.elapsed().as_secs_f64();
    // Sanity: everything landed.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM points")
        .fetch_one(&mut *conn)
        .await
        .expect("count");
    assert_eq!(n as usize, TOTAL_POINTS);
    secs
}
