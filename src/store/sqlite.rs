//! The SQLite backend: one file in WAL mode, one writer connection, multi-row upserts under the bind limit.
//!
//! SQLite has one writer per database, so every write goes through one connection behind a mutex:
//! concurrent commits queue in the process instead of meeting `SQLITE_BUSY`, and the writer's
//! prepared statements (sqlx caches them per connection) are reused from window to window. Reads
//! (`status`, the ledger) use a small pool and never wait for the writer, thanks to WAL.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use futures::stream::BoxStream;
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};
use tokio::sync::{Mutex, MutexGuard};

use super::commit::{Backend, FailHook, Found, Pending, shown_timezone};
use super::diff::NormBatch;
use super::error::damaged;
use super::ledger;
use super::lock::{describe_holder, hostname};
use super::time::{self, format_instant};
use super::{Result, StoreError, db};
use crate::domain::SeriesKey;
use crate::redact::{redact_url, scrub};

/// How long closing waits for another process's reader before it says the `.db` file lags.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(5);

/// Points per upsert statement. With 4 binds a row this stays far under SQLite's 32,766 variables;
/// a power of two so that any remainder splits into the few smaller powers of two, which keeps the
/// set of statement texts small and every one of them prepared once per connection.
const POINT_CHUNK: usize = 1024;
/// Series per lookup or insert statement (13 binds each).
const SERIES_CHUNK: usize = 1000;

pub struct SqliteStore {
    /// Readers; WAL lets them run while the writer writes.
    pool: SqlitePool,
    /// The one connection that writes.
    writer: Mutex<SqliteConnection>,
    path: PathBuf,
    /// The file the writer opened (device and inode): the path must still name it when a run ends.
    identity: Option<(u64, u64)>,
    /// Whether this store took `<database>.lock` (a read-only command, or a test's store, did not).
    holds_lock: std::sync::atomic::AtomicBool,
    url: String,
    /// The test hook `Store::set_fail_after_points` sets.
    pub(super) fail: FailHook,
}

/// The text a bucket start is stored as, for the benchmark's ceiling.
#[cfg(feature = "testing")]
pub use super::time::format_bucket;

/// The device and inode the path names now, where the platform has them.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Whether `url` names a SQLite file that does not exist yet: read-only commands then have nothing
/// to read and must not create it.
pub fn file_missing(url: &str) -> bool {
    url.trim_start().starts_with("sqlite:") && parse_path(url).is_ok_and(|p| !p.exists())
}

/// The file a `sqlite:` URL names, for messages (the URL itself when it names none).
pub fn path_of(url: &str) -> PathBuf {
    parse_path(url).unwrap_or_else(|_| PathBuf::from(url))
}

/// The path in `sqlite://PATH`, `sqlite:PATH` or `sqlite:///ABSOLUTE`; relative to the current directory.
fn parse_path(url: &str) -> Result<PathBuf> {
    let trimmed = url.trim();
    let unsupported = || StoreError::UnsupportedUrl {
        url: redact_url(url),
    };
    let rest = trimmed.get("sqlite:".len()..).ok_or_else(unsupported)?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    // Query parameters (`?mode=rwc`) are sqlx's; the store sets its own options.
    let rest = rest.split('?').next().unwrap_or_default();
    if rest.is_empty() || rest == ":memory:" {
        return Err(unsupported());
    }
    Ok(PathBuf::from(rest))
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<SqliteStore> {
        let path = parse_path(url)?;
        let redacted = redact_url(url);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode loses no committed transaction on a process crash, only (at worst)
            // the last ones on a power cut, and spares an fsync per window.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // A window's stored points come back as one row each; a deep buffer lets SQLite's worker
            // thread run ahead instead of waking the reader for every few rows.
            .row_buffer_size(4096);
        let writer = options.connect().await.map_err(|e| match damaged(&e) {
            Some(message) => StoreError::Damaged { message },
            None => StoreError::OpenFile {
                // Absolute, so that a scheduler's working directory is no mystery.
                path: std::path::absolute(&path).unwrap_or_else(|_| path.clone()),
                message: scrub(&e.to_string(), url),
            },
        })?;
        let identity = file_identity(&path);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(options);
        Ok(SqliteStore {
            pool,
            writer: Mutex::new(writer),
            path,
            identity,
            holds_lock: Default::default(),
            url: redacted,
            fail: FailHook::default(),
        })
    }

    pub async fn migrate(&self) -> Result<()> {
        let mut writer = self.writer.lock().await;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut *writer)
            .await
            .map_err(|e| {
                let damage = match &e {
                    sqlx::migrate::MigrateError::Execute(e)
                    | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => damaged(e),
                    _ => None,
                };
                match damage {
                    Some(message) => StoreError::Damaged { message },
                    None => StoreError::Migrate {
                        url: self.url.clone(),
                        message: e.to_string(),
                        advice: super::error::MIGRATE_SQLITE,
                    },
                }
            })
    }

    /// Whether the path still names the file this store opened ([`StoreError::FileReplaced`]).
    pub fn verify_file(&self) -> Result<()> {
        match (self.identity, file_identity(&self.path)) {
            (Some(opened), Some(now)) if opened == now => Ok(()),
            // Not known at open (a platform without inodes): nothing to compare.
            (None, _) => Ok(()),
            _ => Err(StoreError::FileReplaced {
                path: self.path.clone(),
            }),
        }
    }

    /// `PRAGMA quick_check`: every page read and checked, [`StoreError::Damaged`] with what it found.
    pub async fn quick_check(&self) -> Result<()> {
        let mut writer = self.writer.lock().await;
        let found: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_all(&mut *writer)
            .await
            .map_err(db("checking the database file"))?;
        if found.len() == 1 && found[0] == "ok" {
            return Ok(());
        }
        let mut message = found.into_iter().take(3).collect::<Vec<_>>().join("; ");
        message.insert_str(0, "PRAGMA quick_check: ");
        Err(StoreError::Damaged { message })
    }

    /// The reader pool, for queries the store does not offer (tests, the benchmark's ceiling).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows inserted, updated or deleted by the writer connection since it opened (`total_changes()`).
    #[cfg(feature = "testing")]
    pub async fn writer_total_changes(&self) -> Result<i64> {
        let mut writer = self.writer.lock().await;
        sqlx::query_scalar("SELECT total_changes()")
            .fetch_one(&mut *writer)
            .await
            .map_err(db("reading total_changes()"))
    }

    /// Closes the readers, then copies the write-ahead log into the database file and empties it, so
    /// that the `.db` file alone holds every committed row (a copy of it without `-wal` is complete).
    /// A reader in another process that keeps it from finishing is waited for up to
    /// [`CHECKPOINT_WAIT`], then named in a warning. A checkpoint that fails loses nothing (the rows
    /// are in the `-wal` file), so it is a warning too.
    pub async fn close(&self) {
        self.pool.close().await;
        let mut writer = self.writer.lock().await;
        let started = std::time::Instant::now();
        loop {
            // (busy, log frames, frames checkpointed); busy = 1 when a reader kept it from finishing.
            // The statement itself waits for readers as long as the busy timeout allows.
            let done = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *writer)
                .await
                .map_err(db(
                    "checkpointing the write-ahead log into the database file",
                ));
            match done {
                Ok((0, _, _)) => return,
                Ok((_, frames, copied)) if started.elapsed() >= CHECKPOINT_WAIT => {
                    tracing::warn!(
                        wal_frames = frames,
                        frames_copied = copied,
                        "another connection is reading {} (a BI tool, a sqlite3 shell, a backup) and \
                         kept the write-ahead log from being copied into the file for {} s; every row \
                         is committed and readers see it, but {} alone lags its -wal file until the \
                         next command that writes",
                        self.path.display(),
                        CHECKPOINT_WAIT.as_secs(),
                        self.path.display()
                    );
                    return;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => {
                    tracing::warn!(
                        "{e} (nothing is lost: the rows are in the -wal file beside it)"
                    );
                    return;
                }
            }
        }
    }

    /// Takes `<database>.lock`, then opens and migrates the database, then records the holder: of two
    /// runs started at once on a fresh file, the loser stops at the lock before it touches the file.
    /// A file has one lock whatever the account: `account` (a hash of the access key id, or `None`)
    /// is only recorded, to name the holder.
    pub async fn connect_locked(
        url: &str,
        holder: &str,
        account: Option<&str>,
    ) -> Result<(SqliteStore, FileLock)> {
        let (file, path) = take_file_lock(&parse_path(url)?, holder, account)?;
        let store = SqliteStore::connect(url).await?;
        store.migrate().await?;
        let lock = store.record_holder(file, path, holder, account).await?;
        Ok((store, lock))
    }

    pub async fn try_lock(&self, holder: &str, account: Option<&str>) -> Result<FileLock> {
        let (file, path) = take_file_lock(&self.path, holder, account)?;
        self.record_holder(file, path, holder, account).await
    }

    /// Adds the run's id to the lock's records (the lock file and `sync_lock`), so that a refused run
    /// names it.
    pub async fn record_lock_run(&self, run_id: i64) -> Result<()> {
        if !self.holds_lock.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let mut path = self.path.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("run={run_id}\n").as_bytes()))
            .map_err(|error| StoreError::LockFile { path, error })?;
        sqlx::query("UPDATE sync_lock SET run_id = ?1 WHERE lock_key = 0")
            .bind(run_id)
            .execute(&mut *self.writer.lock().await)
            .await
            .map_err(db("recording the lock holder's run"))?;
        Ok(())
    }

    /// Mirrors the lock file's record into `sync_lock` for people reading the database (the file's
    /// one lock is key 0).
    async fn record_holder(
        &self,
        file: File,
        path: PathBuf,
        holder: &str,
        account: Option<&str>,
    ) -> Result<FileLock> {
        self.holds_lock
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let lock = FileLock {
            file,
            path,
            pool: self.pool.clone(),
        };
        sqlx::query(
            "INSERT INTO sync_lock (lock_key, holder, pid, hostname, since, account) \
             VALUES (0, ?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (lock_key) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, \
             hostname = excluded.hostname, since = excluded.since, account = excluded.account, \
             run_id = NULL",
        )
        .bind(one_line(holder))
        .bind(i64::from(std::process::id()))
        .bind(hostname())
        .bind(format_instant(crate::clock::now()))
        .bind(account)
        .execute(&mut *self.writer.lock().await)
        .await
        .map_err(db("recording the lock holder"))?;
        Ok(lock)
    }
}

impl Backend for SqliteStore {
    type DB = Sqlite;
    type Writer<'a> = MutexGuard<'a, SqliteConnection>;

    // IMMEDIATE takes the write lock up front: the window's stored points read next cannot change
    // before the commit, even if another process writes to the file.
    const BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");

    async fn writer(&self) -> Result<Self::Writer<'_>> {
        Ok(self.writer.lock().await)
    }

    /// One statement per chunk of [`SERIES_CHUNK`] series.
    async fn lookup_series(
        conn: &mut SqliteConnection,
        batch: &NormBatch<'_>,
        which: &[usize],
        found: &mut Found,
    ) -> Result<()> {
        for chunk in which.chunks(SERIES_CHUNK) {
            let mut sql = String::from(
                "WITH input (ord, app_id, room_id, indicator, granularity, product_type, os, access, \
                 user_ids, dimension, dimension_value, grid_timezone) AS (VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 12);
            sql.push_str(
                ") SELECT input.ord, s.id, s.unit FROM input JOIN series s ON s.app_id = input.app_id \
                 AND s.room_id = input.room_id AND s.indicator = input.indicator \
                 AND s.granularity = input.granularity AND s.product_type = input.product_type \
                 AND s.os = input.os AND s.access = input.access AND s.user_ids = input.user_ids \
                 AND s.dimension = input.dimension AND s.dimension_value = input.dimension_value \
                 AND s.grid_timezone = input.grid_timezone",
            );
            let mut q = sqlx::query(&sql);
            for &i in chunk {
                q = bind_key(q.bind(i as i64), batch.series[i].key);
            }
            let rows = q
                .fetch_all(&mut *conn)
                .await
                .map_err(db("looking up series"))?;
            for r in rows {
                let ord: i64 = r.try_get(0).map_err(db("decoding series"))?;
                let id: i64 = r.try_get(1).map_err(db("decoding series"))?;
                let unit: String = r.try_get(2).map_err(db("decoding series"))?;
                found[ord as usize] = Some((id, unit));
            }
        }
        Ok(())
    }

    /// One statement per chunk of [`SERIES_CHUNK`] series.
    async fn insert_series(
        conn: &mut SqliteConnection,
        batch: &NormBatch<'_>,
        which: &[usize],
        timezone: &str,
    ) -> Result<()> {
        for chunk in which.chunks(SERIES_CHUNK) {
            let mut sql = String::from(
                "INSERT INTO series (app_id, room_id, indicator, granularity, product_type, os, \
                 access, user_ids, dimension, dimension_value, grid_timezone, unit, timezone) VALUES ",
            );
            push_placeholders(&mut sql, chunk.len(), 13);
            let mut q = sqlx::query(&sql);
            for &i in chunk {
                let key = batch.series[i].key;
                q = bind_key(q, key)
                    .bind(batch.series[i].unit)
                    .bind(shown_timezone(key, timezone));
            }
            q.execute(&mut *conn).await.map_err(db("adding series"))?;
        }
        Ok(())
    }

    /// Units change rarely (never, in practice), so one statement per changed series is fine.
    async fn update_units(conn: &mut SqliteConnection, units: &[(i64, &str)]) -> Result<()> {
        for &(id, unit) in units {
            sqlx::query("UPDATE series SET unit = ?1 WHERE id = ?2")
                .bind(unit)
                .bind(id)
                .execute(&mut *conn)
                .await
                .map_err(db("updating a series' unit"))?;
        }
        Ok(())
    }

    /// Nothing to do: `BEGIN IMMEDIATE` already keeps every other writer out of the whole file.
    async fn lock_series(_: &mut SqliteConnection, _: &[i64]) -> Result<()> {
        Ok(())
    }

    /// Read through the points' primary key; the ids go in as one JSON array.
    fn stored_points<'c>(
        conn: &'c mut SqliteConnection,
        ids: &'c [i64],
        (lo, hi): (i64, i64),
    ) -> BoxStream<'c, sqlx::Result<SqliteRow>> {
        let list = format!(
            "[{}]",
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
        );
        sqlx::query(
            "SELECT series_id, ts, value, settled FROM points \
             WHERE series_id IN (SELECT value FROM json_each(?1)) AND ts >= ?2 AND ts < ?3",
        )
        .bind(list)
        .bind(time::format_bucket(lo))
        .bind(time::format_bucket(hi))
        .fetch(conn)
    }

    /// Multi-row upserts of [`chunk_len`] rows, so that the few statement texts stay prepared.
    async fn write_points(&self, conn: &mut SqliteConnection, pending: &Pending<'_>) -> Result<()> {
        let (batch, diff) = (pending.batch, pending.diff);
        let updated_at = format_instant(batch.fetched_at);
        let mut rows = diff.new.iter().chain(&diff.changed).peekable();
        let mut remaining = diff.new.len() + diff.changed.len();
        let mut written = 0;
        while remaining > 0 {
            let n = chunk_len(remaining);
            let mut q = sqlx::query(upsert_sql(n));
            for _ in 0..n {
                let &(id, ts, value, settled) = rows.next().expect("counted rows");
                q = q
                    .bind(id)
                    .bind(time::format_bucket(ts))
                    .bind(value)
                    .bind(settled);
            }
            // The write time, bound once per statement, not per row.
            q = q.bind(updated_at.as_str());
            q.execute(&mut *conn).await.map_err(db("writing points"))?;
            remaining -= n;
            written += n;
            self.fail.check(written)?;
        }
        debug_assert!(rows.peek().is_none());
        self.fail.check(written)?;

        Ok(())
    }

    /// One prepared statement, run per point: deletions are rare (a re-fetched window that lost
    /// buckets), and the statement is reused.
    async fn delete_points(conn: &mut SqliteConnection, points: &[(i64, i64)]) -> Result<()> {
        for &(id, ts) in points {
            sqlx::query("DELETE FROM points WHERE series_id = ?1 AND ts = ?2")
                .bind(id)
                .bind(time::format_bucket(ts))
                .execute(&mut *conn)
                .await
                .map_err(db("deleting points"))?;
        }
        Ok(())
    }

    fn shared(conn: &mut SqliteConnection) -> ledger::Conn<'_> {
        ledger::On::Sqlite(conn)
    }
}

/// Sets the writer's `PRAGMA synchronous` (`NORMAL` or `FULL`), outside a transaction.
pub(super) async fn synchronous(conn: &mut SqliteConnection, level: &'static str) -> Result<()> {
    sqlx::query(&format!("PRAGMA synchronous = {level}"))
        .execute(conn)
        .await
        .map_err(db("setting how the database file is synced"))?;
    Ok(())
}

/// Binds a series key's eleven columns in table order.
fn bind_key<'q>(
    q: Query<'q, Sqlite, SqliteArguments<'q>>,
    k: &'q SeriesKey,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    q.bind(&k.app_id)
        .bind(&k.room_id)
        .bind(&k.indicator)
        .bind(k.granularity.as_str())
        .bind(&k.product_type)
        .bind(&k.os)
        .bind(&k.access)
        .bind(&k.user_ids)
        .bind(&k.dimension)
        .bind(&k.dimension_value)
        .bind(&k.grid_timezone)
}

/// How many rows the next statement writes: a full chunk, else the largest power of two that fits.
fn chunk_len(remaining: usize) -> usize {
    if remaining >= POINT_CHUNK {
        POINT_CHUNK
    } else {
        1 << (usize::BITS - 1 - remaining.leading_zeros())
    }
}

/// The upsert for `rows` points (`rows` a power of two up to [`POINT_CHUNK`]), built once.
fn upsert_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        let mut v = Vec::new();
        let mut n = 1;
        while n <= POINT_CHUNK {
            let mut sql = String::from(
                "INSERT INTO points (series_id, ts, value, settled, updated_at) \
                 SELECT v.column1, v.column2, v.column3, v.column4, c.updated_at FROM (VALUES ",
            );
            push_placeholders(&mut sql, n, 4);
            // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT, not to a join.
            // Only new or changed points reach this statement, so the update always changes the row.
            sql.push_str(
                ") AS v, (SELECT ? AS updated_at) AS c WHERE true \
                 ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value, \
                 settled = excluded.settled, updated_at = excluded.updated_at",
            );
            v.push(sql);
            n *= 2;
        }
        v
    });
    debug_assert!(rows.is_power_of_two() && rows <= POINT_CHUNK);
    &all[rows.trailing_zeros() as usize]
}

/// Appends `(?, ?, ...), (...)`: `rows` groups of `cols` placeholders.
pub(crate) fn push_placeholders(sql: &mut String, rows: usize, cols: usize) {
    sql.reserve(rows * (cols * 3 + 3));
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            sql.push('?');
        }
        sql.push(')');
    }
}

/// Holds `<database>.lock` locked; the OS releases it when the process ends, however it ends.
pub struct FileLock {
    file: File,
    path: PathBuf,
    pool: SqlitePool,
}

impl FileLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn release(self) -> Result<()> {
        // Clear the records while still holding the lock, so a new holder's are never erased.
        let cleared = sqlx::query("DELETE FROM sync_lock")
            .execute(&self.pool)
            .await
            .map_err(db("clearing the lock holder"));
        let truncated = self.file.set_len(0);
        let unlocked = self.file.unlock();
        cleared?;
        truncated
            .and(unlocked)
            .map_err(|error| StoreError::LockFile {
                path: self.path.clone(),
                error,
            })
    }
}

/// Locks `<db_path>.lock` (created if missing) and writes the holder's record into it; the file is
/// what refuses other runs, and it needs no database, so it is taken before the database is opened.
fn take_file_lock(db_path: &Path, holder: &str, account: Option<&str>) -> Result<(File, PathBuf)> {
    let mut path = db_path.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let lock_err = |error| StoreError::LockFile {
        path: path.clone(),
        error,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // The holder may still be writing its record; an unreadable one is reported as unknown.
            let _ = file.read_to_string(&mut text);
            let (holder, since) = parse_lock_record(&text);
            return Err(StoreError::Locked { holder, since });
        }
        Err(TryLockError::Error(e)) => return Err(lock_err(e)),
    }
    let mut record = format!(
        "holder={}\npid={}\nhostname={}\nsince={}\n",
        one_line(holder),
        std::process::id(),
        hostname(),
        format_instant(crate::clock::now())
    );
    if let Some(account) = account {
        record.push_str(&format!("account={}\n", one_line(account)));
    }
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(record.as_bytes()))
        .and_then(|()| file.flush())
        .map_err(lock_err)?;
    Ok((file, path))
}

/// Newlines would break the lock record's lines.
fn one_line(holder: &str) -> String {
    holder.replace(['\n', '\r'], " ")
}

/// `(holder, since)` from a lock file's `key=value` lines.
fn parse_lock_record(text: &str) -> (String, String) {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .map(str::to_string)
    };
    let holder = match (field("holder"), field("pid")) {
        (Some(h), Some(pid)) => describe_holder(
            &h,
            pid.parse().unwrap_or(-1),
            &field("hostname").unwrap_or_default(),
            field("run").and_then(|r| r.parse().ok()),
            field("account").as_deref(),
        ),
        (Some(h), None) => h,
        _ => "an unknown run".to_string(),
    };
    let since = field("since").unwrap_or_else(|| "an unknown time".to_string());
    (holder, since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_full_or_powers_of_two() {
        assert_eq!(chunk_len(5000), POINT_CHUNK);
        assert_eq!(chunk_len(POINT_CHUNK), POINT_CHUNK);
        assert_eq!(chunk_len(1000), 512);
        assert_eq!(chunk_len(1), 1);
        let mut left = 20_001;
        let mut sizes = std::collections::BTreeSet::new();
        while left > 0 {
            let n = chunk_len(left);
            sizes.insert(n);
            left -= n;
        }
        assert!(sizes.len() <= 11, "{sizes:?}");
        assert_eq!(upsert_sql(4).matches("(?,?,?,?)").count(), 4);
        assert_eq!(upsert_sql(2).matches('?').count(), 2 * 4 + 1);
    }

    #[test]
    fn parses_sqlite_urls() {
        assert_eq!(parse_path("sqlite://a.db").unwrap(), PathBuf::from("a.db"));
        assert_eq!(parse_path("sqlite:a.db").unwrap(), PathBuf::from("a.db"));
        assert_eq!(
            parse_path("sqlite:///tmp/a.db?mode=rwc").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert!(matches!(
            parse_path("sqlite::memory:"),
            Err(StoreError::UnsupportedUrl { .. })
        ));
        assert!(matches!(
            parse_path("sqlite://"),
            Err(StoreError::UnsupportedUrl { .. })
        ));
    }

    #[test]
    fn lock_records_name_the_holder() {
        let (h, s) = parse_lock_record(
            "holder=sync --job a\npid=42\nhostname=box\nsince=2024-01-01T00:00:00.000000Z\n",
        );
        assert_eq!(h, "a run that is starting (sync --job a, pid 42 on box)");
        let (h, _) = parse_lock_record(
            "holder=sync\npid=42\nhostname=box\nsince=2024-01-01T00:00:00.000000Z\nrun=7\n",
        );
        assert_eq!(h, "run 7 (sync, pid 42 on box)");
        let (h, _) = parse_lock_record(
            "holder=sync\npid=42\nhostname=box\nsince=2024-01-01T00:00:00.000000Z\naccount=0a1b\nrun=7\n",
        );
        assert_eq!(h, "run 7 (sync, pid 42 on box, account 0a1b)");
        assert_eq!(s, "2024-01-01T00:00:00.000000Z");
        assert_eq!(parse_lock_record("").0, "an unknown run");
    }
}
