//! The rows the store returns to `status`, `demo` and the tests: coverage, runs, metrics,
//! distribution points and the worst rooms.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::domain::{Deferred, RunCounts, RunStatus, WriteCounts};

/// One row of the `sync_coverage` view: what `status` shows per stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageRow {
    pub stream: String,
    /// The end of the settled range that runs unbroken from the horizon start, as of the last run.
    pub settled_through: Option<DateTime<Utc>>,
    pub provisional_windows: i64,
    pub failed_windows: i64,
    /// Points stored by the stream's current ledger rows.
    pub points: i64,
    /// When the stream's latest window was fetched.
    pub last_run_at: Option<DateTime<Utc>>,
    /// Buckets of the horizon that no window covers, as of the last run (`None`: not assessed yet).
    pub missing_buckets: Option<i64>,
}

/// What the last run that ran a stream stored of it beside `sync_coverage` (`sync_streams`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessed {
    pub label: String,
    /// The end of the covered range unbroken from the horizon start (what the metrics show).
    pub complete_through: Option<DateTime<Utc>>,
    /// What that run deferred of it.
    pub deferred: Deferred,
    /// What it found missing (`None`: never assessed); kept also for a stream with no ledger row
    /// yet, which `sync_coverage` does not list.
    pub missing_buckets: Option<i64>,
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
    /// The offset of the series' grid (`1d`) or the configured one (`5min`); `''` for a series
    /// stored before this column existed and not synced since.
    pub timezone: String,
    /// The local date in `timezone` on which the bucket starts, `YYYY-MM-DD`.
    pub local_date: Option<String>,
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

/// One row of the `quality_distribution` view, times as `YYYY-MM-DDTHH:MM:SSZ` text on both backends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributionRow {
    pub app_id: String,
    /// The `Name` the API returned.
    pub indicator: String,
    /// `Province`, `Country`, `OS` or `Access`.
    pub dimension: String,
    /// As the API returned it, e.g. `广东`.
    pub dimension_value: String,
    pub product_type: String,
    pub ts: String,
    pub value: f64,
    pub settled: bool,
    pub updated_at: String,
    /// The offset of the day grid it was fetched on.
    pub timezone: String,
    /// The local date in `timezone` on which the point's `ts` lies, `YYYY-MM-DD`.
    pub local_date: Option<String>,
}

impl std::fmt::Display for DistributionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}={} {} {} ({})",
            self.app_id,
            self.indicator,
            self.dimension,
            self.dimension_value,
            self.ts,
            self.value,
            if self.settled {
                "settled"
            } else {
                "provisional"
            }
        )
    }
}

/// One row of the starter query `09_worst_rooms_yesterday.sql`: a room series' stall rate on the
/// last settled local day, with its calls that day and their peak users from `rtc_rooms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstRoom {
    pub app_id: String,
    pub room_id: String,
    pub product_type: String,
    pub os: String,
    pub access: String,
    pub user_ids: String,
    /// The `Name` the API returned, e.g. `video_stall_rate`.
    pub indicator: String,
    /// The local date of the day, in the series' offset.
    pub day: NaiveDate,
    /// The day's value, rounded to 2 places.
    pub value: f64,
    pub unit: String,
    /// The room's calls that ran during the day.
    pub calls: i64,
    /// The highest `active_user_num` of those calls.
    pub peak_users: i64,
}

impl std::fmt::Display for WorstRoom {
    /// `demo_app_0 / room-3, video_stall_rate 4.1%, 12 calls, peak 9 users`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "{} / {}, {} {}{}, {}, peak {}",
            self.app_id,
            self.room_id,
            self.indicator,
            self.value,
            self.unit,
            n(self.calls, "call", "calls"),
            n(self.peak_users, "user", "users")
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
    /// Stored points that re-fetched windows no longer had, and that were deleted.
    pub points_deleted: u64,
    /// The account the run synced (a hash of its access key id); `None` for runs of earlier
    /// versions, and runs started without one.
    pub account: Option<String>,
}

impl std::fmt::Display for RunRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `1 window`, `2 windows`: a count with the noun that fits it.
        let n = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "#{} {} started {} {}: {} ok, {} failed; {}, {}, {} throttled; points {} inserted, {} updated, {} unchanged, {} deleted",
            self.id,
            self.mode,
            self.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
            self.status.as_str(),
            n(self.windows_ok, "window", "windows"),
            self.windows_failed,
            n(self.requests, "call", "calls"),
            n(self.retries, "retry", "retries"),
            self.throttled,
            self.points_inserted,
            self.points_updated,
            self.points_unchanged,
            self.points_deleted
        )?;
        if self.status == RunStatus::Abandoned {
            write!(
                f,
                " (it never finished: killed or crashed; the windows it committed are kept, its calls and points were not recorded)"
            )?;
        }
        Ok(())
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
                deleted: self.points_deleted,
            },
            windows_ok: self.windows_ok,
            windows_failed: self.windows_failed,
        }
    }
}
