//! The store: the tables BI reads, the checkpoint ledger and the runs, in SQLite or PostgreSQL.
//!
//! [`Store`] is the one interface the pipeline calls; it dispatches by `match` to [`SqliteStore`] or
//! [`PgStore`], which share the schema's names and columns (`migrations/sqlite`, `migrations/postgres`).
//!
//! What is the same for both backends is written once: `commit` (a window's commit sequence, with a
//! small `Backend` trait for what differs), `ledger` (the ledger, run, coverage and metrics
//! statements), `rooms` (`rtc_rooms`: a listed range of calls, committed like a window), `diff`
//! (what to write), `decode` (rows to types), `time` (how each stores an instant),
//! `rows`, `error` and `lock`. `sqlite`, `postgres` and `copy` hold only what is theirs.
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

mod commit;
mod copy;
mod decode;
mod diff;
mod error;
mod ledger;
mod lock;
pub mod postgres;
mod rooms;
mod rows;
pub mod sqlite;
mod time;

use chrono::{DateTime, Utc};

use crate::domain::{
    FailedWindow, LedgerEntry, PgSchema, RunCounts, RunStatus, Stream, Window, WindowBatch,
    WriteCounts, offset_text,
};

pub(crate) use error::db;
pub use error::{Result, StoreError};
pub use ledger::{Assessment, StoredStream};
pub use lock::StoreLock;
pub use postgres::{PgLock, PgStore};
pub use rooms::{CALLS, RoomCounts, RoomListing, StoredCall};
pub use rows::{Assessed, CoverageRow, DistributionRow, MetricRow, RunRow, WorstRoom};
pub use sqlite::{FileLock, SqliteStore};

/// Which backend a URL names.
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Backend> {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl {
                url: crate::redact::redact_url(url),
            })
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

impl Store {
    /// Connects to `sqlite://PATH` or `postgres://...` / `postgresql://...` and applies the migrations;
    /// on PostgreSQL, to the tables in `public` (see [`Store::connect_in`]).
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_in(url, &PgSchema::public()).await
    }

    /// [`Store::connect`] to the tables in `schema` (`[storage] schema`), created if missing, on
    /// PostgreSQL; a SQLite file has no schemas and ignores it. A schema without the tool's tables
    /// while `public` holds them is refused ([`StoreError::TablesElsewhere`]).
    pub async fn connect_in(url: &str, schema: &PgSchema) -> Result<Store> {
        let store = match Backend::of(url)? {
            Backend::Sqlite => Store::Sqlite(SqliteStore::connect(url).await?),
            Backend::Postgres => Store::Postgres(PgStore::connect_in(url, schema).await?),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Takes the one-sync-per-database lock *before* applying the migrations, for the commands that
    /// write (`sync`, `migrate`, `demo`): of two started at the same instant on a fresh database, one
    /// runs and the other gets [`StoreError::Locked`], never a half-migrated schema or a busy database.
    /// On PostgreSQL, the tables in `public` (see [`Store::connect_locked_in`]).
    pub async fn connect_locked(url: &str, holder: &str) -> Result<(Store, StoreLock)> {
        Store::connect_locked_in(url, &PgSchema::public(), holder).await
    }

    /// [`Store::connect_locked`] to the tables in `schema` (see [`Store::connect_in`]). The lock is
    /// the whole schema's on PostgreSQL (the lock every earlier version took): runs writing different
    /// schemas of one database run at once, but no run of any account writes this schema beside it.
    pub async fn connect_locked_in(
        url: &str,
        schema: &PgSchema,
        holder: &str,
    ) -> Result<(Store, StoreLock)> {
        Ok(match Backend::of(url)? {
            Backend::Sqlite => Store::sqlite_locked(url, holder, None).await?,
            Backend::Postgres => {
                let (s, l) = PgStore::connect_locked_in(url, schema, holder).await?;
                (Store::Postgres(s), StoreLock::Postgres(l))
            }
        })
    }

    /// [`Store::connect_locked_in`] with the lock of one account (`account`: the hash of its access
    /// key id, `Credentials::account_id`, never the key). On PostgreSQL, runs of different accounts
    /// lock and write one schema at once; a second run of the same account, or a run that holds the
    /// whole schema's lock, gets [`StoreError::Locked`]. The migrations take a short lock of their
    /// own, so two accounts starting on a fresh schema at once both find it whole. On SQLite one
    /// sync runs per file whatever the account: this is [`Store::connect_locked`] (the account
    /// recorded with the holder).
    pub async fn connect_locked_for(
        url: &str,
        schema: &PgSchema,
        holder: &str,
        account: &str,
    ) -> Result<(Store, StoreLock)> {
        Ok(match Backend::of(url)? {
            Backend::Sqlite => Store::sqlite_locked(url, holder, Some(account)).await?,
            Backend::Postgres => {
                let (s, l) = PgStore::connect_locked_for(url, schema, holder, account).await?;
                (Store::Postgres(s), StoreLock::Postgres(l))
            }
        })
    }

    async fn sqlite_locked(
        url: &str,
        holder: &str,
        account: Option<&str>,
    ) -> Result<(Store, StoreLock)> {
        let (s, l) = SqliteStore::connect_locked(url, holder, account).await?;
        Ok((Store::Sqlite(s), StoreLock::Sqlite(l)))
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

    /// Takes the one-sync-per-database lock (on PostgreSQL, the whole schema's), or says who holds
    /// it ([`StoreError::Locked`]).
    pub async fn try_lock(&self, holder: &str) -> Result<StoreLock> {
        match self {
            Store::Sqlite(s) => s.try_lock(holder, None).await.map(StoreLock::Sqlite),
            Store::Postgres(s) => s.try_lock(holder).await.map(StoreLock::Postgres),
        }
    }

    /// Takes one account's lock (see [`Store::connect_locked_for`]), or says who holds it.
    pub async fn try_lock_for(&self, holder: &str, account: &str) -> Result<StoreLock> {
        match self {
            Store::Sqlite(s) => s
                .try_lock(holder, Some(account))
                .await
                .map(StoreLock::Sqlite),
            Store::Postgres(s) => s
                .try_lock_for(holder, account)
                .await
                .map(StoreLock::Postgres),
        }
    }

    /// The ledger rows, of one stream or all, ordered by stream and window start.
    pub async fn ledger(&self, stream: Option<&str>) -> Result<Vec<LedgerEntry>> {
        ledger::read(self.pools(), stream).await
    }

    /// Writes one window's points and its ledger row in one transaction.
    ///
    /// Series are created or their unit updated; points are inserted or updated only where the value
    /// or the settled flag differ; the stream's ledger rows that lie within the window are replaced by
    /// the batch's row. A PostgreSQL store that holds the sync lock checks first that it still does
    /// (see [`PgStore::ensure_lock`]).
    pub async fn commit_window(&self, batch: &WindowBatch) -> Result<WriteCounts> {
        match self {
            Store::Sqlite(s) => commit::commit_window(s, batch).await,
            Store::Postgres(s) => {
                s.ensure_lock().await?;
                commit::commit_window(s, batch).await
            }
        }
    }

    /// Writes one listed range of an app's calls to `rtc_rooms` and its ledger row (indicator
    /// [`CALLS`], `settled` when the range is done, else `provisional`) in one transaction.
    ///
    /// A new call is inserted, a changed one updated (its `first_seen_at` kept), an unchanged one
    /// not written at all; the range's success supersedes the failed rows it covers, as a window's
    /// does. A failed range is recorded by [`Store::record_failure`] with the indicator [`CALLS`].
    /// A PostgreSQL store that holds the sync lock checks first that it still does.
    pub async fn commit_listing(&self, listing: &RoomListing<'_>) -> Result<RoomCounts> {
        match self {
            Store::Sqlite(s) => commit::commit_listing(s, listing).await,
            Store::Postgres(s) => {
                s.ensure_lock().await?;
                commit::commit_listing(s, listing).await
            }
        }
    }

    /// Every call of `app_id` in `rtc_rooms`, by `(created_at, call_id)`.
    pub async fn room_calls(&self, app_id: &str) -> Result<Vec<StoredCall>> {
        rooms::calls(self.pools(), app_id).await
    }

    /// The worst rooms of the last settled local day by stall rate, with their calls and peak users:
    /// the rows of the BI starter query `sql/<backend>/09_worst_rooms_yesterday.sql`, run as it is.
    pub async fn worst_rooms(&self) -> Result<Vec<WorstRoom>> {
        rooms::worst_rooms(self.pools()).await
    }

    /// The calls of `app_id` that can overlap `range` (created before its end, and running or
    /// destroyed at or after its start), by `(created_at, call_id)`, read through an index: what
    /// lies before a run's horizon never slows its planning.
    pub async fn room_calls_between(&self, app_id: &str, range: Window) -> Result<Vec<StoredCall>> {
        rooms::calls_between(self.pools(), app_id, range).await
    }

    /// How many calls and rooms of `app_id` `rtc_rooms` holds, counted by the database.
    pub async fn room_counts(&self, app_id: &str) -> Result<(u64, u64)> {
        rooms::counts(self.pools(), app_id).await
    }

    /// Marks windows to be fetched again (`sync --refetch`), in one transaction, before the run's
    /// first call: a run cut short leaves them to the next one.
    pub async fn mark_refetch(&self, rows: &[LedgerEntry]) -> Result<()> {
        ledger::mark_refetch(self.writer().await?.on(), rows).await
    }

    /// Gives the series stored before time zones were recorded the configured offset (a `1d`
    /// series' grid is adopted as it is), and every `5min` series the configured offset; writes
    /// nothing when nothing changed.
    pub async fn adopt_timezone(&self, timezone: chrono::FixedOffset) -> Result<()> {
        ledger::adopt_timezone(self.writer().await?.on(), &offset_text(timezone)).await
    }

    /// What the stored series of each stream's query hold inside the windows of an earlier
    /// version's rows (see [`crate::planner::adoptions`]).
    pub async fn evidence(
        &self,
        wanted: &[(String, &Stream, Vec<Window>)],
    ) -> Result<crate::planner::Evidence> {
        ledger::evidence(self.pools(), wanted).await
    }

    /// Whether the database file is still the one this store opened (SQLite): a file removed or
    /// replaced while a run wrote it took that run's commits with it. Always fine on PostgreSQL.
    pub async fn verify_file(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.verify_file(),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// `PRAGMA quick_check` (SQLite): [`StoreError::Damaged`] when a page is corrupt. Nothing to
    /// check on PostgreSQL, whose server checks its own pages.
    pub async fn quick_check(&self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.quick_check().await,
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Records a failed attempt at exactly this window; other ledger rows and the points stay.
    pub async fn record_failure(&self, failed: &FailedWindow<'_>) -> Result<()> {
        ledger::record_failure(self.writer().await?.on(), failed).await
    }

    /// Names the run's streams, `(key, label, aliases)`, by what they ask, and records the account
    /// that asks them; another stream that had one of these labels (or aliases) is relabeled with
    /// `replaced_suffix`.
    pub async fn register_streams(
        &self,
        streams: &[(String, String, Vec<String>)],
        replaced_suffix: &str,
        account: Option<&str>,
    ) -> Result<()> {
        ledger::register_streams(self.writer().await?.on(), streams, replaced_suffix, account).await
    }

    /// Stores an adoption of an earlier version's rows, in one transaction (see
    /// [`crate::planner::adoptions`]).
    pub async fn adopt(&self, adoption: &crate::planner::Adoption) -> Result<()> {
        ledger::adopt(self.writer().await?.on(), adoption).await
    }

    /// Deletes these exact ledger rows.
    pub async fn delete_ledger_rows(&self, rows: &[LedgerEntry]) -> Result<()> {
        ledger::delete_rows(self.writer().await?.on(), rows).await
    }

    /// Records what a run assessed of its streams (`(key, assessment)`) for `sync_coverage`,
    /// `status` and the metrics, in one transaction.
    pub async fn assess_streams(
        &self,
        assessed: &[(String, Assessment)],
        at: DateTime<Utc>,
    ) -> Result<()> {
        ledger::assess_streams(self.writer().await?.on(), assessed, at).await
    }

    /// When each action of `account` last sent a call, as the runs before recorded it.
    pub async fn last_calls(&self, account: &str) -> Result<Vec<(String, Option<DateTime<Utc>>)>> {
        ledger::last_calls(self.pools(), account).await
    }

    /// Records when an action of `account` last sent a call, for the next run's pace.
    pub async fn record_last_call(
        &self,
        account: &str,
        action: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        ledger::record_last_call(self.writer().await?.on(), account, action, at).await
    }

    /// What the last run that ran each stream stored of it: `complete_through` and what it
    /// deferred, by label.
    pub async fn assessed(&self) -> Result<Vec<Assessed>> {
        ledger::assessed(self.pools()).await
    }

    /// Adds a run of `account` (the hash of its access key id; `None` when it has none) in state
    /// `running` and returns its id.
    pub async fn start_run(
        &self,
        mode: &str,
        started_at: DateTime<Utc>,
        account: Option<&str>,
    ) -> Result<i64> {
        ledger::start_run(self.writer().await?.on(), mode, started_at, account).await
    }

    /// Adds the run's id to the lock holder's record (it only names the holder to a refused run).
    pub async fn record_lock_run(&self, run_id: i64) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.record_lock_run(run_id).await,
            Store::Postgres(s) => s.record_lock_run(run_id).await,
        }
    }

    /// Marks the runs still `running` that are dead as `abandoned`, with the windows their ledger
    /// rows show, and returns their ids. Called once per process, after it took the locks of all
    /// its accounts (`mine`, hashes of their access key ids) and before any of its runs starts.
    ///
    /// On SQLite the caller holds the file's lock, so every other run is dead. On PostgreSQL a run
    /// is dead when its account is one of `mine`, or nobody holds its account's lock; a run of an
    /// earlier version (no account) when nobody holds the whole schema's lock; every run when this
    /// store holds the whole schema's lock. Another account's live run is never marked.
    pub async fn abandon_unfinished_runs(&self, mine: &[String]) -> Result<Vec<i64>> {
        let running = ledger::running_runs(self.pools()).await?;
        let dead = match self {
            Store::Sqlite(_) => running.into_iter().map(|(id, _)| id).collect(),
            Store::Postgres(s) => s.dead_runs(&running, mine).await?,
        };
        ledger::abandon_runs(self.writer().await?.on(), &dead).await
    }

    /// Records one request of `action` by `account` sent at `at`, before it is sent: it is durable
    /// when this returns (committed; on SQLite, with the write-ahead log synced to disk), so a daily
    /// budget counts it across crashes, restarts and processes.
    pub async fn record_call(&self, account: &str, action: &str, at: DateTime<Utc>) -> Result<()> {
        match self {
            Store::Sqlite(s) => {
                let mut writer = commit::Backend::writer(s).await?;
                // A budget must not forget a call on a power cut: this one commit syncs the log
                // (`NORMAL`, the store's setting, spares that fsync for the points' commits).
                sqlite::synchronous(&mut writer, "FULL").await?;
                let recorded =
                    ledger::record_call(ledger::On::Sqlite(&mut *writer), account, action, at)
                        .await;
                let restored = sqlite::synchronous(&mut writer, "NORMAL").await;
                recorded.and(restored)
            }
            Store::Postgres(_) => {
                ledger::record_call(self.writer().await?.on(), account, action, at).await
            }
        }
    }

    /// When `account`'s requests of `action` were sent, strictly after `since`, oldest first.
    pub async fn calls_since(
        &self,
        account: &str,
        action: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        ledger::calls_since(self.pools(), account, action, since).await
    }

    /// `(account, action, requests)` of the last 24 hours before `now` (a request at exactly
    /// `now - 24h` is outside), by account and action, for `status` and the metrics.
    pub async fn calls_24h(&self, now: DateTime<Utc>) -> Result<Vec<(String, String, u64)>> {
        ledger::calls_after(self.pools(), now - chrono::Duration::hours(24)).await
    }

    /// Deletes the recorded requests sent before `before` (a run's start passes `now - 48h`: no
    /// budget looks further back than 24 h); returns how many.
    pub async fn forget_calls_before(&self, before: DateTime<Utc>) -> Result<u64> {
        ledger::forget_calls_before(self.writer().await?.on(), before).await
    }

    /// Completes a run with its status and counts.
    pub async fn finish_run(
        &self,
        id: i64,
        status: RunStatus,
        counts: &RunCounts,
        finished_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut writer = self.writer().await?;
        ledger::finish_run(writer.on(), id, status, counts, finished_at).await
    }

    /// The most recently started run.
    pub async fn last_run(&self) -> Result<Option<RunRow>> {
        ledger::last_run(self.pools(), false, None).await
    }

    /// The most recently started run of `account` (a hash of its access key id).
    pub async fn last_run_of(&self, account: &str) -> Result<Option<RunRow>> {
        ledger::last_run(self.pools(), false, Some(account)).await
    }

    /// The most recently started run that ended `ok`.
    pub async fn last_successful_run(&self) -> Result<Option<RunRow>> {
        ledger::last_run(self.pools(), true, None).await
    }

    /// `(key, label)` of every stream the database knows.
    pub async fn stream_labels(&self) -> Result<Vec<(String, String)>> {
        ledger::stream_labels(self.pools()).await
    }

    /// `(key, label, account)` of every stream the database knows, by label.
    pub async fn stream_accounts(&self) -> Result<Vec<ledger::StoredStream>> {
        ledger::stream_accounts(self.pools()).await
    }

    /// The series of one query (`scope`'s `indicator` and `dimension_value` ignored), on the grid
    /// `grid_timezone` or on any: `(id, returned name, dimension value, grid offset, points)`.
    pub async fn query_series(
        &self,
        scope: &crate::domain::SeriesKey,
        grid_timezone: Option<&str>,
    ) -> Result<Vec<(i64, String, String, String, i64)>> {
        ledger::query_series(self.pools(), scope, grid_timezone).await
    }

    /// Removes a retired stream in one transaction: the points and rows of `series`, its ledger
    /// rows and its name (`prune`).
    pub async fn prune(&self, key: &str, series: &[i64]) -> Result<()> {
        ledger::prune(self.writer().await?.on(), key, series).await
    }

    /// The `sync_coverage` view, ordered by stream, but for the streams whose label starts with
    /// one of `except` (a `[[rooms]]` block's, shown as one line of their own).
    pub async fn coverage(&self, except: &[String]) -> Result<Vec<CoverageRow>> {
        ledger::coverage(self.pools(), except).await
    }

    /// Rows of the `quality_metrics` view, newest first; all of them when `limit` is `None`.
    pub async fn metrics(&self, limit: Option<i64>) -> Result<Vec<MetricRow>> {
        ledger::metrics(self.pools(), limit).await
    }

    /// Rows of the `quality_distribution` view, newest first, then by app, indicator, dimension,
    /// dimension value and product type in byte order; all of them when `limit` is `None`.
    pub async fn distribution(&self, limit: Option<i64>) -> Result<Vec<DistributionRow>> {
        ledger::distribution(self.pools(), limit).await
    }

    /// Test hook: makes the next commits fail once they have written `n` points (inside their
    /// transaction, before the ledger row), to prove a half-written window leaves no trace.
    #[cfg(feature = "testing")]
    pub fn set_fail_after_points(&self, n: Option<usize>) {
        match self {
            Store::Sqlite(s) => s.fail.set(n),
            Store::Postgres(s) => s.fail.set(n),
        }
    }

    /// Closes the connections; pending writes are already committed or rolled back.
    /// Closes the connections; for SQLite, after checkpointing the write-ahead log into the file.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }

    /// The reader pools, for statements written once for both backends.
    fn pools(&self) -> ledger::Pools<'_> {
        match self {
            Store::Sqlite(s) => ledger::On::Sqlite(s.pool()),
            Store::Postgres(s) => ledger::On::Postgres(s.pool()),
        }
    }

    /// The handle that writes outside a window's commit: SQLite's one writer, PostgreSQL's pool.
    async fn writer(&self) -> Result<WriteHandle<'_>> {
        Ok(match self {
            Store::Sqlite(s) => WriteHandle::Sqlite(commit::Backend::writer(s).await?),
            Store::Postgres(s) => WriteHandle::Postgres(
                s.pool()
                    .acquire()
                    .await
                    .map_err(db("connecting to the database"))?,
            ),
        })
    }
}

/// What [`Store::writer`] holds while its statements run: the SQLite writer's lock, or a pooled
/// PostgreSQL connection.
enum WriteHandle<'a> {
    Sqlite(tokio::sync::MutexGuard<'a, sqlx::SqliteConnection>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

impl WriteHandle<'_> {
    fn on(&mut self) -> ledger::Writer<'_> {
        match self {
            WriteHandle::Sqlite(conn) => ledger::On::Sqlite(&mut **conn),
            WriteHandle::Postgres(conn) => ledger::On::Postgres(&mut **conn),
        }
    }
}
