//! The command line: clap types whose doc comments are the `--help` text.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// Copies Volcengine RTC offline call-quality metrics (the ListQuality API) into SQL tables for BI.
///
/// Run `sync` nightly: it fetches what is missing or still provisional in the last 30 days and
/// upserts it, so every run can be repeated, interrupted or killed and the tables end up the same.
/// Try it without credentials with `demo`, which backfills a local SQLite file from the built-in
/// simulator.
///
/// Credentials come from VOLC_ACCESSKEY / VOLC_SECRETKEY (or VOLCENGINE_ACCESS_KEY /
/// VOLCENGINE_SECRET_KEY / VOLCENGINE_SESSION_TOKEN), never from the config file.
///
/// Exit codes: 0 all planned windows committed; 1 nothing could run (configuration, database,
/// credentials); 2 some windows or jobs failed, all others committed; 3 another run holds the lock;
/// 64 usage error; 130 interrupted after committing what had finished.
#[derive(Debug, Parser)]
#[command(name = "rtc-quality-sync", version, propagate_version = true)]
pub struct Cli {
    /// The TOML configuration file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = crate::config::DEFAULT_CONFIG_PATH,
        help_heading = "Global options"
    )]
    pub config: PathBuf,

    /// The database: sqlite://PATH or postgres://user:password@host:5432/db.
    /// Overrides the DATABASE_URL environment variable, which overrides the config file (`demo` reads
    /// only this option, never DATABASE_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// How log lines are written to stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,

    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,

    /// Less log detail (-q warnings only, -qq errors only).
    #[arg(
        short,
        long,
        global = true,
        action = clap::ArgAction::Count,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: u8,

    /// Pretend the current time is this instant (RFC 3339): reproducible plans and tests.
    #[arg(long, global = true, hide = true, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch what is missing or provisional in the horizon and upsert it (the nightly job).
    ///
    /// Plans per stream (a job at one granularity) from the checkpoint ledger, fetches the windows
    /// at the configured rate, newest first, and commits each window with its ledger row in one
    /// transaction. With --from/--to it is a one-off backfill of that range.
    Sync(SyncArgs),
    /// Print the plan: every window per stream, the request count and the time it takes.
    ///
    /// No network, no writes (the database is only read for the ledger).
    Plan(PlanArgs),
    /// Per stream: settled through, provisional and failed windows, points, last run.
    Status(StatusArgs),
    /// Validate the configuration, connect to the database and make one small real API call per
    /// account.
    Check(CheckArgs),
    /// Apply the schema migrations (every other command applies them too).
    Migrate,
    /// Delete the retired streams that `status` lists: their points, coverage and checkpoints.
    ///
    /// A stream is retired when no job, distribution or rooms block of the configuration asks its
    /// query any more (a renamed app, an edited filter, a changed window.timezone). Only streams of
    /// this configuration's account are removed (the account is known from VOLC_ACCESSKEY, stored
    /// as a hash); another account's are listed apart and never touched, and one stored before
    /// accounts were recorded only when named with --stream. A series that a configured query asks
    /// for is never deleted. Try --dry-run first.
    Prune(PruneArgs),
    /// Write the commented default configuration to PATH (default: config/default.toml), to edit.
    ///
    /// Refuses to overwrite a file that exists.
    Init(InitArgs),
    /// Serve a faithful local emulation of the ListQuality and ListQualityDistribution APIs, for
    /// trying the tool and for tests.
    ///
    /// Point a config's `source.endpoint` at it (http://127.0.0.1:8080) and run `sync` with the key
    /// pair it accepts: VOLC_ACCESSKEY/VOLC_SECRETKEY if set, else the demo pair it prints at start-up.
    ///
    /// It knows the documented indicators: join_room_success_rate, stall_rate,
    /// first_frame_send_success_rate, first_frame_recv_success_rate and network_trans_delay. Any
    /// other name is answered InvalidParameter (HTTP 400), so a typo fails here as it may against
    /// the real API.
    Simulate(SimulateArgs),
    /// Start the simulator in-process and backfill 30 days into demo.db, then show the result.
    Demo(DemoArgs),
}

/// Which windows a command covers.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// Only buckets at or after this instant (RFC 3339, or a date YYYY-MM-DD in the configured offset).
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub from: Option<TimeArg>,
    /// Only buckets before this instant (RFC 3339, or a date YYYY-MM-DD in the configured offset).
    #[arg(long, value_name = "TIME", value_parser = parse_time_arg)]
    pub to: Option<TimeArg>,
    /// Fetch settled windows in the range again.
    #[arg(long)]
    pub refetch: bool,
    /// Only these jobs or streams (a job name such as `app-wide`, or a stream name as `status`
    /// shows it, such as `app-wide/1d`), a rooms block (its listing and room streams), or one room
    /// of a block (`rooms/room-7`: the block's listing, then that room's streams); repeatable.
    #[arg(long = "job", value_name = "NAME")]
    pub jobs: Vec<String>,
    /// Only these accounts (`[[accounts]]` names; repeatable; default: all). A machine that holds
    /// only its own account's keys runs a shared configuration with it: the other accounts'
    /// variables may then be unset.
    #[arg(long = "account", value_name = "NAME")]
    pub accounts: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the run summary as one JSON object on stdout instead of the table (for schedulers and
    /// scripts: `status`, `exit_code`, counts, and per stream `windows_ok`, `points_inserted`, ...).
    #[arg(long, conflicts_with = "dry_run")]
    pub json: bool,
    /// Write Prometheus metrics (the run's outcome, each stream's completeness) to this file when
    /// the run ends, atomically, for node_exporter's textfile collector.
    #[arg(long, value_name = "PATH", conflicts_with = "dry_run")]
    pub metrics_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table (always JSON, also before the first sync).
    #[arg(long)]
    pub json: bool,
    /// The health check for alerting: exit 0 when every configured stream is healthy, 2 when any
    /// is stale, has failed windows or holes, or was never synced (one line per problem), 1 when the
    /// configuration or the database cannot be read.
    #[arg(long)]
    pub check: bool,
    /// With --check: how far a stream's covered range may end before the data the API has
    /// (e.g. 36h, 90m, 2d, 1h 30m; at most a year).
    #[arg(long, value_name = "DURATION", default_value = "36h", value_parser = parse_duration_arg, requires = "check")]
    pub max_age: chrono::Duration,
    /// Write Prometheus metrics (the last run, each stream's completeness) to this file, atomically,
    /// for node_exporter's textfile collector.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<std::path::PathBuf>,
    /// Only these accounts' streams and budgets (`[[accounts]]` names; repeatable; default: all).
    #[arg(long = "account", value_name = "NAME")]
    pub accounts: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Only these accounts' credentials (`[[accounts]]` names; repeatable; default: all).
    #[arg(long = "account", value_name = "NAME")]
    pub accounts: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// List what would be deleted, with row counts, and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only this retired stream, by the label `status` shows (repeatable).
    #[arg(long = "stream", value_name = "LABEL")]
    pub streams: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Where to write it.
    #[arg(value_name = "PATH", default_value = "config/default.toml")]
    pub path: std::path::PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Unused here (hidden): having its own `config` and `database_url` keeps the client's global
    /// options of those names out of `simulate --help`.
    #[arg(long, hide = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[arg(long, hide = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// The access key it accepts (default: VOLC_ACCESSKEY / VOLCENGINE_ACCESS_KEY, else the demo key).
    #[arg(long, value_name = "AK")]
    pub access_key: Option<String>,
    /// The secret key it accepts (default: VOLC_SECRETKEY / VOLCENGINE_SECRET_KEY, else the demo secret).
    #[arg(long, value_name = "SK", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// An app id it knows (repeatable); none given: every app id is known.
    #[arg(long = "app", value_name = "ID")]
    pub apps: Vec<String>,
    /// Added latency per response, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency_ms: u64,
    /// Injected faults as KIND=RATE pairs, e.g. 500=0.05,429=0.02. A rate is the probability per
    /// accepted request; the rates add up to at most 1. Kinds: 500 (InternalError), 429
    /// (FlowLimitExceeded), 200error (HTTP 200 with an InternalServiceTimeout envelope), slow (no
    /// answer for 120 s), close (connection closed mid-body), garbage (a body that is not JSON),
    /// empty (HTTP 200 with `"Result": {}`), noindicators (HTTP 200 with `"Indicators": []`), offgrid
    /// (the right answer plus points off the granularity's grid: the first bucket + 17 s, in 1d also
    /// the first bucket + 5 min, and EndTime + 17 s); for ListRoomInfo only (other actions answer
    /// right): shortpage (a page shorter than Total implies), dupcall (a page listing one CallId
    /// twice), emptypage (a page with no call while Total says more).
    #[arg(long, default_value = "", value_name = "LIST")]
    pub faults: String,
    /// Seed for the data and the faults.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests per second it accepts before answering FlowLimitExceeded (ListQuality: 2).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub rate_limit: u32,
    /// The same for ListQualityDistribution, whose quota is its own (2).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub distribution_rate_limit: u32,
    /// The same for ListRoomInfo, whose quota is its own (10).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub room_list_rate_limit: u32,
    /// One more account it serves (repeatable), with quotas of its own: its access key, its secret
    /// key, the ListQuality requests per second it admits (and as many ListQualityDistribution ones,
    /// counted apart; a fraction is allowed: 0.167 is BytePlus's 10 a minute, one call in any 6 s;
    /// default --rate-limit) and the requests of each action it accepts in any 24 hours (left out
    /// or 0: no daily limit; a call over it is answered HTTP 429 FlowLimitExceeded saying "daily
    /// limit"). ListRoomInfo keeps --room-list-rate-limit. The --access-key/--secret-key pair (else
    /// the environment's, else the demo pair) is served too, with the default limits, unless an
    /// --account has its access key. Example: --account AKLTcn:c2VjcmV0 --account
    /// AKLTbytepls:c2VjcmV0Mg:0.167:60
    #[arg(long = "account", value_name = "AK:SK[:PER_SECOND[:PER_DAY]]")]
    pub accounts: Vec<AccountArg>,
}

/// An `--account` value as typed, checked by `simulate` (not by clap, whose error would print the
/// value, secret key and all); its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountArg(pub String);

impl From<String> for AccountArg {
    fn from(s: String) -> Self {
        AccountArg(s)
    }
}

impl std::fmt::Debug for AccountArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountArg(***)")
    }
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// ListQuality streams to backfill (each a job at one granularity); one distribution stream
    /// (stall rate by province) runs beside them on its own quota.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub streams: usize,
}

/// A `--from`/`--to` value: an instant, or a date to be read in the configured offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

impl TimeArg {
    /// The instant, reading a date as local midnight in `tz`.
    pub fn resolve(self, tz: chrono::FixedOffset) -> DateTime<Utc> {
        match self {
            TimeArg::Instant(t) => t,
            TimeArg::Date(d) => d
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_local_timezone(tz)
                .single()
                .expect("fixed offsets are unambiguous")
                .with_timezone(&Utc),
        }
    }
}

/// As typed: a date stays a date (it means midnight in the configured offset); an instant is shown
/// in UTC, like every time the tool prints.
impl std::fmt::Display for TimeArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeArg::Instant(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ")),
            TimeArg::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

fn parse_time_arg(s: &str) -> Result<TimeArg, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(TimeArg::Instant(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(TimeArg::Date)
        .map_err(|_| {
            format!("{s:?} is neither RFC 3339 (2026-11-01T00:00:00+08:00) nor a date (2026-11-01)")
        })
}

/// The longest `--max-age`: a year, far beyond the 30-day horizon, so a typo such as `36d` for `36h`
/// still reads as meant while a unit slip of thousands (`36000h`) is refused.
const MAX_AGE_LIMIT: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

/// `36h`, `90m`, `2d`, `1h 30m`, `1.5h`: humantime's durations (numbers, each with a unit), at
/// most a year.
fn parse_duration_arg(s: &str) -> Result<chrono::Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!(
            "{s:?} is not a duration ({e}); write numbers with units, e.g. 36h, 90m, 2d or 1h 30m"
        )
    })?;
    if d > MAX_AGE_LIMIT {
        return Err(format!(
            "{s:?} is longer than a year; e.g. 36h or 2d is expected"
        ));
    }
    chrono::Duration::from_std(d).map_err(|_| format!("{s:?} is longer than a year"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_options_are_accepted_before_and_after_the_subcommand() {
        let a = Cli::try_parse_from(["x", "--config", "a.toml", "plan", "--json"]).unwrap();
        let b = Cli::try_parse_from(["x", "plan", "--config", "a.toml", "--json"]).unwrap();
        assert_eq!(a.config, b.config);
        assert_eq!(a.config, PathBuf::from("a.toml"));
    }

    #[test]
    fn dates_and_instants_parse() {
        let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let t = parse_time_arg("2026-11-01").unwrap().resolve(tz);
        assert_eq!(t.to_rfc3339(), "2026-10-31T16:00:00+00:00");
        assert!(
            parse_time_arg("yesterday")
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Issue 19 item 9: `simulate --help` says which indicator names the simulator knows.
    #[test]
    fn item_19_09_simulate_help_names_the_indicators_it_knows() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("simulate")
            .unwrap()
            .render_long_help()
            .to_string();
        for name in crate::domain::DOCUMENTED_INDICATORS {
            assert!(help.contains(name), "{name}: {help}");
        }
        assert!(help.contains("InvalidParameter"), "{help}");
    }

    #[test]
    fn max_age_takes_a_number_and_a_unit() {
        assert_eq!(parse_duration_arg("36h"), Ok(chrono::Duration::hours(36)));
        assert_eq!(parse_duration_arg("90m"), Ok(chrono::Duration::minutes(90)));
        assert_eq!(parse_duration_arg("2d"), Ok(chrono::Duration::days(2)));
        for bad in ["", "h", "36", "-1h", "36x", "367d", "9999999999999999d"] {
            assert!(parse_duration_arg(bad).is_err(), "{bad:?}");
        }
    }

    /// Humantime's forms: several units in one value, long unit names; the bound and the error
    /// still say what is expected.
    #[test]
    fn max_age_is_read_by_humantime_with_an_upper_bound() {
        for (text, minutes) in [
            ("1h 30m", 90),
            ("1h30m", 90),
            ("1.5h", 90),
            (" 2days ", 2 * 1440),
            ("45min", 45),
            ("1w", 7 * 1440),
            ("366d", 366 * 1440),
        ] {
            assert_eq!(
                parse_duration_arg(text),
                Ok(chrono::Duration::minutes(minutes)),
                "{text:?}"
            );
        }
        let e = parse_duration_arg("36").unwrap_err();
        assert!(
            e.contains("\"36\" is not a duration") && e.contains("36h"),
            "{e}"
        );
        let e = parse_duration_arg("400d").unwrap_err();
        assert!(e.contains("longer than a year"), "{e}");
        let parsed =
            Cli::try_parse_from(["x", "status", "--check", "--max-age", "1h 30m"]).unwrap();
        let Command::Status(args) = parsed.command else {
            panic!("status")
        };
        assert_eq!(args.max_age, chrono::Duration::minutes(90));
    }
}
