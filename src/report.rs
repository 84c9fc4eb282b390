//! What the commands print: plans, run summaries and status, as text tables and JSON.
//!
//! **Invariant:** nothing here changes state; it formats what the planner and the store return.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Settings, SourceSettings};
use crate::domain::{Deferred, LedgerEntry, RunStatus, WindowState};
use crate::health::{self, Problem, ProblemLine};
use crate::metrics;
use crate::pipeline::RunReport;
use crate::planner::Plan;
use crate::store::{CoverageRow, RunRow, Store, StoreError};

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `n` and the noun that fits it: `1 window`, `2 windows`, `0 windows`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// The plan as a table: one line per window, then the totals.
/// One account's share of a plan when several run at once, each at its own quotas: `plan` then
/// says how long each takes, and the run takes the longest.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountEstimate {
    pub account: String,
    pub requests: usize,
    pub duration: std::time::Duration,
    pub requests_per_second: f64,
}

pub fn plan_text(plan: &Plan, source: &SourceSettings, accounts: &[AccountEstimate]) -> String {
    let mut out = String::new();
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for s in &plan.streams {
        match s.range {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "{}  range {} .. {}  {}",
                    s.stream,
                    ts(r.start),
                    ts(r.end),
                    count(s.windows.len() as u64, "window", "windows")
                );
            }
            None => {
                let _ = writeln!(out, "{}  nothing in range", s.stream);
            }
        }
        for w in &s.windows {
            let _ = write!(
                out,
                "  {} .. {}  ({:.1} days)",
                ts(w.window.start),
                ts(w.window.end),
                w.window.duration().num_seconds() as f64 / 86_400.0
            );
            // Name the indicators when a call asks only some of the job's.
            if w.indicators.len() < s.indicators {
                let _ = write!(out, "  {}", w.indicators.join(", "));
            }
            let _ = writeln!(out);
        }
    }
    for (label, ranges) in &plan.listings {
        let _ = writeln!(
            out,
            "{label}  {} to list with ListRoomInfo (one call or more each, at {} requests/s)",
            count(ranges.len() as u64, "range", "ranges"),
            source.room_list_requests_per_second
        );
        for r in ranges {
            let _ = writeln!(out, "  {} .. {}", ts(r.start), ts(r.end));
        }
        let _ = writeln!(
            out,
            "  then its rooms' ListQuality windows, planned from the calls listed"
        );
    }
    let mut requests = count(plan.request_count() as u64, "request", "requests");
    let ranges: usize = plan.listings.iter().map(|(_, r)| r.len()).sum();
    if ranges > 0 {
        // The rooms' windows are known only once their calls are listed.
        requests = format!(
            "{} to list, then {requests} and the rooms' windows",
            count(ranges as u64, "ListRoomInfo range", "ListRoomInfo ranges")
        );
    }
    if accounts.len() > 1 {
        let longest = accounts
            .iter()
            .map(|a| a.duration)
            .max()
            .unwrap_or_default();
        let each: Vec<String> = accounts
            .iter()
            .map(|a| {
                format!(
                    "{} {} (about {} at {} requests/s)",
                    a.account,
                    a.requests,
                    human_duration(a.duration),
                    a.requests_per_second
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{requests} from {} accounts at once, each at its own quotas, about {}: {}",
            accounts.len(),
            human_duration(longest),
            each.join(", ")
        );
        return out;
    }
    let estimate = plan.estimated_duration(
        source.requests_per_second,
        source.distribution_requests_per_second,
    );
    let _ = match plan.distribution_request_count() {
        0 => writeln!(
            out,
            "{requests}, about {} at {} requests/s",
            human_duration(estimate),
            source.requests_per_second
        ),
        d => writeln!(
            out,
            "{requests} ({d} of them ListQualityDistribution), about {} at {} and {} requests/s at once",
            human_duration(estimate),
            source.requests_per_second,
            source.distribution_requests_per_second
        ),
    };
    out
}

/// One account's action in `plan`: the calls planned, how many its daily budget allows now, and
/// when the rest will have been sent at the budget's pace.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BudgetPlan {
    pub account: String,
    pub action: String,
    /// Calls planned (a listing range counts one; its pages and the room streams it finds are
    /// not known before it runs).
    pub planned: u64,
    pub per_day: u32,
    /// Calls the budget allows now.
    pub budget_left: u64,
    /// Of the planned calls, how many fit now.
    pub fit: u64,
    /// When the last planned call will have been sent at `per_day` a day; `None` when all fit.
    pub done_by: Option<DateTime<Utc>>,
}

/// Per account with a daily budget and per budgeted action: [`BudgetPlan`]. `sent(account,
/// action)` is the calls the database recorded in the last 24 hours.
pub fn budget_plan(
    settings: &crate::config::Settings,
    streams: &[crate::domain::Stream],
    plan: &Plan,
    sent: &dyn Fn(&str, &str) -> Vec<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<BudgetPlan> {
    let block_of_stream = |label: &str| {
        streams
            .iter()
            .find(|s| s.name == label)
            .map(|s| s.job.name.clone())
    };
    let mut out = Vec::new();
    for account in &settings.accounts {
        for (action, &per_day) in &account.per_day {
            let of_account = |block: Option<String>| {
                block.is_some_and(|b| settings.account_of(&b) == account.name)
            };
            let planned = match action.as_str() {
                "ListRoomInfo" => plan
                    .listings
                    .iter()
                    .filter(|(label, _)| {
                        of_account(label.strip_suffix("/rooms").map(str::to_string))
                    })
                    .map(|(_, ranges)| ranges.len() as u64)
                    .sum(),
                a => plan
                    .streams
                    .iter()
                    .filter(|s| s.distribution == (a == "ListQualityDistribution"))
                    .filter(|s| of_account(block_of_stream(&s.stream)))
                    .map(|s| s.windows.len() as u64)
                    .sum(),
            };
            let calls = sent(&account.name, action);
            let budget_left =
                u64::from(crate::budget::Budget::new(per_day, calls.clone()).left(now));
            let (fit, done_by) = crate::budget::forecast(per_day, &calls, planned, now);
            out.push(BudgetPlan {
                account: account.name.clone(),
                action: action.clone(),
                planned,
                per_day,
                budget_left,
                fit,
                done_by,
            });
        }
    }
    out
}

/// `plan`'s lines for the daily budgets.
pub fn budget_text(budgets: &[BudgetPlan]) -> String {
    let mut out = String::new();
    for b in budgets {
        let rest = match b.done_by {
            None => "all fit".to_string(),
            Some(t) => format!(
                "the other {} by {} at {} a day",
                b.planned - b.fit,
                ts(t),
                b.per_day
            ),
        };
        let _ = writeln!(
            out,
            "account {}: {} {} planned, {} fit in the budget left ({} of {} a day); {rest}",
            b.account,
            b.action,
            count(b.planned, "call", "calls"),
            b.fit,
            b.budget_left,
            b.per_day
        );
    }
    out
}

#[derive(Serialize)]
pub struct PlanJson<'a> {
    pub requests: usize,
    pub estimated_seconds: f64,
    pub requests_per_second: f64,
    /// `ListQualityDistribution`'s calls and rate, paced apart.
    pub distribution_requests: usize,
    pub distribution_requests_per_second: f64,
    pub warnings: &'a [String],
    pub streams: &'a [crate::planner::StreamPlan],
    /// Per account and budgeted action: planned, fit now, done by.
    pub budgets: Vec<BudgetPlan>,
}

pub fn plan_json<'a>(plan: &'a Plan, source: &SourceSettings) -> PlanJson<'a> {
    PlanJson {
        requests: plan.request_count(),
        estimated_seconds: plan
            .estimated_duration(
                source.requests_per_second,
                source.distribution_requests_per_second,
            )
            .as_secs_f64(),
        requests_per_second: source.requests_per_second,
        distribution_requests: plan.distribution_request_count(),
        distribution_requests_per_second: source.distribution_requests_per_second,
        warnings: &plan.warnings,
        streams: &plan.streams,
        budgets: Vec::new(),
    }
}

/// The end-of-run summary: one line per stream, then the totals.
pub fn summary_text(r: &RunReport) -> String {
    let mut out = String::new();
    // The accounts' spending, when a budget is in play or there are several.
    let shown = r.accounts.len() > 1
        || r.accounts
            .iter()
            .any(|a| a.windows_deferred > 0 || a.actions.iter().any(|u| u.per_day.is_some()));
    for a in r.accounts.iter().filter(|_| shown) {
        let actions: Vec<String> = a
            .actions
            .iter()
            .map(|u| match (u.per_day, u.budget_remaining) {
                (Some(n), Some(left)) => {
                    format!("{} {} in 24 h, {left} of {n} left", u.action, u.calls_24h)
                }
                _ => format!("{} {} in 24 h", u.action, u.calls_24h),
            })
            .collect();
        let _ = writeln!(
            out,
            "account {}: {}, {} deferred; {}",
            a.name,
            count(a.calls, "call", "calls"),
            count(a.windows_deferred, "window", "windows"),
            if actions.is_empty() {
                "no calls".to_string()
            } else {
                actions.join("; ")
            }
        );
    }
    for b in &r.rooms {
        let _ = writeln!(
            out,
            "{:<40} {} listed, {} in {} known; {} ok, {} failed, {} deferred; {}, {}; points {} inserted, {} updated, {} unchanged",
            format!("{}/rooms", b.name),
            count(b.calls_listed, "call", "calls"),
            count(b.calls_known, "call", "calls"),
            count(b.rooms_known, "room", "rooms"),
            count(b.windows_ok, "window", "windows"),
            b.windows_failed,
            b.windows_deferred,
            count(b.list_calls, "ListRoomInfo call", "ListRoomInfo calls"),
            count(b.calls, "ListQuality call", "ListQuality calls"),
            b.points.inserted,
            b.points.updated,
            b.points.unchanged,
        );
        if let Some(e) = &b.error {
            let _ = writeln!(out, "  error: {e}");
        }
    }
    if !r.streams.is_empty() || r.rooms.is_empty() {
        let _ = writeln!(
            out,
            "{:<40} {:>7} {:>6} {:>8} {:>8} {:>9} {:>6}",
            "stream", "windows", "failed", "inserted", "updated", "unchanged", "calls"
        );
    }
    for s in &r.streams {
        let _ = writeln!(
            out,
            "{:<40} {:>7} {:>6} {:>8} {:>8} {:>9} {:>6}",
            s.stream,
            format!("{}/{}", s.windows_ok, s.windows_planned),
            s.windows_failed,
            s.points.inserted,
            s.points.updated,
            s.points.unchanged,
            s.calls
        );
        if s.points.deleted > 0 {
            let _ = writeln!(
                out,
                "  {} point(s) deleted: re-fetched windows no longer had them",
                s.points.deleted
            );
        }
        if s.points_dropped > 0 {
            let _ = writeln!(
                out,
                "  {} off the {} grid dropped (see the warnings)",
                count(s.points_dropped, "point", "points"),
                s.stream.rsplit('/').next().unwrap_or("")
            );
        }
        // Errors that stopped a job or every job are said once, below.
        if let Some(e) = &s.error
            && r.credentials_error.is_none()
            && !r.failed_jobs.iter().any(|(_, je)| je == e)
        {
            let _ = writeln!(out, "  error: {e}");
        }
    }
    let c = &r.counts;
    let not_attempted: u64 = r.streams.iter().map(|s| s.windows_skipped).sum();
    let not_attempted = match not_attempted {
        0 => String::new(),
        n => format!(", {n} not attempted (the next run fetches them)"),
    };
    let secs = r.duration_ms as f64 / 1000.0;
    // n calls span n - 1 intervals: the first one goes out at once.
    let rate = match c.requests {
        0 | 1 => String::new(),
        n if secs > 0.0 => format!(" at {:.2}/s", (n - 1) as f64 / secs),
        _ => String::new(),
    };
    // Each account's part is a run of its own: `runs 1, 2` when several ran at once.
    let runs = match r.accounts.as_slice() {
        [_, _, ..] => {
            let mut ids: Vec<i64> = r.accounts.iter().map(|a| a.run_id).collect();
            ids.sort_unstable();
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            format!("runs {}", ids.join(", "))
        }
        _ => format!("run {}", r.run_id),
    };
    let _ = writeln!(
        out,
        "{runs} {}: {} ok, {} failed{not_attempted}; points {} inserted, {} updated, {} unchanged{}; \
         {}{rate}, {}, {} throttled; {}",
        r.status.as_str(),
        count(c.windows_ok, "window", "windows"),
        c.windows_failed,
        c.points.inserted,
        c.points.updated,
        c.points.unchanged,
        match c.points.deleted {
            0 => String::new(),
            n => format!(", {n} deleted"),
        },
        count(c.requests, "call", "calls"),
        count(c.retries, "retry", "retries"),
        c.throttled,
        human_duration(std::time::Duration::from_millis(r.duration_ms))
    );
    if let Some(e) = &r.credentials_error {
        let _ = writeln!(out, "every job stopped: {e}");
    }
    if let Some(e) = &r.store_error {
        let _ = writeln!(
            out,
            "the run stopped: {e}; the windows counted above are committed, the next run fetches the rest"
        );
    }
    if let Some(e) = &r.end_not_recorded {
        let _ = writeln!(
            out,
            "the run's end could not be recorded in the database ({e}); the next run marks it abandoned"
        );
    }
    for (job, e) in &r.failed_jobs {
        let _ = writeln!(out, "job {job} stopped: {e}");
    }
    out
}

/// `sync --json`: the run summary as PRODUCT.md fixes it.
#[derive(Debug, Serialize)]
pub struct SummaryJson {
    pub status: &'static str,
    pub exit_code: u8,
    /// `None` when the run failed before it was recorded.
    pub run_id: Option<i64>,
    pub started_at: String,
    pub duration_s: f64,
    pub calls: u64,
    pub retries: u64,
    pub throttled: u64,
    /// Windows a cap or a daily budget left for the next run: the sum over streams and blocks.
    pub windows_deferred: u64,
    pub streams: Vec<StreamJson>,
    /// One object per `[[rooms]]` block (PRODUCT.md, "Room streams"); its room streams are not in
    /// `streams`.
    pub rooms: Vec<RoomsJson>,
    /// One object per account the run covered: `name`, `run_id`, `calls`, `windows_deferred`, and
    /// per action its calls in the last 24 hours and its budget left (PRODUCT.md, "Accounts and
    /// daily budgets").
    pub accounts: Vec<crate::pipeline::AccountSummary>,
    /// Why the run failed before it could commit anything, or why the database stopped it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StreamJson {
    pub stream: String,
    pub windows_ok: u64,
    pub windows_failed: u64,
    pub windows_deferred: u64,
    pub points_inserted: u64,
    pub points_updated: u64,
    pub points_unchanged: u64,
    /// Stored points that a re-fetched window no longer had (null or absent), deleted.
    pub points_deleted: u64,
    /// Points the API returned that were not stored (off the stream's grid); points outside the
    /// window, such as the bucket at `EndTime`, are not counted.
    pub points_dropped: u64,
    pub calls: u64,
}

/// A `[[rooms]]` block in `sync --json`: its listing, and its room streams' windows and points.
#[derive(Debug, Serialize)]
pub struct RoomsJson {
    pub name: String,
    /// Distinct `CallId`s this run's listing returned.
    pub calls_listed: u64,
    /// Its app's rows in `rtc_rooms`.
    pub calls_known: u64,
    pub rooms_known: u64,
    /// Room-stream windows and listing ranges.
    pub windows_ok: u64,
    pub windows_failed: u64,
    pub windows_deferred: u64,
    pub points_inserted: u64,
    pub points_updated: u64,
    pub points_unchanged: u64,
    pub points_deleted: u64,
    pub points_dropped: u64,
    /// `ListQuality` requests for its rooms.
    pub calls: u64,
    /// `ListRoomInfo` requests.
    pub list_calls: u64,
}

pub fn summary_json(r: &RunReport) -> SummaryJson {
    SummaryJson {
        status: r.status.as_str(),
        exit_code: r.exit_code(),
        run_id: Some(r.run_id),
        started_at: ts(r.started_at),
        duration_s: r.duration_ms as f64 / 1000.0,
        calls: r.counts.requests,
        retries: r.counts.retries,
        throttled: r.counts.throttled,
        // The sum over streams and `[[rooms]]` blocks.
        windows_deferred: r.streams.iter().map(|s| s.deferred.windows).sum::<u64>()
            + r.rooms.iter().map(|b| b.windows_deferred).sum::<u64>(),
        streams: r
            .streams
            .iter()
            .map(|s| StreamJson {
                stream: s.stream.clone(),
                windows_ok: s.windows_ok,
                windows_failed: s.windows_failed,
                windows_deferred: s.deferred.windows,
                points_inserted: s.points.inserted,
                points_updated: s.points.updated,
                points_unchanged: s.points.unchanged,
                points_deleted: s.points.deleted,
                points_dropped: s.points_dropped,
                calls: s.calls,
            })
            .collect(),
        rooms: r
            .rooms
            .iter()
            .map(|b| RoomsJson {
                name: b.name.clone(),
                calls_listed: b.calls_listed,
                calls_known: b.calls_known,
                rooms_known: b.rooms_known,
                windows_ok: b.windows_ok,
                windows_failed: b.windows_failed,
                windows_deferred: b.windows_deferred,
                points_inserted: b.points.inserted,
                points_updated: b.points.updated,
                points_unchanged: b.points.unchanged,
                points_deleted: b.points.deleted,
                points_dropped: b.points_dropped,
                calls: b.calls,
                list_calls: b.list_calls,
            })
            .collect(),
        accounts: r.accounts.clone(),
        error: r.store_error.clone(),
    }
}

/// `sync --json` for a run that could not start or stopped before it had a report (its error is
/// also on stderr); `exit_code` is the process's (3 when another run holds the lock).
pub fn failure_json(
    started_at: DateTime<Utc>,
    exit_code: u8,
    error: &dyn std::fmt::Display,
) -> SummaryJson {
    let status = if exit_code == crate::error::Outcome::Interrupted.exit_code() {
        RunStatus::Interrupted
    } else {
        RunStatus::Failed
    };
    SummaryJson {
        status: status.as_str(),
        exit_code,
        run_id: None,
        started_at: ts(started_at),
        duration_s: 0.0,
        calls: 0,
        retries: 0,
        throttled: 0,
        windows_deferred: 0,
        streams: Vec::new(),
        rooms: Vec::new(),
        accounts: Vec::new(),
        error: Some(error.to_string()),
    }
}

/// A command's `--json` output when it could not run: `{"error": ..., "exit_code": ...}`.
#[derive(Debug, Serialize)]
pub struct ErrorJson {
    pub error: String,
    pub exit_code: u8,
}

/// [`ErrorJson`] for an error and the exit code it ends the process with.
pub fn error_json(exit_code: u8, error: &dyn std::fmt::Display) -> ErrorJson {
    ErrorJson {
        error: error.to_string(),
        exit_code,
    }
}

/// `status`: coverage per stream, the windows that still need work, and the last run; with the
/// configuration, also the configured streams never synced, the stored ones no job asks for any
/// more, and each configured stream's problems (`status --check`).
#[derive(Debug, Default, Serialize)]
pub struct Status {
    /// Whether there is a database at all: before the first `sync`, every configured stream is
    /// listed as never synced, and nothing is created.
    pub database: Database,
    pub streams: Vec<StreamStatus>,
    pub last_run: Option<RunRow>,
    /// Configured streams with no checkpoint yet.
    pub never_synced: Vec<String>,
    /// Stored streams that no configured job asks for any more (their points stay).
    pub not_configured: Vec<String>,
    /// `(label, label of the stream it shares)`: configured streams that ask the same query as an
    /// earlier one (rule 6), planned and stored as that one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<(String, String)>,
    /// One entry per problem of a configured stream; `None` without a configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<StreamProblem>>,
    #[serde(skip)]
    ledger: Vec<LedgerEntry>,
    /// Each configured stream's health, once judged.
    #[serde(skip)]
    health: Vec<health::StreamHealth>,
    /// One entry per configured `[[rooms]]` block (PRODUCT.md, "Room streams"), never one per room.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<RoomsStatus>,
    /// Per configured account (whose access key is known here) and action: its calls in the last
    /// 24 hours and its daily budget (PRODUCT.md, "Accounts and daily budgets").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountStatus>,
    /// Whether the text shows the accounts: there are `[[accounts]]`, or a budget.
    #[serde(skip)]
    show_accounts: bool,
    /// With several accounts, each one's last run (each account's part of a sync is a run of its
    /// own), by account name; the text shows them in place of the one `last_run`.
    #[serde(skip)]
    account_runs: Vec<(String, RunRow)>,
}

/// One action of one account in `status`: calls in the last 24 hours, and its daily budget.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccountStatus {
    pub account: String,
    pub action: String,
    pub calls_24h: u64,
    /// `None` without a daily budget.
    pub per_day: Option<u32>,
    pub budget_remaining: Option<u64>,
}

/// Each configured account's calls in the last 24 hours, per action, and what its budgets allow.
/// An account is found in the database by the hash of its access key, so one whose keys are not
/// set on this machine is left out.
async fn account_status(
    store: &Store,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<(Vec<AccountStatus>, Vec<(String, RunRow)>), StoreError> {
    let path = settings.path.display().to_string();
    let mut out = Vec::new();
    let mut runs = Vec::new();
    for account in &settings.accounts {
        let credentials = account.credentials_here(&path);
        let Some(credentials) = credentials else {
            continue;
        };
        let id = credentials.account_id();
        if settings.accounts.len() > 1
            && let Some(run) = store.last_run_of(&id).await?
        {
            runs.push((account.name.clone(), run));
        }
        for (action, _) in crate::config::accounts::ACTIONS {
            let calls = store
                .calls_since(&id, action, now - crate::budget::DAY)
                .await?;
            let per_day = account.budget(action);
            if calls.is_empty() && per_day.is_none() {
                continue;
            }
            out.push(AccountStatus {
                account: account.name.clone(),
                action: action.to_string(),
                calls_24h: calls.len() as u64,
                budget_remaining: per_day
                    .map(|n| u64::from(crate::budget::Budget::new(n, calls).left(now))),
                per_day,
            });
        }
    }
    Ok((out, runs))
}

/// A `[[rooms]]` block in `status`: what `rtc_rooms` knows of its app, and its discovery's coverage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoomsStatus {
    pub name: String,
    pub app_id: String,
    pub calls_known: u64,
    pub rooms_known: u64,
    /// The end of the listed range that runs unbroken from the first instant discovery lists, every
    /// day in it done (an exclusive end); `None` when that first day is not done.
    pub listed_through: Option<DateTime<Utc>>,
    /// Listing ranges that failed and that no later listing covers; the next `sync` retries them.
    pub failed_ranges: u64,
    /// Listed ranges not done yet (a day not over, or with a call still running).
    pub pending_ranges: u64,
    /// Windows the last run that ran the block left for the next (its room streams' and its
    /// listing's), and why: `max_room_calls_per_run`, a daily budget.
    pub deferred: Deferred,
    /// Its room streams stored, and their failed and provisional windows.
    pub room_streams: u64,
    pub room_failed_windows: u64,
    pub room_pending_windows: u64,
    /// Its room streams' needed buckets that no window covers, as their last run assessed them.
    pub missing_buckets: u64,
    /// Its room streams' failed ledger rows, for `status --check`.
    #[serde(skip)]
    room_failures: Vec<LedgerEntry>,
    /// Per room (`status --json` only; the text shows the block's line): its calls in `rtc_rooms`.
    pub rooms: Vec<RoomDetail>,
    /// The calls `rtc_rooms` holds of its app: what its room streams need, for `status --check`.
    #[serde(skip)]
    calls: Vec<crate::domain::RoomCall>,
}

/// One room of a `[[rooms]]` block, as `status --json` details it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomDetail {
    pub room_id: String,
    pub calls: u64,
    /// The highest `active_user_num` of its calls.
    pub peak_users: i64,
    /// Its calls still running when last listed.
    pub running: u64,
    pub first_call_at: DateTime<Utc>,
    pub last_call_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct StreamStatus {
    #[serde(flatten)]
    pub coverage: CoverageRow,
    /// The end of the covered (settled or provisional) range unbroken from the horizon start, as
    /// its last run assessed it (what the metrics show).
    pub complete_through: Option<DateTime<Utc>>,
    /// For a stream of days (`1d`, distribution): the last local day its settled range holds whole
    /// (`settled_through` is an exclusive end: the midnight after that day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_settled_day: Option<chrono::NaiveDate>,
    /// Windows that the next run fetches again, with why.
    pub open_windows: Vec<LedgerEntry>,
    /// What its last run deferred (a cap, a daily budget): planned again by the next run.
    pub deferred: Deferred,
}

/// A block's discovery at `now`: its coverage into `status`, and its problems (never listed, failed
/// ranges, or listed through a day more than `max_age` before the last one that can be done).
fn judge_listing(
    settings: &Settings,
    block: &crate::domain::RoomsBlock,
    ledger: &[LedgerEntry],
    now: DateTime<Utc>,
    max_age: chrono::Duration,
    status: &mut RoomsStatus,
) -> (String, Vec<Problem>) {
    let tz = settings.window.timezone;
    let key = block.listing_key(tz);
    let rows: Vec<&LedgerEntry> = ledger.iter().filter(|e| *e.stream == *key).collect();
    let windows = |state: WindowState| {
        let mut w: Vec<crate::domain::Window> = rows
            .iter()
            .filter(|e| e.state == state)
            .map(|e| e.window)
            .collect();
        w.sort_by_key(|w| (w.start, w.end));
        w.dedup();
        w
    };
    let start = crate::discovery::listing_start(&settings.window, &block.granularities, now);
    let done = crate::planner::union(windows(WindowState::Settled));
    status.listed_through = done
        .iter()
        .find(|w| w.start <= start && start < w.end)
        .map(|w| w.end);
    let failed = windows(WindowState::Failed);
    status.failed_ranges = failed.len() as u64;
    status.pending_ranges = windows(WindowState::Provisional).len() as u64;
    let mut problems = Vec::new();
    if rows.is_empty() {
        problems.push(Problem::NeverSynced);
        return (block.listing_label(), problems);
    }
    // The newest day that can be done: it ended at its midnight, at least 10 minutes ago.
    let available_end = crate::planner::floor_to(
        now - crate::discovery::done_after(),
        crate::domain::Granularity::Day,
        tz,
    );
    if status
        .listed_through
        .is_none_or(|t| t < available_end - max_age)
    {
        problems.push(Problem::Stale {
            covered_end: status.listed_through,
            available_end,
        });
    }
    // Failed listing ranges and failed room-stream windows alike: the next run retries them.
    let failures: Vec<&LedgerEntry> = rows
        .iter()
        .copied()
        .filter(|e| e.state == WindowState::Failed)
        .chain(status.room_failures.iter())
        .collect();
    if let Some(last) = failures.iter().max_by_key(|e| e.fetched_at) {
        problems.push(Problem::FailedWindows {
            count: failed.len() + status.room_failed_windows as usize,
            since: failures
                .iter()
                .map(|e| e.window.start)
                .min()
                .unwrap_or(last.window.start),
            last_error: last.last_error.clone().unwrap_or_default(),
            request_id: last.request_id.clone(),
        });
    }
    (block.listing_label(), problems)
}

/// A block's room streams whose needed buckets ended `max_age` or more before the available end
/// and that no window covers yet (deferred by a cap or a budget, failed, never planned): one
/// problem for the block, never one per room. Its room streams are planned from `calls` as a run
/// plans them; a room a `[[jobs]]` entry asks is that job's stream, judged with the jobs.
fn pending_room_buckets(
    settings: &Settings,
    block: &crate::domain::RoomsBlock,
    calls: &[crate::domain::RoomCall],
    ledger: &[LedgerEntry],
    now: DateTime<Utc>,
    max_age: chrono::Duration,
) -> Option<Problem> {
    let configured: HashSet<String> = settings.streams().into_iter().map(|s| s.key).collect();
    let streams: Vec<crate::domain::Stream> =
        crate::planner::room_streams(block, calls, settings.window.timezone, now)
            .into_iter()
            .filter(|s| !configured.contains(&s.key))
            .collect();
    let mut rows: std::collections::HashMap<&str, Vec<&LedgerEntry>> = streams
        .iter()
        .map(|s| (s.key.as_str(), Vec::new()))
        .collect();
    for e in ledger {
        if let Some(r) = rows.get_mut(e.stream.as_ref()) {
            r.push(e);
        }
    }
    let (mut pending, mut buckets, mut since) = (0, 0, None::<DateTime<Utc>>);
    for s in &streams {
        let h = health::assess(
            &settings.window,
            s,
            rows[s.key.as_str()].iter().copied(),
            now,
        );
        let due = h.horizon.end - max_age;
        let old: Vec<crate::domain::Window> = h
            .uncovered
            .iter()
            .filter(|w| w.start < due)
            .map(|w| crate::domain::Window::new(w.start, w.end.min(due)))
            .collect();
        if let Some(first) = old.first() {
            pending += 1;
            buckets += old.iter().map(|w| w.duration().num_seconds()).sum::<i64>()
                / s.granularity.seconds();
            since = Some(since.map_or(first.start, |t| t.min(first.start)));
        }
    }
    Some(Problem::PendingRoomBuckets {
        streams: pending,
        buckets,
        since: since?,
    })
}

/// The offset of a day grid, read from a stream's key (`1d` and distribution streams); `None` for
/// `5min` streams and keys that name no offset.
fn day_grid(key: &str) -> Option<chrono::FixedOffset> {
    let v: serde_json::Value = serde_json::from_str(key).ok()?;
    let days = v["granularity"] == "1d" || v["api"] == "ListQualityDistribution";
    days.then(|| crate::domain::parse_offset(v["timezone"].as_str()?))
        .flatten()
}

/// `settled_through` as people read it: an exclusive end, and for a day grid the last whole day.
fn settled_cell(s: &StreamStatus) -> String {
    match (s.coverage.settled_through, s.last_settled_day) {
        (None, _) => "-".into(),
        (Some(t), Some(day)) => format!("{} (through {day})", ts(t)),
        (Some(t), None) => ts(t),
    }
}

/// Whether `status` found a database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    #[default]
    Present,
    Absent,
}

/// A problem of one stream, as data and as the line `status --check` prints.
#[derive(Debug, Serialize)]
pub struct StreamProblem {
    pub stream: String,
    #[serde(flatten)]
    pub problem: Problem,
    pub message: String,
}

impl Status {
    /// What the database holds; with the configuration, its ledger is read as the next `sync`
    /// adopts an earlier version's (`pipeline::adopted_ledger`).
    pub async fn load(store: &Store, settings: Option<&Settings>) -> Result<Status, StoreError> {
        // A `[[rooms]]` block's streams are its one line (their numbers are counted below), never
        // a stream each: thousands of rows the view would compute for nothing.
        let blocks: Vec<String> = settings
            .iter()
            .flat_map(|s| &s.rooms)
            .map(|b| format!("{}/", b.name))
            .collect();
        let coverage = store.coverage(&blocks).await?;
        let ledger = match settings {
            Some(settings) => crate::pipeline::adopted_ledger(settings, store).await?.0,
            None => store.ledger(None).await?,
        };
        let labels = store.stream_labels().await?;
        let assessed = store.assessed().await?;
        // Looked up once per stream: with a `[[rooms]]` block's thousands of streams, a scan of the
        // labels, the ledger and the assessments per stream would be quadratic.
        let mut keys_of: HashMap<&str, Vec<&str>> = HashMap::new();
        for (key, label) in &labels {
            keys_of
                .entry(label.as_str())
                .or_default()
                .push(key.as_str());
        }
        let mut open_rows: HashMap<&str, Vec<(usize, &LedgerEntry)>> = HashMap::new();
        for (i, e) in ledger.iter().enumerate() {
            if e.state != WindowState::Settled {
                open_rows.entry(e.stream.as_ref()).or_default().push((i, e));
            }
        }
        let mut assessed_of: HashMap<&str, &crate::store::Assessed> = HashMap::new();
        for a in &assessed {
            assessed_of.entry(a.label.as_str()).or_insert(a);
        }
        let streams = coverage
            .into_iter()
            .map(|c| {
                let keys: &[&str] = keys_of.get(c.stream.as_str()).map_or(&[], Vec::as_slice);
                // The open rows of its keys, in the ledger's order.
                let mut rows: Vec<(usize, &LedgerEntry)> = keys
                    .iter()
                    .filter_map(|k| open_rows.get(k))
                    .flatten()
                    .copied()
                    .collect();
                if keys.len() > 1 {
                    rows.sort_by_key(|(i, _)| *i);
                }
                // One line per window, however many indicators it asked: their points summed and
                // their names listed; people read the stream's label, the key is the ledger's business.
                let mut open: Vec<LedgerEntry> = Vec::new();
                for e in rows.into_iter().map(|(_, e)| e) {
                    match open
                        .iter_mut()
                        .find(|o| o.window == e.window && o.state == e.state)
                    {
                        Some(o) => {
                            o.points += e.points;
                            o.indicator = format!("{},{}", o.indicator, e.indicator);
                        }
                        None => open.push(LedgerEntry {
                            stream: c.stream.as_str().into(),
                            ..e.clone()
                        }),
                    }
                }
                let grid = keys.iter().find_map(|k| day_grid(k));
                let assessed = assessed_of.get(c.stream.as_str()).copied();
                StreamStatus {
                    complete_through: assessed.and_then(|a| a.complete_through),
                    deferred: assessed.map(|a| a.deferred.clone()).unwrap_or_default(),
                    open_windows: open,
                    last_settled_day: grid.zip(c.settled_through).map(|(tz, t)| {
                        (t.with_timezone(&tz) - chrono::Duration::days(1)).date_naive()
                    }),
                    coverage: c,
                }
            })
            .collect();
        let mut rooms = Vec::new();
        for block in settings.iter().flat_map(|s| &s.rooms) {
            let calls = store.room_calls(&block.app_id).await?;
            let rooms_known = calls
                .iter()
                .map(|c| c.call.room_id.as_str())
                .collect::<HashSet<_>>()
                .len() as u64;
            let prefix = format!("{}/", block.name);
            let listing = block.listing_label();
            let room_keys: HashSet<&str> = labels
                .iter()
                .filter(|(_, label)| label.starts_with(&prefix) && *label != listing)
                .map(|(key, _)| key.as_str())
                .collect();
            // Its room streams' numbers as `sync_coverage` counts them: the streams with a ledger
            // row, their failed and provisional windows.
            let (mut stored, mut failed, mut pending) =
                (HashSet::new(), HashSet::new(), HashSet::new());
            let mut room_failures = Vec::new();
            for e in ledger
                .iter()
                .filter(|e| room_keys.contains(e.stream.as_ref()))
            {
                stored.insert(e.stream.as_ref());
                match e.state {
                    WindowState::Failed => {
                        failed.insert((e.stream.as_ref(), e.window));
                        room_failures.push(e.clone());
                    }
                    WindowState::Provisional => {
                        pending.insert((e.stream.as_ref(), e.window));
                    }
                    _ => {}
                }
            }
            // What the block's last run left: its room streams' and its listing's numbers, also
            // of a room stream nothing was fetched of yet (no ledger row, no coverage row).
            let (mut deferred, mut missing_buckets) = (Deferred::default(), 0);
            for a in assessed.iter().filter(|a| a.label.starts_with(&prefix)) {
                deferred.add(&a.deferred);
                missing_buckets += a.missing_buckets.unwrap_or(0).max(0) as u64;
            }
            let mut detail: std::collections::BTreeMap<&str, RoomDetail> =
                std::collections::BTreeMap::new();
            for c in &calls {
                let d = detail
                    .entry(c.call.room_id.as_str())
                    .or_insert_with(|| RoomDetail {
                        room_id: c.call.room_id.clone(),
                        calls: 0,
                        peak_users: 0,
                        running: 0,
                        first_call_at: c.call.created_at,
                        last_call_at: c.call.created_at,
                    });
                d.calls += 1;
                d.peak_users = d.peak_users.max(c.call.active_user_num);
                d.running += u64::from(c.call.destroyed_at.is_none());
                d.first_call_at = d.first_call_at.min(c.call.created_at);
                d.last_call_at = d.last_call_at.max(c.call.created_at);
            }
            rooms.push(RoomsStatus {
                name: block.name.clone(),
                app_id: block.app_id.clone(),
                calls_known: calls.len() as u64,
                rooms_known,
                deferred,
                missing_buckets,
                rooms: detail.into_values().collect(),
                calls: calls.into_iter().map(|c| c.call).collect(),
                room_streams: stored.len() as u64,
                room_failed_windows: failed.len() as u64,
                room_pending_windows: pending.len() as u64,
                room_failures,
                ..RoomsStatus::default()
            });
        }
        let (accounts, account_runs) = match settings {
            Some(settings) => account_status(store, settings, crate::clock::now()).await?,
            None => Default::default(),
        };
        Ok(Status {
            streams,
            last_run: store.last_run().await?,
            ledger,
            rooms,
            show_accounts: settings.is_some_and(|s| {
                s.has_accounts() || s.accounts.iter().any(|a| !a.per_day.is_empty())
            }),
            accounts,
            account_runs,
            ..Status::default()
        })
    }

    /// The status of a database that does not exist yet.
    pub fn absent() -> Status {
        Status {
            database: Database::Absent,
            ..Status::default()
        }
    }

    /// Judges the configured streams at `now`: never synced, no longer configured, and problems
    /// (stale beyond `max_age`, failed windows, holes).
    pub fn judge(&mut self, settings: &Settings, now: DateTime<Utc>, max_age: chrono::Duration) {
        let configured = settings.streams();
        let mut problems = Vec::new();
        for stream in &configured {
            let health = health::assess(&settings.window, stream, &self.ledger, now);
            // A stream that another job asks too (rule 6) is judged once and shown under every
            // label, with the same numbers.
            for label in stream.labels() {
                if label != stream.name {
                    self.aliases.push((label.to_string(), stream.name.clone()));
                }
                if health.never_synced {
                    self.never_synced.push(label.to_string());
                }
                for problem in health.problems(max_age) {
                    problems.push(StreamProblem {
                        message: ProblemLine(label, &problem).to_string(),
                        stream: label.to_string(),
                        problem,
                    });
                }
                self.health.push(health::StreamHealth {
                    stream: label.to_string(),
                    ..health.clone()
                });
            }
        }
        self.not_configured = self
            .streams
            .iter()
            .map(|s| s.coverage.stream.clone())
            .filter(|name| !configured.iter().any(|c| c.labels().any(|l| l == name)))
            .collect();
        for block in &settings.rooms {
            let Some(status) = self.rooms.iter_mut().find(|r| r.name == block.name) else {
                continue;
            };
            let (label, mut found) =
                judge_listing(settings, block, &self.ledger, now, max_age, status);
            found.extend(pending_room_buckets(
                settings,
                block,
                &status.calls,
                &self.ledger,
                now,
                max_age,
            ));
            problems.extend(found.into_iter().map(|problem| StreamProblem {
                message: ProblemLine(&label, &problem).to_string(),
                stream: label.clone(),
                problem,
            }));
        }
        self.problems = Some(problems);
    }

    /// What `--metrics-file` shows: the newest run, and per configured stream (each label) the
    /// numbers its last run stored, the ones `status` shows; a stream never synced has no stored
    /// numbers, and shows the whole horizon missing.
    pub fn metrics_snapshot(&self, last_success: Option<&RunRow>) -> metrics::Snapshot {
        metrics::Snapshot {
            last_run: self.last_run.as_ref().map(Into::into),
            last_success: last_success.map(|r| r.started_at),
            streams: self
                .health
                .iter()
                .map(|h| {
                    let stored_as = self
                        .aliases
                        .iter()
                        .find(|(alias, _)| *alias == h.stream)
                        .map_or(h.stream.as_str(), |(_, first)| first.as_str());
                    match self.streams.iter().find(|s| s.coverage.stream == stored_as) {
                        Some(s) => metrics::StreamNumbers {
                            stream: h.stream.clone(),
                            complete_through: s.complete_through,
                            failed_windows: s.coverage.failed_windows,
                            missing_buckets: s
                                .coverage
                                .missing_buckets
                                .unwrap_or(h.missing_buckets),
                            points: s.coverage.points,
                        },
                        None => metrics::StreamNumbers {
                            stream: h.stream.clone(),
                            complete_through: None,
                            failed_windows: 0,
                            missing_buckets: h.missing_buckets,
                            points: 0,
                        },
                    }
                })
                .collect(),
            rooms: self
                .rooms
                .iter()
                .map(|r| metrics::RoomsNumbers {
                    rooms: r.name.clone(),
                    known: r.rooms_known,
                    failed_windows: r.failed_ranges + r.room_failed_windows,
                    deferred_windows: r.deferred.windows,
                    listed_through: r.listed_through,
                })
                .collect(),
            accounts: self
                .accounts
                .iter()
                .map(|a| metrics::AccountNumbers {
                    account: a.account.clone(),
                    action: a.action.clone(),
                    calls_24h: a.calls_24h,
                    budget_remaining: a.budget_remaining,
                })
                .collect(),
        }
    }

    /// Whether `judge` found nothing wrong.
    pub fn healthy(&self) -> bool {
        self.problems.as_ref().is_some_and(Vec::is_empty)
    }

    pub fn text(&self) -> String {
        let mut out = self.table();
        if self.show_accounts {
            for a in &self.accounts {
                let budget = match (a.per_day, a.budget_remaining) {
                    (Some(n), Some(left)) => format!(", {left} of {n} left today"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "account {}: {} {} in the last 24 h{budget}",
                    a.account,
                    a.action,
                    count(a.calls_24h, "call", "calls")
                );
            }
        }
        // Fixed-width columns leave trailing blanks; they only get in the way of copy and diff.
        out.lines().map(|l| format!("{}\n", l.trim_end())).collect()
    }

    fn table(&self) -> String {
        let mut out = String::new();
        if self.streams.is_empty() && self.rooms.iter().all(|r| r.calls_known == 0) {
            out.push_str("no stream has been synced yet; run `rtc-quality-sync sync`\n");
        }
        if !self.streams.is_empty() || self.rooms.is_empty() {
            let _ = writeln!(
                out,
                "{:<40} {:<41} {:>11} {:>6} {:>8} {:>10} {:<21}",
                "stream",
                "settled until (exclusive)",
                "provisional",
                "failed",
                "missing",
                "points",
                "last fetched"
            );
        }
        for s in &self.streams {
            let c = &s.coverage;
            let _ = writeln!(
                out,
                "{:<40} {:<41} {:>11} {:>6} {:>8} {:>10} {:<21}",
                c.stream,
                settled_cell(s),
                c.provisional_windows,
                c.failed_windows,
                c.missing_buckets
                    .map_or_else(|| "-".into(), |m| m.to_string()),
                c.points,
                c.last_run_at.map(ts).unwrap_or_else(|| "-".into())
            );
            for e in s
                .open_windows
                .iter()
                .filter(|e| e.state == WindowState::Failed)
            {
                let error = e.last_error.as_deref().unwrap_or("?");
                let _ = write!(
                    out,
                    "  failed {} .. {} after {} attempt{}: {error}",
                    ts(e.window.start),
                    ts(e.window.end),
                    e.attempts,
                    if e.attempts == 1 { "" } else { "s" },
                );
                // The client's errors name the RequestId already; say it once.
                match e.request_id.as_deref().filter(|id| !error.contains(id)) {
                    Some(id) => {
                        let _ = writeln!(out, " (RequestId {id})");
                    }
                    None => {
                        let _ = writeln!(out);
                    }
                }
            }
            if s.deferred.windows > 0 {
                let _ = writeln!(out, "  {}: the next `sync` plans them again", s.deferred);
            }
            let marked: Vec<&LedgerEntry> = s
                .open_windows
                .iter()
                .filter(|e| e.state == WindowState::Refetch)
                .collect();
            if let (Some(first), Some(last)) = (marked.first(), marked.last()) {
                let _ = writeln!(
                    out,
                    "  {} window(s) of an unfinished --refetch, {} .. {}: the next `sync` fetches them again",
                    marked.len(),
                    ts(first.window.start),
                    ts(last.window.end)
                );
            }
        }
        for r in &self.rooms {
            let _ = write!(
                out,
                "{:<40} {} in {} known; listed through {}; {} failed, {} pending; {} room streams, {} failed and {} provisional windows, {}",
                format!("{}/rooms", r.name),
                count(r.calls_known, "call", "calls"),
                count(r.rooms_known, "room", "rooms"),
                r.listed_through
                    .map_or_else(|| "-".into(), |t| format!("{} (exclusive)", ts(t))),
                count(r.failed_ranges, "range", "ranges"),
                r.pending_ranges,
                r.room_streams,
                r.room_failed_windows,
                r.room_pending_windows,
                count(r.missing_buckets, "missing bucket", "missing buckets"),
            );
            if r.deferred.windows > 0 {
                let _ = write!(out, "; {}", r.deferred);
            }
            let _ = writeln!(out);
        }
        for (alias, first) in &self.aliases {
            let _ = writeln!(
                out,
                "{alias:<40} the same query as {first}: fetched and stored as one, see its line"
            );
        }
        for name in &self.never_synced {
            let _ = writeln!(out, "{name:<40} never synced");
        }
        for name in &self.not_configured {
            let _ = writeln!(
                out,
                "{name:<40} retired: no job asks it any more; its points stay until `rtc-quality-sync prune` removes them"
            );
        }
        if self.account_runs.len() > 1 {
            for (account, r) in &self.account_runs {
                let _ = writeln!(out, "last run of account {account}: {r}");
            }
        } else if let Some(r) = &self.last_run {
            let _ = writeln!(out, "last run: {r}");
        }
        out
    }

    /// `status --check`: one line per problem, then the verdict.
    pub fn check_text(&self) -> String {
        let problems = self.problems.as_deref().unwrap_or_default();
        let mut out = String::new();
        for p in problems {
            let _ = writeln!(out, "{}", p.message);
        }
        let streams: std::collections::BTreeSet<&str> =
            problems.iter().map(|p| p.stream.as_str()).collect();
        if problems.is_empty() {
            let _ = writeln!(out, "ok: every configured stream is healthy");
        } else {
            let _ = writeln!(
                out,
                "unhealthy: {} in {}",
                count(problems.len() as u64, "problem", "problems"),
                count(streams.len() as u64, "stream", "streams")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Window;
    use std::path::Path;

    fn source() -> SourceSettings {
        Settings::parse(
            "[[jobs]]\nname = \"a\"\napp_id = \"x\"\nindicators = [\"stall_rate\"]\n",
            Path::new("t.toml"),
        )
        .unwrap()
        .source
    }

    /// A rooms block's listing comes first, and the summary line says so rather than "0 requests".
    #[test]
    fn plan_text_counts_the_listing_ranges_before_the_rooms_windows() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let plan = Plan {
            streams: Vec::new(),
            listings: vec![(
                "rooms/rooms".into(),
                vec![
                    Window::new(t("2026-12-03T16:00:00Z"), t("2026-12-04T16:00:00Z")),
                    Window::new(t("2026-12-02T16:00:00Z"), t("2026-12-03T16:00:00Z")),
                ],
            )],
            warnings: Vec::new(),
        };
        let text = plan_text(&plan, &source(), &[]);
        assert!(
            text.contains("rooms/rooms  2 ranges to list with ListRoomInfo"),
            "{text}"
        );
        assert!(
            text.lines().last().unwrap().starts_with(
                "2 ListRoomInfo ranges to list, then 0 requests and the rooms' windows"
            ),
            "{text}"
        );
    }

    /// Several accounts: each one's share at its own rate, and the run as long as the longest.
    #[test]
    fn plan_text_gives_each_accounts_share_at_its_own_rate() {
        let plan = Plan {
            streams: Vec::new(),
            listings: Vec::new(),
            warnings: Vec::new(),
        };
        let share = |account: &str, requests, secs, rate| AccountEstimate {
            account: account.into(),
            requests,
            duration: std::time::Duration::from_secs(secs),
            requests_per_second: rate,
        };
        let text = plan_text(
            &plan,
            &source(),
            &[share("cn", 9, 4, 2.0), share("overseas", 4, 18, 0.167)],
        );
        assert!(
            text.contains("from 2 accounts at once, each at its own quotas, about 18.0s: cn 9 (about 4.0s at 2 requests/s), overseas 4 (about 18.0s at 0.167 requests/s)"),
            "{text}"
        );
    }
}
