//! The checkpoint ledger, the runs table and the coverage view: each statement written once for both
//! backends.
//!
//! The statements use `$N` placeholders, which SQLite reads as well as PostgreSQL, and bind times as
//! [`Bound`] or [`Instant`], which each backend encodes its own way. [`on!`] runs the one piece of code
//! on whichever backend's handle it is given, type-checked for each.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::sqlite::{SqliteConnection, SqlitePool};

use super::time::{Bound, Instant};
use super::{CoverageRow, MetricRow, Result, RunRow, StoreError, db, decode};
use crate::domain::{FailedWindow, LedgerEntry, RunCounts, RunStatus, WindowBatch};

/// One backend's handle for a statement written once.
pub(super) enum On<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// A connection inside a window's transaction.
pub(super) type Conn<'a> = On<&'a mut SqliteConnection, &'a mut PgConnection>;
/// Where reads go: the reader pools.
pub(super) type Pools<'a> = On<&'a SqlitePool, &'a PgPool>;
/// Where writes outside a window go: SQLite's one writer connection, PostgreSQL's pool.
pub(super) type Writer<'a> = On<&'a mut SqliteConnection, &'a PgPool>;

/// Runs `$body` with `$e` bound to the backend's handle: one text, compiled once per backend.
macro_rules! on {
    ($on:expr, $e:ident => $body:expr) => {
        match $on {
            On::Sqlite($e) => $body,
            On::Postgres($e) => $body,
        }
    };
}

/// Runs a read on either backend's pool and decodes every row with `$decode`.
macro_rules! read_all {
    ($pools:expr, $query:expr, $action:literal, $decode:path) => {
        on!($pools, e => {
            let rows = $query.fetch_all(e).await.map_err(db($action))?;
            rows.iter().map($decode).collect::<Result<Vec<_>>>()
        })
    };
}

const READ_LEDGER: &str = "SELECT stream, window_start, window_end, state, points, attempts, \
     last_error, request_id, fetched_at FROM sync_ledger WHERE CAST($1 AS TEXT) IS NULL OR stream = $1 \
     ORDER BY stream, window_start, window_end";

const DELETE_INSIDE: &str =
    "DELETE FROM sync_ledger WHERE stream = $1 AND window_start >= $2 AND window_end <= $3";

const INSERT_WINDOW: &str = "INSERT INTO sync_ledger (stream, window_start, window_end, state, \
     points, attempts, last_error, request_id, fetched_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)";

const UPSERT_FAILED: &str = "INSERT INTO sync_ledger (stream, window_start, window_end, state, \
     points, attempts, last_error, request_id, fetched_at) VALUES ($1, $2, $3, 'failed', 0, $4, $5, $6, $7) \
     ON CONFLICT (stream, window_start, window_end) DO UPDATE SET state = 'failed', points = 0, \
     attempts = excluded.attempts, last_error = excluded.last_error, \
     request_id = excluded.request_id, fetched_at = excluded.fetched_at";

const START_RUN: &str =
    "INSERT INTO sync_runs (mode, started_at, status) VALUES ($1, $2, 'running') RETURNING id";

const FINISH_RUN: &str = "UPDATE sync_runs SET finished_at = $2, status = $3, requests = $4, \
     retries = $5, throttled = $6, points_inserted = $7, points_updated = $8, points_unchanged = $9, \
     windows_ok = $10, windows_failed = $11 WHERE id = $1";

// The caller holds the sync lock, so a run still `running` is dead. What can be known of it comes
// from the ledger rows it left: those fetched since it started and before any later run started
// (a window committed in two parts is two rows with one `fetched_at`). Its calls and point counts are
// not known and stay 0; `finished_at` stays NULL, since when it died is not known either.
const ABANDON_RUNS: &str = "UPDATE sync_runs SET status = 'abandoned', \
     windows_ok = (SELECT count(DISTINCT l.stream || ' ' || CAST(l.fetched_at AS TEXT)) \
     FROM sync_ledger l WHERE l.state <> 'failed' AND l.fetched_at >= sync_runs.started_at AND NOT EXISTS \
     (SELECT 1 FROM sync_runs n WHERE n.id > sync_runs.id AND n.started_at <= l.fetched_at)), \
     windows_failed = (SELECT count(*) FROM sync_ledger l \
     WHERE l.state = 'failed' AND l.fetched_at >= sync_runs.started_at AND NOT EXISTS \
     (SELECT 1 FROM sync_runs n WHERE n.id > sync_runs.id AND n.started_at <= l.fetched_at)) \
     WHERE status = 'running' RETURNING id";

const LAST_RUN: &str = "SELECT id, mode, started_at, finished_at, status, requests, retries, \
     throttled, points_inserted, points_updated, points_unchanged, windows_ok, windows_failed \
     FROM sync_runs ORDER BY id DESC LIMIT 1";

const LAST_SUCCESSFUL_RUN: &str = "SELECT id, mode, started_at, finished_at, status, requests, \
     retries, throttled, points_inserted, points_updated, points_unchanged, windows_ok, \
     windows_failed FROM sync_runs WHERE status = 'ok' ORDER BY id DESC LIMIT 1";

const COVERAGE: &str = "SELECT stream, settled_through, provisional_windows, failed_windows, points, \
     last_run_at FROM sync_coverage ORDER BY stream";

const SQLITE_METRICS: &str = "SELECT app_id, room_id, indicator, unit, granularity, product_type, \
     os, access, user_ids, ts, value, settled, updated_at \
     FROM quality_metrics ORDER BY ts DESC, app_id, room_id, indicator LIMIT $1";

// The only statement in two dialects: PostgreSQL renders its times as the text SQLite stores.
const POSTGRES_METRICS: &str = "SELECT app_id, room_id, indicator, unit, granularity, product_type, \
     os, access, user_ids, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), value, \
     settled, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
     FROM quality_metrics ORDER BY ts DESC, app_id, room_id, indicator LIMIT $1";

/// The ledger rows, of one stream or all, ordered by stream and window start.
pub(super) async fn read(pools: Pools<'_>, stream: Option<&str>) -> Result<Vec<LedgerEntry>> {
    read_all!(
        pools,
        sqlx::query(READ_LEDGER).bind(stream),
        "reading the ledger",
        decode::ledger_entry
    )
}

/// Inside a window's transaction: replaces the stream's ledger rows that lie within the batch's
/// window with the batch's one row (`settled` or `provisional`).
pub(super) async fn replace_window(conn: Conn<'_>, batch: &WindowBatch, points: i64) -> Result<()> {
    let state = if batch.settled {
        "settled"
    } else {
        "provisional"
    };
    on!(conn, e => {
        sqlx::query(DELETE_INSIDE)
            .bind(&batch.stream)
            .bind(Bound(batch.window.start))
            .bind(Bound(batch.window.end))
            .execute(&mut *e)
            .await
            .map_err(db("replacing ledger rows"))?;
        sqlx::query(INSERT_WINDOW)
            .bind(&batch.stream)
            .bind(Bound(batch.window.start))
            .bind(Bound(batch.window.end))
            .bind(state)
            .bind(points)
            .bind(batch.attempts)
            .bind(batch.request_id.as_deref())
            .bind(Instant(batch.fetched_at))
            .execute(e)
            .await
            .map_err(db("writing the ledger row"))?;
    });
    Ok(())
}

/// Records a failed attempt at exactly this window; other ledger rows and the points stay.
pub(super) async fn record_failure(writer: Writer<'_>, failed: &FailedWindow<'_>) -> Result<()> {
    on!(writer, e => {
        sqlx::query(UPSERT_FAILED)
            .bind(failed.stream)
            .bind(Bound(failed.window.start))
            .bind(Bound(failed.window.end))
            .bind(failed.attempts)
            .bind(failed.error)
            .bind(failed.request_id)
            .bind(Instant(failed.fetched_at))
            .execute(e)
            .await
            .map_err(db("recording a failed window"))?;
    });
    Ok(())
}

/// Adds a run in state `running` and returns its id.
pub(super) async fn start_run(
    writer: Writer<'_>,
    mode: &str,
    started_at: DateTime<Utc>,
) -> Result<i64> {
    on!(writer, e => {
        sqlx::query_scalar(START_RUN)
            .bind(mode)
            .bind(Instant(started_at))
            .fetch_one(e)
            .await
            .map_err(db("recording the run's start"))
    })
}

/// Marks every run still `running` as `abandoned` (the caller holds the lock, so they are dead),
/// with the windows their ledger rows show; returns their ids.
pub(super) async fn abandon_unfinished_runs(writer: Writer<'_>) -> Result<Vec<i64>> {
    let mut ids: Vec<i64> = on!(writer, e => {
        sqlx::query_scalar(ABANDON_RUNS)
            .fetch_all(e)
            .await
            .map_err(db("marking unfinished runs abandoned"))?
    });
    ids.sort_unstable();
    Ok(ids)
}

/// Completes a run with its status and counts.
pub(super) async fn finish_run(
    writer: Writer<'_>,
    id: i64,
    status: RunStatus,
    counts: &RunCounts,
    finished_at: DateTime<Utc>,
) -> Result<()> {
    let affected = on!(writer, e => {
        sqlx::query(FINISH_RUN)
            .bind(id)
            .bind(Instant(finished_at))
            .bind(status.as_str())
            .bind(counts.requests as i64)
            .bind(counts.retries as i64)
            .bind(counts.throttled as i64)
            .bind(counts.points.inserted as i64)
            .bind(counts.points.updated as i64)
            .bind(counts.points.unchanged as i64)
            .bind(counts.windows_ok as i64)
            .bind(counts.windows_failed as i64)
            .execute(e)
            .await
            .map_err(db("recording the run's end"))?
            .rows_affected()
    });
    if affected == 0 {
        return Err(StoreError::Corrupt {
            what: "run id (no such run)",
            value: id.to_string(),
        });
    }
    Ok(())
}

/// The most recently started run, of any status or of `ok` runs only.
pub(super) async fn last_run(pools: Pools<'_>, ok_only: bool) -> Result<Option<RunRow>> {
    let sql = if ok_only {
        LAST_SUCCESSFUL_RUN
    } else {
        LAST_RUN
    };
    let runs = read_all!(
        pools,
        sqlx::query(sql),
        "reading the last run",
        decode::run_row
    )?;
    Ok(runs.into_iter().next())
}

/// The `sync_coverage` view, ordered by stream.
pub(super) async fn coverage(pools: Pools<'_>) -> Result<Vec<CoverageRow>> {
    read_all!(
        pools,
        sqlx::query(COVERAGE),
        "reading sync_coverage",
        decode::coverage_row
    )
}

/// Rows of the `quality_metrics` view, newest first; all of them when `limit` is `None`. Times are
/// rendered as SQLite stores them, so both backends compare equal.
pub(super) async fn metrics(pools: Pools<'_>, limit: Option<i64>) -> Result<Vec<MetricRow>> {
    let sql = match pools {
        On::Sqlite(_) => SQLITE_METRICS,
        On::Postgres(_) => POSTGRES_METRICS,
    };
    let limit = limit.unwrap_or(i64::MAX);
    read_all!(
        pools,
        sqlx::query(sql).bind(limit),
        "reading quality_metrics",
        decode::metric_row
    )
}
