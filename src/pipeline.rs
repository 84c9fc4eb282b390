//! The run that joins the stages: plan, fetch newest first, batch, commit, summarize.
//!
//! **Invariant:** each part of a window (settled, provisional) is committed with its ledger row in
//! one store transaction, so a kill at any instant loses no committed part and half-writes none.
//! **Invariant:** memory is bounded by `max_in_flight` windows per API, however long the backfill:
//! windows are streamed through, never collected for the whole run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::api::error::{ApiError, ErrorScope};
use crate::api::rooms::ListRoomInfoRequest;
use crate::api::wire::ListQualityRequest;
use crate::api::{Action, Fetch, WindowApi, distribution::ListQualityDistributionRequest};
use crate::budget::{Budget, DAY};
use crate::config::Settings;
use crate::discovery;
use crate::domain::{
    Deferred, FailedWindow, LedgerEntry, RoomCall, RoomsBlock, RunCounts, RunStatus, Stream,
    Window, WindowState, WriteCounts,
};
use crate::error::Outcome;
use crate::fetcher::Quotas;
use crate::health;
use crate::planner::{self, Plan, PlanOptions};
use crate::progress::{Progress, WindowDone};
use crate::shutdown::{Allowance, within_grace};
use crate::store::{RoomListing, Store, StoreError};

/// After a signal, how long the windows already fetched may take to commit, and then how long
/// recording the run's end may take: together well inside the 5 s PRODUCT.md allows, also when the
/// database does not answer.
const COMMIT_GRACE: std::time::Duration = std::time::Duration::from_millis(1200);
/// What the steps of a run's end (verifying the file, the coverage, the pace, the run's row, the
/// summary's calls) may take together after a signal.
const FINISH_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);
/// A daily budget that frees within this long is waited for (as a `Retry-After` is); a later one
/// defers the window.
const BUDGET_WAIT: Duration = Duration::seconds(60);

/// What a run is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub plan: PlanOptions,
    /// Only these jobs; empty = all.
    pub jobs: Vec<String>,
    /// Recorded in the runs table: `sync`, `backfill`, `demo`.
    pub mode: String,
    /// `--from` and `--to` as typed, for messages.
    pub range_as_typed: (Option<String>, Option<String>),
    /// The account that asks (a hash of its access key id, `Credentials::account_id`), recorded
    /// with the streams so that `prune` never removes another account's.
    pub account: Option<String>,
    /// The caller marked unfinished runs abandoned already, once for every account of its process
    /// (`sync` does, under all its locks); otherwise the run does it under its own lock.
    pub skip_abandon: bool,
}

/// The counts of one stream in one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub windows_planned: u64,
    pub windows_ok: u64,
    pub windows_failed: u64,
    /// Windows not attempted because the job or the run stopped.
    pub windows_skipped: u64,
    /// Windows a cap or a daily budget left for the next run (planned, neither failed nor skipped).
    pub deferred: Deferred,
    pub points: WriteCounts,
    /// Points the API returned inside a window but off the stream's grid, and not stored.
    pub points_dropped: u64,
    pub calls: u64,
    /// The first error of the stream, if any, as the user should read it.
    pub error: Option<String>,
}

/// What a run did for one `[[rooms]]` block (PRODUCT.md, "Room streams": `sync --json`'s `rooms`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoomsSummary {
    pub name: String,
    /// Distinct `CallId`s this run's listing returned.
    pub calls_listed: u64,
    /// The block's app's calls in `rtc_rooms` after the run.
    pub calls_known: u64,
    pub rooms_known: u64,
    /// Listing ranges (and, with room streams, their windows).
    pub windows_ok: u64,
    pub windows_failed: u64,
    pub windows_deferred: u64,
    /// `ListRoomInfo` requests, retries included.
    pub list_calls: u64,
    /// Its room streams' points.
    pub points: WriteCounts,
    pub points_dropped: u64,
    /// `ListQuality` requests for its rooms, retries included.
    pub calls: u64,
    /// Rooms whose streams were planned this run.
    pub rooms_planned: u64,
    /// The first error of the block, as the user should read it.
    pub error: Option<String>,
}

/// What a run did, for the summary and the exit code.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub status: RunStatus,
    /// The run's `now`.
    pub started_at: DateTime<Utc>,
    pub streams: Vec<StreamSummary>,
    /// One entry per `[[rooms]]` block run.
    pub rooms: Vec<RoomsSummary>,
    pub counts: RunCounts,
    pub duration_ms: u64,
    /// Jobs stopped by an error that concerns the whole job, with that error.
    pub failed_jobs: Vec<(String, String)>,
    /// Set when every job stopped: the API refused the credentials, or the endpoint cannot be reached.
    pub credentials_error: Option<String>,
    /// Set when the database failed mid-run and stopped it (what was committed before stays).
    pub store_error: Option<String>,
    /// The database session that held the sync lock ended and another run took the lock: this run
    /// stopped before its next commit (exit 3).
    pub lock_lost: bool,
    /// Why the run's end could not be written to the runs table (the next run marks it abandoned).
    pub end_not_recorded: Option<String>,
    pub warnings: Vec<String>,
    /// One entry per account the run covered.
    pub accounts: Vec<AccountSummary>,
}

/// What one account's part of a run spent (PRODUCT.md, "Accounts and daily budgets").
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountSummary {
    /// Its name in the configuration (`default` without `[[accounts]]`).
    pub name: String,
    /// Its run in the runs table.
    pub run_id: i64,
    /// Requests sent, retries included.
    pub calls: u64,
    /// Windows its budgets deferred (streams and rooms blocks).
    pub windows_deferred: u64,
    /// Per action used or budgeted: its calls in the last 24 hours when the run ended, and its
    /// budget and what is left of it (none without `per_day`).
    pub actions: Vec<ActionUse>,
}

/// One action of one account: calls in the last 24 hours, and its daily budget.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ActionUse {
    pub action: String,
    pub calls_24h: u64,
    pub per_day: Option<u32>,
    pub budget_remaining: Option<u64>,
}

impl RunReport {
    /// The reports of one process's account runs, as the one summary of its `sync`: streams and
    /// blocks side by side, counts added up, the worst status (a signal wins; failed only when every
    /// account failed). A lost lock stops only its account's part: exit 3 only when every account
    /// lost its lock, and the run is partial otherwise.
    pub fn merge(reports: Vec<RunReport>) -> Option<RunReport> {
        let all_lost = reports.iter().all(|r| r.lock_lost);
        let mut reports = reports.into_iter();
        let mut m = reports.next()?;
        for r in reports {
            m.status = match (m.status, r.status) {
                (RunStatus::Interrupted, _) | (_, RunStatus::Interrupted) => RunStatus::Interrupted,
                (RunStatus::Failed, RunStatus::Failed) => RunStatus::Failed,
                (RunStatus::Ok, RunStatus::Ok) => RunStatus::Ok,
                _ => RunStatus::Partial,
            };
            m.streams.extend(r.streams);
            m.rooms.extend(r.rooms);
            let (a, b) = (&mut m.counts, r.counts);
            a.requests += b.requests;
            a.retries += b.retries;
            a.throttled += b.throttled;
            a.points += b.points;
            a.windows_ok += b.windows_ok;
            a.windows_failed += b.windows_failed;
            m.duration_ms = m.duration_ms.max(r.duration_ms);
            m.failed_jobs.extend(r.failed_jobs);
            m.credentials_error = m.credentials_error.or(r.credentials_error);
            m.store_error = m.store_error.or(r.store_error);
            m.lock_lost |= r.lock_lost;
            m.end_not_recorded = m.end_not_recorded.or(r.end_not_recorded);
            m.warnings.extend(r.warnings);
            m.accounts.extend(r.accounts);
        }
        if m.lock_lost && !all_lost {
            m.lock_lost = false;
            if m.status == RunStatus::Ok {
                m.status = RunStatus::Partial;
            }
        }
        m.failed_jobs.sort();
        Some(m)
    }
}

impl RunReport {
    /// The exit code of this outcome (see [`crate::error::Outcome`]).
    pub fn exit_code(&self) -> u8 {
        self.outcome().exit_code()
    }

    /// How the run ended: its status, except that a signal wins and a lost lock is its own case.
    pub fn outcome(&self) -> Outcome {
        if self.lock_lost && self.status != RunStatus::Interrupted {
            Outcome::LockLost
        } else {
            Outcome::from(self.status)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Plan(#[from] planner::PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no job or stream matches --job {0}; the configured jobs are: {1}")]
    UnknownJob(String, String),
    #[error("interrupted before the run started; nothing was fetched")]
    Interrupted,
}

/// The streams a run covers: every configured stream, or those of the `--job` names.
pub fn select_streams(settings: &Settings, jobs: &[String]) -> Result<Vec<Stream>, PipelineError> {
    let all = settings.streams();
    if jobs.is_empty() {
        return Ok(all);
    }
    // A name is a job's (`app-wide`) or a stream's, as `status` shows it (`app-wide/1d`); a stream
    // that another job asks too (rule 6) answers to that job's names as well.
    let selects = |s: &Stream, name: &str| {
        s.job.name == name
            || s.labels().any(|label| {
                label == name || label.rsplit_once('/').is_some_and(|(job, _)| job == name)
            })
    };
    for j in jobs {
        if !all.iter().any(|s| selects(s, j))
            && !settings
                .rooms
                .iter()
                .any(|b| &b.name == j || names_room(b, j).is_some())
        {
            let names: Vec<&str> = settings.jobs.iter().map(|j| j.name.as_str()).collect();
            let streams: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
            return Err(PipelineError::UnknownJob(
                j.clone(),
                format!("{}; its streams: {}", names.join(", "), streams.join(", ")),
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|s| jobs.iter().any(|j| selects(s, j)))
        .collect())
}

/// Plans the run's streams from a ledger (as [`adopted_ledger`] reads it): pure, no IO.
pub fn make_plan(
    settings: &Settings,
    ledger: &[LedgerEntry],
    options: &RunOptions,
    now: DateTime<Utc>,
) -> Result<(Vec<Stream>, Plan), PipelineError> {
    let streams = select_streams(settings, &options.jobs)?;
    let mut plan =
        planner::plan(&settings.window, &streams, ledger, now, options.plan).map_err(|e| {
            let (from, to) = options.range_as_typed.clone();
            e.as_typed(from, to)
        })?;
    plan.listings = selected_blocks(settings, options)
        .map(|b| (b.listing_label(), listing_ranges(settings, b, ledger, now)))
        .collect();
    Ok((streams, plan))
}

/// The `[[rooms]]` blocks a run asks: every one, or those `--job` names, whole or by one of their
/// rooms (`<block>/<room_id>`: the block's listing runs, and only that room's streams are fetched).
fn selected_blocks<'a>(
    settings: &'a Settings,
    options: &'a RunOptions,
) -> impl Iterator<Item = &'a RoomsBlock> {
    settings.rooms.iter().filter(|b| {
        options.jobs.is_empty()
            || options
                .jobs
                .iter()
                .any(|j| *j == b.name || names_room(b, j).is_some())
    })
}

/// The room `--job NAME` names in `block`: `NAME` is `<block>/<room_id>` (a room id may hold `/`),
/// or a room stream's label `<block>/<room_id>/<granularity>` of one of the block's granularities.
fn names_room<'a>(block: &RoomsBlock, name: &'a str) -> Option<&'a str> {
    let room = name.strip_prefix(block.name.as_str())?.strip_prefix('/')?;
    let room = block
        .granularities
        .iter()
        .find_map(|g| room.strip_suffix(&format!("/{g}")))
        .filter(|r| !r.is_empty())
        .unwrap_or(room);
    (!room.is_empty()).then_some(room)
}

/// Whether a run with `--job jobs` fetches `stream`, a room stream of `block`: every one when the
/// block is selected whole (or nothing is named), else those of the rooms named.
fn room_selected(block: &RoomsBlock, jobs: &[String], stream: &Stream) -> bool {
    jobs.is_empty()
        || jobs.contains(&block.name)
        || jobs.iter().any(|j| {
            stream.name == *j || names_room(block, j).is_some_and(|r| r == stream.job.room_id)
        })
}

/// The ranges `block`'s listing still has to list at `now`, newest first.
fn listing_ranges(
    settings: &Settings,
    block: &RoomsBlock,
    ledger: &[LedgerEntry],
    now: DateTime<Utc>,
) -> Vec<Window> {
    let tz = settings.window.timezone;
    let key = block.listing_key(tz);
    let done: Vec<Window> = ledger
        .iter()
        .filter(|e| *e.stream == *key && e.state == WindowState::Settled)
        .map(|e| e.window)
        .collect();
    let start = discovery::listing_start(&settings.window, &block.granularities, now);
    discovery::ranges_to_list(start, now, tz, done)
}

/// The ledger as planning and `status` read it: the stored rows, with an earlier version's rows
/// adopted as `sync` adopts them ([`planner::adoptions`]), and the adoptions themselves.
pub async fn adopted_ledger(
    settings: &Settings,
    store: &Store,
) -> Result<(Vec<LedgerEntry>, Vec<planner::Adoption>), StoreError> {
    let ledger = store.ledger(None).await?;
    let streams = settings.streams();
    let evidence = store
        .evidence(&planner::legacy_windows(&streams, &ledger))
        .await?;
    let adoptions = planner::adoptions(&streams, &ledger, &evidence);
    Ok((planner::adopted_view(ledger, &adoptions), adoptions))
}

/// One unit of work: a window of a stream, for the indicators that need it.
struct Task {
    stream: Arc<Stream>,
    api: Api,
    window: Window,
    indicators: Vec<String>,
    /// Calls this exact window cost in earlier runs.
    prior_attempts: i64,
}

/// Shared state of a run, updated as windows finish.
#[derive(Default)]
struct Tally {
    streams: BTreeMap<String, StreamSummary>,
    failed_jobs: HashMap<String, String>,
    credentials_error: Option<String>,
}

/// What every window of a run shares: its settings and stages, its clock, and its tally.
struct Run<'a> {
    settings: &'a Settings,
    store: &'a Store,
    /// One fetcher per quota, over shared in-flight slots.
    quotas: &'a Quotas,
    progress: &'a Progress,
    /// Stops sending calls: cancelled by a signal or by a database failure.
    shutdown: &'a CancellationToken,
    /// The signal alone: windows already fetched get [`COMMIT_GRACE`] after it to commit.
    signal: &'a CancellationToken,
    /// Cancelled at the first database failure: other windows' commits are given up at once.
    db_failed: CancellationToken,
    /// The run's `now`; a window fetched later is stamped `now` plus the time since `started`.
    now: DateTime<Utc>,
    started: Instant,
    tally: Mutex<Tally>,
    /// The account whose quotas this run spends: its name, and its hash as the database keys it.
    account: (String, String),
    /// Its daily budgets, per action (none for an action without `per_day`).
    budgets: BTreeMap<String, Budget>,
    /// The actions whose deferral has been said once in this run.
    said: Mutex<std::collections::BTreeSet<&'static str>>,
    /// The actions the API refused for its own daily limit: no more calls of them in this run.
    closed: Mutex<std::collections::BTreeSet<&'static str>>,
    /// The database error that kept a call from being recorded before it was sent: it stops the
    /// run as any other database failure does.
    gate_error: Mutex<Option<StoreError>>,
}

/// Runs a sync: plans at `now`, fetches through `quotas`, commits into `store`.
///
/// `shutdown` stops sending new calls; windows already fetched are committed, those in flight are
/// dropped, and the run is recorded as interrupted. The caller holds the database lock.
pub async fn run(
    settings: &Settings,
    store: &Store,
    quotas: &Quotas,
    options: &RunOptions,
    now: DateTime<Utc>,
    shutdown: CancellationToken,
    progress: &Progress,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    // Until the run has started, a signal stops it at once, whatever the database is doing.
    let ledger = tokio::select! {
        r = prepare_ledger(settings, store, options, now) => r?,
        () = shutdown.cancelled() => return Err(PipelineError::Interrupted),
    };
    let (streams, plan) = make_plan(settings, &ledger, options, now)?;
    let (tasks, tally, stream_by_name) = tasks_of(&plan, streams, &ledger);
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    if options.plan.refetch {
        // Marked before the first call, so a run cut short leaves the rest to the next run.
        before_start(&shutdown, store.mark_refetch(&refetch_marks(&tasks, now))).await?;
    }

    // This run holds the lock, so a run still `running` died without finishing.
    if !options.skip_abandon {
        let mine: Vec<String> = options.account.iter().cloned().collect();
        for id in before_start(&shutdown, store.abandon_unfinished_runs(&mine)).await? {
            tracing::warn!(
                run.id = id,
                "run {id} did not finish (killed or crashed); marked abandoned, its committed windows are kept"
            );
        }
    }
    let run_id = before_start(
        &shutdown,
        store.start_run(&options.mode, now, options.account.as_deref()),
    )
    .await?;
    if let Err(e) = before_start(&shutdown, store.record_lock_run(run_id)).await {
        tracing::warn!("cannot add the run's id to the lock's record: {e}");
    }
    let total = tasks.len() as u64;
    tracing::info!(
        run.id = run_id,
        streams = plan.streams.len(),
        windows = total,
        estimated_s = plan
            .estimated_duration(
                settings.source.requests_per_second,
                settings.source.distribution_requests_per_second,
            )
            .as_secs(),
        "sync started"
    );
    progress.start(total);

    // A store error stops the run as a signal does, but is told apart from one.
    let stop = shutdown.child_token();
    // The previous run's last calls: this run's first ones keep their pace (the gateway counts
    // arrivals in any second, whichever run sent them).
    let account = options.account.clone().unwrap_or_default();
    match before_start(&shutdown, store.last_calls(&account)).await {
        Ok(last) => {
            for (action, at) in last {
                if let Some(at) = at {
                    quotas.follow(&action, at);
                }
            }
        }
        Err(PipelineError::Interrupted) => return Err(PipelineError::Interrupted),
        Err(e) => tracing::warn!("cannot read when the last run's calls were sent: {e}"),
    }
    // The daily budgets, from the calls recorded in the last 24 hours by any run of this account.
    let account_name = settings.accounts.first().map_or_else(
        || crate::config::accounts::IMPLICIT.to_string(),
        |a| a.name.clone(),
    );
    let mut budgets = BTreeMap::new();
    let calls_from = crate::clock::now() - DAY;
    before_start(&shutdown, store.forget_calls_before(calls_from - DAY)).await?;
    for (action, &per_day) in settings
        .accounts
        .first()
        .map(|a| &a.per_day)
        .into_iter()
        .flatten()
    {
        let sent = before_start(&shutdown, store.calls_since(&account, action, calls_from)).await?;
        budgets.insert(action.clone(), Budget::new(per_day, sent));
    }
    let run = Run {
        settings,
        store,
        quotas,
        progress,
        shutdown: &stop,
        signal: &shutdown,
        db_failed: CancellationToken::new(),
        now,
        started,
        tally: Mutex::new(tally),
        account: (account_name, account.clone()),
        budgets,
        said: Mutex::default(),
        closed: Mutex::default(),
        gate_error: Mutex::default(),
    };
    // Discovery first: the calls it lists are what room streams are planned from.
    let mut rooms = Vec::new();
    let mut store_error = None;
    let mut room_streams = Vec::new();
    // The blocks whose room streams this run knows: what their stored ones are judged against.
    let mut ran_blocks = Vec::new();
    for block in selected_blocks(settings, options) {
        if stop.is_cancelled() {
            break;
        }
        match run.list_block(block, &ledger).await {
            Ok((summary, calls)) => {
                rooms.push(summary);
                let whole = options.jobs.is_empty() || options.jobs.contains(&block.name);
                // A run of some rooms knows only theirs: the block's other room streams keep
                // the numbers of the run that last planned them.
                if whole {
                    ran_blocks.push(block);
                }
                room_streams.extend(
                    planner::room_streams(block, &calls, settings.window.timezone, now)
                        .into_iter()
                        .filter(|s| room_selected(block, &options.jobs, s)),
                );
            }
            Err(e) => {
                tracing::error!("stopping the run, committing nothing more: {e}");
                store_error = Some(e);
                run.db_failed.cancel();
                stop.cancel();
            }
        }
    }
    // A room that a configured job asks too is that job's stream, fetched over the whole horizon
    // with the block's indicators (rule 6: one query, planned once, counted under the job; see
    // `Settings::streams`), also when `--job` leaves the job out of this run.
    let configured: std::collections::HashSet<String> =
        settings.streams().into_iter().map(|s| s.key).collect();
    room_streams.retain(|r| !configured.contains(&r.key));
    // Which block each room stream is summed into.
    let room_blocks: HashMap<String, String> = room_streams
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.room.as_ref()?.block.clone())))
        .collect();
    // The listing's own ranges, before the room streams' windows are summed in.
    let listing_ok: u64 = rooms.iter().map(|r| r.windows_ok).sum();
    let listing_failed: u64 = rooms.iter().map(|r| r.windows_failed).sum();
    let mut tasks = tasks;
    let mut assessed = stream_by_name;
    if !room_streams.is_empty() && store_error.is_none() && !stop.is_cancelled() {
        match run
            .plan_rooms(options, &ledger, room_streams, &mut rooms)
            .await
        {
            Ok((room_tasks, planned)) => {
                tasks.extend(room_tasks);
                assessed.extend(planned);
            }
            Err(e) => {
                tracing::error!("stopping the run, committing nothing more: {e}");
                store_error = Some(e);
                run.db_failed.cancel();
                stop.cancel();
            }
        }
    }
    // One queue per quota, each as deep as `max_in_flight`: a queue waiting on its own quota never
    // holds back another's, and the quotas' shared slots still bound the calls in flight.
    let mut queues: BTreeMap<&str, Vec<Task>> = BTreeMap::new();
    for task in tasks {
        queues.entry(task.api.action()).or_default().push(task);
    }
    let depth = settings.source.max_in_flight.max(1);
    let work = futures::stream::select_all(queues.into_values().map(|tasks| {
        futures::stream::iter(tasks)
            .take_while(|_| futures::future::ready(!stop.is_cancelled()))
            .map(|task| run.process(task))
            .buffer_unordered(depth)
            .boxed_local()
    }));
    futures::pin_mut!(work);
    while let Some(r) = work.next().await {
        if let Err(e) = r {
            // A dead database stops the run: nothing more could be committed.
            tracing::error!("stopping the run, committing nothing more: {e}");
            store_error.get_or_insert(e);
            run.db_failed.cancel();
            stop.cancel();
        }
    }
    // Whether the user or a store error stopped it, what was not reached is left for the next run.
    let interrupted = shutdown.is_cancelled();
    progress.finish();

    let tally = std::mem::take(&mut *run.tally.lock().unwrap());
    let (mut streams, mut counts) = summarize(tally.streams, quotas.stats());
    let deferred: HashMap<String, Deferred> = streams
        .iter()
        .map(|s| (s.stream.clone(), s.deferred.clone()))
        .collect();
    counts.windows_ok += listing_ok;
    counts.windows_failed += listing_failed;
    // A room stream is its block's: summed into the block's entry, never one line per room.
    streams.retain(|s| {
        let Some(block) = room_blocks
            .get(&s.stream)
            .and_then(|name| rooms.iter_mut().find(|b| &b.name == name))
        else {
            return true;
        };
        block.windows_ok += s.windows_ok;
        block.windows_failed += s.windows_failed + s.windows_skipped;
        block.windows_deferred += s.deferred.windows;
        block.points += s.points;
        block.points_dropped += s.points_dropped;
        block.calls += s.calls;
        if block.error.is_none() {
            block.error.clone_from(&s.error);
        }
        false
    });
    let any_failed = streams
        .iter()
        .any(|s| s.windows_failed > 0 || s.windows_skipped > 0)
        || rooms.iter().any(|r| r.windows_failed > 0);
    // The steps below share one allowance after a signal (PRODUCT.md: exit within 5 s).
    let ending = Allowance::new(&shutdown, FINISH_GRACE);
    // A SQLite file removed or replaced while the run wrote it: the commits went into a file
    // that no path names any more, so nothing of this run was kept.
    if store_error.is_none()
        && !interrupted
        && let Some(Err(e)) = ending.within(store.verify_file()).await
    {
        tracing::error!("{e}");
        store_error = Some(e);
    }
    let status = judge(
        interrupted,
        store_error.as_ref(),
        tally.credentials_error.is_some(),
        &counts,
        any_failed,
    );
    // What the run leaves covered, for `sync_coverage`: only when the database is sound, and
    // bounded after a signal like every other wait.
    if store_error.is_none() {
        match ending
            .within(assess(
                settings,
                store,
                &Assessing {
                    streams: &assessed,
                    deferred: &deferred,
                    blocks: &ran_blocks,
                },
                now,
                run.fetched_at(),
            ))
            .await
        {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!("cannot record the streams' coverage: {e}"),
            None => tracing::warn!("the streams' coverage was not recorded before the run stopped"),
        }
    }
    // When this run's last calls went out, for the next run's pace.
    for (action, fetcher) in quotas.used() {
        if let Some(at) = fetcher.last_sent()
            && store_error.is_none()
        {
            let recorded = ending
                .within(store.record_last_call(&account, action, at))
                .await;
            if let Some(Err(e)) = recorded {
                tracing::warn!("cannot record when the last {action} call was sent: {e}");
            }
        }
    }
    // Recorded if the database answers (it may be back after a failure); bounded after a signal.
    let finished = ending
        .within(store.finish_run(run_id, status, &counts, run.fetched_at()))
        .await;
    let end_not_recorded = match finished {
        Some(Ok(())) => None,
        Some(Err(e)) => Some(e.to_string()),
        None => Some("the database did not answer in time".to_string()),
    };
    if let Some(e) = &end_not_recorded {
        tracing::error!(
            "cannot record the run's end in the runs table: {e}; the next run marks it abandoned"
        );
    }
    let lock_lost = matches!(store_error, Some(StoreError::LockLost { .. }));
    let deferred = streams.iter().map(|s| s.deferred.windows).sum::<u64>()
        + rooms.iter().map(|b| b.windows_deferred).sum::<u64>();
    let actions = ending
        .within(run.action_use(quotas.used().iter().map(|(a, _)| *a)))
        .await
        .unwrap_or_default();
    let account_summary = AccountSummary {
        name: run.account.0.clone(),
        run_id,
        calls: counts.requests,
        windows_deferred: deferred,
        actions,
    };
    let mut failed_jobs: Vec<(String, String)> = tally.failed_jobs.into_iter().collect();
    failed_jobs.sort();
    Ok(RunReport {
        run_id,
        status,
        started_at: now,
        streams,
        rooms,
        counts,
        duration_ms: started.elapsed().as_millis() as u64,
        failed_jobs,
        credentials_error: tally.credentials_error,
        store_error: store_error.map(|e| e.to_string()),
        lock_lost,
        end_not_recorded,
        warnings: plan.warnings,
        accounts: vec![account_summary],
    })
}

/// The plan's windows as tasks, newest first (streams interleaved, so fresh data reaches dashboards
/// first), each with the calls its window cost in earlier runs; the run's tally, a summary per
/// planned stream; and the streams by name.
fn tasks_of(
    plan: &Plan,
    streams: Vec<Stream>,
    ledger: &[LedgerEntry],
) -> (Vec<Task>, Tally, HashMap<String, Arc<Stream>>) {
    let prior: HashMap<(&str, &str, Window), i64> = ledger
        .iter()
        .map(|e| {
            (
                (e.stream.as_ref(), e.indicator.as_str(), e.window),
                e.attempts,
            )
        })
        .collect();

    let stream_by_name: HashMap<String, Arc<Stream>> = streams
        .into_iter()
        .map(|s| (s.name.clone(), Arc::new(s)))
        .collect();
    let mut tasks: Vec<Task> = Vec::new();
    let mut tally = Tally::default();
    for sp in &plan.streams {
        let stream = stream_by_name[&sp.stream].clone();
        tally.streams.insert(
            sp.stream.clone(),
            StreamSummary {
                stream: sp.stream.clone(),
                windows_planned: sp.windows.len() as u64,
                ..Default::default()
            },
        );
        for w in &sp.windows {
            let prior_attempts = w
                .indicators
                .iter()
                .filter_map(|i| prior.get(&(stream.key.as_str(), i.as_str(), w.window)))
                .copied()
                .max()
                .unwrap_or(0);
            tasks.push(Task {
                api: Api::of(&stream),
                stream: stream.clone(),
                window: w.window,
                indicators: w.indicators.clone(),
                prior_attempts,
            });
        }
    }
    tasks.sort_by(|a, b| {
        b.window
            .end
            .cmp(&a.window.end)
            .then_with(|| a.stream.name.cmp(&b.stream.name))
    });
    (tasks, tally, stream_by_name)
}

/// The ledger rows a `--refetch` writes before its first call: every task's window, per indicator.
fn refetch_marks(tasks: &[Task], now: DateTime<Utc>) -> Vec<LedgerEntry> {
    tasks
        .iter()
        .flat_map(|t| {
            t.indicators.iter().map(|i| LedgerEntry {
                stream: t.stream.key.as_str().into(),
                indicator: i.clone(),
                window: t.window,
                state: WindowState::Refetch,
                points: 0,
                attempts: t.prior_attempts,
                last_error: None,
                request_id: None,
                fetched_at: now,
            })
        })
        .collect()
}

/// The streams' summaries (what was not reached counted as skipped) and the run's totals.
fn summarize(
    tally: BTreeMap<String, StreamSummary>,
    stats: crate::fetcher::FetchStats,
) -> (Vec<StreamSummary>, RunCounts) {
    let mut counts = RunCounts {
        requests: stats.requests,
        retries: stats.retries,
        throttled: stats.throttled,
        ..Default::default()
    };
    let mut streams: Vec<StreamSummary> = tally.into_values().collect();
    for s in &mut streams {
        // Saturating: a count that went wrong elsewhere must never print as 18446744073709551612.
        s.windows_skipped = s.windows_planned.saturating_sub(
            s.windows_ok
                .saturating_add(s.windows_failed)
                .saturating_add(s.deferred.windows),
        );
        counts.points += s.points;
        counts.windows_ok += s.windows_ok;
        counts.windows_failed += s.windows_failed;
    }
    (streams, counts)
}

/// The run's status (PRODUCT.md, "Exit codes"): what stopped it, and what it committed.
fn judge(
    interrupted: bool,
    store_error: Option<&StoreError>,
    credentials_failed: bool,
    counts: &RunCounts,
    any_failed: bool,
) -> RunStatus {
    if interrupted {
        RunStatus::Interrupted
    } else if let Some(e) = store_error {
        // What was committed before the database failed stays: partial, unless that was nothing,
        // or the database itself is lost or damaged.
        if counts.windows_ok > 0 && !e.is_lost_database() {
            RunStatus::Partial
        } else {
            RunStatus::Failed
        }
    } else if credentials_failed && counts.windows_ok == 0 {
        RunStatus::Failed
    } else if any_failed {
        RunStatus::Partial
    } else {
        RunStatus::Ok
    }
}

/// Before planning a run, under its lock: gives the series stored before time zones were recorded
/// the configured offset, adopts an earlier version's ledger rows, names the run's streams by what
/// they ask (and the account that asks them), and drops the failed rows and refetch marks no run
/// can fetch any more (before the horizon, or of an indicator the stream no longer asks). Returns
/// the ledger to plan from.
async fn prepare_ledger(
    settings: &Settings,
    store: &Store,
    options: &RunOptions,
    now: DateTime<Utc>,
) -> Result<Vec<LedgerEntry>, PipelineError> {
    store.adopt_timezone(settings.window.timezone).await?;
    let (_, adoptions) = adopted_ledger(settings, store).await?;
    for a in &adoptions {
        tracing::info!(
            stream = a.from.trim_start_matches(crate::domain::LEGACY_PREFIX),
            rows = a.adopted.len(),
            kept_apart = a.retired.as_ref().map_or(0, |(_, _, rows)| rows.len()),
            "adopting the checkpoints an earlier version kept; what the stored points cannot prove is \
             kept apart and fetched again"
        );
        store.adopt(a).await?;
    }
    let selected = select_streams(settings, &options.jobs)?;
    let names: Vec<(String, String, Vec<String>)> = selected
        .iter()
        .map(|s| (s.key.clone(), s.name.clone(), s.aliases.clone()))
        .chain(selected_blocks(settings, options).map(|b| {
            let tz = settings.window.timezone;
            (b.listing_key(tz), b.listing_label(), Vec::new())
        }))
        .collect();
    let suffix = format!(" (replaced {})", now.format("%Y-%m-%d"));
    store
        .register_streams(&names, &suffix, options.account.as_deref())
        .await?;

    let (dead, ledger): (Vec<LedgerEntry>, Vec<LedgerEntry>) =
        store.ledger(None).await?.into_iter().partition(|e| {
            matches!(e.state, WindowState::Failed | WindowState::Refetch)
                && selected.iter().any(|s| {
                    *s.key == *e.stream
                        && (!s.job.indicators.contains(&e.indicator)
                            || e.window.end
                                <= planner::horizon(&settings.window, s.granularity, now).start)
                })
        });
    if !dead.is_empty() {
        tracing::debug!(
            rows = dead.len(),
            "dropping failed rows no run can retry any more"
        );
        store.delete_ledger_rows(&dead).await?;
    }
    Ok(ledger)
}

/// What [`assess`] records: the run's streams by label (a room stream with its needed buckets),
/// what it deferred of each, and the `[[rooms]]` blocks whose room streams it planned.
struct Assessing<'a> {
    streams: &'a HashMap<String, Arc<Stream>>,
    deferred: &'a HashMap<String, Deferred>,
    blocks: &'a [&'a RoomsBlock],
}

/// After a run: records each of its streams' `settled_through`, `complete_through` and
/// `missing_buckets` at the run's `now` (a room stream's over its needed buckets), and what the run
/// deferred of it, for `sync_coverage`, `status` and the metrics, in one transaction. A stored room
/// stream of a block that ran whose room no longer has a call that can overlap the horizon needs
/// nothing any more: it is recorded so (nothing missing, nothing deferred), never left with the
/// numbers of the run that last planned it.
async fn assess(
    settings: &Settings,
    store: &Store,
    run: &Assessing<'_>,
    now: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tz = settings.window.timezone;
    let known: std::collections::HashSet<&str> =
        run.streams.values().map(|s| s.key.as_str()).collect();
    let mut stale = Vec::new();
    if !run.blocks.is_empty() {
        let configured: std::collections::HashSet<String> =
            settings.streams().into_iter().map(|s| s.key).collect();
        for (key, label) in store.stream_labels().await? {
            let room = run.blocks.iter().find_map(|b| {
                let (room, g) = b.room_of_label(&label)?;
                Some(b.room_stream(room, g, tz, 0, Vec::new()))
            });
            if let Some(room) = room
                && room.key == key
                && !known.contains(key.as_str())
                && !configured.contains(&key)
            {
                stale.push(room);
            }
        }
    }
    let mut by_key: HashMap<&str, Vec<LedgerEntry>> = HashMap::new();
    for e in store.ledger(None).await? {
        if let Some(k) = known.get(e.stream.as_ref()) {
            by_key.entry(*k).or_default().push(e);
        }
    }
    let assessed: Vec<(String, crate::store::Assessment)> = run
        .streams
        .values()
        .map(Arc::as_ref)
        .chain(&stale)
        .map(|s| {
            let rows = by_key.get(s.key.as_str()).map_or(&[][..], Vec::as_slice);
            let h = health::assess(&settings.window, s, rows, now);
            let assessment = crate::store::Assessment {
                settled_through: h.settled_through,
                complete_through: h.complete_through,
                missing_buckets: h.missing_buckets,
                deferred: run.deferred.get(&s.name).cloned().unwrap_or_default(),
            };
            (s.key.clone(), assessment)
        })
        .collect();
    store.assess_streams(&assessed, at).await
}

/// A database wait before the run has started: a signal ends it at once.
async fn before_start<T>(
    shutdown: &CancellationToken,
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, PipelineError> {
    tokio::select! {
        r = work => Ok(r?),
        () = shutdown.cancelled() => Err(PipelineError::Interrupted),
    }
}

/// Which API serves a stream's windows: the one place a stream meets its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Quality,
    Distribution,
}

impl Api {
    fn of(stream: &Stream) -> Api {
        match stream.distribution {
            None => Api::Quality,
            Some(_) => Api::Distribution,
        }
    }

    /// The action whose quota the API's calls draw on.
    fn action(self) -> &'static str {
        match self {
            Api::Quality => ListQualityRequest::NAME,
            Api::Distribution => ListQualityDistributionRequest::NAME,
        }
    }
}

impl Run<'_> {
    /// Lists `block`'s app's calls over the ranges not yet done (newest first, as many at once as
    /// `max_in_flight`), each committed with its ledger row, or its failure recorded. Only a store
    /// error is returned.
    async fn list_block(
        &self,
        block: &RoomsBlock,
        ledger: &[LedgerEntry],
    ) -> Result<(RoomsSummary, Vec<RoomCall>), StoreError> {
        let tz = self.settings.window.timezone;
        let key = block.listing_key(tz);
        let mut summary = RoomsSummary {
            name: block.name.clone(),
            ..Default::default()
        };
        if self.tally.lock().unwrap().credentials_error.is_some() {
            return Ok((summary, Vec::new()));
        }
        let ranges = listing_ranges(self.settings, block, ledger, self.now);
        let prior = |w: Window| {
            ledger
                .iter()
                .filter(|e| *e.stream == *key && e.window == w)
                .map(|e| e.attempts)
                .max()
                .unwrap_or(0)
        };
        let fetcher = self.quotas.of::<ListRoomInfoRequest>();
        let retried = |_attempt: u32| self.progress.retried();
        let mut listed_ids = std::collections::HashSet::new();
        let depth = self.settings.source.max_in_flight.max(1);
        let listings = futures::stream::iter(ranges)
            .take_while(|_| futures::future::ready(!self.shutdown.is_cancelled()))
            .map(|range| {
                let fetcher = &fetcher;
                let retried = &retried;
                async move {
                    let listed = tokio::select! {
                        l = discovery::list_range(fetcher, &block.app_id, range, tz, retried, async || self.gate(ListRoomInfoRequest::NAME).await) => Some(l),
                        () = self.shutdown.cancelled() => None,
                    };
                    (range, listed)
                }
            })
            .buffer_unordered(depth);
        // Every range is listed before any is committed: a listing records each call in the
        // database before it is sent (the daily budget), and a commit awaited here, between two
        // polls of the listings, would wait on SQLite's one writer for a listing this loop no
        // longer polls.
        let listed: Vec<_> = listings.collect().await;
        for (range, listed) in listed {
            let Some(listed) = listed else { continue };
            let fetched_at = self.fetched_at();
            let window = discovery::recorded_window(range, self.now, tz);
            let attempts = prior(window) + i64::from(listed.requests);
            summary.list_calls += u64::from(listed.requests);
            match listed.result {
                // Cut short by a budget with nothing listed: nothing to keep.
                Ok(calls) if listed.deferred.is_some() && calls.is_empty() => {
                    summary.windows_deferred += 1;
                }
                Ok(calls) => {
                    let listing = RoomListing {
                        stream: &key,
                        app_id: &block.app_id,
                        window,
                        // A listing cut short keeps its calls and is listed again.
                        done: listed.deferred.is_none()
                            && discovery::is_done(range, &calls, fetched_at),
                        calls: &calls,
                        attempts,
                        request_id: listed.request_id.as_deref(),
                        fetched_at,
                    };
                    let Some(written) = self.bounded(self.store.commit_listing(&listing)).await
                    else {
                        continue;
                    };
                    written?;
                    listed_ids.extend(calls.into_iter().map(|c| c.call_id));
                    if listed.deferred.is_some() {
                        summary.windows_deferred += 1;
                    } else {
                        summary.windows_ok += 1;
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    tracing::warn!(
                        stream = %block.listing_label(), window = %range, attempts,
                        request_id = error.request_id().unwrap_or(""), "listing failed: {message}"
                    );
                    let failure = FailedWindow {
                        stream: &key,
                        indicators: &[crate::store::CALLS.to_string()],
                        window,
                        error: &message,
                        request_id: error.request_id(),
                        attempts,
                        fetched_at,
                    };
                    if let Some(recorded) = self.bounded(self.store.record_failure(&failure)).await
                    {
                        recorded?;
                    }
                    let mut t = self.tally.lock().unwrap();
                    note_scope(&mut t, &block.name, &error);
                    summary.windows_failed += 1;
                    summary.error.get_or_insert(message);
                }
            }
        }
        summary.calls_listed = listed_ids.len() as u64;
        (summary.calls_known, summary.rooms_known) = self.store.room_counts(&block.app_id).await?;
        // Only the calls that can overlap the horizon: the app's older history is never read.
        let range = planner::rooms_range(&self.settings.window, block, self.now);
        let calls: Vec<RoomCall> = self
            .store
            .room_calls_between(&block.app_id, range)
            .await?
            .into_iter()
            .map(|c| c.call)
            .collect();
        tracing::info!(
            rooms = %block.name, calls_listed = summary.calls_listed, calls_known = summary.calls_known,
            rooms_known = summary.rooms_known, ranges_ok = summary.windows_ok,
            ranges_failed = summary.windows_failed, "listed the app's calls"
        );
        Ok((summary, calls))
    }

    /// Plans the room streams (PRODUCT.md, "Room streams"): names them in `sync_streams`, plans each
    /// over its calls' buckets, and orders their windows after the jobs': those never fetched
    /// before first, then the room with the most active users, then the newest window. A block's windows beyond its
    /// `max_room_calls_per_run` are deferred to the next run (counted per stream, neither failed
    /// nor skipped). Returns the tasks, and the room streams by label; their streams join the tally.
    async fn plan_rooms(
        &self,
        options: &RunOptions,
        ledger: &[LedgerEntry],
        streams: Vec<Stream>,
        rooms: &mut [RoomsSummary],
    ) -> Result<(Vec<Task>, HashMap<String, Arc<Stream>>), StoreError> {
        let names: Vec<(String, String, Vec<String>)> = streams
            .iter()
            .map(|s| (s.key.clone(), s.name.clone(), Vec::new()))
            .collect();
        let suffix = format!(" (replaced {})", self.now.format("%Y-%m-%d"));
        self.store
            .register_streams(&names, &suffix, options.account.as_deref())
            .await?;
        let Ok(plan) = planner::plan(
            &self.settings.window,
            &streams,
            ledger,
            self.now,
            options.plan,
        ) else {
            // A range outside the horizon was said for the jobs already.
            return Ok((Vec::new(), HashMap::new()));
        };
        let peak: HashMap<String, i64> = streams
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.room.as_ref()?.peak_users)))
            .collect();
        let (mut tasks, tally, by_name) = tasks_of(&plan, streams, ledger);
        // Windows nothing was fetched of go first, so that a cap cannot spend every run on the
        // provisional windows of the busiest rooms: the rest catch up run after run.
        let mut fetched: HashMap<&str, Vec<Window>> = HashMap::new();
        for e in ledger
            .iter()
            .filter(|e| matches!(e.state, WindowState::Settled | WindowState::Provisional))
        {
            fetched.entry(e.stream.as_ref()).or_default().push(e.window);
        }
        let fetched_before = |t: &Task| {
            fetched.get(t.stream.key.as_str()).is_some_and(|ws| {
                ws.iter()
                    .any(|w| w.start < t.window.end && t.window.start < w.end)
            })
        };
        tasks.sort_by_cached_key(|t| {
            (
                fetched_before(t),
                std::cmp::Reverse(peak.get(&t.stream.name).copied().unwrap_or(0)),
                t.stream.name.clone(),
                std::cmp::Reverse(t.window.end),
            )
        });
        // The cap, per block, in that order.
        let mut kept = Vec::with_capacity(tasks.len());
        let mut per_block: HashMap<String, u64> = HashMap::new();
        let mut deferred: HashMap<String, u64> = HashMap::new();
        for task in tasks {
            let block = task.stream.job.name.clone();
            let cap = self
                .settings
                .rooms
                .iter()
                .find(|b| b.name == block)
                .map_or(0, |b| b.max_room_calls_per_run);
            let n = per_block.entry(block).or_default();
            if cap > 0 && *n >= cap {
                *deferred.entry(task.stream.name.clone()).or_default() += 1;
                continue;
            }
            *n += 1;
            kept.push(task);
        }
        for r in rooms.iter_mut() {
            r.rooms_planned = plan
                .streams
                .iter()
                .filter(|s| s.stream.starts_with(&format!("{}/", r.name)))
                .count() as u64;
        }
        if options.plan.refetch {
            self.store
                .mark_refetch(&refetch_marks(&kept, self.now))
                .await?;
        }
        let mut t = self.tally.lock().unwrap();
        let mut planned: HashMap<&str, u64> = HashMap::new();
        for k in &kept {
            *planned.entry(k.stream.name.as_str()).or_default() += 1;
        }
        for (name, mut summary) in tally.streams {
            summary.windows_planned = planned.get(name.as_str()).copied().unwrap_or(0);
            summary.deferred = Deferred::by_room_cap(deferred.get(&name).copied().unwrap_or(0));
            t.streams.insert(name, summary);
        }
        drop(t);
        self.progress.add(kept.len() as u64);
        Ok((kept, by_name))
    }

    /// Asked before each request is sent: whether the account's daily budget for `action` has room
    /// (a budget that frees within [`BUDGET_WAIT`] is waited for), and then the call recorded in
    /// the database, so that no crash can give it back. Every call is recorded, with or without a
    /// budget: `status` shows each account's calls of the last 24 hours.
    async fn gate(&self, action: &'static str) -> Result<(), ApiError> {
        let (name, account) = &self.account;
        let mut at = crate::clock::now();
        if self.closed.lock().unwrap().contains(action) {
            return Err(ApiError::Deferred {
                reason: format!(
                    "the API's daily limit of account {name} for {action} was reached in this run"
                ),
            });
        }
        if let Some(budget) = self.budgets.get(action) {
            loop {
                match budget.take(at) {
                    Ok(()) => break,
                    Err(free) if free - at <= BUDGET_WAIT => {
                        let wait = (free - at).to_std().unwrap_or_default();
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = self.shutdown.cancelled() => return Err(ApiError::Deferred {
                                reason: "the run stopped while it waited for the daily budget".into(),
                            }),
                        }
                        at = crate::clock::now();
                    }
                    Err(free) => {
                        return Err(ApiError::Deferred {
                            reason: format!(
                                "daily budget of account {name} ({} {action} calls in 24 h) is spent; the next call fits at {}",
                                budget.per_day(),
                                free.format("%Y-%m-%dT%H:%M:%SZ")
                            ),
                        });
                    }
                }
            }
        }
        self.store
            .record_call(account, action, at)
            .await
            .map_err(|e| {
                let message = e.to_string();
                self.gate_error.lock().unwrap().get_or_insert(e);
                ApiError::NotRecorded { message }
            })
    }

    /// Per action this run used or has a budget for: its calls in the last 24 hours (from the
    /// database: every process's), its budget and what is left. What cannot be read is left out.
    async fn action_use(&self, used: impl Iterator<Item = &'static str>) -> Vec<ActionUse> {
        let mut actions: std::collections::BTreeSet<String> = used.map(str::to_string).collect();
        actions.extend(self.budgets.keys().cloned());
        let now = crate::clock::now();
        let mut out = Vec::new();
        for action in actions {
            let Ok(sent) = self
                .store
                .calls_since(&self.account.1, &action, now - DAY)
                .await
            else {
                continue;
            };
            let per_day = self.budgets.get(&action).map(Budget::per_day);
            out.push(ActionUse {
                calls_24h: sent.len() as u64,
                budget_remaining: per_day.map(|n| u64::from(n).saturating_sub(sent.len() as u64)),
                per_day,
                action,
            });
        }
        out
    }

    /// Says once per action why its windows are deferred; the API's own daily limit closes the
    /// action for the rest of the run, and suggests a budget of the tool's own.
    fn deferred(&self, action: &'static str, error: &ApiError) {
        if error.is_daily_limit() {
            self.closed.lock().unwrap().insert(action);
        }
        if !self.said.lock().unwrap().insert(action) {
            return;
        }
        let name = &self.account.0;
        if error.is_daily_limit() {
            tracing::warn!(
                account = %name, action,
                "the API refused a {action} call for its daily limit: the rest of account {name}'s {action} calls wait for the next run; set [accounts.limits] {action} = {{ per_day = N }} so the tool spends the budget in its own order: {error}"
            );
        } else {
            tracing::warn!(account = %name, action, "{error}; the windows left are deferred to the next run");
        }
    }

    /// The run's clock: `now` plus the time since the run started.
    fn fetched_at(&self) -> DateTime<Utc> {
        self.now + Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }

    /// Runs a database write of this window, unless the database failed elsewhere (`None` at once)
    /// or a signal came [`COMMIT_GRACE`] ago (`None` then): the window is fetched again next run.
    async fn bounded<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            done = within_grace(self.signal, COMMIT_GRACE, work) => done,
            () = self.db_failed.cancelled() => None,
        }
    }

    /// Fetches one window through its API and commits it, or records its failure. Only a store
    /// error is returned: an API error belongs to the window and is recorded in the ledger.
    async fn process(&self, task: Task) -> Result<(), StoreError> {
        match task.api {
            Api::Quality => self.window::<ListQualityRequest>(task).await,
            Api::Distribution => self.window::<ListQualityDistributionRequest>(task).await,
        }
    }

    /// [`Run::process`] for an API `A`: its call through its quota's fetcher, its answer to a batch.
    async fn window<A: WindowApi>(&self, task: Task) -> Result<(), StoreError> {
        let stream = &task.stream;
        {
            let t = self.tally.lock().unwrap();
            // A job (or every job) already stopped by an error that concerns it: skip quietly.
            if t.credentials_error.is_some() || t.failed_jobs.contains_key(&stream.job.name) {
                return Ok(());
            }
        }
        let tz = self.settings.window.timezone;
        let request = A::for_window(stream, task.window, &task.indicators, tz);
        let fetcher = self.quotas.of::<A>();
        // Each retry shows on the progress line as it is decided.
        let retried = |_attempt: u32| self.progress.retried();
        let outcome = tokio::select! {
            o = fetcher.fetch_gated(&request, retried, async || self.gate(A::NAME).await) => o,
            _ = self.shutdown.cancelled() => {
                tracing::info!(stream = %stream.name, window = %task.window, "interrupted before the window arrived; it is fetched again next run");
                return Ok(());
            }
        };
        let fetched_at = self.fetched_at();
        let attempts = task.prior_attempts + i64::from(outcome.attempts);
        let mut done = WindowDone {
            points: 0,
            requests: u64::from(outcome.attempts),
            throttled: u64::from(outcome.throttled),
        };
        match outcome.result {
            // A budget said no: not a failure, planned again by the next run.
            Err(error) if error.is_deferred() => {
                self.deferred(A::NAME, &error);
                let mut t = self.tally.lock().unwrap();
                let s = t.streams.get_mut(&stream.name).expect("planned stream");
                s.deferred.add(&crate::domain::Deferred {
                    windows: 1,
                    reason: Some(if error.is_daily_limit() {
                        format!("the API's daily limit of account {}", self.account.0)
                    } else {
                        format!("daily budget of account {}", self.account.0)
                    }),
                });
                s.calls += u64::from(outcome.attempts);
            }
            Ok(answer) => {
                let settled_until =
                    planner::settled_until(&self.settings.window, stream.granularity, fetched_at);
                let fetch = Fetch {
                    stream,
                    window: task.window,
                    indicators: &task.indicators,
                    attempts,
                    fetched_at,
                    timezone: tz,
                };
                let split = A::batch(&answer, &fetch, settled_until);
                let request_id = split.batch.request_id.clone().unwrap_or_default();
                if let Some(example) = split.off_grid.example {
                    tracing::warn!(
                        stream = %stream.name, window = %task.window, points = split.off_grid.count,
                        example = %example.format("%Y-%m-%dT%H:%M:%S%.fZ"), request_id = %request_id,
                        "dropped {} point(s) whose TimeStamp is not on the {} grid in {}",
                        split.off_grid.count, stream.granularity, tz
                    );
                }
                let (batch, dropped) = (split.batch, split.off_grid.count);
                // The whole window (its settled part and its provisional tail) in one transaction.
                let commit = self.store.commit_window(&batch);
                let Some(written) = self.bounded(commit).await else {
                    tracing::info!(stream = %stream.name, window = %task.window, "the window was not committed before the run stopped; it is fetched again next run");
                    return Ok(());
                };
                let written = written?;
                // The store's counts are of the points it kept: one per bucket.
                done.points = written.inserted + written.updated + written.unchanged;
                tracing::debug!(
                    stream = %stream.name, window = %task.window, rows = done.points,
                    inserted = written.inserted, updated = written.updated, unchanged = written.unchanged,
                    deleted = written.deleted,
                    request_id = %request_id, "window committed"
                );
                let mut t = self.tally.lock().unwrap();
                let s = t.streams.get_mut(&stream.name).expect("planned stream");
                s.windows_ok += 1;
                s.calls += u64::from(outcome.attempts);
                s.points += written;
                s.points_dropped += dropped;
            }
            Err(ApiError::NotRecorded { .. })
                if let Some(e) = self.gate_error.lock().unwrap().take() =>
            {
                return Err(e);
            }
            Err(error) => {
                let message = error.to_string();
                // An error that stops a job or the run is said once, by `note_scope`.
                if error.scope() == ErrorScope::Window {
                    tracing::warn!(
                        stream = %stream.name, window = %task.window, attempts,
                        request_id = error.request_id().unwrap_or(""), "window failed: {message}"
                    );
                } else {
                    tracing::debug!(stream = %stream.name, window = %task.window, "window failed: {message}");
                }
                let failure = FailedWindow {
                    stream: &stream.key,
                    indicators: &task.indicators,
                    window: task.window,
                    error: &message,
                    request_id: error.request_id(),
                    attempts,
                    fetched_at,
                };
                if let Some(recorded) = self.bounded(self.store.record_failure(&failure)).await {
                    recorded?;
                }
                let mut t = self.tally.lock().unwrap();
                note_scope(&mut t, &stream.job.name, &error);
                let s = t.streams.get_mut(&stream.name).expect("planned stream");
                s.windows_failed += 1;
                s.calls += u64::from(outcome.attempts);
                s.error.get_or_insert(message);
            }
        }
        self.progress.window_done(done);
        Ok(())
    }
}

/// Remembers an error that stops a whole job or the whole run, and says so once.
fn note_scope(t: &mut Tally, job: &str, error: &ApiError) {
    match error.scope() {
        ErrorScope::Credentials if t.credentials_error.is_none() => {
            tracing::error!("the API refused the credentials; stopping every job: {error}");
            t.credentials_error = Some(error.to_string());
        }
        ErrorScope::Endpoint if t.credentials_error.is_none() => {
            tracing::error!("stopping every job: {error}");
            t.credentials_error = Some(error.to_string());
        }
        ErrorScope::Job if !t.failed_jobs.contains_key(job) => {
            tracing::error!(job = %job, "stopping this job: {error}");
            t.failed_jobs.insert(job.to_string(), error.to_string());
        }
        _ => {}
    }
}
