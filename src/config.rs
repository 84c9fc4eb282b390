//! Configuration: the TOML file, typed and validated once, plus credentials from the environment.
//!
//! Everything downstream takes a validated [`Settings`]; no other module reads the file or the
//! environment. A config error names the file, the key, the bad value and what is allowed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::Granularity;

pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";
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
    #[error(
        "credentials: {0}; set VOLC_ACCESSKEY and VOLC_SECRETKEY (or VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY)"
    )]
    Credentials(String),
}

// ---------- the file, as written ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    source: RawSource,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    window: RawWindow,
    #[serde(default)]
    jobs: Vec<RawJob>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSource {
    endpoint: String,
    region: String,
    requests_per_second: f64,
    max_in_flight: i64,
    timeout_secs: f64,
    max_retries: i64,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource {
            endpoint: "https://rtc.volcengineapi.com".into(),
            region: "cn-north-1".into(),
            requests_per_second: 2.0,
            max_in_flight: 4,
            timeout_secs: 30.0,
            max_retries: 6,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    database_url: String,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            database_url: DEFAULT_DATABASE_URL.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWindow {
    max_lookback_days: i64,
    max_span_days: i64,
    data_delay_hours: i64,
    settle_hours: i64,
    timezone: String,
}

impl Default for RawWindow {
    fn default() -> Self {
        RawWindow {
            max_lookback_days: 30,
            max_span_days: 7,
            data_delay_hours: 8,
            settle_hours: 24,
            timezone: "+08:00".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    #[serde(default)]
    name: Option<String>,
    app_id: String,
    indicators: Vec<String>,
    #[serde(default)]
    granularity: Option<OneOrMany>,
    #[serde(default)]
    product_type: Option<String>,
    #[serde(default)]
    os: Vec<String>,
    #[serde(default)]
    access: Vec<String>,
    #[serde(default)]
    room_id: String,
    #[serde(default)]
    user_ids: Vec<String>,
}

// ---------- validated settings ----------

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

/// Masks every form of database password (see [`crate::redact`]).
pub use crate::redact::redact_url;

/// Where and how fast to call the API.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSettings {
    /// Base URL, e.g. `https://rtc.volcengineapi.com` or `http://127.0.0.1:8080`.
    pub endpoint: url::Url,
    pub region: String,
    /// Calls per second, counted at send time; ListQuality allows 2.
    pub requests_per_second: f64,
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

/// `native` (the SDKs for android, iOS, linux, mac, windows) or `web`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductType {
    Native,
    Web,
}

impl ProductType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductType::Native => "native",
            ProductType::Web => "web",
        }
    }
}

/// One configured query. Filters are normalized: sorted by byte order, deduplicated,
/// and `os`/`access` emptied for `web` (the API ignores them there).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub name: String,
    pub app_id: String,
    pub indicators: Vec<String>,
    pub granularities: Vec<Granularity>,
    pub product_type: ProductType,
    pub os: Vec<String>,
    pub access: Vec<String>,
    /// Empty: the whole app.
    pub room_id: String,
    pub user_ids: Vec<String>,
}

/// A job at one granularity: the unit that plans and checkpoints are kept for.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// `<job name>/<granularity>`, the key of the ledger.
    pub name: String,
    pub job: Job,
    pub granularity: Granularity,
}

impl Job {
    pub fn streams(&self) -> Vec<Stream> {
        self.granularities
            .iter()
            .map(|&g| Stream {
                name: format!("{}/{}", self.name, g.as_str()),
                job: self.clone(),
                granularity: g,
            })
            .collect()
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it came from, for messages.
    pub path: PathBuf,
    pub source: SourceSettings,
    pub database_url: DatabaseUrl,
    pub window: WindowSettings,
    pub jobs: Vec<Job>,
    /// Things that are allowed but probably not meant; the caller logs them.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Every stream of every job, in configuration order.
    pub fn streams(&self) -> Vec<Stream> {
        self.jobs.iter().flat_map(Job::streams).collect()
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
        let p = path.display().to_string();
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's own Display draws a multi-line diagram; one line with the place reads better in logs.
            let at = e
                .span()
                .map(|span| {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {column}: ")
                })
                .unwrap_or_default();
            ConfigError::Parse {
                path: p.clone(),
                message: format!("{at}{}", e.message().trim_end().replace('\n', " ")),
            }
        })?;
        let mut warnings = Vec::new();
        let invalid = |key: &str, value: &dyn fmt::Display, allowed: &str| ConfigError::Invalid {
            path: p.clone(),
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        };

        // [source]
        let s = raw.source;
        let endpoint = url::Url::parse(&s.endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                invalid(
                    "source.endpoint",
                    &format!("{:?}", s.endpoint),
                    "an http(s) base URL is expected, e.g. https://rtc.volcengineapi.com",
                )
            })?;
        if s.region.trim().is_empty() {
            return Err(invalid(
                "source.region",
                &"\"\"",
                "a region is required, e.g. cn-north-1",
            ));
        }
        if !(s.requests_per_second.is_finite() && s.requests_per_second > 0.0) {
            return Err(invalid(
                "source.requests_per_second",
                &s.requests_per_second,
                "a positive number is expected; ListQuality allows 2.0",
            ));
        }
        if s.requests_per_second > 2.0 {
            warnings.push(format!(
                "{p}: source.requests_per_second = {} is above ListQuality's documented limit of 2.0; the API will throttle",
                s.requests_per_second
            ));
        }
        if !(1..=64).contains(&s.max_in_flight) {
            return Err(invalid(
                "source.max_in_flight",
                &s.max_in_flight,
                "a whole number from 1 to 64 is expected",
            ));
        }
        if !(s.timeout_secs.is_finite() && s.timeout_secs > 0.0 && s.timeout_secs <= 600.0) {
            return Err(invalid(
                "source.timeout_secs",
                &s.timeout_secs,
                "seconds from 0 to 600 are expected",
            ));
        }
        if !(0..=20).contains(&s.max_retries) {
            return Err(invalid(
                "source.max_retries",
                &s.max_retries,
                "a whole number from 0 to 20 is expected",
            ));
        }
        let source = SourceSettings {
            endpoint,
            region: s.region.trim().to_string(),
            requests_per_second: s.requests_per_second,
            max_in_flight: s.max_in_flight as usize,
            timeout: Duration::from_secs_f64(s.timeout_secs),
            max_retries: s.max_retries as u32,
        };

        // [storage]
        let url = raw.storage.database_url.trim();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "storage.database_url",
                &format!("{:?}", redact_url(url)),
                "a sqlite://PATH or postgres://user:password@host:5432/db URL is expected",
            ));
        }
        let database_url = DatabaseUrl::new(url);

        // [window]
        let w = raw.window;
        if !(1..=30).contains(&w.max_lookback_days) {
            return Err(invalid(
                "window.max_lookback_days",
                &w.max_lookback_days,
                "1 to 30 days are allowed; ListQuality keeps 30 days",
            ));
        }
        if !(1..=7).contains(&w.max_span_days) {
            return Err(invalid(
                "window.max_span_days",
                &w.max_span_days,
                "1 to 7 days are allowed; ListQuality spans at most 7 days per call",
            ));
        }
        if !(0..=72).contains(&w.data_delay_hours) {
            return Err(invalid(
                "window.data_delay_hours",
                &w.data_delay_hours,
                "0 to 72 hours are allowed; ListQuality's data arrives about 8 hours late",
            ));
        }
        if !(0..=240).contains(&w.settle_hours) {
            return Err(invalid(
                "window.settle_hours",
                &w.settle_hours,
                "0 to 240 hours are allowed",
            ));
        }
        let timezone = parse_offset(&w.timezone).ok_or_else(|| {
            invalid(
                "window.timezone",
                &format!("{:?}", w.timezone),
                "a UTC offset like \"+08:00\" or \"-05:30\" is expected",
            )
        })?;
        let window = WindowSettings {
            max_lookback_days: w.max_lookback_days,
            max_span_days: w.max_span_days,
            data_delay_hours: w.data_delay_hours,
            settle_hours: w.settle_hours,
            timezone,
        };

        // [[jobs]]
        if raw.jobs.is_empty() {
            return Err(invalid(
                "jobs",
                &"[]",
                "at least one [[jobs]] table with app_id and indicators is required",
            ));
        }
        let mut jobs: Vec<Job> = Vec::with_capacity(raw.jobs.len());
        for (i, j) in raw.jobs.into_iter().enumerate() {
            let job = validate_job(i, j, &p, &mut warnings)?;
            if let Some(other) = jobs.iter().find(|o| o.name == job.name) {
                return Err(invalid(
                    &format!("jobs[{i}].name"),
                    &format!("{:?}", job.name),
                    &format!(
                        "job names must be unique; {:?} is already used (set name = \"...\" on one of them)",
                        other.name
                    ),
                ));
            }
            jobs.push(job);
        }

        Ok(Settings {
            path: path.to_path_buf(),
            source,
            database_url,
            window,
            jobs,
            warnings,
        })
    }
}

const OS_VALUES: [&str; 5] = ["android", "iOS", "linux", "mac", "windows"];
const ACCESS_VALUES: [&str; 5] = ["2g", "3g", "4g", "5g", "wifi"];

fn validate_job(
    i: usize,
    j: RawJob,
    p: &str,
    warnings: &mut Vec<String>,
) -> Result<Job, ConfigError> {
    let invalid = |key: &str, value: &dyn fmt::Display, allowed: &str| ConfigError::Invalid {
        path: p.to_string(),
        key: format!("jobs[{i}].{key}"),
        value: value.to_string(),
        allowed: allowed.to_string(),
    };
    let app_id = j.app_id.trim().to_string();
    if app_id.is_empty() {
        return Err(invalid(
            "app_id",
            &"\"\"",
            "the RTC AppId is required (console: RTC > Applications)",
        ));
    }
    let mut indicators: Vec<String> = j.indicators.iter().map(|s| s.trim().to_string()).collect();
    if indicators.is_empty() || indicators.iter().any(String::is_empty) {
        return Err(invalid(
            "indicators",
            &format!("{:?}", j.indicators),
            "a non-empty list of indicator names is required, e.g. [\"join_room_success_rate\", \"stall_rate\"]",
        ));
    }
    indicators.dedup();

    let granularity_names = match j.granularity {
        None => vec!["1d".to_string()],
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    };
    if granularity_names.is_empty() {
        return Err(invalid(
            "granularity",
            &"[]",
            "\"1d\", \"5min\" or a list of them is expected",
        ));
    }
    let mut granularities = Vec::new();
    for g in &granularity_names {
        let parsed = Granularity::parse(g).ok_or_else(|| {
            invalid(
                "granularity",
                &format!("{g:?}"),
                "\"1d\" or \"5min\" is expected",
            )
        })?;
        if !granularities.contains(&parsed) {
            granularities.push(parsed);
        }
    }

    let product_type = match j.product_type.as_deref().map(str::trim) {
        None | Some("native") => ProductType::Native,
        Some("web") => ProductType::Web,
        Some(other) => {
            return Err(invalid(
                "product_type",
                &format!("{other:?}"),
                "\"native\" or \"web\" is expected",
            ));
        }
    };

    let mut os = Vec::new();
    for v in &j.os {
        let canon = OS_VALUES
            .iter()
            .find(|a| a.eq_ignore_ascii_case(v.trim()))
            .ok_or_else(|| {
                invalid(
                    "os",
                    &format!("{v:?}"),
                    "each of android, iOS, linux, mac, windows is allowed",
                )
            })?;
        os.push(canon.to_string());
    }
    let mut access = Vec::new();
    for v in &j.access {
        let canon = ACCESS_VALUES
            .iter()
            .find(|a| a.eq_ignore_ascii_case(v.trim()))
            .ok_or_else(|| {
                invalid(
                    "access",
                    &format!("{v:?}"),
                    "each of 2g, 3g, 4g, 5g, wifi is allowed",
                )
            })?;
        access.push(canon.to_string());
    }
    if product_type == ProductType::Web && !(os.is_empty() && access.is_empty()) {
        warnings.push(format!(
            "{p}: jobs[{i}]: os and access are ignored by the API when product_type = \"web\"; they are not sent and are stored as ''"
        ));
        os.clear();
        access.clear();
    }
    sort_dedup(&mut os);
    sort_dedup(&mut access);

    let room_id = j.room_id.trim().to_string();
    let mut user_ids: Vec<String> = j.user_ids.iter().map(|s| s.trim().to_string()).collect();
    sort_dedup(&mut user_ids);
    if user_ids.len() > 20 {
        return Err(invalid(
            "user_ids",
            &format!("{} ids", user_ids.len()),
            "at most 20 user ids are allowed per job; split them over several jobs",
        ));
    }
    if !user_ids.is_empty() && room_id.is_empty() {
        return Err(invalid(
            "user_ids",
            &format!("{:?}", user_ids),
            "user_ids are only honoured with a room_id; set room_id or remove user_ids",
        ));
    }
    for (key, list) in [("os", &os), ("access", &access), ("user_ids", &user_ids)] {
        if list.iter().any(|v| v.contains(',') || v.is_empty()) {
            return Err(invalid(
                key,
                &format!("{list:?}"),
                "values must be non-empty and contain no comma",
            ));
        }
    }

    let name = match j.name.map(|n| n.trim().to_string()) {
        Some(n) if n.is_empty() || n.contains('/') => {
            return Err(invalid(
                "name",
                &format!("{n:?}"),
                "a non-empty name without '/' is expected",
            ));
        }
        Some(n) => n,
        None => default_job_name(&app_id, &room_id, product_type, &os, &access, &user_ids),
    };

    Ok(Job {
        name,
        app_id,
        indicators,
        granularities,
        product_type,
        os,
        access,
        room_id,
        user_ids,
    })
}

fn sort_dedup(v: &mut Vec<String>) {
    v.sort();
    v.dedup();
}

/// A readable default name: the app, then whatever narrows it.
fn default_job_name(
    app_id: &str,
    room_id: &str,
    product_type: ProductType,
    os: &[String],
    access: &[String],
    user_ids: &[String],
) -> String {
    let mut name = app_id.to_string();
    if !room_id.is_empty() {
        name.push_str(&format!(".room-{room_id}"));
    }
    if product_type == ProductType::Web {
        name.push_str(".web");
    }
    if !os.is_empty() {
        name.push_str(&format!(".{}", os.join("+")));
    }
    if !access.is_empty() {
        name.push_str(&format!(".{}", access.join("+")));
    }
    if !user_ids.is_empty() {
        name.push_str(&format!(".{}-users", user_ids.len()));
    }
    name.replace('/', "_")
}

/// Parses `+08:00`, `-05:30`, `Z` or `UTC`.
pub fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// API credentials. The secret and the session token can only be read through `expose_secret`,
/// and `Debug` shows neither.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &mask_access_key(&self.access_key_id))
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `AKLT…abcd`: enough to tell keys apart in a message, not enough to use one.
pub fn mask_access_key(ak: &str) -> String {
    let chars: Vec<char> = ak.chars().collect();
    if chars.len() <= 8 {
        return "***".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

impl Credentials {
    pub fn new(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>) -> Self {
        Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: SecretString::from(secret_access_key.to_string()),
            session_token: session_token.map(|t| SecretString::from(t.to_string())),
        }
    }

    pub fn secret(&self) -> &str {
        self.secret_access_key.expose_secret()
    }

    pub fn token(&self) -> Option<&str> {
        self.session_token.as_ref().map(|t| t.expose_secret())
    }

    /// Reads `VOLC_ACCESSKEY`/`VOLC_SECRETKEY` or `VOLCENGINE_ACCESS_KEY`/`VOLCENGINE_SECRET_KEY`
    /// (+ `VOLCENGINE_SESSION_TOKEN`). `Ok(None)` when neither family is set.
    pub fn from_env() -> Result<Option<Credentials>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// As [`Credentials::from_env`], reading variables through `get` (tests pass a map).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, ConfigError> {
        let families = [
            ("VOLC_ACCESSKEY", "VOLC_SECRETKEY"),
            ("VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY"),
        ];
        for (ak_var, sk_var) in families {
            match (get(ak_var), get(sk_var)) {
                (Some(ak), Some(sk)) => {
                    let token = get("VOLCENGINE_SESSION_TOKEN");
                    return Ok(Some(Credentials::new(
                        ak.trim(),
                        sk.trim(),
                        token.as_deref().map(str::trim),
                    )));
                }
                (Some(_), None) => {
                    return Err(ConfigError::Credentials(format!(
                        "{ak_var} is set but {sk_var} is not"
                    )));
                }
                (None, Some(_)) => {
                    return Err(ConfigError::Credentials(format!(
                        "{sk_var} is set but {ak_var} is not"
                    )));
                }
                (None, None) => {}
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_shipped_default_config_is_valid_and_complete() {
        let text = include_str!("../config/default.toml");
        let s = parse(text).unwrap();
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
            e.starts_with("test.toml: line 3, column 1: unknown field `requests_per_secnd`"),
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

    #[test]
    fn credentials_come_from_either_family_and_never_print() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Credentials::from_lookup(env(&[
            ("VOLC_ACCESSKEY", "AKLTabcdefgh1234"),
            ("VOLC_SECRETKEY", "s3cr3t"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.secret(), "s3cr3t");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("s3cr3t") && !dbg.contains("AKLTabcdefgh1234"),
            "{dbg}"
        );

        let c = Credentials::from_lookup(env(&[
            ("VOLCENGINE_ACCESS_KEY", "ak"),
            ("VOLCENGINE_SECRET_KEY", "sk"),
            ("VOLCENGINE_SESSION_TOKEN", "tok"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.token(), Some("tok"));

        let e = Credentials::from_lookup(env(&[("VOLC_ACCESSKEY", "ak")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("VOLC_SECRETKEY"), "{e}");
        assert!(Credentials::from_lookup(env(&[])).unwrap().is_none());
    }
}
