//! The PostgreSQL backend: binary `COPY` for new points, a staging table for changed ones, nothing for the rest.
//!
//! A window's stored points are read first (one index range scan) and compared in the process, so that
//! an unchanged point costs no write at all: `INSERT ... ON CONFLICT DO UPDATE WHERE ... IS DISTINCT
//! FROM` alone would still lock and WAL-log every conflicting row. New points then go straight into
//! `points` with binary `COPY` (nothing stored can conflict with them, see [`lock_series`]), and changed
//! ones through `COPY` into a session-local staging table and one `UPDATE ... FROM`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::{Connection, Row};

use super::commit::{Backend, FailHook};
use super::decode;
use super::diff::{Diff, NormBatch, NormSeries, Stored};
use super::ledger;
use super::lock::{describe_holder, hostname};
use super::{Result, StoreError, db};
use crate::domain::WindowBatch;
use crate::redact::{redact_url, scrub};

/// The session advisory lock that lets one sync at a time write to a database ("rtcsync1").
const SYNC_LOCK_KEY: i64 = 0x7274_6373_796e_6331;
/// The class of the transaction advisory locks on series ("rtcs"); the two-key form never collides
/// with the one-key sync lock.
const SERIES_LOCK_CLASS: i32 = 0x7274_6373;
/// Series locks are taken on `id % SERIES_LOCK_SLOTS`, so a window with thousands of series still
/// takes few locks (PostgreSQL's lock table is small); sharing a slot only serializes two commits.
const SERIES_LOCK_SLOTS: i64 = 64;
/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_SECS: i64 = 946_684_800;

pub struct PgStore {
    pool: PgPool,
    /// For the lock's dedicated connection (boxed: the options are large and `Store` holds this inline).
    options: Box<PgConnectOptions>,
    url: String,
    fail: FailHook,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<PgStore> {
        let redacted = redact_url(url);
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            url: redacted.clone(),
            message: scrub(&e.to_string(), url),
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(connect_err)?
            .application_name("rtc-quality-sync")
            // NOTICEs (`... already exists, skipping`) would reach the logs at info level.
            .options([("client_min_messages", "warning")]);
        // One direct connection first: the pool retries a refused connection until its acquire
        // timeout, and `check` should say at once that the database is not there.
        let probe = PgConnection::connect_with(&options)
            .await
            .map_err(connect_err)?;
        let _ = probe.close().await;
        // A run commits a few windows at a time (the fetcher's in-flight calls) while `status`-like
        // reads may come in beside them; six connections cover that without crowding the server.
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options.clone());
        Ok(PgStore {
            pool,
            options: Box::new(options),
            url: redacted,
            fail: FailHook::default(),
        })
    }

    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate {
                url: self.url.clone(),
                message: e.to_string(),
            })
    }

    /// The pool, for queries the store does not offer (tests, the benchmark's ceiling).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The database URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    #[doc(hidden)]
    pub fn set_fail_after_points(&self, n: Option<usize>) {
        self.fail.set(n);
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn try_lock(&self, holder: &str) -> Result<PgLock> {
        // A connection of its own: the advisory lock lives as long as this session, and must neither
        // go back to the pool still held nor end with a pooled connection's recycling.
        let mut conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(|e| StoreError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SYNC_LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .map_err(db("taking the sync lock"))?;
        if !got {
            let row: Option<(String, i64, String, DateTime<Utc>)> =
                sqlx::query_as("SELECT holder, pid, hostname, since FROM sync_lock WHERE id = 1")
                    .fetch_optional(&mut conn)
                    .await
                    .map_err(db("reading the lock holder"))?;
            let _ = conn.close().await;
            return Err(match row {
                Some((holder, pid, host, since)) => StoreError::Locked {
                    holder: describe_holder(&holder, pid, &host),
                    since: since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                },
                // The holder took the lock a moment ago and has not written its row yet.
                None => StoreError::Locked {
                    holder: "an unknown run".into(),
                    since: "an unknown time".into(),
                },
            });
        }
        sqlx::query(
            "INSERT INTO sync_lock (id, holder, pid, hostname, since) VALUES (1, $1, $2, $3, now()) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, \
             hostname = excluded.hostname, since = excluded.since",
        )
        .bind(holder)
        .bind(i64::from(std::process::id()))
        .bind(hostname())
        .execute(&mut conn)
        .await
        .map_err(db("recording the lock holder"))?;
        Ok(PgLock { conn: Some(conn) })
    }
}

impl Backend for PgStore {
    type DB = Postgres;
    type Writer<'a> = PoolConnection<Postgres>;

    const BEGIN: Option<&'static str> = None;

    async fn writer(&self) -> Result<Self::Writer<'_>> {
        self.pool
            .acquire()
            .await
            .map_err(db("starting a transaction"))
    }

    async fn series_ids(conn: &mut PgConnection, batch: &NormBatch<'_>) -> Result<Vec<i64>> {
        resolve_series(conn, batch).await
    }

    async fn lock_series(conn: &mut PgConnection, ids: &[i64]) -> Result<()> {
        lock_series(conn, ids).await
    }

    async fn read_stored(
        conn: &mut PgConnection,
        ids: &[i64],
        range: (i64, i64),
    ) -> Result<Stored> {
        read_stored(conn, ids, range).await
    }

    /// New points by binary `COPY` straight into `points`; changed ones by `COPY` into a staging
    /// table and one `UPDATE ... FROM`.
    async fn write_points(
        &self,
        conn: &mut PgConnection,
        batch: &WindowBatch,
        norm: &NormBatch<'_>,
        ids: &[i64],
        diff: &Diff,
    ) -> Result<()> {
        if !diff.new.is_empty() {
            let mut enc = CopyEncoder::with_capacity(diff.new.len() * 55);
            for &(id, ts, value) in &diff.new {
                enc.row(5);
                enc.int8(id);
                enc.timestamptz_secs(ts);
                enc.float8(value);
                enc.bool(batch.settled);
                enc.timestamptz(batch.fetched_at);
            }
            copy_in(
                conn,
                "COPY points (series_id, ts, value, settled, updated_at) FROM STDIN (FORMAT binary)",
                enc.finish(),
            )
            .await?;
        }
        self.fail.check(diff.new.len())?;

        if !diff.changed.is_empty() {
            // Session-local and emptied at each commit: created once per connection, never logged.
            sqlx::query(
                "CREATE TEMP TABLE IF NOT EXISTS points_stage \
                 (series_id bigint NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL) \
                 ON COMMIT DELETE ROWS",
            )
            .execute(&mut *conn)
            .await
            .map_err(db("creating the staging table"))?;
            let mut enc = CopyEncoder::with_capacity(diff.changed.len() * 38);
            for &(id, ts, value) in &diff.changed {
                enc.row(3);
                enc.int8(id);
                enc.timestamptz_secs(ts);
                enc.float8(value);
            }
            copy_in(
                conn,
                "COPY points_stage (series_id, ts, value) FROM STDIN (FORMAT binary)",
                enc.finish(),
            )
            .await?;
            // The range conditions let the planner scan just the window's slice of `points`: the
            // staging table is never analyzed, so it has no statistics to go by.
            sqlx::query(
                "UPDATE points p SET value = st.value, settled = $1, updated_at = $2 \
                 FROM points_stage st \
                 WHERE p.series_id = st.series_id AND p.ts = st.ts \
                 AND p.series_id = ANY($3) AND p.ts >= $4 AND p.ts < $5",
            )
            .bind(batch.settled)
            .bind(batch.fetched_at)
            .bind(ids)
            .bind(from_secs(norm.range.0))
            .bind(from_secs(norm.range.1))
            .execute(&mut *conn)
            .await
            .map_err(db("updating changed points"))?;
        }
        self.fail.check(diff.new.len() + diff.changed.len())?;
        Ok(())
    }

    fn shared(conn: &mut PgConnection) -> ledger::Conn<'_> {
        ledger::On::Postgres(conn)
    }
}

/// The ids of the batch's series, in order: one array-bound lookup, one array-bound insert of the
/// missing ones (then a second lookup for them), one update of changed units.
async fn resolve_series(conn: &mut PgConnection, batch: &NormBatch<'_>) -> Result<Vec<i64>> {
    let n = batch.series.len();
    let mut ids: Vec<Option<(i64, String)>> = vec![None; n];
    let all: Vec<usize> = (0..n).collect();
    lookup_series(conn, batch, &all, &mut ids).await?;
    let mut missing: Vec<usize> = (0..n).filter(|&i| ids[i].is_none()).collect();
    // Two commits adding the same new series wait on each other's unique-index entries; inserting in
    // one global order keeps that from ever becoming a deadlock.
    missing.sort_by_key(|&i| batch.series[i].key);
    if !missing.is_empty() {
        let col = |f: for<'x> fn(&'x NormSeries<'x>) -> &'x str| -> Vec<&str> {
            missing.iter().map(|&i| f(&batch.series[i])).collect()
        };
        // DO NOTHING: a concurrent commit that added the same series first wins, and the lookup
        // below (a new snapshot) finds its row.
        sqlx::query(
            "INSERT INTO series (app_id, room_id, indicator, unit, granularity, product_type, os, \
             access, user_ids) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[]) \
             ON CONFLICT ON CONSTRAINT series_key DO NOTHING",
        )
        .bind(col(|s| &s.key.app_id))
        .bind(col(|s| &s.key.room_id))
        .bind(col(|s| &s.key.indicator))
        .bind(col(|s| s.unit))
        .bind(col(|s| s.key.granularity.as_str()))
        .bind(col(|s| &s.key.product_type))
        .bind(col(|s| &s.key.os))
        .bind(col(|s| &s.key.access))
        .bind(col(|s| &s.key.user_ids))
        .execute(&mut *conn)
        .await
        .map_err(db("adding series"))?;
        lookup_series(conn, batch, &missing, &mut ids).await?;
    }
    let mut out = Vec::with_capacity(n);
    let (mut unit_ids, mut units) = (Vec::new(), Vec::new());
    for (i, found) in ids.into_iter().enumerate() {
        let (id, unit) = found.ok_or_else(|| StoreError::Corrupt {
            what: "series (inserted but not found)",
            value: format!("{:?}", batch.series[i].key),
        })?;
        if unit != batch.series[i].unit {
            unit_ids.push(id);
            units.push(batch.series[i].unit);
        }
        out.push(id);
    }
    if !unit_ids.is_empty() {
        sqlx::query(
            "UPDATE series SET unit = u.unit FROM unnest($1::bigint[], $2::text[]) AS u(id, unit) \
             WHERE series.id = u.id",
        )
        .bind(&unit_ids)
        .bind(&units)
        .execute(&mut *conn)
        .await
        .map_err(db("updating series' units"))?;
    }
    Ok(out)
}

async fn lookup_series(
    conn: &mut PgConnection,
    batch: &NormBatch<'_>,
    which: &[usize],
    ids: &mut [Option<(i64, String)>],
) -> Result<()> {
    let col = |f: for<'x> fn(&'x NormSeries<'x>) -> &'x str| -> Vec<&str> {
        which.iter().map(|&i| f(&batch.series[i])).collect()
    };
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT i.ord, s.id, s.unit \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::text[], $8::text[]) WITH ORDINALITY \
         AS i(app_id, room_id, indicator, granularity, product_type, os, access, user_ids, ord) \
         JOIN series s ON s.app_id = i.app_id AND s.room_id = i.room_id \
         AND s.indicator = i.indicator AND s.granularity = i.granularity \
         AND s.product_type = i.product_type AND s.os = i.os AND s.access = i.access \
         AND s.user_ids = i.user_ids",
    )
    .bind(col(|s| &s.key.app_id))
    .bind(col(|s| &s.key.room_id))
    .bind(col(|s| &s.key.indicator))
    .bind(col(|s| s.key.granularity.as_str()))
    .bind(col(|s| &s.key.product_type))
    .bind(col(|s| &s.key.os))
    .bind(col(|s| &s.key.access))
    .bind(col(|s| &s.key.user_ids))
    .fetch_all(&mut *conn)
    .await
    .map_err(db("looking up series"))?;
    for (ord, id, unit) in rows {
        // ORDINALITY counts from 1.
        ids[which[(ord - 1) as usize]] = Some((id, unit));
    }
    Ok(())
}

/// Keeps other transactions away from these series' points until this one ends, so the stored
/// points read next stay true until the commit and the new ones cannot meet a concurrent insert.
/// Advisory locks write nothing (a row lock on `series` would be WAL-logged on every window).
async fn lock_series(conn: &mut PgConnection, ids: &[i64]) -> Result<()> {
    let mut slots: Vec<i32> = ids
        .iter()
        .map(|id| id.rem_euclid(SERIES_LOCK_SLOTS) as i32)
        .collect();
    // One fixed order for everyone, so two commits never wait on each other in a cycle.
    slots.sort_unstable();
    slots.dedup();
    sqlx::query("SELECT count(pg_advisory_xact_lock($1, k)) FROM unnest($2::int4[]) AS k")
        .bind(SERIES_LOCK_CLASS)
        .bind(&slots)
        .execute(&mut *conn)
        .await
        .map_err(db("locking series"))?;
    Ok(())
}

/// The stored `(value, settled)` of the series' points in the range of bucket starts (seconds).
async fn read_stored(conn: &mut PgConnection, ids: &[i64], (lo, hi): (i64, i64)) -> Result<Stored> {
    let mut stored = Stored::new();
    let mut rows = sqlx::query(
        "SELECT series_id, ts, value, settled FROM points \
         WHERE series_id = ANY($1) AND ts >= $2 AND ts < $3",
    )
    .bind(ids)
    .bind(from_secs(lo))
    .bind(from_secs(hi))
    .fetch(&mut *conn);
    while let Some(r) = rows.try_next().await.map_err(db("reading stored points"))? {
        let id: i64 = r.try_get(0).map_err(db("decoding stored points"))?;
        let ts: DateTime<Utc> = r.try_get(1).map_err(db("decoding stored points"))?;
        let value: f64 = r.try_get(2).map_err(db("decoding stored points"))?;
        let settled: bool = r.try_get(3).map_err(db("decoding stored points"))?;
        stored.insert((id, ts.timestamp()), (value, settled));
    }
    Ok(stored)
}

async fn copy_in(conn: &mut PgConnection, statement: &str, data: Vec<u8>) -> Result<u64> {
    let mut copy = conn
        .copy_in_raw(statement)
        .await
        .map_err(db("starting a COPY"))?;
    // On an error the dropped `copy` tells the server to abort the COPY.
    copy.send(data).await.map_err(db("sending COPY data"))?;
    copy.finish().await.map_err(db("finishing a COPY"))
}

fn from_secs(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Holds the sync's advisory lock on a connection of its own; dropping it ends the session, which
/// releases the lock on the server.
pub struct PgLock {
    conn: Option<PgConnection>,
}

impl PgLock {
    pub async fn release(mut self) -> Result<()> {
        if let Some(mut conn) = self.conn.take() {
            // Clear the record while still holding the lock, so a new holder's is never erased.
            sqlx::query("DELETE FROM sync_lock")
                .execute(&mut conn)
                .await
                .map_err(db("clearing the lock holder"))?;
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SYNC_LOCK_KEY)
                .execute(&mut conn)
                .await
                .map_err(db("releasing the sync lock"))?;
            let _ = conn.close().await;
        }
        Ok(())
    }
}

/// Writes PostgreSQL's binary `COPY` format: a header, then per row a field count and each field as
/// a length and its big-endian bytes, then a trailer.
#[doc(hidden)]
pub struct CopyEncoder {
    buf: Vec<u8>,
}

impl CopyEncoder {
    /// The signature, a flags word and an empty header extension.
    const HEADER: &'static [u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + Self::HEADER.len() + 2);
        buf.extend_from_slice(Self::HEADER);
        CopyEncoder { buf }
    }

    pub fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    pub fn int8(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub fn float8(&mut self, v: f64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(u8::from(v));
    }

    /// A `timestamptz` from whole seconds since the Unix epoch: microseconds since 2000-01-01.
    pub fn timestamptz_secs(&mut self, secs: i64) {
        self.int8((secs - PG_EPOCH_SECS) * 1_000_000);
    }

    pub fn timestamptz(&mut self, t: DateTime<Utc>) {
        self.int8(t.timestamp_micros() - PG_EPOCH_SECS * 1_000_000);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

impl PgStore {
    /// Rows of the `quality_metrics` view, newest first; all of them when `limit` is `None`.
    /// Times are rendered as the SQLite tables store them, so both backends compare equal.
    pub async fn metrics(&self, limit: Option<i64>) -> Result<Vec<super::MetricRow>> {
        let rows = sqlx::query(
            "SELECT app_id, room_id, indicator, unit, granularity, product_type, os, access, user_ids, \
                    to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), value, settled, \
                    to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') \
             FROM quality_metrics ORDER BY ts DESC, app_id, room_id, indicator LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading quality_metrics"))?;
        rows.iter().map(decode::metric_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn copy_format_is_byte_exact() {
        let mut enc = CopyEncoder::with_capacity(0);
        enc.row(4);
        enc.int8(7);
        enc.timestamptz_secs(PG_EPOCH_SECS + 1);
        enc.float8(1.5);
        enc.bool(true);
        let bytes = enc.finish();
        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        expected.extend_from_slice(&[0, 4]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]); // 1,000,000 us
        expected.extend_from_slice(&[0, 0, 0, 8, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]); // 1.5
        expected.extend_from_slice(&[0, 0, 0, 1, 1]);
        expected.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn timestamps_count_microseconds_from_2000() {
        let at = |t: DateTime<Utc>| {
            let mut enc = CopyEncoder::with_capacity(0);
            enc.timestamptz(t);
            let b = enc.finish();
            i64::from_be_bytes(b[CopyEncoder::HEADER.len() + 4..][..8].try_into().unwrap())
        };
        assert_eq!(at(Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()), 0);
        assert_eq!(
            at(Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap()),
            -1_000_000
        );
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(at(t), (1_700_000_000 - PG_EPOCH_SECS) * 1_000_000 + 123_456);
    }
}
