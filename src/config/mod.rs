//! Configuration: the TOML file, typed and validated once, plus credentials from the environment.
//!
//! Everything downstream takes a validated [`Settings`]; no other module reads the file or the
//! environment. A config error names the file, the key, the bad value and what is allowed.
//!
//! Modules: `file` (the TOML as written), `validate` (raw tables to [`Settings`]), `credentials`
//! (the API keys from the environment). The jobs and streams it yields are domain types.

pub mod accounts;
mod credentials;
mod file;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;

use crate::domain::{DistributionJob, Job, PgSchema, RoomsBlock, Stream};

use crate::redact::redact_url;

pub use accounts::Account;
pub use credentials::Credentials;

pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";
/// The app id the shipped configuration (what `init` writes) holds until the user sets theirs.
pub const PLACEHOLDER_APP_ID: &str = "Your_AppId";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rtc_quality.db";

/// A configuration problem, said so that the user knows where and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {error}; {advice}")]
    Read {
        /// Absolute, so that a scheduler's working directory is no mystery.
        path: String,
        error: std::io::Error,
        advice: String,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {key} = {value}: {allowed}")]
    Invalid {
        path: String,
        key: String,
        value: String,
        allowed: String,
    },
    /// Half a credential pair. Said without a `credentials:` prefix: the variables it names say
    /// what it is about, and `check` prints it after its own `credentials:` label.
    #[error(
        "{0}; set both variables of one pair: VOLC_ACCESSKEY and VOLC_SECRETKEY, or VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY"
    )]
    Credentials(String),
    /// A variable an account names is not set (or empty).
    #[error(
        "{path}: account {account:?}: {variable} is not set ({key}); export it, or leave this account out with --account NAME"
    )]
    Unset {
        path: String,
        account: String,
        key: String,
        variable: String,
    },
    /// Two accounts resolve to one access key.
    #[error(
        "{path}: accounts {first:?} and {second:?} have the same access key ({masked}): one account's quota would be spent twice as fast; give each account its own keys, or make them one account"
    )]
    SameAccessKey {
        path: String,
        first: String,
        second: String,
        masked: String,
    },
    /// `--account NAME` names no account of the configuration.
    #[error("{path}: --account {name:?}: no such account; the accounts are: {known}")]
    UnknownAccount {
        path: String,
        name: String,
        known: String,
    },
}

/// A database URL whose password never reaches a log, an error or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The full URL, password included: only for opening the connection.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it names a SQLite file (`sqlite:`), which has no schemas.
    pub fn is_sqlite(&self) -> bool {
        self.0
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("sqlite:")
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Where and how fast to call the API.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSettings {
    /// Base URL, e.g. `https://rtc.volcengineapi.com` or `http://127.0.0.1:8080`.
    pub endpoint: url::Url,
    pub region: String,
    /// Calls per second, counted at send time; ListQuality allows 2.
    pub requests_per_second: f64,
    /// The same for `ListQualityDistribution`, whose quota is its own.
    pub distribution_requests_per_second: f64,
    /// The same for `ListRoomInfo` (10 allowed), whose quota is its own.
    pub room_list_requests_per_second: f64,
    /// Calls in flight at once, to hide latency behind the rate limit.
    pub max_in_flight: usize,
    /// Per request, connection to last byte.
    pub timeout: Duration,
    /// Retries of transient failures; permanent ones are never retried.
    pub max_retries: u32,
}

/// The planner's knobs; see PRODUCT.md's planner rules.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSettings {
    pub max_lookback_days: i64,
    pub max_span_days: i64,
    pub data_delay_hours: i64,
    pub settle_hours: i64,
    /// The offset that 1d buckets and request times use.
    pub timezone: FixedOffset,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it came from, for messages.
    pub path: PathBuf,
    pub source: SourceSettings,
    pub database_url: DatabaseUrl,
    /// `[storage] schema`: the PostgreSQL schema of every table (`public` by default).
    pub schema: PgSchema,
    pub window: WindowSettings,
    pub jobs: Vec<Job>,
    /// `[[distributions]]`: where quality is bad, by dimension.
    pub distributions: Vec<DistributionJob>,
    /// `[[rooms]]`: every call of an app (`ListRoomInfo`), and its rooms' quality.
    pub rooms: Vec<RoomsBlock>,
    /// `[[accounts]]`, or the one implicit account (`default`): never empty.
    pub accounts: Vec<Account>,
    /// The account of each job, distribution and rooms block, by the block's name.
    pub owners: std::collections::BTreeMap<String, String>,
    /// Things that are allowed but probably not meant; the caller logs them.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Every stream of every job, then of every distribution job, in configuration order. Streams
    /// that ask the same query are one (PRODUCT.md, rule 6): the first keeps its label and takes the
    /// others' indicators, and their labels become its [`Stream::aliases`].
    pub fn streams(&self) -> Vec<Stream> {
        let tz = self.window.timezone;
        let mut out: Vec<Stream> = Vec::new();
        let all = self
            .jobs
            .iter()
            .flat_map(|j| j.streams(tz))
            .chain(self.distributions.iter().flat_map(|d| d.streams(tz)));
        for s in all {
            match out.iter_mut().find(|o| o.key == s.key) {
                Some(first) => {
                    for i in s.job.indicators {
                        if !first.job.indicators.contains(&i) {
                            first.job.indicators.push(i);
                        }
                    }
                    first.aliases.push(s.name);
                }
                None => out.push(s),
            }
        }
        // A job that asks a room the way a `[[rooms]]` block asks it is that room's stream (jobs
        // before rooms): it asks the block's indicators too, over the whole horizon like its own,
        // so one call carries them all and its label's numbers hold for every indicator.
        for block in &self.rooms {
            for s in out.iter_mut().filter(|s| {
                s.distribution.is_none()
                    && !s.job.room_id.is_empty()
                    && block.granularities.contains(&s.granularity)
            }) {
                let room = block.room_stream(&s.job.room_id, s.granularity, tz, 0, Vec::new());
                if room.key != s.key {
                    continue;
                }
                for i in &block.indicators {
                    if !s.job.indicators.contains(i) {
                        s.job.indicators.push(i.clone());
                    }
                }
            }
        }
        out
    }

    /// The account of a job, distribution or rooms block, by its name.
    pub fn account_of(&self, block: &str) -> &str {
        self.owners
            .get(block)
            .map_or(accounts::IMPLICIT, String::as_str)
    }

    /// Whether there are `[[accounts]]` (several, or one named): otherwise the one implicit account.
    pub fn has_accounts(&self) -> bool {
        self.accounts.iter().any(|a| a.env.is_some())
    }

    /// The accounts a run covers: those `names` (`--account`, repeatable) name, or, when it names
    /// none, every account that some block names. An unknown name is an error listing the accounts.
    pub fn select_accounts(&self, names: &[String]) -> Result<Vec<&Account>, ConfigError> {
        for n in names {
            if !self.accounts.iter().any(|a| &a.name == n) {
                return Err(ConfigError::UnknownAccount {
                    path: self.path.display().to_string(),
                    name: n.clone(),
                    known: self
                        .accounts
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(self
            .accounts
            .iter()
            .filter(|a| {
                if names.is_empty() {
                    self.owners.values().any(|o| *o == a.name)
                } else {
                    names.contains(&a.name)
                }
            })
            .collect())
    }

    /// The settings of one account's part of a run: its blocks only, and its endpoint, region and
    /// rates as `[source]`.
    pub fn for_account(&self, account: &Account) -> Settings {
        let mine = |name: &str| self.account_of(name) == account.name;
        Settings {
            source: account.source.clone(),
            jobs: self
                .jobs
                .iter()
                .filter(|j| mine(&j.name))
                .cloned()
                .collect(),
            distributions: self
                .distributions
                .iter()
                .filter(|d| mine(&d.name))
                .cloned()
                .collect(),
            rooms: self
                .rooms
                .iter()
                .filter(|r| mine(&r.name))
                .cloned()
                .collect(),
            accounts: vec![account.clone()],
            owners: self
                .owners
                .iter()
                .filter(|(_, a)| **a == account.name)
                .map(|(b, a)| (b.clone(), a.clone()))
                .collect(),
            ..self.clone()
        }
    }

    /// A warning per stream that asks the same query as an earlier one (rule 6).
    fn same_query_warnings(&self) -> Vec<String> {
        self.streams()
            .iter()
            .flat_map(|s| {
                s.aliases.iter().map(move |alias| {
                    format!(
                        "{}: {alias} asks the same query as {}: both are planned as one stream, \
                         fetched once under {} (its indicators are asked together)",
                        self.path.display(),
                        s.name,
                        s.name
                    )
                })
            })
            .collect()
    }

    /// Points the settings at another database (`--database-url`, `DATABASE_URL`): the warning
    /// about a schema that a SQLite database ignores follows the URL that is used.
    pub fn use_database_url(&mut self, url: DatabaseUrl) {
        let path = self.path.display().to_string();
        if let Some(old) = schema_unused(&path, &self.database_url, &self.schema) {
            self.warnings.retain(|w| *w != old);
        }
        self.warnings
            .extend(schema_unused(&path, &url, &self.schema));
        self.database_url = url;
    }

    /// Each `[[rooms]]` block's discovery, `(key, label)`: what it asks (its ledger key) and
    /// `<name>/rooms`.
    pub fn listings(&self) -> Vec<(String, String)> {
        self.rooms
            .iter()
            .map(|b| (b.listing_key(self.window.timezone), b.listing_label()))
            .collect()
    }

    /// Refuses the placeholder app id, for the commands that plan or call the API (`sync`, `plan`,
    /// `check`): its calls could only fail, and a plan for it is no plan. Loading still accepts it,
    /// so `status` reads the database of a configuration being edited.
    pub fn require_real_app_ids(&self) -> Result<(), ConfigError> {
        let jobs = self
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (format!("jobs[{i}].app_id"), &j.app_id));
        let distributions = self
            .distributions
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("distributions[{i}].app_id"), &d.app_id));
        let rooms = self
            .rooms
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("rooms[{i}].app_id"), &r.app_id));
        match jobs
            .chain(distributions)
            .chain(rooms)
            .find(|(_, app_id)| *app_id == PLACEHOLDER_APP_ID)
        {
            None => Ok(()),
            Some((key, app_id)) => Err(ConfigError::Invalid {
                path: self.path.display().to_string(),
                key,
                value: format!("{app_id:?}"),
                allowed: "this is the placeholder that `init` writes; put your app's AppId there, \
                          from the RTC console (RTC > Applications)"
                    .into(),
            }),
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            let advice = if error.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "write a commented one with `rtc-quality-sync init {}`, or pass --config PATH",
                    path.display()
                )
            } else {
                "check that the file is readable by this user, or pass --config PATH".into()
            };
            ConfigError::Read {
                path: std::path::absolute(path)
                    .unwrap_or_else(|_| path.to_path_buf())
                    .display()
                    .to_string(),
                error,
                advice,
            }
        })?;
        Self::parse(&text, path)
    }

    /// Validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
        let raw = file::parse(text, &path.display().to_string())?;
        let mut settings = validate::settings(raw, path)?;
        let warnings = settings.same_query_warnings();
        settings.warnings.extend(warnings);
        Ok(settings)
    }
}

/// The warning for a schema other than `public` with a SQLite database, which has no schemas: the
/// configuration is still used (the same file may serve a PostgreSQL run with `--database-url`).
fn schema_unused(path: &str, url: &DatabaseUrl, schema: &PgSchema) -> Option<String> {
    (url.is_sqlite() && !schema.is_public()).then(|| {
        format!(
            "{path}: storage.schema = {:?} is for PostgreSQL only; the SQLite database {url} has no \
             schemas and ignores it",
            schema.as_str()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Granularity;

    const MINIMAL: &str = r#"
[[jobs]]
app_id = "app1"
indicators = ["stall_rate"]
"#;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new("test.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    /// Rule 6: a job that asks a room as a `[[rooms]]` block asks it is that room's stream, and
    /// asks the block's indicators too (after its own); a job of another query is left alone.
    #[test]
    fn a_job_on_a_blocks_room_asks_the_blocks_indicators_too() {
        let s = parse(
            "[[jobs]]\nname = \"lobby\"\napp_id = \"a\"\nroom_id = \"room-3\"\nindicators = [\"stall_rate\"]\n\
             granularity = [\"5min\", \"1d\"]\n\
             [[jobs]]\nname = \"users\"\napp_id = \"a\"\nroom_id = \"room-3\"\nuser_ids = [\"u1\"]\n\
             indicators = [\"stall_rate\"]\ngranularity = \"5min\"\n\
             [[rooms]]\nname = \"rooms\"\napp_id = \"a\"\nindicators = [\"join_room_success_rate\", \"stall_rate\"]\n\
             granularity = \"5min\"\n",
        )
        .unwrap();
        let asks = |label: &str| {
            s.streams()
                .into_iter()
                .find(|x| x.name == label)
                .unwrap()
                .job
                .indicators
        };
        assert_eq!(asks("lobby/5min"), ["stall_rate", "join_room_success_rate"]);
        // The block asks no `1d` stream, and a job with users asks another query.
        assert_eq!(asks("lobby/1d"), ["stall_rate"]);
        assert_eq!(asks("users/5min"), ["stall_rate"]);
        let room =
            s.rooms[0].room_stream("room-3", Granularity::FiveMin, s.window.timezone, 0, vec![]);
        let lobby = s
            .streams()
            .into_iter()
            .find(|x| x.name == "lobby/5min")
            .unwrap();
        assert_eq!(room.key, lobby.key, "the same query");
    }

    #[test]
    fn distribution_tables_are_validated_by_key() {
        let base = "[[jobs]]\napp_id = \"a\"\nindicators = [\"stall_rate\"]\n";
        let s = parse(&format!(
            "{base}[[distributions]]\napp_id = \"a\"\nindicators = [\"stall_rate\", \"join_room_success_rate\"]\n"
        ))
        .unwrap();
        let names: Vec<String> = s.streams().into_iter().map(|s| s.name).collect();
        assert_eq!(names.len(), 1 + 2 * 4, "{names:?}");
        assert!(names.contains(&"a-distribution/stall_rate/Province".to_string()));
        assert_eq!(s.source.distribution_requests_per_second, 2.0);
        for (table, key, allowed) in [
            (
                "dimensions = [\"City\"]",
                "distributions[0].dimensions",
                "Province, Country, OS, Access",
            ),
            ("dimensions = []", "distributions[0].dimensions", "all four"),
            (
                "product_type = \"app\"",
                "distributions[0].product_type",
                "native",
            ),
            ("name = \"a\"", "distributions[0].name", "unique"),
        ] {
            let e = err(&format!(
                "{base}name = \"a\"\n[[distributions]]\napp_id = \"a\"\nindicators = [\"stall_rate\"]\n{table}\n"
            ));
            assert!(
                e.contains("test.toml") && e.contains(key) && e.contains(allowed),
                "{table}: {e}"
            );
        }
        let e = err(&format!(
            "[source]\ndistribution_requests_per_second = 0\n{base}"
        ));
        assert!(e.contains("source.distribution_requests_per_second"), "{e}");
        let e = err("[[distributions]]\napp_id = \"a\"\nindicators = []\n");
        assert!(e.contains("distributions[0].indicators"), "{e}");
    }

    /// Issue 18 item 7: a repeat made a second distribution stream of the same query (and a
    /// counter underflow); it is used once, the first occurrence kept in its place, with a warning.
    #[test]
    fn item_18_07_a_duplicated_indicator_is_used_once_with_a_warning() {
        let s = parse(
            "[[jobs]]\napp_id = \"a\"\nindicators = [\"stall_rate\", \"join_room_success_rate\", \" stall_rate\"]\n\
             [[distributions]]\napp_id = \"a\"\ndimensions = [\"Province\"]\n\
             indicators = [\"stall_rate\", \"join_room_success_rate\", \"stall_rate\", \"stall_rate\"]\n",
        )
        .unwrap();
        assert_eq!(
            s.jobs[0].indicators,
            ["stall_rate", "join_room_success_rate"]
        );
        assert_eq!(
            s.distributions[0].indicators,
            ["stall_rate", "join_room_success_rate"]
        );
        let names: Vec<String> = s.streams().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "a/1d",
                "a-distribution/stall_rate/Province",
                "a-distribution/join_room_success_rate/Province"
            ]
        );
        for block in ["jobs[0].indicators", "distributions[0].indicators"] {
            let said: Vec<&String> = s.warnings.iter().filter(|w| w.contains(block)).collect();
            assert_eq!(said.len(), 1, "once per block and name: {:?}", s.warnings);
            assert!(
                said[0].starts_with("test.toml: ")
                    && said[0].contains("\"stall_rate\"")
                    && said[0].contains("used once"),
                "{said:?}"
            );
        }
    }

    /// Issue 18 item 16: `max_lookback_days = 1` with `data_delay_hours = 72` planned nothing and
    /// `status --check` said stale forever. A horizon that cannot always hold a whole bucket is a
    /// configuration error naming the file, both keys and the bound; one that is accepted plans at
    /// least one window for every stream at every hour.
    #[test]
    fn item_18_16_a_horizon_that_holds_no_bucket_is_refused_with_the_bound() {
        use chrono::{Duration, TimeZone, Utc};

        let config = |lookback: i64, delay: i64, granularity: &str, distribution: bool| {
            let mut text = format!(
                "[window]\nmax_lookback_days = {lookback}\ndata_delay_hours = {delay}\n\
                 [[jobs]]\napp_id = \"a\"\nindicators = [\"stall_rate\"]\ngranularity = \"{granularity}\"\n"
            );
            if distribution {
                text.push_str(
                    "[[distributions]]\napp_id = \"a\"\nindicators = [\"stall_rate\"]\ndimensions = [\"OS\"]\n",
                );
            }
            text
        };
        let e = err(&config(1, 72, "1d", false));
        for part in [
            "test.toml",
            "window.max_lookback_days = 1",
            "window.data_delay_hours = 72",
            "is -49 hours",
            "at least 48",
            "raise window.max_lookback_days to 6 or more",
        ] {
            assert!(e.contains(part), "{part}: {e}");
        }
        // The exact bounds: 48 hours with a 1d or distribution stream, 1 hour with 5min alone.
        assert!(parse(&config(3, 23, "1d", false)).is_ok());
        let e = err(&config(3, 24, "1d", false));
        assert!(
            e.contains("is 47 hours") && e.contains("data_delay_hours to 23 or less"),
            "{e}"
        );
        assert!(err(&config(3, 24, "5min", true)).contains("at least 48"));
        assert!(parse(&config(1, 22, "5min", false)).is_ok());
        let e = err(&config(1, 23, "5min", false));
        assert!(e.contains("is 0 hours") && e.contains("at least 1"), "{e}");

        // Whatever is accepted plans something for every stream, whatever the hour.
        let start = Utc.with_ymd_and_hms(2026, 11, 20, 0, 7, 0).unwrap();
        for lookback in 1..=4 {
            for delay in 0..=72 {
                for (granularity, distribution) in [("1d", false), ("5min", false), ("5min", true)]
                {
                    let Ok(s) = parse(&config(lookback, delay, granularity, distribution)) else {
                        continue;
                    };
                    for minutes in (0..24 * 60).step_by(25) {
                        let now = start + Duration::minutes(minutes);
                        let plan = crate::planner::plan(
                            &s.window,
                            &s.streams(),
                            &[],
                            now,
                            crate::planner::PlanOptions::default(),
                        )
                        .unwrap();
                        for stream in &plan.streams {
                            assert!(
                                !stream.windows.is_empty(),
                                "{lookback} days, {delay} h, {granularity}: {} plans nothing at {now}",
                                stream.stream
                            );
                        }
                    }
                }
            }
        }
    }

    /// Issue 19 item 9: a name outside volc-openapi.md's list is accepted without a word today; it
    /// is used (the list is partial, the API judges) with a warning that names it.
    #[test]
    fn item_19_09_an_undocumented_indicator_is_used_with_a_warning() {
        let s = parse(
            "[[jobs]]\napp_id = \"a\"\nindicators = [\"stall_rte\", \"network_trans_delay\"]\n\
             [[distributions]]\napp_id = \"a\"\nindicators = [\"first_frame_recv_success_rate\", \"jitter\"]\n",
        )
        .unwrap();
        assert_eq!(s.jobs[0].indicators, ["stall_rte", "network_trans_delay"]);
        assert_eq!(
            s.distributions[0].indicators,
            ["first_frame_recv_success_rate", "jitter"]
        );
        assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
        for (warning, key, name) in [
            (&s.warnings[0], "jobs[0].indicators", "\"stall_rte\""),
            (&s.warnings[1], "distributions[0].indicators", "\"jitter\""),
        ] {
            assert!(
                warning.starts_with(&format!(
                    "test.toml: {key}: {name} is not a documented indicator"
                )) && warning.contains("the API will judge")
                    && warning.contains("stall_rate"),
                "{warning}"
            );
        }
        assert!(parse(MINIMAL).unwrap().warnings.is_empty());
    }

    /// Issue 19 item 7: the placeholder that `init` writes loads (so `status` works while the
    /// file is edited), and `require_real_app_ids`, which `sync`, `plan` and `check` apply, refuses
    /// it naming the file, the key and what to put there.
    #[test]
    fn item_19_07_the_placeholder_app_id_is_refused_by_the_commands_that_plan() {
        let shipped = parse(include_str!("../../config/default.toml")).unwrap();
        let e = shipped.require_real_app_ids().unwrap_err().to_string();
        assert_eq!(
            e,
            "test.toml: jobs[0].app_id = \"Your_AppId\": this is the placeholder that `init` writes; \
             put your app's AppId there, from the RTC console (RTC > Applications)"
        );
        let s = parse(
            "[[jobs]]\napp_id = \"a\"\nindicators = [\"stall_rate\"]\n\
             [[distributions]]\napp_id = \"b\"\nindicators = [\"stall_rate\"]\n\
             [[distributions]]\napp_id = \" Your_AppId \"\nindicators = [\"stall_rate\"]\n",
        )
        .unwrap();
        let e = s.require_real_app_ids().unwrap_err().to_string();
        assert!(
            e.starts_with("test.toml: distributions[1].app_id = \"Your_AppId\""),
            "{e}"
        );
        assert!(parse(MINIMAL).unwrap().require_real_app_ids().is_ok());
    }

    /// Issue 19 item 13: `[storage] schema` is `public` by default, a plain identifier otherwise
    /// (its case kept), and anything else is refused naming the file, the key, the value and what
    /// is allowed. With a SQLite URL a schema other than public is a warning naming it, and the
    /// warning follows the URL that `--database-url` puts in place.
    #[test]
    fn item_19_13_storage_schema_is_a_plain_identifier() {
        let with = |schema: &str, url: &str| {
            format!("[storage]\ndatabase_url = \"{url}\"\nschema = \"{schema}\"\n{MINIMAL}")
        };
        const PG: &str = "postgres://u:hunter2@h/db";
        assert_eq!(parse(MINIMAL).unwrap().schema, PgSchema::public());
        for name in ["rtc_quality", "RTC", "_x1", "user", &"a".repeat(63)] {
            let s = parse(&with(name, PG)).unwrap();
            assert_eq!(s.schema.as_str(), name);
            assert_eq!(s.schema.quoted(), format!("\"{name}\""));
            assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        }
        for (name, allowed) in [
            ("", "a schema name is required"),
            ("1st", "not starting with a digit"),
            ("rtc-quality", "letters, digits and underscores"),
            ("rtc quality", "letters, digits and underscores"),
            ("rtc\\\"x", "letters, digits and underscores"),
            ("caf\u{e9}", "ASCII letters"),
            (&"a".repeat(64), "at most 63 bytes"),
            ("pg_rtc", "PostgreSQL's own schemas"),
            ("information_schema", "PostgreSQL's own schemas"),
        ] {
            let e = err(&with(name, PG));
            assert!(
                e.starts_with("test.toml: storage.schema = ") && e.contains(allowed),
                "{name}: {e}"
            );
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = err(&with("rtc-quality", PG));
        assert_eq!(
            e,
            "test.toml: storage.schema = \"rtc-quality\": a plain PostgreSQL identifier is expected: \
             ASCII letters, digits and underscores, not starting with a digit, e.g. \"rtc_quality\""
        );

        // SQLite has no schemas: a warning that names the key, the value and the database.
        let mut s = parse(&with("rtc", "sqlite://q.db")).unwrap();
        assert_eq!(
            s.warnings,
            [
                "test.toml: storage.schema = \"rtc\" is for PostgreSQL only; the SQLite database \
              sqlite://q.db has no schemas and ignores it"
            ]
        );
        assert!(
            parse(&with("public", "sqlite://q.db"))
                .unwrap()
                .warnings
                .is_empty()
        );
        s.use_database_url(DatabaseUrl::new(PG));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        s.use_database_url(DatabaseUrl::new("sqlite:///tmp/other.db"));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(
            s.warnings[0].contains("sqlite:///tmp/other.db"),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn rooms_tables_are_validated_by_key() {
        let rooms = "[[rooms]]\napp_id = \"a\"\nindicators = [\"stall_rate\", \"stall_rate\"]\n";
        let s = parse(rooms).unwrap();
        assert_eq!(
            s.rooms,
            [RoomsBlock {
                name: "a-rooms".into(),
                app_id: "a".into(),
                indicators: vec!["stall_rate".into()],
                granularities: vec![crate::domain::Granularity::Day],
                product_type: crate::domain::ProductType::Native,
                min_active_users: 1,
                max_room_calls_per_run: 0,
            }]
        );
        assert!(
            s.warnings.iter().any(|w| w.contains("rooms[0].indicators")),
            "{:?}",
            s.warnings
        );
        let s = parse(&format!(
            "{rooms}name = \"r\"\ngranularity = [\"5min\", \"1d\"]\nproduct_type = \"web\"\nmin_active_users = 3\nmax_room_calls_per_run = 50\n"
        ))
        .unwrap();
        let r = &s.rooms[0];
        assert_eq!(
            (
                r.name.as_str(),
                r.min_active_users,
                r.max_room_calls_per_run
            ),
            ("r", 3, 50)
        );
        assert_eq!(r.granularities.len(), 2);
        for (line, key, allowed) in [
            (
                "min_active_users = 0",
                "rooms[0].min_active_users",
                "from 1",
            ),
            (
                "max_room_calls_per_run = -1",
                "rooms[0].max_room_calls_per_run",
                "no cap",
            ),
            ("granularity = \"1h\"", "rooms[0].granularity", "5min"),
            ("product_type = \"tv\"", "rooms[0].product_type", "native"),
            ("room_id = \"x\"", "room_id", "unknown field"),
        ] {
            let e = err(&format!("{rooms}{line}\n"));
            assert!(
                e.contains("test.toml") && e.contains(key) && e.contains(allowed),
                "{line}: {e}"
            );
        }
        let e = err(&format!(
            "[[jobs]]\nname = \"a-rooms\"\napp_id = \"b\"\nindicators = [\"stall_rate\"]\n{rooms}"
        ));
        assert!(e.contains("rooms[0].name") && e.contains("unique"), "{e}");
        let e = err("[[rooms]]\napp_id = \"\"\nindicators = [\"stall_rate\"]\n");
        assert!(e.contains("rooms[0].app_id"), "{e}");
        let placeholder = parse(&format!(
            "[[rooms]]\napp_id = \"{PLACEHOLDER_APP_ID}\"\nindicators = [\"stall_rate\"]\n"
        ))
        .unwrap();
        let e = placeholder.require_real_app_ids().unwrap_err().to_string();
        assert!(e.contains("rooms[0].app_id"), "{e}");
    }

    #[test]
    fn room_list_requests_per_second_is_its_own_quota_and_validated() {
        let base = "[[jobs]]\napp_id = \"a\"\nindicators = [\"stall_rate\"]\n";
        let s = parse(base).unwrap();
        assert_eq!(s.source.room_list_requests_per_second, 10.0);
        let s = parse(&format!(
            "[source]\nroom_list_requests_per_second = 0.5\n{base}"
        ))
        .unwrap();
        assert_eq!(s.source.room_list_requests_per_second, 0.5);
        for bad in ["0", "-1", "101", "nan"] {
            let e = err(&format!(
                "[source]\nroom_list_requests_per_second = {bad}\n{base}"
            ));
            assert!(
                e.contains("source.room_list_requests_per_second") && e.contains("ListRoomInfo"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_shipped_default_config_is_valid_and_complete() {
        let text = include_str!("../../config/default.toml");
        let s = parse(text).unwrap();
        // It loads as shipped; the commands that plan refuse its placeholder app id (above).
        assert_eq!(s.jobs[0].app_id, PLACEHOLDER_APP_ID);
        assert_eq!(s.source.requests_per_second, 2.0);
        assert_eq!(s.window.timezone, FixedOffset::east_opt(8 * 3600).unwrap());
        assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
        // Every key PRODUCT.md lists is spelled out in the shipped file.
        for key in [
            "endpoint",
            "region",
            "requests_per_second",
            "max_in_flight",
            "timeout_secs",
            "max_retries",
            "database_url",
            "schema",
            "max_lookback_days",
            "max_span_days",
            "data_delay_hours",
            "settle_hours",
            "timezone",
            "name",
            "app_id",
            "indicators",
            "granularity",
            "product_type",
            "os",
            "access",
            "room_id",
            "user_ids",
        ] {
            assert!(
                text.contains(&format!("\n{key} =")) || text.contains(&format!("\n# {key} =")),
                "{key} missing"
            );
        }
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.source.max_in_flight, 4);
        assert_eq!(s.window.max_span_days, 7);
        assert_eq!(s.jobs[0].granularities, vec![Granularity::Day]);
        assert_eq!(s.jobs[0].name, "app1");
        assert_eq!(s.streams()[0].name, "app1/1d");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = err("[source]\nendpoint_url = \"x\"\n");
        assert!(e.contains("test.toml") && e.contains("endpoint_url"), "{e}");
        let e = err(&format!("{MINIMAL}colour = \"red\"\n"));
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_file_and_the_line() {
        let e = err("[source\n");
        assert!(e.starts_with("test.toml: line 1, column"), "{e}");
        let e = err("[source]\nregion = \"x\"\nrequests_per_secnd = 2\n");
        assert!(
            e.starts_with(
                "test.toml: line 3, column 1: source.requests_per_secnd: unknown field `requests_per_secnd`"
            ),
            "{e}"
        );
        assert!(!e.contains('|'), "no diagram: {e}");
    }

    #[test]
    fn user_ids_over_20_are_refused() {
        let ids: Vec<String> = (0..21).map(|i| format!("\"u{i}\"")).collect();
        let e = err(&format!(
            "{MINIMAL}room_id = \"r\"\nuser_ids = [{}]\n",
            ids.join(",")
        ));
        assert!(
            e.contains("jobs[0].user_ids") && e.contains("at most 20"),
            "{e}"
        );
    }

    #[test]
    fn user_ids_without_room_are_refused() {
        let e = err(&format!("{MINIMAL}user_ids = [\"u1\"]\n"));
        assert!(
            e.contains("jobs[0].user_ids") && e.contains("room_id"),
            "{e}"
        );
    }

    #[test]
    fn empty_indicators_are_refused() {
        let e = err("[[jobs]]\napp_id = \"a\"\nindicators = []\n");
        assert!(e.contains("jobs[0].indicators"), "{e}");
    }

    #[test]
    fn unknown_granularity_and_product_type_are_refused() {
        let e = err(&format!("{MINIMAL}granularity = \"1h\"\n"));
        assert!(
            e.contains("jobs[0].granularity = \"1h\"") && e.contains("\"5min\""),
            "{e}"
        );
        let e = err(&format!("{MINIMAL}product_type = \"ios\"\n"));
        assert!(
            e.contains("jobs[0].product_type") && e.contains("\"web\""),
            "{e}"
        );
    }

    #[test]
    fn limits_of_the_api_are_enforced() {
        let e = err(&format!("[window]\nmax_span_days = 8\n{MINIMAL}"));
        assert!(e.contains("window.max_span_days = 8"), "{e}");
        let e = err(&format!("[window]\nmax_lookback_days = 31\n{MINIMAL}"));
        assert!(e.contains("window.max_lookback_days"), "{e}");
        let e = err(&format!(
            "[window]\ntimezone = \"Asia/Shanghai\"\n{MINIMAL}"
        ));
        assert!(e.contains("window.timezone"), "{e}");
        let e = err(&format!("[source]\nrequests_per_second = 0\n{MINIMAL}"));
        assert!(e.contains("source.requests_per_second"), "{e}");
    }

    #[test]
    fn filters_are_normalized_and_web_drops_os_and_access() {
        let s = parse(&format!(
            "{MINIMAL}os = [\"windows\", \"ios\"]\naccess = [\"wifi\", \"4g\"]\ngranularity = [\"5min\", \"1d\"]\n"
        ))
        .unwrap();
        let j = &s.jobs[0];
        assert_eq!(j.os, vec!["iOS", "windows"]);
        assert_eq!(j.access, vec!["4g", "wifi"]);
        assert_eq!(
            j.granularities,
            vec![Granularity::FiveMin, Granularity::Day]
        );

        let s = parse(&format!(
            "{MINIMAL}product_type = \"web\"\nos = [\"mac\"]\n"
        ))
        .unwrap();
        assert!(s.jobs[0].os.is_empty());
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    }

    #[test]
    fn duplicate_job_names_are_refused() {
        let e = err(&format!("{MINIMAL}{MINIMAL}"));
        assert!(e.contains("jobs[1].name") && e.contains("unique"), "{e}");
    }

    #[test]
    fn database_url_passwords_are_redacted() {
        let e = err(&format!(
            "[storage]\ndatabase_url = \"mysql://u:hunter2@h/db\"\n{MINIMAL}"
        ));
        assert!(
            !e.contains("hunter2") && e.contains("storage.database_url"),
            "{e}"
        );
        let u = DatabaseUrl::new("postgres://u:hunter2@h:5432/db");
        assert_eq!(u.to_string(), "postgres://u:***@h:5432/db");
        assert!(!format!("{u:?}").contains("hunter2"));
    }

    const TWO_ACCOUNTS: &str = r#"
[[accounts]]
name = "cn"
access_key_env = "CN_AK"
secret_key_env = "CN_SK"
[accounts.limits]
ListQuality = { per_second = 2.0 }

[[accounts]]
name = "intl"
access_key_env = "INTL_AK"
secret_key_env = "INTL_SK"
session_token_env = "INTL_TOKEN"
endpoint = "https://open.byteplusapi.com"
region = "ap-singapore-1"
[accounts.limits]
ListQuality = { per_second = 0.167, per_day = 60 }
ListRoomInfo = { per_day = 100 }

[[jobs]]
name = "cn-app"
account = "cn"
app_id = "app-cn"
indicators = ["stall_rate"]

[[jobs]]
name = "intl-app"
account = "intl"
app_id = "app-intl"
indicators = ["stall_rate"]
granularity = ["1d", "5min"]
"#;

    #[test]
    fn without_accounts_there_is_one_implicit_account_that_owns_every_block() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.accounts.len(), 1);
        let a = &s.accounts[0];
        assert_eq!((a.name.as_str(), a.env.is_none()), ("default", true));
        assert_eq!(a.source, s.source);
        assert!(a.per_day.is_empty());
        assert_eq!(s.account_of("app1"), "default");
        assert!(!s.has_accounts());
        assert_eq!(s.select_accounts(&[]).unwrap().len(), 1);
    }

    #[test]
    fn accounts_carry_their_endpoint_rates_and_budgets_and_own_their_blocks() {
        let s = parse(TWO_ACCOUNTS).unwrap();
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        let cn = &s.accounts[0];
        let intl = &s.accounts[1];
        assert_eq!(cn.source.endpoint, s.source.endpoint);
        assert_eq!(
            intl.source.endpoint.as_str(),
            "https://open.byteplusapi.com/"
        );
        assert_eq!(intl.source.region, "ap-singapore-1");
        // A rate left out is [source]'s; a budget left out is none.
        assert_eq!(intl.source.requests_per_second, 0.167);
        assert_eq!(intl.source.distribution_requests_per_second, 2.0);
        assert_eq!(intl.source.room_list_requests_per_second, 10.0);
        assert_eq!(intl.budget("ListQuality"), Some(60));
        assert_eq!(intl.budget("ListRoomInfo"), Some(100));
        assert_eq!(intl.budget("ListQualityDistribution"), None);
        assert_eq!(cn.budget("ListQuality"), None);
        // Each account's part holds its own blocks only, at its own rates.
        let part = s.for_account(intl);
        let names: Vec<String> = part.streams().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["intl-app/1d", "intl-app/5min"]);
        assert_eq!(part.source.requests_per_second, 0.167);
        assert_eq!(part.accounts, vec![intl.clone()]);
        assert_eq!(s.for_account(cn).jobs.len(), 1);
        // --account selects; an unknown name lists the accounts.
        let picked: Vec<&str> = s
            .select_accounts(&["intl".into()])
            .unwrap()
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(picked, ["intl"]);
        let e = s.select_accounts(&["eu".into()]).unwrap_err().to_string();
        assert!(
            e.contains("--account \"eu\"") && e.contains("cn, intl"),
            "{e}"
        );
    }

    #[test]
    fn a_block_must_name_a_known_account_when_there_are_several() {
        let unknown = TWO_ACCOUNTS.replace("account = \"intl\"", "account = \"eu\"");
        let e = err(&unknown);
        assert!(
            e.contains("jobs[1].account = \"eu\"") && e.contains("cn, intl"),
            "{e}"
        );
        let unnamed = TWO_ACCOUNTS.replace("account = \"intl\"\n", "");
        let e = err(&unnamed);
        assert!(
            e.contains("jobs[1].account") && e.contains("each block names its account"),
            "{e}"
        );
        // One account: a block may leave it out.
        let one = &TWO_ACCOUNTS[..TWO_ACCOUNTS.find("[[accounts]]\nname = \"intl\"").unwrap()];
        let s = parse(&format!(
            "{one}[[rooms]]\napp_id = \"app-cn\"\nindicators = [\"stall_rate\"]\n"
        ))
        .unwrap();
        assert_eq!(s.account_of("app-cn-rooms"), "cn");
        assert!(s.has_accounts());
    }

    #[test]
    fn an_account_that_no_block_names_is_a_warning_and_sits_out() {
        let text = TWO_ACCOUNTS.replace("account = \"intl\"", "account = \"cn\"");
        let s = parse(&text.replace("app-intl", "app-cn2")).unwrap();
        assert!(
            s.warnings.iter().any(|w| w.contains("accounts[1]")
                && w.contains("\"intl\"")
                && w.contains("syncs nothing")),
            "{:?}",
            s.warnings
        );
        let all: Vec<&str> = s
            .select_accounts(&[])
            .unwrap()
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(all, ["cn"]);
    }

    #[test]
    fn one_app_belongs_to_one_account() {
        let text = TWO_ACCOUNTS.replace("app_id = \"app-intl\"", "app_id = \"app-cn\"");
        let e = err(&text);
        assert!(
            e.contains("intl-app.account") && e.contains("an AppId belongs to one account"),
            "{e}"
        );
    }

    #[test]
    fn account_tables_are_validated_by_key_and_never_echo_a_key() {
        for (from, to, key, allowed) in [
            (
                "name = \"cn\"",
                "name = \"intl\"",
                "accounts[1].name",
                "unique",
            ),
            (
                "ListRoomInfo = { per_day = 100 }",
                "ListRooms = { per_day = 1 }",
                "accounts[1].limits",
                "ListQuality, ListQualityDistribution, ListRoomInfo",
            ),
            (
                "per_second = 0.167",
                "per_second = 0.0",
                "accounts[1].limits.ListQuality.per_second",
                "0.167",
            ),
            (
                "per_day = 60",
                "per_day = -1",
                "accounts[1].limits.ListQuality.per_day",
                "0 (no budget)",
            ),
            (
                "https://open.byteplusapi.com",
                "ftp://x",
                "accounts[1].endpoint",
                "http(s)",
            ),
            (
                "region = \"ap-singapore-1\"",
                "region = \" \"",
                "accounts[1].region",
                "region",
            ),
        ] {
            let text = if from == "name = \"cn\"" {
                TWO_ACCOUNTS.replacen("name = \"intl\"", "name = \"cn\"", 1)
            } else {
                TWO_ACCOUNTS.replace(from, to)
            };
            let _ = to;
            let e = err(&text);
            assert!(e.contains(key) && e.contains(allowed), "{from}: {e}");
        }
        // A key pasted where its variable's name belongs is refused and not shown.
        let e = err(&TWO_ACCOUNTS.replace("\"INTL_SK\"", "\"wJal/rXUtnFEMI+K7MDENG\""));
        assert!(
            e.contains("accounts[1].secret_key_env") && e.contains("(not shown)"),
            "{e}"
        );
        assert!(!e.contains("wJal"), "{e}");
        let e = err(&TWO_ACCOUNTS.replace("secret_key_env = \"CN_SK\"\n", ""));
        assert!(e.contains("secret_key_env"), "{e}");
    }

    #[test]
    fn credentials_come_from_the_variables_an_account_names() {
        let s = parse(TWO_ACCOUNTS).unwrap();
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let intl = &s.accounts[1];
        let c = intl
            .credentials(
                "t.toml",
                env(&[
                    ("INTL_AK", "AKintl"),
                    ("INTL_SK", "sk"),
                    ("INTL_TOKEN", "tok"),
                ]),
            )
            .unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret(), c.token()),
            ("AKintl", "sk", Some("tok"))
        );
        // An unset variable names the account, the key and the variable.
        let e = intl
            .credentials("t.toml", env(&[("INTL_AK", "AKintl"), ("INTL_SK", "sk")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("account \"intl\"")
                && e.contains("INTL_TOKEN")
                && e.contains("accounts[1].session_token_env"),
            "{e}"
        );
        // Two accounts on one access key: refused, the key masked.
        let cn = &s.accounts[0];
        let a = cn
            .credentials(
                "t.toml",
                env(&[("CN_AK", "AKLTsamekey0001"), ("CN_SK", "x")]),
            )
            .unwrap();
        let b = intl
            .credentials(
                "t.toml",
                env(&[
                    ("INTL_AK", "AKLTsamekey0001"),
                    ("INTL_SK", "y"),
                    ("INTL_TOKEN", "t"),
                ]),
            )
            .unwrap();
        let e = accounts::same_access_key("t.toml", &[(cn, &a), (intl, &b)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"cn\" and \"intl\"") && !e.contains("AKLTsamekey0001"),
            "{e}"
        );
        assert!(accounts::same_access_key("t.toml", &[(cn, &a)]).is_ok());
    }
}
