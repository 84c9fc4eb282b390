//! Rows to the store's types, written once for both backends.
//!
//! The columns decode to the same Rust types in SQLite and PostgreSQL; [`Columns`] names those few
//! types, so each decoder below serves both and the two backends cannot drift apart.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::rooms::StoredCall;
use super::time::parse_bucket;
use super::{
    Assessed, CoverageRow, DistributionRow, MetricRow, Result, RunRow, StoreError, WorstRoom, db,
};
use crate::domain::{Deferred, LedgerEntry, RoomCall, RunStatus, Window, WindowState};

/// Typed column access shared by `SqliteRow` and `PgRow`.
pub(crate) trait Columns {
    fn text(&self, i: usize) -> sqlx::Result<String>;
    /// A text column, borrowed from the row.
    fn str(&self, i: usize) -> sqlx::Result<&str>;
    fn opt_text(&self, i: usize) -> sqlx::Result<Option<String>>;
    fn int(&self, i: usize) -> sqlx::Result<i64>;
    fn opt_int(&self, i: usize) -> sqlx::Result<Option<i64>>;
    fn float(&self, i: usize) -> sqlx::Result<f64>;
    fn boolean(&self, i: usize) -> sqlx::Result<bool>;
    fn time(&self, i: usize) -> sqlx::Result<DateTime<Utc>>;
    fn opt_time(&self, i: usize) -> sqlx::Result<Option<DateTime<Utc>>>;
    /// A date: PostgreSQL's `date`, SQLite's `YYYY-MM-DD` text.
    fn date(&self, i: usize) -> sqlx::Result<NaiveDate>;
    /// A bucket start in whole seconds since the epoch, however the backend stores it.
    fn bucket(&self, i: usize) -> Result<i64>;
}

macro_rules! columns_for {
    ($row:ty, $bucket:expr) => {
        impl Columns for $row {
            fn text(&self, i: usize) -> sqlx::Result<String> {
                self.try_get(i)
            }
            fn str(&self, i: usize) -> sqlx::Result<&str> {
                self.try_get(i)
            }
            fn opt_text(&self, i: usize) -> sqlx::Result<Option<String>> {
                self.try_get(i)
            }
            fn int(&self, i: usize) -> sqlx::Result<i64> {
                self.try_get(i)
            }
            fn opt_int(&self, i: usize) -> sqlx::Result<Option<i64>> {
                self.try_get(i)
            }
            fn float(&self, i: usize) -> sqlx::Result<f64> {
                self.try_get(i)
            }
            fn boolean(&self, i: usize) -> sqlx::Result<bool> {
                self.try_get(i)
            }
            fn time(&self, i: usize) -> sqlx::Result<DateTime<Utc>> {
                self.try_get(i)
            }
            fn opt_time(&self, i: usize) -> sqlx::Result<Option<DateTime<Utc>>> {
                self.try_get(i)
            }
            fn date(&self, i: usize) -> sqlx::Result<NaiveDate> {
                self.try_get(i)
            }
            fn bucket(&self, i: usize) -> Result<i64> {
                ($bucket)(self, i)
            }
        }
    };
}

columns_for!(SqliteRow, |r: &SqliteRow, i| {
    // SQLite stores `YYYY-MM-DDTHH:MM:SSZ`; parsed by hand, as this runs once per stored point.
    let ts: &str = r.try_get(i).map_err(db("decoding stored points"))?;
    parse_bucket(ts).ok_or_else(|| StoreError::Corrupt {
        what: "point timestamp",
        value: ts.to_string(),
    })
});
columns_for!(PgRow, |r: &PgRow, i| {
    let ts: DateTime<Utc> = r.try_get(i).map_err(db("decoding stored points"))?;
    Ok(ts.timestamp())
});

/// `series_id, ts, value, settled` of a stored point, the bucket start in seconds.
pub(crate) fn stored_point(r: &impl Columns) -> Result<(i64, i64, f64, bool)> {
    let ts = r.bucket(1)?;
    let decode = || -> sqlx::Result<(i64, i64, f64, bool)> {
        Ok((r.int(0)?, ts, r.float(2)?, r.boolean(3)?))
    };
    decode().map_err(db("decoding stored points"))
}

/// `stream, indicator, window_start, window_end, state, points, attempts, last_error, request_id,
/// fetched_at`.
pub(crate) fn ledger_entry(r: &impl Columns) -> Result<LedgerEntry> {
    let state = parse_state(&r.text(4).map_err(db("decoding the ledger"))?)?;
    let decode = || -> sqlx::Result<LedgerEntry> {
        Ok(LedgerEntry {
            stream: r.text(0)?.into(),
            indicator: r.text(1)?,
            window: Window {
                start: r.time(2)?,
                end: r.time(3)?,
            },
            state,
            points: r.int(5)?,
            attempts: r.int(6)?,
            last_error: r.opt_text(7)?,
            request_id: r.opt_text(8)?,
            fetched_at: r.time(9)?,
        })
    };
    decode().map_err(db("decoding the ledger"))
}

/// A ledger row as the ledger's read packs it: `[indicator, window_start, window_end, state,
/// points, attempts, last_error, request_id, fetched_at]`, the times as RFC 3339 text.
#[derive(serde::Deserialize)]
struct PackedRow<'a>(
    String,
    &'a str,
    &'a str,
    &'a str,
    i64,
    i64,
    Option<String>,
    Option<String>,
    &'a str,
);

/// `stream` and its ledger rows packed as a JSON array of [`PackedRow`]s, appended to `out`.
pub(crate) fn ledger_rows(r: &impl Columns, out: &mut Vec<LedgerEntry>) -> Result<()> {
    let stream = r.text(0).map_err(db("decoding the ledger"))?;
    let packed = r.str(1).map_err(db("decoding the ledger"))?;
    let rows: Vec<PackedRow> = serde_json::from_str(packed).map_err(|e| StoreError::Corrupt {
        what: "ledger rows",
        value: format!("{stream}: {e}"),
    })?;
    // One key for all of the stream's rows: a room stream's is long, and there are many.
    let stream: std::sync::Arc<str> = stream.into();
    out.reserve(rows.len());
    for PackedRow(indicator, start, end, state, points, attempts, last_error, request_id, at) in
        rows
    {
        out.push(LedgerEntry {
            stream: stream.clone(),
            indicator,
            window: Window {
                start: instant(start)?,
                end: instant(end)?,
            },
            state: parse_state(state)?,
            points,
            attempts,
            last_error,
            request_id,
            fetched_at: instant(at)?,
        });
    }
    Ok(())
}

/// A call as a read of `rtc_rooms` packs it: `[call_id, created_at, destroyed_at,
/// active_user_num, finished (0 or 1), first_seen_at, updated_at]`.
#[derive(serde::Deserialize)]
struct PackedCall<'a>(String, &'a str, Option<&'a str>, i64, u8, &'a str, &'a str);

/// `app_id, room_id` and the room's calls packed as a JSON array of [`PackedCall`]s, appended to
/// `out`.
pub(crate) fn room_calls(r: &impl Columns, out: &mut Vec<StoredCall>) -> Result<()> {
    let (app_id, room_id) =
        (|| Ok((r.text(0)?, r.text(1)?)))().map_err(db("decoding rtc_rooms"))?;
    let packed = r.str(2).map_err(db("decoding rtc_rooms"))?;
    let calls: Vec<PackedCall> = serde_json::from_str(packed).map_err(|e| StoreError::Corrupt {
        what: "rtc_rooms rows",
        value: format!("{room_id}: {e}"),
    })?;
    out.reserve(calls.len());
    for PackedCall(call_id, created, destroyed, users, finished, first_seen, updated) in calls {
        out.push(StoredCall {
            app_id: app_id.clone(),
            call: RoomCall {
                room_id: room_id.clone(),
                call_id,
                created_at: instant(created)?,
                destroyed_at: destroyed.map(instant).transpose()?,
                active_user_num: users,
                finished: finished != 0,
            },
            first_seen_at: instant(first_seen)?,
            updated_at: instant(updated)?,
        });
    }
    Ok(())
}

/// A stored time as JSON carries it: SQLite's own text (a bucket start parsed by hand, the common
/// case), or PostgreSQL's RFC 3339 with an offset.
fn instant(s: &str) -> Result<DateTime<Utc>> {
    if let Some(t) = parse_bucket(s).and_then(|secs| DateTime::from_timestamp(secs, 0)) {
        return Ok(t);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt {
            what: "stored time",
            value: s.to_string(),
        })
}

/// Every column of `rtc_rooms`, in table order.
pub(crate) fn stored_call(r: &impl Columns) -> Result<StoredCall> {
    let decode = || -> sqlx::Result<StoredCall> {
        Ok(StoredCall {
            app_id: r.text(0)?,
            call: RoomCall {
                room_id: r.text(1)?,
                call_id: r.text(2)?,
                created_at: r.time(3)?,
                destroyed_at: r.opt_time(4)?,
                active_user_num: r.int(5)?,
                finished: r.boolean(6)?,
            },
            first_seen_at: r.time(7)?,
            updated_at: r.time(8)?,
        })
    };
    decode().map_err(db("decoding rtc_rooms"))
}

/// Every column of `sync_runs`, in table order.
pub(crate) fn run_row(r: &impl Columns) -> Result<RunRow> {
    let status = parse_run_status(&r.text(4).map_err(db("decoding a run"))?)?;
    let count = |i: usize| r.int(i).map(|v| v as u64);
    let decode = || -> sqlx::Result<RunRow> {
        Ok(RunRow {
            id: r.int(0)?,
            mode: r.text(1)?,
            started_at: r.time(2)?,
            finished_at: r.opt_time(3)?,
            status,
            requests: count(5)?,
            retries: count(6)?,
            throttled: count(7)?,
            points_inserted: count(8)?,
            points_updated: count(9)?,
            points_unchanged: count(10)?,
            windows_ok: count(11)?,
            windows_failed: count(12)?,
            points_deleted: count(13)?,
            account: r.opt_text(14)?,
        })
    };
    decode().map_err(db("decoding a run"))
}

/// `sent_at` of `sync_calls`.
pub(crate) fn sent_at(r: &impl Columns) -> Result<DateTime<Utc>> {
    r.time(0).map_err(db("decoding sync_calls"))
}

/// `account, action, count(*)` of `sync_calls`.
pub(crate) fn call_count(r: &impl Columns) -> Result<(String, String, u64)> {
    let decode = || -> sqlx::Result<(String, String, u64)> {
        Ok((r.text(0)?, r.text(1)?, r.int(2)? as u64))
    };
    decode().map_err(db("decoding sync_calls"))
}

/// A text and a time: `action, last_call_at` of `sync_pacing`.
pub(crate) fn label_time(r: &impl Columns) -> Result<(String, Option<DateTime<Utc>>)> {
    let decode =
        || -> sqlx::Result<(String, Option<DateTime<Utc>>)> { Ok((r.text(0)?, r.opt_time(1)?)) };
    decode().map_err(db("decoding sync_pacing"))
}

/// `label, complete_through, deferred_windows, deferred_reason, missing_buckets` of `sync_streams`.
pub(crate) fn assessed(r: &impl Columns) -> Result<Assessed> {
    let decode = || -> sqlx::Result<Assessed> {
        Ok(Assessed {
            label: r.text(0)?,
            complete_through: r.opt_time(1)?,
            deferred: Deferred {
                windows: u64::try_from(r.int(2)?).unwrap_or(0),
                reason: r.opt_text(3)?,
            },
            missing_buckets: r.opt_int(4)?,
        })
    };
    decode().map_err(db("decoding sync_streams"))
}

/// `stream, label` of `sync_streams`.
pub(crate) fn key_label(r: &impl Columns) -> Result<(String, String)> {
    let decode = || -> sqlx::Result<(String, String)> { Ok((r.text(0)?, r.text(1)?)) };
    decode().map_err(db("decoding sync_streams"))
}

/// Every column of `sync_coverage`, in view order.
pub(crate) fn coverage_row(r: &impl Columns) -> Result<CoverageRow> {
    let decode = || -> sqlx::Result<CoverageRow> {
        Ok(CoverageRow {
            stream: r.text(0)?,
            settled_through: r.opt_time(1)?,
            provisional_windows: r.int(2)?,
            failed_windows: r.int(3)?,
            points: r.int(4)?,
            last_run_at: r.opt_time(5)?,
            missing_buckets: r.opt_int(6)?,
        })
    };
    decode().map_err(db("decoding sync_coverage"))
}

/// Every column of `quality_metrics`, in view order, times already rendered as text by the query.
pub(crate) fn metric_row(r: &impl Columns) -> Result<MetricRow> {
    let decode = || -> sqlx::Result<MetricRow> {
        Ok(MetricRow {
            app_id: r.text(0)?,
            room_id: r.text(1)?,
            indicator: r.text(2)?,
            unit: r.text(3)?,
            granularity: r.text(4)?,
            product_type: r.text(5)?,
            os: r.text(6)?,
            access: r.text(7)?,
            user_ids: r.text(8)?,
            ts: r.text(9)?,
            value: r.float(10)?,
            settled: r.boolean(11)?,
            updated_at: r.text(12)?,
            timezone: r.text(13)?,
            local_date: r.opt_text(14)?,
        })
    };
    decode().map_err(db("decoding quality_metrics"))
}

/// Every column of `quality_distribution`, in view order, times already rendered as text by the query.
pub(crate) fn distribution_row(r: &impl Columns) -> Result<DistributionRow> {
    let decode = || -> sqlx::Result<DistributionRow> {
        Ok(DistributionRow {
            app_id: r.text(0)?,
            indicator: r.text(1)?,
            dimension: r.text(2)?,
            dimension_value: r.text(3)?,
            product_type: r.text(4)?,
            ts: r.text(5)?,
            value: r.float(6)?,
            settled: r.boolean(7)?,
            updated_at: r.text(8)?,
            timezone: r.text(9)?,
            local_date: r.opt_text(10)?,
        })
    };
    decode().map_err(db("decoding quality_distribution"))
}

/// Every column of the starter query `09_worst_rooms_yesterday.sql`, in its order.
pub(crate) fn worst_room(r: &impl Columns) -> Result<WorstRoom> {
    let decode = || -> sqlx::Result<WorstRoom> {
        Ok(WorstRoom {
            app_id: r.text(0)?,
            room_id: r.text(1)?,
            product_type: r.text(2)?,
            os: r.text(3)?,
            access: r.text(4)?,
            user_ids: r.text(5)?,
            indicator: r.text(6)?,
            day: r.date(7)?,
            value: r.float(8)?,
            unit: r.text(9)?,
            calls: r.int(10)?,
            peak_users: r.int(11)?,
        })
    };
    decode().map_err(db("decoding the worst rooms"))
}

fn parse_state(s: &str) -> Result<WindowState> {
    WindowState::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: "ledger state",
        value: s.to_string(),
    })
}

fn parse_run_status(s: &str) -> Result<RunStatus> {
    RunStatus::parse(s).ok_or_else(|| StoreError::Corrupt {
        what: "run status",
        value: s.to_string(),
    })
}
