//! The store: the tables BI reads, the checkpoint ledger and the runs, in SQLite or PostgreSQL.
//!
//! [`Store`] is the one interface the pipeline calls; it dispatches by `match` to [`SqliteStore`] or
//! [`PgStore`], which share the schema's names and columns (`migrations/sqlite`, `migrations/postgres`).
//!
//! **Invariant:** one window's points and its ledger row are committed in one transaction, and a point
//! whose stored value and settled flag are already what the batch says is never written again (no row
//! write, no `updated_at` change). Both backends decide what to write by reading the window's stored
//! points first, under a lock that keeps other writers of the same series out until the commit, so the
//! inserted / updated / unchanged counts are exact.
//!
//! **Settled flips:** a point whose value is unchanged but which becomes settled (or, after a refetch
//! too early, provisional again) is rewritten with the new flag and a new `updated_at`, and counted as
//! `updated`: the row did change, and BI extracts that read by `updated_at` must see it.

mod decode;
pub mod postgres;
pub mod sqlite;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{
    LedgerEntry, RunCounts, RunStatus, SeriesKey, Window, WindowBatch, WindowState, WriteCounts,
};

pub use postgres::{PgLock, PgStore};
pub use sqlite::{FileLock, SqliteStore};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong in the store. No message ever contains a database password: URLs are redacted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database url `{url}`: use sqlite://PATH (a file, created if missing) or postgres://USER@HOST:PORT/DB (postgresql:// works too)"
    )]
    UnsupportedUrl { url: String },

    #[error(
        "cannot connect to the database at {url}: {message}; check that it is running and that the url is right"
    )]
    Connect { url: String, message: String },

    #[error(
        "cannot apply the schema migrations to {url}: {message}; check that the database user may create tables and that this binary is not older than the database's schema"
    )]
    Migrate { url: String, message: String },

    #[error(
        "another run holds the lock on this database: {holder} since {since}; wait for it to finish or stop it"
    )]
    Locked { holder: String, since: String },

    #[error("cannot use the lock file {path}: {source}; check that its directory is writable")]
    LockFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "database error while {action}: {source}; check that the database is reachable and retry"
    )]
    Database {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },

    #[error(
        "unexpected {what} in the database: {value:?}; the tables may have been edited by hand"
    )]
    Corrupt { what: &'static str, value: String },

    #[error(
        "injected failure after writing {points} points (a test hook, never set in production)"
    )]
    Injected { points: usize },
}

/// Wraps a sqlx error with what the store was doing, for `map_err`.
pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { action, source }
}

/// One row of the `sync_coverage` view: what `status` shows per stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageRow {
    pub stream: String,
    /// The end of the last settled window that no provisional or failed window precedes.
    pub settled_through: Option<DateTime<Utc>>,
    pub provisional_windows: i64,
    pub failed_windows: i64,
    /// Points stored by the stream's current ledger rows.
    pub points: i64,
    /// When the stream's latest window was fetched.
    pub last_run_at: Option<DateTime<Utc>>,
}

/// One row of the `quality_metrics` view, times as `YYYY-MM-DDTHH:MM:SSZ` text on both backends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    pub app_id: String,
    pub room_id: String,
    pub indicator: String,
    pub unit: String,
    pub granularity: String,
    pub product_type: String,
    pub os: String,
    pub access: String,
    pub user_ids: String,
    pub ts: String,
    pub value: f64,
    pub settled: bool,
    pub updated_at: String,
}

impl std::fmt::Display for MetricRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {} {}{} ({})",
            self.app_id,
            self.indicator,
            self.granularity,
            self.ts,
            self.value,
            self.unit,
            if self.settled {
                "settled"
            } else {
                "provisional"
            }
        )
    }
}

/// One row of the `sync_runs` table, every column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    /// What started the run, e.g. `sync` or `demo`.
    pub mode: String,
    pub started_at: DateTime<Utc>,
    /// `None` while the run is going (or after it was killed).
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    pub points_inserted: u64,
    pub points_updated: u64,
    pub points_unchanged: u64,
    pub windows_ok: u64,
    pub windows_failed: u64,
}

impl std::fmt::Display for RunRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} started {} {}: {} windows ok, {} failed; {} calls, {} retries, {} throttled; points {} inserted, {} updated, {} unchanged",
            self.id,
            self.mode,
            self.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
            self.status.as_str(),
            self.windows_ok,
            self.windows_failed,
            self.requests,
            self.retries,
            self.throttled,
            self.points_inserted,
            self.points_updated,
            self.points_unchanged
        )
    }
}

impl RunRow {
    /// The counts as the pipeline speaks them.
    pub fn counts(&self) -> RunCounts {
        RunCounts {
            requests: self.requests,
            retries: self.retries,
            throttled: self.throttled,
            points: WriteCounts {
                inserted: self.points_inserted,
                updated: self.points_updated,
                unchanged: self.points_unchanged,
            },
            windows_ok: self.windows_ok,
            windows_failed: self.windows_failed,
        }
    }
}

/// The database the pipeline writes to.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl std::fmt::Debug for Store {
    /// The backend and where it points, never a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Sqlite(s) => write!(f, "Store::Sqlite({})", s.path().display()),
            Store::Postgres(s) => write!(f, "Store::Postgres({})", s.redacted_url()),
        }
    }
}

/// Holds the one-sync-per-database lock until dropped or released.
///
/// Dropping it releases the lock too (the OS drops the file lock, PostgreSQL ends the session that
/// holds the advisory lock), so a crashed run never leaves the database locked.
pub enum StoreLock {
    Sqlite(FileLock),
    Postgres(PgLock),
}

impl StoreLock {
    /// Releases the lock now and clears the holder's record.
    pub async fn release(self) -> Result<()> {
        match self {
            StoreLock::Sqlite(l) => l.release().await,
            StoreLock::Postgres(l) => l.release().await,
        }
    }
}

impl Store {
    /// Connects to `sqlite://PATH` or `postgres://...` / `postgresql://...` and applies the migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        let lower = url.trim_start().to_ascii_lowercase();
        let store = if lower.starts_with("sqlite:") {
            Store::Sqlite(SqliteStore::connect(url).await?)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Store::Postgres(PgStore::connect(url).await?)
        } else {
            return Err(StoreError::UnsupportedUrl {
                url: crate::redact::redact_url(url),
            });
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded schema migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.migrate().await,
            Store::Postgres(s) => s.migrate().await,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Takes the one-sync-per-database lock, or says who holds it ([`StoreError::Locked`]).
    pub async fn try_lock(&self, holder: &str) -> Result<StoreLock> {
        match self {
            Store::Sqlite(s) => s.try_lock(holder).await.map(StoreLock::Sqlite),
            Store::Postgres(s) => s.try_lock(holder).await.map(StoreLock::Postgres),
        }
    }

    /// The ledger rows, of one stream or all, ordered by stream and window start.
    pub async fn ledger(&self, stream: Option<&str>) -> Result<Vec<LedgerEntry>> {
        match self {
            Store::Sqlite(s) => s.ledger(stream).await,
            Store::Postgres(s) => s.ledger(stream).await,
        }
    }

    /// Writes one window's points and its ledger row in one transaction.
    ///
    /// Series are created or their unit updated; points are inserted or updated only where the value
    /// or the settled flag differ; the stream's ledger rows that lie within the window are replaced by
    /// the batch's row.
    pub async fn commit_window(&self, batch: &WindowBatch) -> Result<WriteCounts> {
        match self {
            Store::Sqlite(s) => s.commit_window(batch).await,
            Store::Postgres(s) => s.commit_window(batch).await,
        }
    }

    /// Records a failed attempt at exactly this window; other ledger rows and the points stay.
    pub async fn record_failure(
        &self,
        stream: &str,
        window: Window,
        error: &str,
        request_id: Option<&str>,
        attempts: i64,
        fetched_at: DateTime<Utc>,
    ) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                s.record_failure(stream, window, error, request_id, attempts, fetched_at)
                    .await
            }
            Store::Postgres(s) => {
                s.record_failure(stream, window, error, request_id, attempts, fetched_at)
                    .await
            }
        }
    }

    /// Adds a run in state `running` and returns its id.
    pub async fn start_run(&self, mode: &str, started_at: DateTime<Utc>) -> Result<i64> {
        match self {
            Store::Sqlite(s) => s.start_run(mode, started_at).await,
            Store::Postgres(s) => s.start_run(mode, started_at).await,
        }
    }

    /// Completes a run with its status and counts.
    pub async fn finish_run(
        &self,
        id: i64,
        status: RunStatus,
        counts: &RunCounts,
        finished_at: DateTime<Utc>,
    ) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.finish_run(id, status, counts, finished_at).await,
            Store::Postgres(s) => s.finish_run(id, status, counts, finished_at).await,
        }
    }

    /// The most recently started run.
    pub async fn last_run(&self) -> Result<Option<RunRow>> {
        match self {
            Store::Sqlite(s) => s.last_run().await,
            Store::Postgres(s) => s.last_run().await,
        }
    }

    /// The `sync_coverage` view, ordered by stream.
    pub async fn coverage(&self) -> Result<Vec<CoverageRow>> {
        match self {
            Store::Sqlite(s) => s.coverage().await,
            Store::Postgres(s) => s.coverage().await,
        }
    }

    /// Rows of the `quality_metrics` view, newest first; all of them when `limit` is `None`.
    pub async fn metrics(&self, limit: Option<i64>) -> Result<Vec<MetricRow>> {
        match self {
            Store::Sqlite(s) => s.metrics(limit).await,
            Store::Postgres(s) => s.metrics(limit).await,
        }
    }

    /// Test hook: makes the next commits fail once they have written `n` points (inside their
    /// transaction, before the ledger row), to prove a half-written window leaves no trace.
    #[doc(hidden)]
    pub fn set_fail_after_points(&self, n: Option<usize>) {
        match self {
            Store::Sqlite(s) => s.set_fail_after_points(n),
            Store::Postgres(s) => s.set_fail_after_points(n),
        }
    }

    /// Closes the connections; pending writes are already committed or rolled back.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// One series of a batch, ready to write: points sorted by bucket start, one per bucket.
pub(crate) struct NormSeries<'a> {
    pub key: &'a SeriesKey,
    pub unit: &'a str,
    /// `(bucket start in whole seconds since the epoch, value)`.
    pub points: Vec<(i64, f64)>,
}

/// A batch with duplicates merged, so neither backend ever writes one row twice in a statement.
///
/// A series listed twice is merged (the later unit wins) and a bucket listed twice keeps its later
/// value. Bucket starts are whole seconds (both the API and the tables work in seconds).
pub(crate) struct NormBatch<'a> {
    pub series: Vec<NormSeries<'a>>,
    /// The range of bucket starts the batch can touch: the window, widened to cover any stray point.
    pub range: (i64, i64),
}

impl<'a> NormBatch<'a> {
    pub fn new(batch: &'a WindowBatch) -> Self {
        let mut by_key: HashMap<&SeriesKey, usize> = HashMap::with_capacity(batch.series.len());
        let mut series: Vec<NormSeries<'a>> = Vec::with_capacity(batch.series.len());
        for s in &batch.series {
            let idx = *by_key.entry(&s.key).or_insert_with(|| {
                series.push(NormSeries {
                    key: &s.key,
                    unit: &s.unit,
                    points: Vec::with_capacity(s.points.len()),
                });
                series.len() - 1
            });
            let target = &mut series[idx];
            target.unit = &s.unit;
            target
                .points
                .extend(s.points.iter().map(|p| (p.ts.timestamp(), p.value)));
        }
        let (mut lo, mut hi) = (batch.window.start.timestamp(), batch.window.end.timestamp());
        for s in &mut series {
            // A stable sort keeps equal buckets in input order, so keeping the last of each run keeps
            // the later value.
            s.points.sort_by_key(|&(ts, _)| ts);
            let mut deduped: Vec<(i64, f64)> = Vec::with_capacity(s.points.len());
            for &(ts, v) in &s.points {
                match deduped.last_mut() {
                    Some(last) if last.0 == ts => last.1 = v,
                    _ => deduped.push((ts, v)),
                }
            }
            s.points = deduped;
            if let (Some(first), Some(last)) = (s.points.first(), s.points.last()) {
                lo = lo.min(first.0);
                hi = hi.max(last.0 + 1);
            }
        }
        NormBatch {
            series,
            range: (lo, hi),
        }
    }

    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }
}

/// What a window's diff against the stored points found.
pub(crate) struct Diff {
    /// `(series id, bucket start in seconds, value)` of points not stored yet.
    pub new: Vec<(i64, i64, f64)>,
    /// The same for stored points whose value or settled flag differ.
    pub changed: Vec<(i64, i64, f64)>,
    pub unchanged: u64,
}

impl Diff {
    /// Compares the batch (with its series' ids, in order) with the stored `(value, settled)` per
    /// `(series id, bucket start)`.
    pub fn compute(
        batch: &NormBatch<'_>,
        ids: &[i64],
        stored: &HashMap<(i64, i64), (f64, bool)>,
        settled: bool,
    ) -> Diff {
        let mut diff = Diff {
            new: Vec::new(),
            changed: Vec::new(),
            unchanged: 0,
        };
        if stored.is_empty() {
            diff.new.reserve(batch.point_count());
        }
        for (s, &id) in batch.series.iter().zip(ids) {
            for &(ts, value) in &s.points {
                match stored.get(&(id, ts)) {
                    None => diff.new.push((id, ts, value)),
                    // Values are finite, so == is IS DISTINCT FROM's negation here.
                    Some(&(v, st)) if v == value && st == settled => diff.unchanged += 1,
                    Some(_) => diff.changed.push((id, ts, value)),
                }
            }
        }
        diff
    }

    pub fn counts(&self) -> WriteCounts {
        WriteCounts {
            inserted: self.new.len() as u64,
            updated: self.changed.len() as u64,
            unchanged: self.unchanged,
        }
    }
}

/// The failure-injection counter both backends share.
#[derive(Default)]
pub(crate) struct FailHook(std::sync::Mutex<Option<usize>>);

impl FailHook {
    pub fn set(&self, n: Option<usize>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = n;
    }

    /// Fails once `written` points have been written, if the hook is set that low.
    pub fn check(&self, written: usize) -> Result<()> {
        match *self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(n) if written >= n => Err(StoreError::Injected { points: written }),
            _ => Ok(()),
        }
    }
}

pub(crate) fn parse_state(s: &str) -> Result<WindowState> {
    WindowState::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: "ledger state",
        value: s.to_string(),
    })
}

pub(crate) fn parse_run_status(s: &str) -> Result<RunStatus> {
    RunStatus::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: "run status",
        value: s.to_string(),
    })
}

/// The machine's name for the lock record, when it is cheap to know.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// How a lock holder is named in [`StoreError::Locked`].
pub(crate) fn describe_holder(holder: &str, pid: i64, hostname: &str) -> String {
    if hostname.is_empty() {
        format!("{holder} (pid {pid})")
    } else {
        format!("{holder} (pid {pid} on {hostname})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Granularity, Point, SeriesPoints};
    use chrono::TimeZone;

    fn key(indicator: &str) -> SeriesKey {
        SeriesKey {
            app_id: "app".into(),
            room_id: String::new(),
            indicator: indicator.into(),
            granularity: Granularity::FiveMin,
            product_type: "native".into(),
            os: String::new(),
            access: String::new(),
            user_ids: String::new(),
        }
    }

    #[test]
    fn normalizing_merges_duplicate_series_and_buckets_keeping_the_later() {
        let t = |m: i64| Utc.timestamp_opt(1_700_000_000 + m * 300, 0).unwrap();
        let batch = WindowBatch {
            stream: "s".into(),
            window: Window::new(t(0), t(10)),
            settled: true,
            series: vec![
                SeriesPoints {
                    key: key("a"),
                    unit: "%".into(),
                    points: vec![
                        Point {
                            ts: t(2),
                            value: 1.0,
                        },
                        Point {
                            ts: t(1),
                            value: 2.0,
                        },
                    ],
                },
                SeriesPoints {
                    key: key("a"),
                    unit: "ms".into(),
                    points: vec![
                        Point {
                            ts: t(2),
                            value: 3.0,
                        },
                        Point {
                            ts: t(12),
                            value: 4.0,
                        },
                    ],
                },
            ],
            attempts: 1,
            request_id: None,
            fetched_at: t(20),
        };
        let n = NormBatch::new(&batch);
        assert_eq!(n.series.len(), 1);
        assert_eq!(n.series[0].unit, "ms");
        let ts = |m: i64| t(m).timestamp();
        assert_eq!(
            n.series[0].points,
            vec![(ts(1), 2.0), (ts(2), 3.0), (ts(12), 4.0)]
        );
        assert_eq!(n.range, (ts(0), ts(12) + 1));

        let mut stored = HashMap::new();
        stored.insert((7, ts(1)), (2.0, true));
        stored.insert((7, ts(2)), (3.0, false));
        let d = Diff::compute(&n, &[7], &stored, true);
        assert_eq!(d.new, vec![(7, ts(12), 4.0)]);
        assert_eq!(
            d.changed,
            vec![(7, ts(2), 3.0)],
            "a settled flip is a change"
        );
        assert_eq!(d.unchanged, 1);
    }
}
