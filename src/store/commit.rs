//! A window's commit, written once: normalize → series ids → the series it replaces → lock → read
//! stored → diff → write and delete → ledger rows, all in one transaction.
//!
//! What differs between the backends is behind [`Backend`]: how the writer is reached and the
//! transaction begun (SQLite's one connection with `BEGIN IMMEDIATE`, a pooled PostgreSQL
//! connection), the statements that find, add and lock series and read stored points, and how
//! points are bulk-written (multi-row upserts, binary `COPY`). Times are encoded per backend by
//! `store::time`.
//!
//! **Invariant:** the window's points and its ledger rows (its settled part and its provisional
//! tail) are committed together or not at all; a point whose stored value and settled flag equal
//! the batch's is never written; a stored point of an asked indicator that the answer no longer has
//! is deleted.

use std::collections::HashSet;
use std::ops::DerefMut;

use futures::TryStreamExt;
use futures::stream::BoxStream;
use sqlx::{Connection, Database};

use super::decode::{self, Columns};
use super::diff::{Diff, NormBatch, Stored, owned_by};
use super::ledger;
use super::rooms::{self, RoomCounts, RoomListing};
use super::{Result, StoreError, db};
use crate::domain::{SeriesKey, WindowBatch, WriteCounts};

/// The connection type of a backend.
pub(super) type Conn<B> = <<B as Backend>::DB as Database>::Connection;
/// The row type of a backend.
pub(super) type Row<B> = <<B as Backend>::DB as Database>::Row;
/// Per series of a batch, `(id, unit)` once found.
pub(super) type Found = [Option<(i64, String)>];

/// A window's points as the diff sorted them, ready for the backend's bulk write.
pub(super) struct Pending<'a> {
    pub batch: &'a WindowBatch,
    pub norm: &'a NormBatch<'a>,
    /// The ids of `norm`'s series, in order.
    pub ids: &'a [i64],
    pub diff: &'a Diff,
}

/// What a backend supplies to the one commit sequence.
pub(super) trait Backend: Sync {
    type DB: Database<Row: Columns>;
    /// Holds the connection a window is committed on.
    type Writer<'a>: DerefMut<Target = Conn<Self>> + Send
    where
        Self: 'a;

    /// The statement that opens a window's transaction; `None`: the driver's plain `BEGIN`.
    const BEGIN: Option<&'static str>;

    /// The connection to commit on, waiting for it if another commit has it.
    async fn writer(&self) -> Result<Self::Writer<'_>>;

    /// Sets `found[i]` for each series `i` in `which` that is stored.
    async fn lookup_series(
        conn: &mut Conn<Self>,
        batch: &NormBatch<'_>,
        which: &[usize],
        found: &mut Found,
    ) -> Result<()>;

    /// Adds the series `which`, none of which was stored a moment ago (a concurrent commit may have
    /// added some since), showing `timezone` (a `1d` series shows its grid's offset instead).
    async fn insert_series(
        conn: &mut Conn<Self>,
        batch: &NormBatch<'_>,
        which: &[usize],
        timezone: &str,
    ) -> Result<()>;

    /// Sets the unit of each `(series id, unit)`.
    async fn update_units(conn: &mut Conn<Self>, units: &[(i64, &str)]) -> Result<()>;

    /// Keeps other writers of these series out until the commit, so what is read next stays true.
    async fn lock_series(conn: &mut Conn<Self>, ids: &[i64]) -> Result<()>;

    /// `series_id, ts, value, settled` of the series' stored points in the range of bucket starts.
    fn stored_points<'c>(
        conn: &'c mut Conn<Self>,
        ids: &'c [i64],
        range: (i64, i64),
    ) -> BoxStream<'c, sqlx::Result<Row<Self>>>;

    /// Writes the diff's new and changed points, each with its settled flag, and the batch's
    /// `fetched_at` as their `updated_at`.
    async fn write_points(&self, conn: &mut Conn<Self>, pending: &Pending<'_>) -> Result<()>;

    /// Deletes these `(series id, bucket start in seconds)` points.
    async fn delete_points(conn: &mut Conn<Self>, points: &[(i64, i64)]) -> Result<()>;

    /// The connection, for the statements written once for both backends.
    fn shared(conn: &mut Conn<Self>) -> ledger::Conn<'_>;
}

/// Begins a commit's transaction on the backend's writer, as the backend begins one.
async fn begin<B: Backend>(conn: &mut Conn<B>) -> Result<sqlx::Transaction<'_, B::DB>> {
    let begun = match B::BEGIN {
        Some(statement) => conn.begin_with(statement).await,
        None => conn.begin().await,
    };
    begun.map_err(db("starting a transaction"))
}

/// Writes one listed range of calls and its ledger row in one transaction (see `store::rooms`).
pub(super) async fn commit_listing<B: Backend>(
    backend: &B,
    listing: &RoomListing<'_>,
) -> Result<RoomCounts> {
    let mut writer = backend.writer().await?;
    let mut tx = begin::<B>(&mut writer).await?;
    match rooms::write_listing(B::shared(&mut tx), listing).await {
        Ok(counts) => {
            tx.commit().await.map_err(db("committing a listing"))?;
            Ok(counts)
        }
        Err(e) => {
            // Roll back now rather than when the connection is next used.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Writes one window's points and its ledger rows in one transaction.
pub(super) async fn commit_window<B: Backend>(
    backend: &B,
    batch: &WindowBatch,
) -> Result<WriteCounts> {
    let norm = NormBatch::new(batch);
    let mut writer = backend.writer().await?;
    let mut tx = begin::<B>(&mut writer).await?;
    match write_window(backend, &mut tx, batch, &norm).await {
        Ok(counts) => {
            tx.commit().await.map_err(db("committing a window"))?;
            Ok(counts)
        }
        Err(e) => {
            // Roll back now rather than when the connection is next used.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn write_window<B: Backend>(
    backend: &B,
    conn: &mut Conn<B>,
    batch: &WindowBatch,
    norm: &NormBatch<'_>,
) -> Result<WriteCounts> {
    let ids = series_ids::<B>(conn, norm, &batch.timezone).await?;
    // Every stored series of the query whose name an asked indicator owns: the answer replaces
    // their points inside the window, including series it no longer returns at all.
    let replaced: HashSet<i64> = ledger::scope_series(B::shared(conn), &batch.scope)
        .await?
        .into_iter()
        .filter(|(_, name)| owned_by(name, &batch.owners, &batch.indicators).is_some())
        .map(|(id, _)| id)
        .collect();
    let mut touched: Vec<i64> = ids.iter().chain(&replaced).copied().collect();
    touched.sort_unstable();
    touched.dedup();
    B::lock_series(conn, &touched).await?;
    let stored = read_stored::<B>(conn, &touched, norm.range).await?;
    let diff = Diff::compute(norm, &ids, &stored, &replaced);
    let pending = Pending {
        batch,
        norm,
        ids: &ids,
        diff: &diff,
    };
    backend.write_points(conn, &pending).await?;
    if !diff.deleted.is_empty() {
        B::delete_points(conn, &diff.deleted).await?;
    }
    let parts: Vec<_> = batch
        .parts()
        .into_iter()
        .map(|(w, state)| {
            (
                w,
                state,
                norm.points_of(&batch.owners, &batch.indicators, w),
            )
        })
        .collect();
    ledger::replace_window(B::shared(conn), &batch.into(), &parts).await?;
    Ok(diff.counts())
}

/// The offset a new series shows: its grid's (`1d`), else the configured one.
pub(super) fn shown_timezone<'a>(key: &'a SeriesKey, configured: &'a str) -> &'a str {
    if key.grid_timezone.is_empty() {
        configured
    } else {
        &key.grid_timezone
    }
}

/// The ids of the batch's series, in order: looked up, the missing ones added (shown in
/// `timezone`, their grid's for `1d`) and looked up again, and units updated where the API now says
/// otherwise.
async fn series_ids<B: Backend>(
    conn: &mut Conn<B>,
    batch: &NormBatch<'_>,
    timezone: &str,
) -> Result<Vec<i64>> {
    let n = batch.series.len();
    let mut found: Vec<Option<(i64, String)>> = vec![None; n];
    let all: Vec<usize> = (0..n).collect();
    B::lookup_series(conn, batch, &all, &mut found).await?;
    let missing: Vec<usize> = (0..n).filter(|&i| found[i].is_none()).collect();
    if !missing.is_empty() {
        B::insert_series(conn, batch, &missing, timezone).await?;
        B::lookup_series(conn, batch, &missing, &mut found).await?;
    }
    let mut ids = Vec::with_capacity(n);
    let mut units = Vec::new();
    for (i, f) in found.into_iter().enumerate() {
        let (id, unit) = f.ok_or_else(|| StoreError::Corrupt {
            what: "series (inserted but not found)",
            value: format!("{:?}", batch.series[i].key),
        })?;
        if unit != batch.series[i].unit {
            units.push((id, batch.series[i].unit));
        }
        ids.push(id);
    }
    if !units.is_empty() {
        B::update_units(conn, &units).await?;
    }
    Ok(ids)
}

/// The stored `(value, settled)` of the series' points in the range of bucket starts.
async fn read_stored<B: Backend>(
    conn: &mut Conn<B>,
    ids: &[i64],
    range: (i64, i64),
) -> Result<Stored> {
    let mut stored = Stored::new();
    if ids.is_empty() {
        return Ok(stored);
    }
    let mut rows = B::stored_points(conn, ids, range);
    while let Some(r) = rows.try_next().await.map_err(db("reading stored points"))? {
        let (id, ts, value, settled) = decode::stored_point(&r)?;
        stored.insert((id, ts), (value, settled));
    }
    Ok(stored)
}

/// The failure-injection counter both backends share: a test hook, state and all only with the
/// `testing` feature; without it every check passes and compiles to nothing.
#[derive(Default)]
pub(crate) struct FailHook {
    #[cfg(feature = "testing")]
    after: std::sync::Mutex<Option<usize>>,
}

impl FailHook {
    #[cfg(feature = "testing")]
    pub fn set(&self, n: Option<usize>) {
        *self.after.lock().unwrap_or_else(|e| e.into_inner()) = n;
    }

    /// Fails once `written` points have been written, if the hook is set that low.
    #[cfg(feature = "testing")]
    pub fn check(&self, written: usize) -> Result<()> {
        match *self.after.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(n) if written >= n => Err(StoreError::Injected { points: written }),
            _ => Ok(()),
        }
    }

    /// Never fails: the hook exists only with the `testing` feature.
    #[cfg(not(feature = "testing"))]
    #[inline(always)]
    pub fn check(&self, _written: usize) -> Result<()> {
        Ok(())
    }
}
