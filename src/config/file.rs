//! The config file as written: serde types that mirror the TOML, and the parse that names the line.
//!
//! Nothing here judges a value; [`super::validate`] turns these into [`super::Settings`].

use serde::Deserialize;

use super::{ConfigError, DEFAULT_DATABASE_URL};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) source: RawSource,
    #[serde(default)]
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) window: RawWindow,
    #[serde(default)]
    pub(super) jobs: Vec<RawJob>,
    #[serde(default)]
    pub(super) distributions: Vec<RawDistribution>,
    #[serde(default)]
    pub(super) rooms: Vec<RawRooms>,
    #[serde(default)]
    pub(super) accounts: Vec<RawAccount>,
}

/// An `[[accounts]]` table: the names of the variables that hold its keys, never the keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub(super) name: String,
    pub(super) access_key_env: String,
    pub(super) secret_key_env: String,
    #[serde(default)]
    pub(super) session_token_env: String,
    #[serde(default)]
    pub(super) endpoint: Option<String>,
    #[serde(default)]
    pub(super) region: Option<String>,
    /// Per action (`ListQuality = { per_second = 2.0, per_day = 0 }`).
    #[serde(default)]
    pub(super) limits: std::collections::BTreeMap<String, RawLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    #[serde(default)]
    pub(super) per_second: Option<f64>,
    #[serde(default)]
    pub(super) per_day: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSource {
    pub(super) endpoint: String,
    pub(super) region: String,
    pub(super) requests_per_second: f64,
    pub(super) distribution_requests_per_second: f64,
    pub(super) room_list_requests_per_second: f64,
    pub(super) max_in_flight: i64,
    pub(super) timeout_secs: f64,
    pub(super) max_retries: i64,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource {
            endpoint: "https://rtc.volcengineapi.com".into(),
            region: "cn-north-1".into(),
            requests_per_second: 2.0,
            distribution_requests_per_second: 2.0,
            room_list_requests_per_second: 10.0,
            max_in_flight: 4,
            timeout_secs: 30.0,
            max_retries: 6,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStorage {
    pub(super) database_url: String,
    pub(super) schema: String,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            database_url: DEFAULT_DATABASE_URL.into(),
            schema: crate::domain::PgSchema::PUBLIC.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawWindow {
    pub(super) max_lookback_days: i64,
    pub(super) max_span_days: i64,
    pub(super) data_delay_hours: i64,
    pub(super) settle_hours: i64,
    pub(super) timezone: String,
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
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJob {
    /// The `[[accounts]]` entry it belongs to; optional with one account.
    #[serde(default)]
    pub(super) account: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    pub(super) app_id: String,
    pub(super) indicators: Vec<String>,
    #[serde(default)]
    pub(super) granularity: Option<OneOrMany>,
    #[serde(default)]
    pub(super) product_type: Option<String>,
    #[serde(default)]
    pub(super) os: Vec<String>,
    #[serde(default)]
    pub(super) access: Vec<String>,
    #[serde(default)]
    pub(super) room_id: String,
    #[serde(default)]
    pub(super) user_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDistribution {
    /// The `[[accounts]]` entry it belongs to; optional with one account.
    #[serde(default)]
    pub(super) account: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    pub(super) app_id: String,
    pub(super) indicators: Vec<String>,
    #[serde(default)]
    pub(super) dimensions: Option<Vec<String>>,
    #[serde(default)]
    pub(super) product_type: Option<String>,
    #[serde(default)]
    pub(super) platform: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRooms {
    /// The `[[accounts]]` entry it belongs to; optional with one account.
    #[serde(default)]
    pub(super) account: Option<String>,
    #[serde(default)]
    pub(super) name: Option<String>,
    pub(super) app_id: String,
    pub(super) indicators: Vec<String>,
    #[serde(default)]
    pub(super) granularity: Option<OneOrMany>,
    #[serde(default)]
    pub(super) product_type: Option<String>,
    #[serde(default = "one")]
    pub(super) min_active_users: i64,
    #[serde(default)]
    pub(super) max_room_calls_per_run: i64,
}

fn one() -> i64 {
    1
}

/// Parses config text into the raw tables; `path` is only used in messages.
pub(super) fn parse(text: &str, path: &str) -> Result<RawConfig, ConfigError> {
    // The path of the key (`source.endpoint`, `jobs[0].room_id`) that a type error is about.
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let key = e.path().to_string();
        let e = e.into_inner();
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
        let key = if key == "." {
            String::new()
        } else {
            format!("{key}: ")
        };
        ConfigError::Parse {
            path: path.to_string(),
            message: format!("{at}{key}{}", e.message().trim_end().replace('\n', " ")),
        }
    })
}
