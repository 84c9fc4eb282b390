//! The commands: glue that loads settings, opens the store, runs a stage and prints the outcome.
//!
//! Every command returns its exit code; `main` only parses and exits. Errors are reported here,
//! once, in plain words.

mod simulate;

use std::path::Path;

use anyhow::{Context, anyhow};
use chrono::Utc;

use crate::api::client::{Client, request_for};
use crate::cli::{Cli, Command, DemoArgs, PlanArgs, RangeArgs, SimulateArgs, StatusArgs, SyncArgs};
use crate::config::{Credentials, DatabaseUrl, Settings};
use crate::error::{Error, Outcome};
use crate::fetcher::Fetcher;
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
        Command::Check => check(cli).await,
        Command::Migrate => migrate(cli).await,
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
        settings.database_url = DatabaseUrl::new(url);
    }
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
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

/// The database URL for commands that need nothing else: the flag or `DATABASE_URL`, else the
/// config file's.
fn database_url_only(cli: &Cli) -> anyhow::Result<DatabaseUrl> {
    if let Some(url) = database_url_override(cli) {
        return Ok(DatabaseUrl::new(url));
    }
    Ok(load_settings(cli)?.database_url)
}

async fn open_store(url: &DatabaseUrl) -> anyhow::Result<Store> {
    Store::connect(url.expose())
        .await
        .with_context(|| format!("cannot open the database {url}"))
}

/// Opens the database with the one-sync lock taken before migrating (see [`Store::connect_locked`]).
async fn open_locked(url: &DatabaseUrl, mode: &str) -> Result<(Store, StoreLock)> {
    let holder = format!("rtc-quality-sync {mode}");
    match Store::connect_locked(url.expose(), &holder).await {
        // Said as it is: "another run holds the lock" needs no "cannot open the database" before it.
        Err(e @ StoreError::Locked { .. }) => Err(Error::store(e)),
        r => Ok(r.with_context(|| format!("cannot open the database {url}"))?),
    }
}

/// The checkpoint ledger, for commands that only read it: a SQLite file that does not exist yet has
/// an empty ledger and is not created.
async fn read_ledger(url: &DatabaseUrl) -> anyhow::Result<Vec<crate::domain::LedgerEntry>> {
    if crate::store::sqlite::file_missing(url.expose()) {
        return Ok(Vec::new());
    }
    Ok(open_store(url).await?.ledger(None).await?)
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
        mode: if range.from.is_some() || range.to.is_some() || range.refetch {
            "backfill".into()
        } else {
            "sync".into()
        },
    }
}

async fn sync(cli: &Cli, args: &SyncArgs) -> Result {
    let settings = load_settings(cli)?;
    let options = plan_options(&args.range, &settings);
    if args.dry_run {
        let ledger = read_ledger(&settings.database_url).await?;
        let (_, plan) = pipeline::make_plan(&settings, &ledger, &options, now(cli))?;
        emit(&report::plan_text(
            &plan,
            settings.source.requests_per_second,
        ))?;
        return Ok(Outcome::Done);
    }
    let credentials = credentials()?;
    let client = Client::new(&settings.source, credentials)?;
    let fetcher = Fetcher::new(client, &settings.source);
    let (store, lock) = open_locked(&settings.database_url, &options.mode).await?;
    run_sync(cli, &settings, (&store, lock), &fetcher, &options).await
}

/// Runs the pipeline under the lock, releases it, prints the summary, returns the exit code.
async fn run_sync(
    cli: &Cli,
    settings: &Settings,
    (store, lock): (&Store, StoreLock),
    fetcher: &Fetcher,
    options: &RunOptions,
) -> Result {
    let progress = Progress::auto(cli.quiet > 0);
    let shutdown = shutdown::on_signals();
    let result = pipeline::run(
        settings,
        store,
        fetcher,
        options,
        now(cli),
        shutdown,
        &progress,
    )
    .await;
    if let Err(e) = lock.release().await {
        tracing::warn!("releasing the lock: {e}");
    }
    let report = result?;
    emit(&report::summary_text(&report))?;
    Ok(report.status.into())
}

async fn plan(cli: &Cli, args: &PlanArgs) -> Result {
    let settings = load_settings(cli)?;
    let options = plan_options(&args.range, &settings);
    let ledger = read_ledger(&settings.database_url).await?;
    let (_, plan) = pipeline::make_plan(&settings, &ledger, &options, now(cli))?;
    if args.json {
        say!(
            "{}",
            serde_json::to_string_pretty(&report::plan_json(
                &plan,
                settings.source.requests_per_second
            ))?
        );
    } else {
        emit(&report::plan_text(
            &plan,
            settings.source.requests_per_second,
        ))?;
    }
    Ok(Outcome::Done)
}

async fn status(cli: &Cli, args: &StatusArgs) -> Result {
    let url = database_url_only(cli)?;
    if crate::store::sqlite::file_missing(url.expose()) {
        say!("no database at {url} yet: run `rtc-quality-sync sync` (or `demo`) first");
        return Ok(Outcome::Done);
    }
    let store = open_store(&url).await?;
    let status = report::Status::load(&store).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        emit(&status.text())?;
    }
    Ok(Outcome::Done)
}

async fn migrate(cli: &Cli) -> Result {
    let url = database_url_only(cli)?;
    let (_store, lock) = open_locked(&url, "migrate").await?;
    lock.release().await?;
    say!("migrations applied to {url}");
    Ok(Outcome::Done)
}

async fn check(cli: &Cli) -> Result {
    let mut ok = true;
    let settings = match load_settings(cli) {
        Ok(s) => {
            say!(
                "ok    config {}: {} jobs, {} streams",
                cli.config.display(),
                s.jobs.len(),
                s.streams().len()
            );
            s
        }
        Err(e) => {
            say!("FAIL  config: {e:#}");
            return Ok(Outcome::Failed);
        }
    };
    match open_store(&settings.database_url).await {
        Ok(store) => say!(
            "ok    database {} ({})",
            settings.database_url,
            store.backend_name()
        ),
        Err(e) => {
            ok = false;
            say!("FAIL  database: {e:#}");
        }
    }
    match credentials() {
        Err(e) => {
            ok = false;
            say!("FAIL  credentials: {e:#}");
        }
        Ok(creds) => {
            say!(
                "ok    credentials: access key {}",
                crate::redact::mask_access_key(&creds.access_key_id)
            );
            let client = Client::new(&settings.source, creds)?;
            let stream = &settings.streams()[0];
            let h = crate::planner::horizon(&settings.window, stream.granularity, now(cli));
            let day = chrono::Duration::days(1).min(h.end - h.start);
            let window = crate::domain::Window::new(h.end - day, h.end);
            let req = request_for(stream, window, settings.window.timezone);
            match client.list_quality(&req).await {
                Ok(f) => say!(
                    "ok    api {}: ListQuality for {} {} returned {} series (RequestId {})",
                    settings.source.endpoint,
                    stream.name,
                    window,
                    f.indicators.len(),
                    f.request_id
                ),
                Err(e) => {
                    ok = false;
                    say!("FAIL  api {}: {e}", settings.source.endpoint);
                }
            }
        }
    }
    Ok(if ok { Outcome::Done } else { Outcome::Failed })
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
    let settings = demo_settings(&sim.endpoint(), &url, args.streams)?;
    say!(
        "demo: simulator at {}, database {}, {} streams, 30 days at 2 calls/s",
        sim.endpoint(),
        settings.database_url,
        settings.streams().len()
    );
    let creds = Credentials::new(simulator::DEMO_ACCESS_KEY, simulator::DEMO_SECRET_KEY, None);
    let fetcher = Fetcher::new(Client::new(&settings.source, creds)?, &settings.source);
    let options = RunOptions {
        mode: "demo".into(),
        ..Default::default()
    };
    let (store, lock) = open_locked(&settings.database_url, &options.mode).await?;
    let outcome = run_sync(cli, &settings, (&store, lock), &fetcher, &options).await?;
    sim.shutdown().await;
    say!("");
    emit(&report::Status::load(&store).await?.text())?;
    say!("");
    const SAMPLE: &str = "SELECT app_id, indicator, granularity, ts, value, unit, settled \
                          FROM quality_metrics ORDER BY ts DESC LIMIT 5";
    say!("the newest points:");
    match url.strip_prefix("sqlite://") {
        Some(path) => say!("  sqlite3 {path} \"{SAMPLE}\""),
        None => say!("  psql \"{}\" -c \"{SAMPLE}\"", settings.database_url),
    }
    for row in store.metrics(Some(5)).await? {
        say!("  {row}");
    }
    Ok(outcome)
}

/// The demo's configuration: a handful of streams against the in-process simulator.
pub fn demo_settings(
    endpoint: &str,
    database_url: &str,
    streams: usize,
) -> anyhow::Result<Settings> {
    let jobs: String = (0..streams.div_ceil(2).max(1))
        .map(|i| {
            format!(
                "[[jobs]]\nname = \"demo-app-{i}\"\napp_id = \"demo_app_{i}\"\n\
                 indicators = [\"join_room_success_rate\", \"stall_rate\"]\ngranularity = [\"1d\", \"5min\"]\n"
            )
        })
        .collect();
    let text = format!(
        "[source]\nendpoint = \"{endpoint}\"\n[storage]\ndatabase_url = \"{database_url}\"\n{jobs}"
    );
    Ok(Settings::parse(&text, Path::new("(demo)"))?)
}
