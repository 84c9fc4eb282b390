//! Validation: the raw tables to [`Settings`], each value checked against what the API and the
//! store allow. A config error names the file, the key, the bad value and what is allowed.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::file::{OneOrMany, RawConfig, RawJob};
use super::{ConfigError, DatabaseUrl, Settings, SourceSettings, WindowSettings};
use crate::domain::{Granularity, Job, ProductType, parse_offset};
use crate::redact::redact_url;

/// Validates the raw tables; `path` is only used in messages.
pub(super) fn settings(raw: RawConfig, path: &Path) -> Result<Settings, ConfigError> {
    let p = path.display().to_string();
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
