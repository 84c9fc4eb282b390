//! The commands: glue that loads settings, opens the store, runs a stage and prints the outcome.
//!
//! Every command returns its exit code; `main` only parses and exits. Errors are reported here,
//! once, in plain words.

mod simulate;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use chrono::Utc;

use crate::api::client::Client;
use crate::api::quality::request_for;
use crate::cli::{
    Cli, Command, DemoArgs, PlanArgs, PruneArgs, RangeArgs, SimulateArgs, StatusArgs, SyncArgs,
};
use crate::config::{Credentials, DatabaseUrl, PLACEHOLDER_APP_ID, Settings};
use crate::domain::{PgSchema, RunStatus};
use crate::error::{Error, Outcome};
use crate::fetcher::{Fetcher, Quotas};
use crate::metrics;
use crate::pipeline::{self, RunOptions};
use crate::planner::PlanOptions;
use crate::progress::Progress;
use crate::report;
use crate::shutdown;
use crate::simulator;
use crate::store::{Store, StoreError, StoreLock};

/// What every command returns: how it went, or why it could not run.
type Result<T = Outcome, E = Error> = std::result::Result<T, E>;

/// Writes command output to stdout; a closed pipe (`plan --json | head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `println!` through [`emit`].
macro_rules! say {
    ($($arg:tt)*) => { emit(&format!("{}\n", format_args!($($arg)*)))? };
}

/// Runs the parsed command line; an error is reported here, once.
pub async fn run(cli: Cli) -> Result {
    let result = dispatch(&cli).await;
    if let Err(e) = &result {
        // Said once: as a log event for schedulers that read JSON, as plain text otherwise.
        if cli.log_format == crate::telemetry::LogFormat::Json {
            tracing::error!("{e}");
        } else {
            eprintln!("error: {e}");
        }
    }
    result
}

async fn dispatch(cli: &Cli) -> Result {
    match &cli.command {
        Command::Sync(args) => sync(cli, args).await,
        Command::Plan(args) => plan(cli, args).await,
        Command::Status(args) => status(cli, args).await,
        Command::Check(args) => check(cli, args).await,
        Command::Migrate => migrate(cli).await,
        Command::Prune(args) => prune(cli, args).await,
        Command::Init(args) => init(&args.path),
        Command::Simulate(args) => simulate(args).await,
        Command::Demo(args) => demo(cli, args).await,
    }
}

/// The current time, or the hidden `--now` of tests and reproducible runs.
fn now(cli: &Cli) -> chrono::DateTime<Utc> {
    cli.now.unwrap_or_else(crate::clock::now)
}

/// Loads and validates the config file, then applies `--database-url` / `DATABASE_URL`.
fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(&cli.config)?;
    if let Some(url) = database_url_override(cli) {
        settings.use_database_url(DatabaseUrl::new(url));
    }
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    Ok(settings)
}

/// [`load_settings`] for the commands that plan or call the API: the placeholder app id is refused.
fn load_settings_to_plan(cli: &Cli) -> anyhow::Result<Settings> {
    let settings = load_settings(cli)?;
    settings.require_real_app_ids()?;
    Ok(settings)
}

/// `--database-url`, else `DATABASE_URL`; `None` leaves the config file's.
fn database_url_override(cli: &Cli) -> Option<String> {
    cli.database_url.clone().or_else(|| {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
    })
}

/// The database for commands that need nothing else: the URL of the flag or `DATABASE_URL`, else
/// the config file's, and the schema of the config file.
fn database_target(cli: &Cli) -> anyhow::Result<(DatabaseUrl, PgSchema)> {
    match database_url_override(cli) {
        Some(url) => {
            let url = DatabaseUrl::new(url);
            let schema = schema_of_config(cli, &url)?;
            Ok((url, schema))
        }
        None => {
            let settings = load_settings(cli)?;
            Ok((settings.database_url, settings.schema))
        }
    }
}

/// The config file's `[storage] schema` for a PostgreSQL `url` given on the command line (or in
/// `DATABASE_URL`): a command that takes only the URL must still open the configured schema, or it
/// would create the tables afresh in `public`. `public` without a config file; a SQLite file has no
/// schemas, so its commands do not read the file for one.
fn schema_of_config(cli: &Cli, url: &DatabaseUrl) -> anyhow::Result<PgSchema> {
    if url.is_sqlite() || !cli.config.exists() {
        return Ok(PgSchema::public());
    }
    Ok(load_settings(cli)?.schema)
}

async fn open_store(url: &DatabaseUrl, schema: &PgSchema) -> anyhow::Result<Store> {
    Store::connect_in(url.expose(), schema)
        .await
        .map_err(|e| opening(url, e))
}

/// Opens the database with the one-sync lock taken before migrating (see [`Store::connect_locked`]).
async fn open_locked(
    url: &DatabaseUrl,
    schema: &PgSchema,
    mode: &str,
) -> Result<(Store, StoreLock)> {
    let holder = format!("rtc-quality-sync {mode}");
    match Store::connect_locked_in(url.expose(), schema, &holder).await {
        // Said as it is: "another run holds the lock" needs no "cannot open the database" before it.
        Err(e @ StoreError::Locked { .. }) => Err(Error::store(e)),
        r => Ok(r.map_err(|e| opening(url, e))?),
    }
}

/// An error met while opening `url`, said once: the errors that name the database (or its file)
/// already are said as they are, the others after "cannot open the database URL".
fn opening(url: &DatabaseUrl, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::UnsupportedUrl { .. }
        | StoreError::Connect { .. }
        | StoreError::OpenFile { .. }
        | StoreError::NoDatabase { .. }
        | StoreError::UnsupportedParameter { .. }
        | StoreError::Migrate { .. }
        | StoreError::TablesElsewhere { .. }
        | StoreError::LockFile { .. } => e.into(),
        e => anyhow::Error::from(e).context(format!("cannot open the database {url}")),
    }
}

/// The checkpoint ledger as the next `sync` plans from it (an earlier version's rows adopted), for
/// commands that only read it: a SQLite file that does not exist yet has an empty ledger and is not
/// created.
async fn read_ledger(settings: &Settings) -> anyhow::Result<Vec<crate::domain::LedgerEntry>> {
    let url = &settings.database_url;
    if crate::store::sqlite::file_missing(url.expose()) {
        return Ok(Vec::new());
    }
    let store = open_store(url, &settings.schema).await?;
    let ledger = pipeline::adopted_ledger(settings, &store).await;
    store.close().await;
    Ok(ledger?.0)
}

fn credentials() -> anyhow::Result<Credentials> {
    Credentials::from_env()?.ok_or_else(|| {
        anyhow!(
            "no API credentials: set VOLC_ACCESSKEY and VOLC_SECRETKEY (or VOLCENGINE_ACCESS_KEY and \
             VOLCENGINE_SECRET_KEY); to try the tool without them run `rtc-quality-sync demo`"
        )
    })
}

fn plan_options(range: &RangeArgs, settings: &Settings) -> RunOptions {
    let tz = settings.window.timezone;
    RunOptions {
        plan: PlanOptions {
            from: range.from.map(|t| t.resolve(tz)),
            to: range.to.map(|t| t.resolve(tz)),
            refetch: range.refetch,
        },
        jobs: range.jobs.clone(),
        range_as_typed: (
            range.from.map(|t| t.to_string()),
            range.to.map(|t| t.to_string()),
        ),
        mode: if range.from.is_some() || range.to.is_some() || range.refetch {
            "backfill".into()
        } else {
            "sync".into()
        },
        account: None,
        skip_abandon: false,
    }
}

async fn sync(cli: &Cli, args: &SyncArgs) -> Result {
    let started_at = now(cli);
    let clock = std::time::Instant::now();
    let mut run = ThisRun::default();
    let result = sync_run(cli, args, &mut run).await;
    // `--json` promises one object on stdout, also when the run could not start (a config error,
    // the lock held, the database unreachable) or stopped before it had a report.
    if args.json
        && let Err(e) = &result
    {
        say!(
            "{}",
            serde_json::to_string(&report::failure_json(started_at, e.exit_code(), e))?
        );
    }
    // The metrics file is written on every exit but 3 (the holder writes it), also when the run
    // could not start: an alert on `last_run_exit_code` must see a run that failed early.
    let code = crate::error::exit_code(&result);
    if let Some(path) = &args.metrics_file
        && !run.metrics_written
        && code != Outcome::LockLost.exit_code()
    {
        let snapshot = metrics::Snapshot {
            last_run: Some(run.last_run(started_at, code, clock.elapsed())),
            last_success: metrics::previous_last_success(path),
            streams: Vec::new(),
            rooms: Vec::new(),
            accounts: Vec::new(),
        };
        write_metrics_file(path, &metrics::render(&snapshot));
    }
    result
}

/// What `sync --metrics-file` knows of this process's own run, whatever the database says.
#[derive(Default)]
struct ThisRun {
    requests: u64,
    throttled: u64,
    metrics_written: bool,
}

impl ThisRun {
    fn last_run(
        &self,
        started_at: chrono::DateTime<Utc>,
        exit_code: u8,
        took: Duration,
    ) -> metrics::LastRun {
        metrics::LastRun {
            started_at,
            exit_code: Some(exit_code),
            duration_s: Some(took.as_secs_f64()),
            requests: self.requests,
            throttled: self.throttled,
        }
    }
}

async fn sync_run(cli: &Cli, args: &SyncArgs, this: &mut ThisRun) -> Result {
    if args.dry_run {
        let settings = load_settings_to_plan(cli)?;
        let options = plan_options(&args.range, &settings);
        let ledger = read_ledger(&settings).await?;
        let (_, plan) = pipeline::make_plan(&settings, &ledger, &options, now(cli))?;
        let accounts = account_estimates(&settings, &plan, &args.range.accounts)?;
        emit(&report::plan_text(&plan, &settings.source, &accounts))?;
        return Ok(Outcome::Done);
    }
    let started_at = now(cli);
    let clock = std::time::Instant::now();
    // A run that cannot start (the configuration, the credentials, the lock, the database) ends
    // with its `run finished` event too, so a log-based alert sees every run.
    let started = match sync_start(cli, args).await {
        Ok(started) => started,
        Err(e) => {
            let status = match e {
                Error::Interrupted(_) => RunStatus::Interrupted,
                _ => RunStatus::Failed,
            };
            tracing::info!(
                status = status.as_str(),
                exit_code = e.exit_code(),
                "run finished"
            );
            return Err(e);
        }
    };
    let Started {
        settings,
        parts,
        shutdown,
        stores,
    } = started;
    let (stores, locks): (Vec<Store>, Vec<StoreLock>) = stores.into_iter().unzip();
    let store = &stores[0];
    let run = parts
        .iter()
        .enumerate()
        .map(|(i, (settings, options, quotas))| Part {
            settings: settings.clone(),
            options: options.clone(),
            quotas,
            store: &stores[i.min(stores.len() - 1)],
        })
        .collect();
    let outcome = run_parts(cli, run, locks, started_at, (args.json, &shutdown)).await;
    for (_, _, quotas) in &parts {
        let stats = quotas.stats();
        this.requests += stats.requests;
        this.throttled += stats.throttled;
    }
    if let Some(path) = &args.metrics_file
        && crate::error::exit_code(&outcome) != Outcome::LockLost.exit_code()
    {
        let this_run = this.last_run(
            started_at,
            crate::error::exit_code(&outcome),
            clock.elapsed(),
        );
        let rendered = async {
            let mut status = report::Status::load(store, Some(&settings)).await?;
            status.judge(&settings, now(cli), DEFAULT_MAX_AGE);
            let last_success = store.last_successful_run().await?;
            let mut snapshot = status.metrics_snapshot(last_success.as_ref());
            // This run, as this process ended it: its exit code is what an alert must see, also
            // when the database could not record its end.
            snapshot.last_run = Some(this_run.clone());
            anyhow::Ok(snapshot)
        };
        // A metrics file that cannot be written is an ERROR, never another exit code: the run's
        // own outcome is what the exit code says. What the database cannot tell (it is down, or a
        // signal leaves no time to ask) is written without it.
        let snapshot = match shutdown::within_grace(&shutdown, AFTER_SIGNAL_GRACE, rendered).await {
            Some(Ok(snapshot)) => snapshot,
            failed => {
                if let Some(Err(e)) = failed {
                    tracing::warn!(
                        "the metrics file shows this run without the streams' numbers: {e:#}"
                    );
                }
                metrics::Snapshot {
                    last_run: Some(this_run),
                    last_success: metrics::previous_last_success(path),
                    streams: Vec::new(),
                    rooms: Vec::new(),
                    accounts: Vec::new(),
                }
            }
        };
        write_metrics_file(path, &metrics::render(&snapshot));
    }
    // Written, or (another run holds the lock now) its to write.
    this.metrics_written = true;
    // Every store at once: after a signal, their graces must not add up.
    futures::future::join_all(stores.iter().map(|store| close_store(store, &shutdown))).await;
    outcome
}

/// What a run needs before it starts: the settings, each selected account's part (its settings,
/// options and quotas), the signal token, and the store opened under the locks.
struct Started {
    settings: Settings,
    parts: Vec<(Settings, RunOptions, Quotas)>,
    shutdown: tokio_util::sync::CancellationToken,
    /// One store for every account on SQLite (its one file lock); one per account, each holding
    /// that account's lock, on PostgreSQL (in the order of `parts`).
    stores: Vec<(Store, StoreLock)>,
}

async fn sync_start(cli: &Cli, args: &SyncArgs) -> std::result::Result<Started, Error> {
    let settings = load_settings_to_plan(cli)?;
    let base = plan_options(&args.range, &settings);
    // `--job` names that no block knows are an error for the whole command, as before.
    pipeline::select_streams(&settings, &base.jobs)?;
    let path = settings.path.display().to_string();
    let mut parts = Vec::new();
    let mut keys = Vec::new();
    for account in settings.select_accounts(&args.range.accounts)? {
        let mine = settings.for_account(account);
        // The `--job` names of this account's blocks; an account with none of them sits out.
        let jobs: Vec<String> = base
            .jobs
            .iter()
            .filter(|j| pipeline::select_streams(&mine, std::slice::from_ref(j)).is_ok())
            .cloned()
            .collect();
        if !base.jobs.is_empty() && jobs.is_empty() {
            continue;
        }
        let credentials = match account.env {
            None => credentials()?,
            Some(_) => account.credentials(&path, |k| std::env::var(k).ok())?,
        };
        let options = RunOptions {
            jobs,
            account: Some(credentials.account_id()),
            // Unfinished runs are marked abandoned once, below, under every account's lock.
            skip_abandon: true,
            ..base.clone()
        };
        keys.push((account.clone(), credentials.clone()));
        let client = Client::new(&mine.source, credentials)?;
        let quotas = Quotas::new(Fetcher::new(client, &mine.source), &mine.source);
        parts.push((mine, options, quotas));
    }
    let resolved: Vec<_> = keys.iter().map(|(a, c)| (a, c)).collect();
    crate::config::accounts::same_access_key(&path, &resolved)?;
    if parts.is_empty() {
        return Err(Error::Failed(anyhow!(
            "no block of {path} belongs to the selected accounts ({}); nothing to sync",
            args.range.accounts.join(", ")
        )));
    }
    // From here on a signal ends the command within 5 s, whatever the database is doing.
    let shutdown = shutdown::on_signals();
    let opened = tokio::select! {
        opened = open_for_accounts(&settings, &parts, &base.mode) => opened,
        () = shutdown.cancelled() => return Err(Error::Interrupted(anyhow!(
            "interrupted while opening the database {}; nothing was fetched", settings.database_url
        ))),
    };
    let stores = opened?;
    // Under the locks of every account of this process: a run still `running` that no live
    // process holds died without finishing.
    let mine: Vec<String> = parts.iter().filter_map(|p| p.1.account.clone()).collect();
    match stores[0].0.abandon_unfinished_runs(&mine).await {
        Ok(ids) => {
            for id in ids {
                tracing::warn!(
                    run.id = id,
                    "run {id} did not finish (killed or crashed); marked abandoned, its committed windows are kept"
                );
            }
        }
        Err(e) => return Err(Error::store(e)),
    }
    Ok(Started {
        settings,
        parts,
        shutdown,
        stores,
    })
}

/// The database under the locks of `parts`' accounts: on SQLite one store and its file lock (one
/// sync per file, whatever the account); on PostgreSQL one store per account, each holding that
/// account's lock, so that syncs of other accounts write the same database at once.
async fn open_for_accounts(
    settings: &Settings,
    parts: &[(Settings, RunOptions, Quotas)],
    mode: &str,
) -> Result<Vec<(Store, StoreLock)>> {
    let url = &settings.database_url;
    if url.is_sqlite() {
        return Ok(vec![open_locked(url, &settings.schema, mode).await?]);
    }
    let holder = format!("rtc-quality-sync {mode}");
    let mut stores = Vec::new();
    for (_, options, _) in parts {
        let account = options.account.as_deref().unwrap_or_default();
        match Store::connect_locked_for(url.expose(), &settings.schema, &holder, account).await {
            Ok(opened) => stores.push(opened),
            Err(e) => {
                // Those already taken are given back before saying why.
                for (store, lock) in stores {
                    let _ = lock.release().await;
                    store.close().await;
                }
                return Err(match e {
                    e @ StoreError::Locked { .. } => Error::store(e),
                    e => opening(url, e).into(),
                });
            }
        }
    }
    Ok(stores)
}

/// How long each step after the run (releasing the lock, the metrics file, closing the store) may
/// take once a signal came: the whole command still ends within PRODUCT.md's 5 s.
const AFTER_SIGNAL_GRACE: Duration = Duration::from_millis(300);

/// Closes the store, unless a signal came and the database does not answer.
async fn close_store(store: &Store, shutdown: &tokio_util::sync::CancellationToken) {
    if shutdown::within_grace(shutdown, AFTER_SIGNAL_GRACE, store.close())
        .await
        .is_none()
    {
        tracing::warn!("interrupted: the database did not answer while closing; nothing is lost");
    }
}

/// `status --check`'s default `--max-age`.
const DEFAULT_MAX_AGE: chrono::Duration = chrono::Duration::hours(36);

/// `--metrics-file`'s text: the judged status and the newest successful run.
async fn metrics_text(status: &report::Status, store: &Store) -> anyhow::Result<String> {
    let last_success = store.last_successful_run().await?;
    Ok(metrics::render(
        &status.metrics_snapshot(last_success.as_ref()),
    ))
}

/// Writes `--metrics-file` atomically. A file that cannot be written (or a path that is no regular
/// file) is logged at ERROR and changes no exit code (PRODUCT.md, "Exit codes").
fn write_metrics_file(path: &Path, text: &str) {
    if let Err(e) = metrics::write(path, text) {
        tracing::error!("{e}");
    }
}

/// Runs the pipeline under the lock, releases it, prints the summary (a table, or JSON with
/// `json`), logs `run finished`, and returns the outcome. `shutdown` is cancelled by a signal.
async fn run_sync(
    cli: &Cli,
    settings: &Settings,
    (store, lock): (&Store, StoreLock),
    quotas: &Quotas,
    (options, started_at): (&RunOptions, chrono::DateTime<Utc>),
    (json, shutdown): (bool, &tokio_util::sync::CancellationToken),
) -> Result {
    let part = Part {
        settings: settings.clone(),
        options: options.clone(),
        quotas,
        store,
    };
    run_parts(cli, vec![part], vec![lock], started_at, (json, shutdown)).await
}

/// One account's part of a `sync`: its blocks, endpoint and rates, its quotas, and the store
/// handle that holds its lock.
struct Part<'a> {
    settings: Settings,
    options: RunOptions,
    quotas: &'a Quotas,
    store: &'a Store,
}

/// [`run_sync`] for one or more accounts at once, each part through its own quotas; then every
/// lock released, and one summary of them all.
async fn run_parts(
    cli: &Cli,
    parts: Vec<Part<'_>>,
    locks: Vec<StoreLock>,
    started_at: chrono::DateTime<Utc>,
    (json, shutdown): (bool, &tokio_util::sync::CancellationToken),
) -> Result {
    let progress = Progress::auto(cli.quiet > 0 || json);
    let results = futures::future::join_all(parts.iter().map(|p| {
        pipeline::run(
            &p.settings,
            p.store,
            p.quotas,
            &p.options,
            started_at,
            shutdown.clone(),
            &progress,
        )
    }))
    .await;
    // Every account's lock at once: after a signal, their graces must not add up.
    let released = futures::future::join_all(
        locks
            .into_iter()
            .map(|lock| shutdown::within_grace(shutdown, AFTER_SIGNAL_GRACE, lock.release())),
    )
    .await;
    for r in released {
        match r {
            Some(Err(e)) => tracing::warn!("releasing the lock: {e}"),
            None => tracing::warn!("interrupted: the lock is released as the process ends"),
            Some(Ok(())) => {}
        }
    }
    // One account that could not start fails the command only when none ran.
    let mut reports = Vec::new();
    let mut first_error = None;
    for r in results {
        match r {
            Ok(report) => reports.push(report),
            Err(e @ pipeline::PipelineError::Interrupted) => first_error = Some(e),
            Err(e) => {
                tracing::error!("{e}");
                first_error.get_or_insert(e);
            }
        }
    }
    let result = match pipeline::RunReport::merge(reports) {
        Some(report) => Ok(report),
        None => Err(first_error.unwrap_or(pipeline::PipelineError::Interrupted)),
    };
    let report = match result {
        Ok(report) => report,
        Err(e @ pipeline::PipelineError::Interrupted) => {
            tracing::info!(
                status = RunStatus::Interrupted.as_str(),
                exit_code = Outcome::Interrupted.exit_code(),
                "run finished"
            );
            return Err(Error::Interrupted(e.into()));
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            tracing::info!(
                status = RunStatus::Failed.as_str(),
                exit_code = Outcome::Failed.exit_code(),
                "run finished"
            );
            return Err(e.into());
        }
    };
    let c = &report.counts;
    tracing::info!(
        status = report.status.as_str(),
        exit_code = report.exit_code(),
        run.id = report.run_id,
        duration_ms = report.duration_ms,
        calls = c.requests,
        retries = c.retries,
        throttled = c.throttled,
        windows_ok = c.windows_ok,
        windows_failed = c.windows_failed,
        points_inserted = c.points.inserted,
        points_updated = c.points.updated,
        points_unchanged = c.points.unchanged,
        "run finished"
    );
    if json {
        say!("{}", serde_json::to_string(&report::summary_json(&report))?);
    } else {
        emit(&report::summary_text(&report))?;
    }
    Ok(report.outcome())
}

async fn plan(cli: &Cli, args: &PlanArgs) -> Result {
    let settings = load_settings_to_plan(cli)?;
    let options = plan_options(&args.range, &settings);
    let ledger = read_ledger(&settings).await?;
    let (streams, plan) = pipeline::make_plan(&settings, &ledger, &options, now(cli))?;
    let budgets = plan_budgets(&settings, &streams, &plan, &args.range.accounts).await?;
    if args.json {
        let mut json = report::plan_json(&plan, &settings.source);
        json.budgets = budgets;
        say!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let accounts = account_estimates(&settings, &plan, &args.range.accounts)?;
        emit(&report::plan_text(&plan, &settings.source, &accounts))?;
        emit(&report::budget_text(&budgets))?;
    }
    Ok(Outcome::Done)
}

/// Each selected account's share of `plan` and how long it takes at that account's own rates, when
/// several accounts are selected (they run at once); empty for one.
fn account_estimates(
    settings: &Settings,
    plan: &crate::planner::Plan,
    selected: &[String],
) -> anyhow::Result<Vec<report::AccountEstimate>> {
    let accounts = settings.select_accounts(selected)?;
    if accounts.len() < 2 {
        return Ok(Vec::new());
    }
    // A stream's label and a listing's start with the name of the block that owns them.
    let block = |label: &str| label.split('/').next().unwrap_or_default().to_string();
    Ok(accounts
        .iter()
        .map(|account| {
            let mut part = plan.clone();
            part.streams
                .retain(|s| settings.account_of(&block(&s.stream)) == account.name);
            part.listings
                .retain(|(l, _)| settings.account_of(&block(l)) == account.name);
            let source = &account.source;
            report::AccountEstimate {
                account: account.name.clone(),
                requests: part.request_count(),
                duration: part.estimated_duration(
                    source.requests_per_second,
                    source.distribution_requests_per_second,
                ),
                requests_per_second: source.requests_per_second,
            }
        })
        .collect())
}

/// The daily budgets of the selected accounts against the plan: the calls each account spent in
/// the last 24 hours are read from the database (none before the first sync). An account whose
/// keys are not set here is planned as if it had spent nothing.
async fn plan_budgets(
    settings: &Settings,
    streams: &[crate::domain::Stream],
    plan: &crate::planner::Plan,
    selected: &[String],
) -> anyhow::Result<Vec<report::BudgetPlan>> {
    let accounts = settings.select_accounts(selected)?;
    if accounts.iter().all(|a| a.per_day.is_empty()) {
        return Ok(Vec::new());
    }
    let now = crate::clock::now();
    let url = &settings.database_url;
    let store = if crate::store::sqlite::file_missing(url.expose()) {
        None
    } else {
        Some(open_store(url, &settings.schema).await?)
    };
    let path = settings.path.display().to_string();
    let mut sent = std::collections::BTreeMap::new();
    for account in &accounts {
        let credentials = account.credentials_here(&path);
        for action in account.per_day.keys() {
            let calls = match (&store, &credentials) {
                (Some(store), Some(c)) => {
                    store
                        .calls_since(&c.account_id(), action, now - crate::budget::DAY)
                        .await?
                }
                _ => Vec::new(),
            };
            sent.insert((account.name.clone(), action.clone()), calls);
        }
    }
    if let Some(store) = store {
        store.close().await;
    }
    let mut mine = settings.clone();
    mine.accounts
        .retain(|a| accounts.iter().any(|s| s.name == a.name));
    Ok(report::budget_plan(
        &mine,
        streams,
        plan,
        &|account, action| {
            sent.get(&(account.to_string(), action.to_string()))
                .cloned()
                .unwrap_or_default()
        },
        now,
    ))
}

async fn status(cli: &Cli, args: &StatusArgs) -> Result {
    let result = status_run(cli, args).await;
    // `--json` is always JSON: a configuration or a database that cannot be read is an object too
    // (the error is also on stderr), so a script never parses an empty stdout.
    if args.json
        && let Err(e) = &result
    {
        say!(
            "{}",
            serde_json::to_string_pretty(&report::error_json(e.exit_code(), e))?
        );
    }
    result
}

async fn status_run(cli: &Cli, args: &StatusArgs) -> Result {
    // The configuration says which streams should exist; --check needs it, a plain status reads it
    // when there is one.
    let settings = if args.check || args.metrics_file.is_some() || cli.config.exists() {
        Some(load_settings(cli)?)
    } else {
        None
    };
    // Loaded settings already hold `--database-url` or `DATABASE_URL` when one is given.
    let (url, schema) = match &settings {
        Some(s) => (s.database_url.clone(), s.schema.clone()),
        None => database_target(cli)?,
    };
    // Only `sync`, `migrate` and `demo` create a database; a health check of one that is not there
    // is an error, not "never synced".
    let missing = crate::store::sqlite::file_missing(url.expose());
    if missing && args.check {
        return Err(Error::Failed(anyhow!(
            "no database at {}: run `sync` first, or check `--database-url`",
            crate::store::sqlite::path_of(url.expose()).display()
        )));
    }
    let store = if missing {
        None
    } else {
        Some(open_store(&url, &schema).await?)
    };
    if args.check
        && let Some(store) = &store
    {
        // A health check that reads a damaged file must not call it healthy.
        store
            .quick_check()
            .await
            .with_context(|| format!("cannot use the database {url}"))?;
    }
    let mut status = match &store {
        Some(store) => report::Status::load(store, settings.as_ref()).await?,
        None => report::Status::absent(),
    };
    if let Some(settings) = &settings {
        status.judge(settings, now(cli), args.max_age);
    }
    if let Some(path) = &args.metrics_file {
        let text = match &store {
            Some(store) => metrics_text(&status, store).await?,
            None => metrics::render(&status.metrics_snapshot(None)),
        };
        write_metrics_file(path, &text);
    }
    if let Some(store) = store {
        store.close().await;
    }
    if args.json {
        say!("{}", serde_json::to_string_pretty(&status)?);
    } else if args.check {
        emit(&status.check_text())?;
    } else {
        if missing {
            say!("no database at {url} yet: run `rtc-quality-sync sync` (or `demo`) first");
        }
        emit(&status.text())?;
    }
    if args.check && !status.healthy() {
        return Ok(Outcome::Partial);
    }
    Ok(Outcome::Done)
}

/// The commented default configuration, as shipped in `config/default.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// `init [PATH]`: writes [`DEFAULT_CONFIG`]; an existing file is left untouched (exit 1).
fn init(path: &Path) -> Result {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, DEFAULT_CONFIG.as_bytes()));
    match written {
        Ok(()) => {
            say!(
                "wrote {}: replace app_id's placeholder with your AppId from the RTC console and choose the indicators in [[jobs]], export VOLC_ACCESSKEY and VOLC_SECRETKEY, then run `rtc-quality-sync --config {} check`",
                path.display(),
                path.display()
            );
            Ok(Outcome::Done)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Failed(anyhow!(
            "{} exists already and was left as it is; edit it, or name another path: `rtc-quality-sync init PATH`",
            path.display()
        ))),
        Err(e) => Err(Error::Failed(anyhow!(
            "cannot write {}: {e}; check that its directory is writable by this user, or name another path",
            path.display()
        ))),
    }
}

async fn migrate(cli: &Cli) -> Result {
    let (url, schema) = database_target(cli)?;
    let (store, lock) = open_locked(&url, &schema, "migrate").await?;
    let released = lock.release().await;
    store.close().await;
    released?;
    if url.is_sqlite() || schema.is_public() {
        say!("migrations applied to {url}");
    } else {
        say!("migrations applied to {url}, schema {}", schema.quoted());
    }
    Ok(Outcome::Done)
}

/// `prune`: removes the retired streams of this configuration's account (see `crate::prune`).
async fn prune(cli: &Cli, args: &PruneArgs) -> Result {
    let settings = load_settings(cli)?;
    let account = Credentials::from_env()?.map(|c| c.account_id());
    if account.is_none() && !args.dry_run {
        return Err(Error::Failed(anyhow!(
            "prune removes only this account's streams, and the account is known from its access key: \
             set VOLC_ACCESSKEY (or VOLCENGINE_ACCESS_KEY) as `sync` has it, or list with --dry-run"
        )));
    }
    let url = &settings.database_url;
    if crate::store::sqlite::file_missing(url.expose()) {
        say!("no database at {url}: nothing to prune");
        return Ok(Outcome::Done);
    }
    let (store, lock) = open_locked(url, &settings.schema, "prune").await?;
    let done = prune_locked(&settings, &store, account.as_deref(), args).await;
    let released = lock.release().await;
    store.close().await;
    released?;
    done
}

async fn prune_locked(
    settings: &Settings,
    store: &Store,
    account: Option<&str>,
    args: &PruneArgs,
) -> Result {
    use crate::prune::{Owner, query_of, removable, retired};
    let configured = settings.streams();
    let (_, adoptions) = pipeline::adopted_ledger(settings, store).await?;
    let adoptable = adoptions.iter().map(|a| a.from.clone()).collect();
    let stored = store.stream_accounts().await?;
    // A block's listing and its room streams are configured too, though no table lists them.
    let mut listings: Vec<String> = settings.listings().into_iter().map(|(k, _)| k).collect();
    for block in &settings.rooms {
        let calls: Vec<_> = store
            .room_calls(&block.app_id)
            .await?
            .into_iter()
            .map(|c| c.call)
            .collect();
        listings.extend(
            crate::planner::room_streams(
                block,
                &calls,
                settings.window.timezone,
                crate::clock::now(),
            )
            .into_iter()
            .map(|s| s.key),
        );
    }
    let retired = retired(&configured, &listings, &stored, &adoptable, account);
    for label in &args.streams {
        if !retired.iter().any(|r| &r.label == label) {
            let known: Vec<&str> = retired.iter().map(|r| r.label.as_str()).collect();
            return Err(Error::usage(anyhow!(
                "--stream {label:?} is not a retired stream; the retired ones are: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let named = |label: &str| args.streams.is_empty() || args.streams.iter().any(|s| s == label);
    if retired.is_empty() {
        say!("no retired stream: every stored stream is asked by the configuration");
        return Ok(Outcome::Done);
    }
    say!(
        "{:<48} {:>11} {:>6} {:>8}  {}",
        "retired stream",
        "checkpoints",
        "series",
        "points",
        if args.dry_run { "would be" } else { "" }
    );
    let (mut removed, mut points_removed) = (0, 0);
    for r in retired.iter().filter(|r| named(&r.label)) {
        let checkpoints = store.ledger(Some(&r.key)).await?.len();
        let mut series = Vec::new();
        let mut points = 0;
        if let Some(q) = query_of(&r.key) {
            for (id, name, value, grid, n) in store
                .query_series(&q.scope, q.grid_timezone.as_deref())
                .await?
            {
                if removable(&q, (&name, &value, &grid), &configured) {
                    series.push(id);
                    points += n;
                }
            }
        }
        let verdict = match &r.owner {
            Owner::Ours => None,
            Owner::Unknown if !args.streams.is_empty() => None,
            Owner::Unknown => Some(
                "kept: stored before accounts were recorded; name it with --stream to remove it",
            ),
            Owner::Other(_) => Some("kept: another account's stream; its own machine prunes it"),
        };
        let verdict = match (verdict, args.dry_run) {
            (Some(kept), _) => kept,
            (None, true) => "removed",
            (None, false) => {
                store.prune(&r.key, &series).await?;
                "removed"
            }
        };
        if verdict == "removed" {
            removed += 1;
            points_removed += points;
        }
        say!(
            "{:<48} {:>11} {:>6} {:>8}  {verdict}",
            r.label,
            checkpoints,
            series.len(),
            points
        );
    }
    let what = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    say!(
        "{what} {removed} retired stream{} and {points_removed} point{}{}",
        if removed == 1 { "" } else { "s" },
        if points_removed == 1 { "" } else { "s" },
        if args.dry_run {
            "; run without --dry-run to do it"
        } else {
            ""
        }
    );
    Ok(Outcome::Done)
}

async fn check(cli: &Cli, args: &crate::cli::CheckArgs) -> Result {
    let mut ok = true;
    let settings = match load_settings(cli) {
        Ok(s) => s,
        Err(e) => {
            say!("FAIL  config: {e:#}");
            return Ok(Outcome::Failed);
        }
    };
    // A placeholder app id fails the check, but the database and the credentials are still worth
    // checking: the user fixes everything in one go.
    match settings.require_real_app_ids() {
        Ok(()) => say!(
            "ok    config {}: {}, {}",
            cli.config.display(),
            match settings.distributions.len() {
                0 => report::count(settings.jobs.len() as u64, "job", "jobs"),
                d => format!(
                    "{} and {}",
                    report::count(settings.jobs.len() as u64, "job", "jobs"),
                    report::count(d as u64, "distribution", "distributions")
                ),
            },
            report::count(settings.streams().len() as u64, "stream", "streams")
        ),
        Err(e) => {
            ok = false;
            say!("FAIL  config: {e}");
        }
    }
    let opened = async {
        let store = open_store(&settings.database_url, &settings.schema).await?;
        // Every page read once: a damaged file is found before a run meets it.
        match store.quick_check().await {
            Ok(()) => Ok(store),
            Err(e) => {
                store.close().await;
                Err(anyhow::Error::from(e))
                    .with_context(|| format!("cannot use the database {}", settings.database_url))
            }
        }
    };
    let store = match opened.await {
        Ok(store) => {
            match store.backend_name() {
                "postgres" if !settings.schema.is_public() => say!(
                    "ok    database {} (postgres, schema {})",
                    settings.database_url,
                    settings.schema.quoted()
                ),
                backend => say!("ok    database {} ({backend})", settings.database_url),
            }
            Some(store)
        }
        Err(e) => {
            ok = false;
            say!("FAIL  database: {e:#}");
            None
        }
    };
    let accounts = match settings.select_accounts(&args.accounts) {
        Ok(accounts) => accounts,
        Err(e) => {
            say!("FAIL  accounts: {e}");
            return Ok(Outcome::Failed);
        }
    };
    let path = settings.path.display().to_string();
    let mut seen: Vec<(&crate::config::Account, Credentials)> = Vec::new();
    for account in accounts {
        // Named only when there are accounts to tell apart.
        let label = match account.env {
            None => "credentials".to_string(),
            Some(_) => format!("account {}: credentials", account.name),
        };
        let resolved = match account.env {
            None => credentials(),
            Some(_) => account
                .credentials(&path, |k| std::env::var(k).ok())
                .map_err(anyhow::Error::from),
        };
        let creds = match resolved {
            Err(e) => {
                ok = false;
                say!("FAIL  {label}: {e:#}");
                continue;
            }
            Ok(creds) => creds,
        };
        if let Some((other, _)) = seen
            .iter()
            .find(|(_, c)| c.access_key_id == creds.access_key_id)
        {
            ok = false;
            say!(
                "FAIL  {label}: the same access key as account {} ({}); give each account its own keys",
                other.name,
                crate::redact::mask_access_key(&creds.access_key_id)
            );
            continue;
        }
        seen.push((account, creds.clone()));
        say!(
            "ok    {label}: access key {}",
            crate::redact::mask_access_key(&creds.access_key_id)
        );
        let mine = settings.for_account(account);
        let id = creds.account_id();
        let fetcher = Fetcher::new(Client::new(&mine.source, creds)?, &mine.source);
        // Its calls count against the same quota as a sync's: the pace holds across both.
        let action = crate::api::wire::ACTION;
        if let Some(store) = &store
            && let Ok(last) = store.last_calls(&id).await
            && let Some((_, Some(at))) = last.into_iter().find(|(a, _)| a == action)
        {
            fetcher.follow(at);
        }
        ok &= check_api(cli, &mine, &fetcher, store.as_ref(), &id).await?;
        if let (Some(store), Some(at)) = (&store, fetcher.last_sent())
            && let Err(e) = store.record_last_call(&id, action, at).await
        {
            tracing::warn!("cannot record when the last call was sent: {e}");
        }
    }
    if let Some(store) = store {
        store.close().await;
    }
    Ok(if ok { Outcome::Done } else { Outcome::Failed })
}

/// `check`'s API probes: one small real call per distinct (app, product type), through the fetcher
/// (paced, transient errors retried), reported per job. Whether every job passed.
async fn check_api(
    cli: &Cli,
    settings: &Settings,
    fetcher: &Fetcher,
    store: Option<&Store>,
    account: &str,
) -> anyhow::Result<bool> {
    let mut ok = true;
    // (app, product type) → the job whose probe answered for it, and the verdict.
    let mut probed: Vec<((String, &str), String, bool)> = Vec::new();
    for job in &settings.jobs {
        let label = format!("api job {} (app {})", job.name, job.app_id);
        if job.app_id == PLACEHOLDER_APP_ID {
            ok = false;
            say!(
                "FAIL  {label}: not called: app_id is still the placeholder {PLACEHOLDER_APP_ID} (see the config line above)"
            );
            continue;
        }
        let key = (job.app_id.clone(), job.product_type.as_str());
        if let Some((_, first, passed)) = probed.iter().find(|(k, _, _)| *k == key) {
            let verdict = if *passed { "ok  " } else { "FAIL" };
            ok &= *passed;
            say!("{verdict}  {label}: the same app and product type as job {first}");
            continue;
        }
        let stream = &job.streams(settings.window.timezone)[0];
        let h = crate::planner::horizon(&settings.window, stream.granularity, now(cli));
        let day = chrono::Duration::days(1).min(h.end - h.start);
        let window = crate::domain::Window::new(h.end - day, h.end);
        let request = request_for(
            stream,
            window,
            &stream.job.indicators,
            settings.window.timezone,
        );
        // Its calls count too: recorded before they are sent, within the daily budget.
        let gate = async || check_gate(settings, store, account).await;
        let outcome = fetcher.fetch_gated(&request, |_| {}, gate).await;
        let tries = match outcome.attempts {
            1 => String::new(),
            n => format!(" after {n} attempts"),
        };
        let passed = match outcome.result {
            Ok(f) => {
                say!(
                    "ok    {label}: ListQuality {} returned {} series{tries} (RequestId {})",
                    window,
                    f.indicators.len(),
                    f.request_id
                );
                true
            }
            Err(e) => {
                say!("FAIL  {label} at {}: {e}{tries}", settings.source.endpoint);
                false
            }
        };
        ok &= passed;
        probed.push((key, job.name.clone(), passed));
    }
    Ok(ok)
}

/// `check`'s probe is a real call: within the account's `ListQuality` budget, and recorded first.
async fn check_gate(
    settings: &Settings,
    store: Option<&Store>,
    account: &str,
) -> std::result::Result<(), crate::api::error::ApiError> {
    use crate::api::error::ApiError;
    let Some(store) = store else { return Ok(()) };
    let action = crate::api::wire::ACTION;
    let now = crate::clock::now();
    let not_recorded = |e: StoreError| ApiError::NotRecorded {
        message: e.to_string(),
    };
    if let Some(per_day) = settings.accounts.first().and_then(|a| a.budget(action)) {
        let sent = store
            .calls_since(account, action, now - crate::budget::DAY)
            .await
            .map_err(not_recorded)?;
        if let Err(free) = crate::budget::Budget::new(per_day, sent).take(now) {
            return Err(ApiError::Deferred {
                reason: format!(
                    "the daily budget ({per_day} {action} calls) is spent; the next call fits at {}",
                    free.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            });
        }
    }
    store
        .record_call(account, action, now)
        .await
        .map_err(not_recorded)
}

async fn simulate(args: &SimulateArgs) -> Result {
    simulate::run(args, shutdown::signal()).await?;
    Ok(Outcome::Done)
}

async fn demo(cli: &Cli, args: &DemoArgs) -> Result {
    let sim = simulator::spawn(simulator::SimulatorConfig {
        latency: std::time::Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .context("cannot start the simulator")?;
    // Only an explicit --database-url: an exported DATABASE_URL may be a production database.
    let url = cli
        .database_url
        .clone()
        .unwrap_or_else(|| "sqlite://demo.db".to_string());
    let mut settings = demo_settings(&sim.endpoint(), &url, args.streams)?;
    // A PostgreSQL database is a shared one: the demo's tables go where the configuration's go.
    settings.schema = schema_of_config(cli, &settings.database_url)?;
    say!(
        "demo: simulator at {}, database {}, {}, 30 days at 2 calls/s per API",
        sim.endpoint(),
        settings.database_url,
        report::count(settings.streams().len() as u64, "stream", "streams")
    );
    let creds = Credentials::new(simulator::DEMO_ACCESS_KEY, simulator::DEMO_SECRET_KEY, None);
    let quotas = Quotas::new(
        Fetcher::new(Client::new(&settings.source, creds)?, &settings.source),
        &settings.source,
    );
    let options = RunOptions {
        mode: "demo".into(),
        ..Default::default()
    };
    let (store, lock) =
        open_locked(&settings.database_url, &settings.schema, &options.mode).await?;
    let shutdown = shutdown::on_signals();
    let shown = demo_run(
        cli,
        &settings,
        (&store, lock),
        &quotas,
        (&options, &shutdown),
    )
    .await;
    sim.shutdown().await;
    close_store(&store, &shutdown).await;
    shown
}

/// The demo's run, its status and the newest points.
async fn demo_run(
    cli: &Cli,
    settings: &Settings,
    (store, lock): (&Store, StoreLock),
    quotas: &Quotas,
    (options, shutdown): (&RunOptions, &tokio_util::sync::CancellationToken),
) -> Result {
    let outcome = run_sync(
        cli,
        settings,
        (store, lock),
        quotas,
        (options, now(cli)),
        (false, shutdown),
    )
    .await?;
    say!("");
    // Judged as `status` judges it: a rooms block is one line, never one per room stream.
    let mut status = report::Status::load(store, Some(settings)).await?;
    status.judge(settings, now(cli), DEFAULT_MAX_AGE);
    emit(&status.text())?;
    say!("");
    const SAMPLE: &str = "SELECT app_id, indicator, granularity, ts, value, unit, settled \
                          FROM quality_metrics ORDER BY ts DESC LIMIT 5";
    say!("the newest points:");
    say!("  {}", by_hand(settings, Query::Text(SAMPLE)));
    for row in store.metrics(Some(5)).await? {
        say!("  {row}");
    }
    say!("");
    // The BI starter query's first row, read through the store as the file ranks it.
    say!("the worst rooms of the last settled day:");
    say!(
        "  {}",
        by_hand(settings, Query::File("09_worst_rooms_yesterday.sql"))
    );
    match store.worst_rooms().await?.first() {
        Some(worst) => say!("worst room on {}: {worst}", worst.day),
        None => say!("worst room: none yet (no room has a settled day)"),
    }
    Ok(outcome)
}

/// A query the demo shows how to run by hand: its text, or a starter query file of `sql/<backend>`.
enum Query<'a> {
    Text(&'a str),
    File(&'a str),
}

/// The `sqlite3` or `psql` command line that runs `query` on the demo's database (in its schema).
fn by_hand(settings: &Settings, query: Query<'_>) -> String {
    let url = &settings.database_url;
    match (url.expose().strip_prefix("sqlite://"), query) {
        (Some(path), Query::Text(sql)) => format!("sqlite3 {path} \"{sql}\""),
        (Some(path), Query::File(name)) => {
            format!("sqlite3 -header -column {path} < sql/sqlite/{name}")
        }
        (None, query) => {
            let schema = if settings.schema.is_public() {
                String::new()
            } else {
                format!(" -c 'SET search_path = {}'", settings.schema.quoted())
            };
            let run = match query {
                Query::Text(sql) => format!("-c \"{sql}\""),
                Query::File(name) => format!("-f sql/postgres/{name}"),
            };
            format!("psql \"{url}\"{schema} {run}")
        }
    }
}

/// The ListQuality calls the demo's `[[rooms]]` block makes per run (`max_room_calls_per_run`).
const DEMO_ROOM_CALLS: u64 = 10;

/// The demo's configuration: a handful of streams against the in-process simulator.
pub fn demo_settings(
    endpoint: &str,
    database_url: &str,
    streams: usize,
) -> anyhow::Result<Settings> {
    // Exactly `streams` ListQuality streams: each app at 1d and 5min, the last at 1d alone when
    // `streams` is odd.
    let streams = streams.max(1);
    let jobs: String = (0..streams.div_ceil(2))
        .map(|i| {
            let granularity = if 2 * i + 1 == streams {
                "\"1d\""
            } else {
                "[\"1d\", \"5min\"]"
            };
            format!(
                "[[jobs]]\nname = \"demo-app-{i}\"\napp_id = \"demo_app_{i}\"\n\
                 indicators = [\"join_room_success_rate\", \"stall_rate\"]\ngranularity = {granularity}\n"
            )
        })
        .collect();
    // And one distribution stream (stall rate by province), paced by its own quota beside them.
    let distribution = "[[distributions]]\nname = \"demo-where\"\napp_id = \"demo_app_0\"\n\
                        indicators = [\"stall_rate\"]\ndimensions = [\"Province\"]\n";
    // And the rooms of the first app: its calls listed, then each room's daily stall rate for the
    // worst room of the last settled day. Capped so that the rooms' ListQuality calls fit in the
    // time the distribution stream takes anyway; the next `demo` run fetches the next rooms.
    let rooms = format!(
        "[[rooms]]\nname = \"demo-rooms\"\napp_id = \"demo_app_0\"\nindicators = [\"stall_rate\"]\n\
         granularity = \"1d\"\nmax_room_calls_per_run = {DEMO_ROOM_CALLS}\n"
    );
    let text = format!(
        "[source]\nendpoint = \"{endpoint}\"\n[storage]\ndatabase_url = \"{database_url}\"\n{jobs}{distribution}{rooms}"
    );
    Ok(Settings::parse(&text, Path::new("(demo)"))?)
}
