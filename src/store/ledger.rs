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
use super::{
    Assessed, CoverageRow, DistributionRow, MetricRow, Result, RunRow, StoreError, db, decode,
};
use crate::domain::{
    Deferred, FailedWindow, LedgerEntry, RunCounts, RunStatus, SeriesKey, Window, WindowBatch,
    WindowState,
};
use crate::planner;

/// What a run assessed of a stream (`health::assess`), as `sync_streams` keeps it for `status`,
/// `sync_coverage` and the metrics, and what the run deferred of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub settled_through: Option<DateTime<Utc>>,
    pub complete_through: Option<DateTime<Utc>>,
    pub missing_buckets: i64,
    pub deferred: Deferred,
}

/// A `sync_streams` row: its key, its label and the account that asked it (`None`: stored before
/// accounts were recorded).
pub type StoredStream = (String, String, Option<String>);

/// One backend's handle for a statement written once.
pub(super) enum On<S, P> {
    Sqlite(S),
    Postgres(P),
}

impl<S, P> On<S, P> {
    /// Of a statement spelled for each backend (`[SQLite, PostgreSQL]`), this backend's.
    pub(super) fn pick<T>(&self, [sqlite, postgres]: [T; 2]) -> T {
        match self {
            On::Sqlite(_) => sqlite,
            On::Postgres(_) => postgres,
        }
    }
}

impl<S, P> On<&mut S, &mut P> {
    /// The same handle, borrowed again: one transaction's connection through several statements.
    pub(super) fn reborrow(&mut self) -> On<&mut S, &mut P> {
        match self {
            On::Sqlite(s) => On::Sqlite(&mut **s),
            On::Postgres(p) => On::Postgres(&mut **p),
        }
    }
}

/// A connection inside a window's transaction.
pub(super) type Conn<'a> = On<&'a mut SqliteConnection, &'a mut PgConnection>;
/// Where reads go: the reader pools.
pub(super) type Pools<'a> = On<&'a SqlitePool, &'a PgPool>;
/// Where writes outside a window go: SQLite's one writer connection, a pooled PostgreSQL connection.
pub(super) type Writer<'a> = On<&'a mut SqliteConnection, &'a mut PgConnection>;

/// Runs `$body` with `$e` bound to the backend's handle: one text, compiled once per backend.
macro_rules! on {
    ($on:expr, $e:ident => $body:expr) => {
        match $on {
            On::Sqlite($e) => $body,
            On::Postgres($e) => $body,
        }
    };
}
pub(super) use on;

/// Adds the ledger row `$r` on the connection `$e`; a row with the same key is kept.
macro_rules! insert_row {
    ($e:expr, $r:expr) => {{
        let r: &LedgerEntry = $r;
        sqlx::query(INSERT_ROW)
            .bind(r.stream.as_ref())
            .bind(r.indicator.as_str())
            .bind(Bound(r.window.start))
            .bind(Bound(r.window.end))
            .bind(r.state.as_str())
            .bind(r.points)
            .bind(r.attempts)
            .bind(r.last_error.as_deref())
            .bind(r.request_id.as_deref())
            .bind(Instant(r.fetched_at))
            .execute($e)
            .await
            .map_err(db("writing a ledger row"))?;
    }};
}

/// Binds what a query's series share (`$1` to `$8`: app, room, granularity, product type, os,
/// access, users, dimension) of the scope `$s`.
macro_rules! bind_scope {
    ($q:expr, $s:expr) => {{
        let s: &SeriesKey = $s;
        $q.bind(&s.app_id)
            .bind(&s.room_id)
            .bind(s.granularity.as_str())
            .bind(&s.product_type)
            .bind(&s.os)
            .bind(&s.access)
            .bind(&s.user_ids)
            .bind(&s.dimension)
    }};
}

/// Runs a read on either backend's pool and decodes every row with `$decode` as it arrives: the
/// backend's rows are never all held at once beside what they decode to (a ledger of many room
/// streams would hold both).
macro_rules! read_all {
    ($pools:expr, $query:expr, $action:literal, $decode:path) => {
        on!($pools, e => async {
            use futures::TryStreamExt as _;
            let mut rows = $query.fetch(e);
            let mut out = Vec::new();
            while let Some(row) = rows.try_next().await.map_err(db($action))? {
                out.push($decode(&row)?);
            }
            Ok::<_, StoreError>(out)
        }
        .await)
    };
}

/// A read whose rows come packed: `SELECT $keys, <a JSON array of [$columns] per group, ordered
/// by $order> FROM $from`, as `[SQLite, PostgreSQL]` (each spells the aggregate its way; pick one
/// with [`On::pick`]). sqlx's SQLite driver hands each row over from its worker thread with a
/// wake-up, about 10 µs a row: thousands of small rows cost more than their reading, a few packed
/// ones do not.
macro_rules! packed_sql {
    ($keys:literal, [$columns:expr $(, ORDER BY $order:literal)?], $from:literal) => {
        [
            concat!(
                "SELECT ", $keys, ", json_group_array(json_array(", $columns, ")",
                $(" ORDER BY ", $order,)? ") FROM ", $from
            ),
            concat!(
                "SELECT ", $keys, ", CAST(json_agg(json_build_array(", $columns, ")",
                $(" ORDER BY ", $order,)? ") AS TEXT) FROM ", $from
            ),
        ]
    };
}
pub(super) use packed_sql;

/// The ledger, one row per stream, its rows in key order ([`decode::ledger_rows`] reads them).
const READ_LEDGER: [&str; 2] = packed_sql!(
    "stream",
    [
        "indicator, window_start, window_end, state, points, attempts, last_error, request_id, \
         fetched_at",
        ORDER BY "indicator, window_start, window_end, state"
    ],
    "sync_ledger WHERE CAST($1 AS TEXT) IS NULL OR stream = $1 GROUP BY stream ORDER BY stream"
);

// Failed rows and refetch marks: what a successful fetch of a window supersedes where it covers them.
const OPEN_OVERLAPPING: &str = "SELECT stream, indicator, window_start, window_end, state, points, \
     attempts, last_error, request_id, fetched_at FROM sync_ledger \
     WHERE stream = $1 AND indicator = $2 AND state IN ('failed', 'refetch') \
     AND window_start < $4 AND window_end > $3";

const DELETE_OPEN_OVERLAPPING: &str = "DELETE FROM sync_ledger WHERE stream = $1 AND indicator = $2 \
     AND state IN ('failed', 'refetch') AND window_start < $4 AND window_end > $3";

// The stored series of one query (all but the returned name and the dimension value).
const SCOPE_SERIES: &str = "SELECT id, indicator FROM series WHERE app_id = $1 AND room_id = $2 \
     AND granularity = $3 AND product_type = $4 AND os = $5 AND access = $6 AND user_ids = $7 \
     AND dimension = $8 AND grid_timezone = $9";

const DELETE_INSIDE: &str = "DELETE FROM sync_ledger WHERE stream = $1 AND indicator = $2 \
     AND window_start >= $3 AND window_end <= $4";

const DELETE_ROW: &str = "DELETE FROM sync_ledger WHERE stream = $1 AND indicator = $2 \
     AND window_start = $3 AND window_end = $4 AND state = $5";

const INSERT_ROW: &str = "INSERT INTO sync_ledger (stream, indicator, window_start, window_end, \
     state, points, attempts, last_error, request_id, fetched_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING";

const UPSERT_FAILED: &str = "INSERT INTO sync_ledger (stream, indicator, window_start, window_end, \
     state, points, attempts, last_error, request_id, fetched_at) \
     VALUES ($1, $2, $3, $4, 'failed', 0, $5, $6, $7, $8) \
     ON CONFLICT (stream, indicator, window_start, window_end, state) DO UPDATE SET \
     attempts = excluded.attempts, last_error = excluded.last_error, \
     request_id = excluded.request_id, fetched_at = excluded.fetched_at";

/// Another stream that had this label (its query changed under the same job name) keeps its rows and
/// is relabeled, so that `status` lists it apart as no longer configured.
const RELABEL_REPLACED: &str =
    "UPDATE sync_streams SET label = label || $3 WHERE label = $2 AND stream <> $1";

const UPSERT_STREAM: &str = "INSERT INTO sync_streams (stream, label, account) VALUES ($1, $2, $3) \
     ON CONFLICT (stream) DO UPDATE SET label = excluded.label, \
     account = coalesce(excluded.account, sync_streams.account)";

// Series stored before grids were recorded: a `1d` one is adopted on the configured grid.
const ADOPT_DAY_GRIDS: &str = "UPDATE series SET grid_timezone = $1, timezone = $1 \
     WHERE grid_timezone = '' AND granularity = '1d'";

// A `5min` series shows the configured offset (its buckets are the same in every offset).
const FOLLOW_TIMEZONE: &str =
    "UPDATE series SET timezone = $1 WHERE granularity = '5min' AND timezone <> $1";

const EVIDENCE: &str = "SELECT s.indicator, count(*) FROM series s \
     JOIN points p ON p.series_id = s.id \
     WHERE s.app_id = $1 AND s.room_id = $2 AND s.granularity = $3 AND s.product_type = $4 \
     AND s.os = $5 AND s.access = $6 AND s.user_ids = $7 AND s.dimension = $8 \
     AND s.grid_timezone IN ($9, '') AND p.ts >= $10 AND p.ts < $11 GROUP BY s.indicator";

const DELETE_STREAM: &str = "DELETE FROM sync_streams WHERE stream = $1";

const DELETE_STREAM_ROWS: &str = "DELETE FROM sync_ledger WHERE stream = $1";

const ASSESS_STREAM: &str = "UPDATE sync_streams SET settled_through = $2, missing_buckets = $3, \
     assessed_at = $4, complete_through = $5, deferred_windows = $6, deferred_reason = $7 \
     WHERE stream = $1";

const LAST_CALLS: &str = "SELECT action, last_call_at FROM sync_pacing WHERE account = $1";

const RECORD_LAST_CALL: &str = "INSERT INTO sync_pacing (account, action, last_call_at) \
     VALUES ($1, $2, $3) ON CONFLICT (account, action) DO UPDATE SET last_call_at = excluded.last_call_at";

const ASSESSED: &str = "SELECT label, complete_through, deferred_windows, deferred_reason, \
     missing_buckets FROM sync_streams ORDER BY label";

const START_RUN: &str = "INSERT INTO sync_runs (mode, started_at, status, account) \
     VALUES ($1, $2, 'running', $3) RETURNING id";

const FINISH_RUN: &str = "UPDATE sync_runs SET finished_at = $2, status = $3, requests = $4, \
     retries = $5, throttled = $6, points_inserted = $7, points_updated = $8, points_unchanged = $9, \
     windows_ok = $10, windows_failed = $11, points_deleted = $12 WHERE id = $1";

const RUNNING_RUNS: &str = "SELECT id, account FROM sync_runs WHERE status = 'running' ORDER BY id";

/// The ledger rows `l` of the run `sync_runs` (in an `UPDATE sync_runs`): those fetched since it
/// started and before any later run of its account started (a window committed in two parts is two
/// rows with one `fetched_at`), of streams its account asks. A run without an account (an earlier
/// version's) owns every stream and is bounded by any later run, as it ran alone.
macro_rules! rows_of_the_run {
    () => {
        "l.fetched_at >= sync_runs.started_at \
         AND (sync_runs.account IS NULL OR l.stream IN \
         (SELECT s.stream FROM sync_streams s WHERE s.account = sync_runs.account)) \
         AND NOT EXISTS (SELECT 1 FROM sync_runs n WHERE n.id > sync_runs.id \
         AND n.started_at <= l.fetched_at \
         AND (n.account IS NULL OR sync_runs.account IS NULL OR n.account = sync_runs.account))"
    };
}

// A dead run (the caller decided so from the locks) is marked with what can be known of it: the
// windows its ledger rows show. Its calls and point counts are not known and stay 0; `finished_at`
// stays NULL, since when it died is not known either.
const ABANDON_RUN: &str = concat!(
    "UPDATE sync_runs SET status = 'abandoned', \
     windows_ok = (SELECT count(DISTINCT l.stream || ' ' || CAST(l.fetched_at AS TEXT)) \
     FROM sync_ledger l WHERE l.state <> 'failed' AND ",
    rows_of_the_run!(),
    "), windows_failed = (SELECT count(*) FROM sync_ledger l WHERE l.state = 'failed' AND ",
    rows_of_the_run!(),
    ") WHERE id = $1 AND status = 'running' RETURNING id"
);

const RECORD_CALL: &str = "INSERT INTO sync_calls (account, action, sent_at) VALUES ($1, $2, $3)";

const CALLS_SINCE: &str = "SELECT sent_at FROM sync_calls \
     WHERE account = $1 AND action = $2 AND sent_at > $3 ORDER BY sent_at";

const CALLS_AFTER: &str = "SELECT account, action, count(*) FROM sync_calls WHERE sent_at > $1 \
     GROUP BY account, action ORDER BY account, action";

const FORGET_CALLS: &str = "DELETE FROM sync_calls WHERE sent_at < $1";

const LAST_RUN: &str = "SELECT id, mode, started_at, finished_at, status, requests, retries, \
     throttled, points_inserted, points_updated, points_unchanged, windows_ok, windows_failed, \
     points_deleted, account FROM sync_runs WHERE CAST($1 AS TEXT) IS NULL OR account = $1 \
     ORDER BY id DESC LIMIT 1";

const LAST_SUCCESSFUL_RUN: &str = "SELECT id, mode, started_at, finished_at, status, requests, \
     retries, throttled, points_inserted, points_updated, points_unchanged, windows_ok, \
     windows_failed, points_deleted, account FROM sync_runs WHERE status = 'ok' \
     ORDER BY id DESC LIMIT 1";

const STREAM_LABELS: &str = "SELECT stream, label FROM sync_streams ORDER BY stream";

const STREAM_ACCOUNTS: &str =
    "SELECT stream, label, account FROM sync_streams ORDER BY label, stream";

// The series a stored stream's query holds, any grid when `$9` is NULL, with their point counts.
const QUERY_SERIES: &str = "SELECT s.id, s.indicator, s.dimension_value, s.grid_timezone, \
     (SELECT count(*) FROM points p WHERE p.series_id = s.id) FROM series s \
     WHERE s.app_id = $1 AND s.room_id = $2 AND s.granularity = $3 AND s.product_type = $4 \
     AND s.os = $5 AND s.access = $6 AND s.user_ids = $7 AND s.dimension = $8 \
     AND (CAST($9 AS TEXT) IS NULL OR s.grid_timezone = $9)";

const COVERAGE: &str = "SELECT stream, settled_through, provisional_windows, failed_windows, points, \
     last_run_at, missing_buckets FROM sync_coverage";

const SQLITE_METRICS: &str = "SELECT app_id, room_id, indicator, unit, granularity, product_type, \
     os, access, user_ids, ts, value, settled, updated_at, timezone, local_date \
     FROM quality_metrics ORDER BY ts DESC, app_id, room_id, indicator LIMIT $1";

// The only statement in two dialects: PostgreSQL renders its times as the text SQLite stores.
const POSTGRES_METRICS: &str = "SELECT app_id, room_id, indicator, unit, granularity, product_type, \
     os, access, user_ids, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), value, \
     settled, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
     timezone, to_char(local_date, 'YYYY-MM-DD') FROM quality_metrics ORDER BY ts DESC, app_id, room_id, indicator LIMIT $1";

// `quality_distribution` in the same two dialects: `updated_at` with microseconds, exactly the text SQLite
// stores. Ordered by its whole unique key, in byte order on both backends (PostgreSQL's `C` collation is
// SQLite's `BINARY`), so the two return the same order.
const SQLITE_DISTRIBUTION: &str = "SELECT app_id, indicator, dimension, dimension_value, product_type, \
     ts, value, settled, updated_at, timezone, local_date FROM quality_distribution \
     ORDER BY ts DESC, app_id, indicator, dimension, dimension_value, product_type LIMIT $1";

const POSTGRES_DISTRIBUTION: &str = "SELECT app_id, indicator, dimension, dimension_value, \
     product_type, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), value, settled, \
     to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), timezone, \
     to_char(local_date, 'YYYY-MM-DD') FROM quality_distribution ORDER BY ts DESC, app_id COLLATE \"C\", indicator COLLATE \"C\", \
     dimension COLLATE \"C\", dimension_value COLLATE \"C\", product_type COLLATE \"C\" LIMIT $1";

/// The ledger rows, of one stream or all, ordered by stream and window start.
pub(super) async fn read(pools: Pools<'_>, stream: Option<&str>) -> Result<Vec<LedgerEntry>> {
    let sql = pools.pick(READ_LEDGER);
    let mut out = Vec::new();
    on!(pools, e => {
        use futures::TryStreamExt as _;
        let mut rows = sqlx::query(sql).bind(stream).fetch(e);
        while let Some(row) = rows.try_next().await.map_err(db("reading the ledger"))? {
            decode::ledger_rows(&row, &mut out)?;
        }
    });
    Ok(out)
}

/// What a successful fetch records in the ledger: the stream, the window and the indicators the call
/// asked, and the call itself. A window of points ([`WindowBatch`]) and a listed range of calls
/// (`store::rooms`) are recorded alike.
pub(super) struct Fetched<'a> {
    pub stream: &'a str,
    pub window: Window,
    pub indicators: &'a [String],
    pub attempts: i64,
    pub request_id: Option<&'a str>,
    pub fetched_at: DateTime<Utc>,
}

impl<'a> From<&'a WindowBatch> for Fetched<'a> {
    fn from(batch: &'a WindowBatch) -> Fetched<'a> {
        Fetched {
            stream: &batch.stream,
            window: batch.window,
            indicators: &batch.indicators,
            attempts: batch.attempts,
            request_id: batch.request_id.as_deref(),
            fetched_at: batch.fetched_at,
        }
    }
}

/// Inside a window's transaction, per indicator the call asked: the failed rows and refetch marks
/// the window covers are superseded (one reaching beyond the window keeps only what lies outside
/// it), the rows that lie within the window are replaced, and a row is added per part of the window
/// (`parts`: its settled part and its provisional tail, with each indicator's point count, in the
/// order of `fetched.indicators`).
pub(super) async fn replace_window(
    conn: Conn<'_>,
    fetched: &Fetched<'_>,
    parts: &[(Window, WindowState, Vec<i64>)],
) -> Result<()> {
    let w = fetched.window;
    on!(conn, e => {
        for (i, indicator) in fetched.indicators.iter().enumerate() {
            let open = sqlx::query(OPEN_OVERLAPPING)
                .bind(fetched.stream)
                .bind(indicator)
                .bind(Bound(w.start))
                .bind(Bound(w.end))
                .fetch_all(&mut *e)
                .await
                .map_err(db("reading failed ledger rows"))?
                .iter()
                .map(decode::ledger_entry)
                .collect::<Result<Vec<_>>>()?;
            sqlx::query(DELETE_OPEN_OVERLAPPING)
                .bind(fetched.stream)
                .bind(indicator)
                .bind(Bound(w.start))
                .bind(Bound(w.end))
                .execute(&mut *e)
                .await
                .map_err(db("superseding failed ledger rows"))?;
            sqlx::query(DELETE_INSIDE)
                .bind(fetched.stream)
                .bind(indicator)
                .bind(Bound(w.start))
                .bind(Bound(w.end))
                .execute(&mut *e)
                .await
                .map_err(db("replacing ledger rows"))?;
            let rows = parts.iter().map(|(window, state, points)| LedgerEntry {
                stream: fetched.stream.into(),
                indicator: indicator.clone(),
                window: *window,
                state: *state,
                points: points[i],
                attempts: fetched.attempts,
                last_error: None,
                request_id: fetched.request_id.map(str::to_string),
                fetched_at: fetched.fetched_at,
            });
            let rest = open.iter().flat_map(|f| {
                planner::subtract(f.window, vec![w])
                    .into_iter()
                    .map(|window| LedgerEntry { window, ..f.clone() })
            });
            for r in rows.chain(rest) {
                insert_row!(&mut *e, &r);
            }
        }
    });
    Ok(())
}

/// `(id, returned name)` of every stored series in `scope` (a key whose `indicator` and
/// `dimension_value` are ignored).
pub(super) async fn scope_series(conn: Conn<'_>, scope: &SeriesKey) -> Result<Vec<(i64, String)>> {
    on!(conn, e => {
        bind_scope!(sqlx::query_as(SCOPE_SERIES), scope)
            .bind(&scope.grid_timezone)
            .fetch_all(e)
            .await
            .map_err(db("looking up the stream's series"))
    })
}

/// Marks these windows to be fetched again (`sync --refetch`), before the run's first call; a row
/// already there is kept.
pub(super) async fn mark_refetch(writer: Writer<'_>, rows: &[LedgerEntry]) -> Result<()> {
    on!(writer, e => {
        // All or none: a run killed while marking has made no call yet, and plans it all again.
        let mut tx = sqlx::Connection::begin(e)
            .await
            .map_err(db("starting a transaction"))?;
        for r in rows {
            debug_assert_eq!(r.state, WindowState::Refetch);
            insert_row!(&mut *tx, r);
        }
        tx.commit().await.map_err(db("marking windows to fetch again"))?;
    });
    Ok(())
}

/// Records a failed attempt at exactly this window, one row per indicator the call asked; the other
/// rows (a settled row of the same window too) and the points stay.
pub(super) async fn record_failure(writer: Writer<'_>, failed: &FailedWindow<'_>) -> Result<()> {
    on!(writer, e => {
        for indicator in failed.indicators {
            sqlx::query(UPSERT_FAILED)
                .bind(failed.stream)
                .bind(indicator)
                .bind(Bound(failed.window.start))
                .bind(Bound(failed.window.end))
                .bind(failed.attempts)
                .bind(failed.error)
                .bind(failed.request_id)
                .bind(Instant(failed.fetched_at))
                .execute(&mut *e)
                .await
                .map_err(db("recording a failed window"))?;
        }
    });
    Ok(())
}

/// Names the run's streams by what they ask: a stream's label follows its job's name, and a stream
/// whose label (or one of its aliases, rule 6) a new query of the same job takes is relabeled
/// `<label> (replaced <date>)`. The account that asks is recorded with each.
pub(super) async fn register_streams(
    writer: Writer<'_>,
    streams: &[(String, String, Vec<String>)],
    replaced_suffix: &str,
    account: Option<&str>,
) -> Result<()> {
    on!(writer, e => {
        for (key, label, aliases) in streams {
            for taken in std::iter::once(label).chain(aliases) {
                sqlx::query(RELABEL_REPLACED)
                    .bind(key)
                    .bind(taken)
                    .bind(replaced_suffix)
                    .execute(&mut *e)
                    .await
                    .map_err(db("relabeling a replaced stream"))?;
            }
            sqlx::query(UPSERT_STREAM)
                .bind(key)
                .bind(label)
                .bind(account)
                .execute(&mut *e)
                .await
                .map_err(db("registering a stream"))?;
        }
    });
    Ok(())
}

/// Stores an adoption in one transaction: the adopted rows under the configured stream's key, the
/// rows that cannot be attributed under a retired stream of their own, and the old key's rows and
/// name removed. A kill before the commit leaves the old rows, and the next run adopts them again
/// with the same result.
pub(super) async fn adopt(writer: Writer<'_>, a: &crate::planner::Adoption) -> Result<()> {
    on!(writer, e => {
        let mut tx = sqlx::Connection::begin(e)
            .await
            .map_err(db("starting a transaction"))?;
        let retired = a.retired.iter().flat_map(|(_, _, rows)| rows);
        for r in a.adopted.iter().chain(retired) {
            insert_row!(&mut *tx, r);
        }
        if let Some((key, label, _)) = &a.retired {
            sqlx::query(UPSERT_STREAM)
                .bind(key)
                .bind(label)
                .bind(None::<&str>)
                .execute(&mut *tx)
                .await
                .map_err(db("keeping an earlier version's rows apart"))?;
        }
        for sql in [DELETE_STREAM_ROWS, DELETE_STREAM] {
            sqlx::query(sql)
                .bind(&a.from)
                .execute(&mut *tx)
                .await
                .map_err(db("adopting an earlier version's ledger rows"))?;
        }
        tx.commit().await.map_err(db("adopting an earlier version's ledger rows"))?;
    });
    Ok(())
}

/// Gives the series stored before time zones were recorded the configured offset, and every `5min`
/// series the configured one; each statement writes only the rows that change.
pub(super) async fn adopt_timezone(writer: Writer<'_>, timezone: &str) -> Result<()> {
    on!(writer, e => {
        for sql in [ADOPT_DAY_GRIDS, FOLLOW_TIMEZONE] {
            sqlx::query(sql)
                .bind(timezone)
                .execute(&mut *e)
                .await
                .map_err(db("recording the series' time zone"))?;
        }
    });
    Ok(())
}

/// Per `(legacy key, window)`, the returned names of the stream's query with points in the window
/// and how many (series of the query on the configured grid, or stored before grids were recorded).
pub(super) async fn evidence(
    pools: Pools<'_>,
    wanted: &[(String, &crate::domain::Stream, Vec<Window>)],
) -> Result<crate::planner::Evidence> {
    let mut out = crate::planner::Evidence::new();
    for (legacy, stream, windows) in wanted {
        let scope = stream.scope();
        for w in windows {
            let found: Vec<(String, i64)> = on!(pools, e => {
                bind_scope!(sqlx::query_as(EVIDENCE), &scope)
                    .bind(&scope.grid_timezone)
                    .bind(Bound(w.start))
                    .bind(Bound(w.end))
                    .fetch_all(e)
                    .await
                    .map_err(db("reading the stored series of an earlier version's windows"))?
            });
            out.insert((legacy.clone(), *w), found);
        }
    }
    Ok(out)
}

/// Deletes these exact ledger rows.
pub(super) async fn delete_rows(writer: Writer<'_>, rows: &[LedgerEntry]) -> Result<()> {
    on!(writer, e => {
        for r in rows {
            sqlx::query(DELETE_ROW)
                .bind(&*r.stream)
                .bind(&r.indicator)
                .bind(Bound(r.window.start))
                .bind(Bound(r.window.end))
                .bind(r.state.as_str())
                .execute(&mut *e)
                .await
                .map_err(db("deleting a ledger row"))?;
        }
    });
    Ok(())
}

/// Stores what a run assessed of a stream: where its settled range from the horizon start ends, and
/// how many buckets of the horizon no window covers.
pub(super) async fn assess_streams(
    writer: Writer<'_>,
    assessed: &[(String, Assessment)],
    at: DateTime<Utc>,
) -> Result<()> {
    on!(writer, e => {
        let mut tx = sqlx::Connection::begin(e)
            .await
            .map_err(db("starting a transaction"))?;
        for (key, a) in assessed {
            sqlx::query(ASSESS_STREAM)
                .bind(key)
                .bind(a.settled_through.map(Bound))
                .bind(a.missing_buckets)
                .bind(Instant(at))
                .bind(a.complete_through.map(Bound))
                .bind(i64::try_from(a.deferred.windows).unwrap_or(i64::MAX))
                .bind(a.deferred.reason.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(db("recording a stream's coverage"))?;
        }
        tx.commit().await.map_err(db("recording the streams' coverage"))?;
    });
    Ok(())
}

/// Adds a run of `account` in state `running` and returns its id.
pub(super) async fn start_run(
    writer: Writer<'_>,
    mode: &str,
    started_at: DateTime<Utc>,
    account: Option<&str>,
) -> Result<i64> {
    on!(writer, e => {
        sqlx::query_scalar(START_RUN)
            .bind(mode)
            .bind(Instant(started_at))
            .bind(account)
            .fetch_one(e)
            .await
            .map_err(db("recording the run's start"))
    })
}

/// `(id, account)` of the runs still `running`, by id.
pub(super) async fn running_runs(pools: Pools<'_>) -> Result<Vec<(i64, Option<String>)>> {
    on!(pools, e => {
        sqlx::query_as(RUNNING_RUNS)
            .fetch_all(e)
            .await
            .map_err(db("reading the unfinished runs"))
    })
}

/// Marks the runs `dead` as `abandoned` (those still `running`), with the windows their ledger rows
/// show; returns their ids, sorted.
pub(super) async fn abandon_runs(mut writer: Writer<'_>, dead: &[i64]) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for &id in dead {
        let marked: Option<i64> = on!(writer.reborrow(), e => {
            sqlx::query_scalar(ABANDON_RUN)
                .bind(id)
                .fetch_optional(e)
                .await
                .map_err(db("marking an unfinished run abandoned"))?
        });
        ids.extend(marked);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Records one request sent (see `Store::record_call`).
pub(super) async fn record_call(
    writer: Writer<'_>,
    account: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    on!(writer, e => {
        sqlx::query(RECORD_CALL)
            .bind(account)
            .bind(action)
            .bind(Instant(at))
            .execute(e)
            .await
            .map_err(db("recording a request"))?;
    });
    Ok(())
}

/// When `account`'s requests of `action` were sent, strictly after `since`, oldest first.
pub(super) async fn calls_since(
    pools: Pools<'_>,
    account: &str,
    action: &str,
    since: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>> {
    read_all!(
        pools,
        sqlx::query(CALLS_SINCE)
            .bind(account)
            .bind(action)
            .bind(Instant(since)),
        "reading the recorded requests",
        decode::sent_at
    )
}

/// `(account, action, requests)` sent strictly after `since`, by account and action.
pub(super) async fn calls_after(
    pools: Pools<'_>,
    since: DateTime<Utc>,
) -> Result<Vec<(String, String, u64)>> {
    read_all!(
        pools,
        sqlx::query(CALLS_AFTER).bind(Instant(since)),
        "reading the recorded requests",
        decode::call_count
    )
}

/// Deletes the requests sent before `before`; returns how many.
pub(super) async fn forget_calls_before(writer: Writer<'_>, before: DateTime<Utc>) -> Result<u64> {
    Ok(on!(writer, e => {
        sqlx::query(FORGET_CALLS)
            .bind(Instant(before))
            .execute(e)
            .await
            .map_err(db("deleting old recorded requests"))?
            .rows_affected()
    }))
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
            .bind(counts.points.deleted as i64)
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

/// The most recently started run, of any status (of `account` only, when given) or of `ok` runs
/// only.
pub(super) async fn last_run(
    pools: Pools<'_>,
    ok_only: bool,
    account: Option<&str>,
) -> Result<Option<RunRow>> {
    let runs = read_all!(
        pools,
        if ok_only {
            sqlx::query(LAST_SUCCESSFUL_RUN)
        } else {
            sqlx::query(LAST_RUN).bind(account)
        },
        "reading the last run",
        decode::run_row
    )?;
    Ok(runs.into_iter().next())
}

/// `(key, label)` of every stream the database knows.
pub(super) async fn stream_labels(pools: Pools<'_>) -> Result<Vec<(String, String)>> {
    read_all!(
        pools,
        sqlx::query(STREAM_LABELS),
        "reading sync_streams",
        decode::key_label
    )
}

/// `(action, when its last call was sent)` of one account, as the runs before recorded them.
pub(super) async fn last_calls(
    pools: Pools<'_>,
    account: &str,
) -> Result<Vec<(String, Option<DateTime<Utc>>)>> {
    read_all!(
        pools,
        sqlx::query(LAST_CALLS).bind(account),
        "reading sync_pacing",
        decode::label_time
    )
}

/// Records when an account's action last sent a call.
pub(super) async fn record_last_call(
    writer: Writer<'_>,
    account: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    on!(writer, e => {
        sqlx::query(RECORD_LAST_CALL)
            .bind(account)
            .bind(action)
            .bind(Instant(at))
            .execute(e)
            .await
            .map_err(db("recording the last call"))?;
    });
    Ok(())
}

/// `(label, complete_through)` of every stream the database knows, as its last run assessed it.
pub(super) async fn assessed(pools: Pools<'_>) -> Result<Vec<Assessed>> {
    read_all!(
        pools,
        sqlx::query(ASSESSED),
        "reading sync_streams",
        decode::assessed
    )
}

/// `(key, label, account)` of every stream the database knows, by label.
pub(super) async fn stream_accounts(pools: Pools<'_>) -> Result<Vec<StoredStream>> {
    on!(pools, e => {
        sqlx::query_as(STREAM_ACCOUNTS)
            .fetch_all(e)
            .await
            .map_err(db("reading sync_streams"))
    })
}

/// `(id, returned name, dimension value, grid offset, points)` of the series in `scope` (its
/// `indicator` and `dimension_value` ignored), on the grid `grid_timezone` or on any.
pub(super) async fn query_series(
    pools: Pools<'_>,
    scope: &SeriesKey,
    grid_timezone: Option<&str>,
) -> Result<Vec<(i64, String, String, String, i64)>> {
    on!(pools, e => {
        bind_scope!(sqlx::query_as(QUERY_SERIES), scope)
            .bind(grid_timezone)
            .fetch_all(e)
            .await
            .map_err(db("reading a stream's series"))
    })
}

/// Deletes a retired stream in one transaction: the points and rows of `series`, its ledger rows
/// and its name.
pub(super) async fn prune(writer: Writer<'_>, key: &str, series: &[i64]) -> Result<()> {
    on!(writer, e => {
        let mut tx = sqlx::Connection::begin(e)
            .await
            .map_err(db("starting a transaction"))?;
        for id in series {
            for sql in [
                "DELETE FROM points WHERE series_id = $1",
                "DELETE FROM series WHERE id = $1",
            ] {
                sqlx::query(sql)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("removing a retired stream's points"))?;
            }
        }
        for sql in [DELETE_STREAM_ROWS, DELETE_STREAM] {
            sqlx::query(sql)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(db("removing a retired stream's checkpoints"))?;
        }
        tx.commit().await.map_err(db("removing a retired stream"))?;
    });
    Ok(())
}

/// The `sync_coverage` view, ordered by stream.
pub(super) async fn coverage(pools: Pools<'_>, except: &[String]) -> Result<Vec<CoverageRow>> {
    // The view computes a row when it is asked for: a prefix left out costs nothing.
    let mut sql = COVERAGE.to_string();
    for i in 1..=except.len() {
        sql += if i == 1 { " WHERE " } else { " AND " };
        sql += &format!("substr(stream, 1, length(CAST(${i} AS TEXT))) <> ${i}");
    }
    sql += " ORDER BY stream";
    read_all!(
        pools,
        except
            .iter()
            .fold(sqlx::query(&sql), |q, prefix| q.bind(prefix.as_str())),
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

/// Rows of the `quality_distribution` view, newest first; all of them when `limit` is `None`. Times
/// are rendered as SQLite stores them, so both backends compare equal.
pub(super) async fn distribution(
    pools: Pools<'_>,
    limit: Option<i64>,
) -> Result<Vec<DistributionRow>> {
    let sql = match pools {
        On::Sqlite(_) => SQLITE_DISTRIBUTION,
        On::Postgres(_) => POSTGRES_DISTRIBUTION,
    };
    let limit = limit.unwrap_or(i64::MAX);
    read_all!(
        pools,
        sqlx::query(sql).bind(limit),
        "reading quality_distribution",
        decode::distribution_row
    )
}
