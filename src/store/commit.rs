//! A window's commit, written once: normalize → series ids → lock → read stored → diff → write →
//! ledger row, all in one transaction.
//!
//! What differs between the backends is behind [`Backend`]: how the writer is reached and the
//! transaction begun (SQLite's one connection with `BEGIN IMMEDIATE`, a pooled PostgreSQL
//! connection), how series ids are found, how the series are locked, and how points are bulk-written.
//!
//! **Invariant:** the window's points and its ledger row are committed together or not at all; a
//! point whose stored value and settled flag equal the batch's is never written.

use std::ops::DerefMut;

use sqlx::{Connection, Database};

use super::diff::{Diff, NormBatch, Stored};
use super::ledger;
use super::{Result, StoreError, db};
use crate::domain::{WindowBatch, WriteCounts};

/// The connection type of a backend.
pub(super) type Conn<B> = <<B as Backend>::DB as Database>::Connection;

/// What a backend supplies to the one commit sequence.
pub(super) trait Backend: Sync {
    type DB: Database;
    /// Holds the connection a window is committed on.
    type Writer<'a>: DerefMut<Target = Conn<Self>> + Send
    where
        Self: 'a;

    /// The statement that opens a window's transaction; `None`: the driver's plain `BEGIN`.
    const BEGIN: Option<&'static str>;

    /// The connection to commit on, waiting for it if another commit has it.
    async fn writer(&self) -> Result<Self::Writer<'_>>;

    /// The ids of the batch's series, in order, adding the missing series and updating changed units.
    async fn series_ids(conn: &mut Conn<Self>, batch: &NormBatch<'_>) -> Result<Vec<i64>>;

    /// Keeps other writers of these series out until the commit, so what is read next stays true.
    async fn lock_series(conn: &mut Conn<Self>, ids: &[i64]) -> Result<()>;

    /// The stored `(value, settled)` of the series' points in the range of bucket starts.
    async fn read_stored(conn: &mut Conn<Self>, ids: &[i64], range: (i64, i64)) -> Result<Stored>;

    /// Writes the diff's new and changed points (of the series `ids`) with the batch's settled flag and `fetched_at`.
    async fn write_points(
        &self,
        conn: &mut Conn<Self>,
        batch: &WindowBatch,
        norm: &NormBatch<'_>,
        ids: &[i64],
        diff: &Diff,
    ) -> Result<()>;

    /// The connection, for the statements written once for both backends.
    fn shared(conn: &mut Conn<Self>) -> ledger::Conn<'_>;
}

/// Writes one window's points and its ledger row in one transaction.
pub(super) async fn commit_window<B: Backend>(
    backend: &B,
    batch: &WindowBatch,
) -> Result<WriteCounts> {
    let norm = NormBatch::new(batch);
    let mut writer = backend.writer().await?;
    let begun = match B::BEGIN {
        Some(statement) => writer.begin_with(statement).await,
        None => writer.begin().await,
    };
    let mut tx = begun.map_err(db("starting a transaction"))?;
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
    let ids = B::series_ids(conn, norm).await?;
    B::lock_series(conn, &ids).await?;
    let stored = B::read_stored(conn, &ids, norm.range).await?;
    let diff = Diff::compute(norm, &ids, &stored, batch.settled);
    backend.write_points(conn, batch, norm, &ids, &diff).await?;
    ledger::replace_window(B::shared(conn), batch, norm.point_count() as i64).await?;
    Ok(diff.counts())
}

/// The failure-injection counter both backends share (a test hook: unset, it never fails).
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
