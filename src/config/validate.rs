//! Validation: the raw tables to [`Settings`], each value checked against what the API and the
//! store allow. A config error names the file, the key, the bad value and what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::file::{OneOrMany, RawConfig, RawDistribution, RawJob, RawRooms};
use super::{ConfigError, DatabaseUrl, Settings, SourceSettings, WindowSettings};
use crate::domain::{
    DOCUMENTED_INDICATORS, Dimension, DistributionJob, Granularity, Job, PgSchema, ProductType,
    RoomsBlock, parse_offset,
};
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
    let base_endpoint = endpoint(&invalid, "source.endpoint", &s.endpoint)?;
    no_control_characters(&invalid, "source.region", &s.region)?;
    if s.region.trim().is_empty() {
        return Err(invalid(
            "source.region",
            &"\"\"",
            "a region is required, e.g. cn-north-1",
        ));
    }
    if !(0.01..=100.0).contains(&s.requests_per_second) {
        return Err(invalid(
            "source.requests_per_second",
            &s.requests_per_second,
            "a number from 0.01 to 100 is expected; ListQuality allows 2.0",
        ));
    }
    if !(0.01..=100.0).contains(&s.distribution_requests_per_second) {
        return Err(invalid(
            "source.distribution_requests_per_second",
            &s.distribution_requests_per_second,
            "a number from 0.01 to 100 is expected; ListQualityDistribution allows 2.0",
        ));
    }
    if !(0.01..=100.0).contains(&s.room_list_requests_per_second) {
        return Err(invalid(
            "source.room_list_requests_per_second",
            &s.room_list_requests_per_second,
            "a number from 0.01 to 100 is expected; ListRoomInfo allows 10",
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
    if !(0.1..=600.0).contains(&s.timeout_secs) {
        return Err(invalid(
            "source.timeout_secs",
            &s.timeout_secs,
            "seconds from 0.1 to 600 are expected",
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
        endpoint: base_endpoint,
        region: s.region.trim().to_string(),
        requests_per_second: s.requests_per_second,
        distribution_requests_per_second: s.distribution_requests_per_second,
        room_list_requests_per_second: s.room_list_requests_per_second,
        max_in_flight: s.max_in_flight as usize,
        timeout: Duration::from_secs_f64(s.timeout_secs),
        max_retries: s.max_retries as u32,
    };

    // [[accounts]]
    let accounts = super::accounts::validate(raw.accounts, &source, &invalid, &|key, raw| {
        self::endpoint(&invalid, key, raw)
    })?;
    // Which account each block belongs to, by the block's name (names are unique among blocks).
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let owner = |block: &str, named: Option<&str>| {
        super::accounts::owner(&accounts, block, named, &invalid)
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
    let schema = PgSchema::parse(&raw.storage.schema).map_err(|allowed| {
        invalid(
            "storage.schema",
            &format!("{:?}", raw.storage.schema),
            allowed,
        )
    })?;
    warnings.extend(super::schema_unused(&p, &database_url, &schema));

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
    if raw.jobs.is_empty() && raw.distributions.is_empty() && raw.rooms.is_empty() {
        return Err(invalid(
            "jobs",
            &"[]",
            "at least one [[jobs]] (or [[distributions]], or [[rooms]]) table with app_id and indicators is required",
        ));
    }
    let mut jobs: Vec<Job> = Vec::with_capacity(raw.jobs.len());
    for (i, mut j) in raw.jobs.into_iter().enumerate() {
        let account = owner(&format!("jobs[{i}]"), j.account.take().as_deref())?;
        let job = validate_job(i, j, &p, &mut warnings)?;
        owners.insert(job.name.clone(), account);
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

    // [[distributions]]
    let mut distributions: Vec<DistributionJob> = Vec::with_capacity(raw.distributions.len());
    for (i, mut d) in raw.distributions.into_iter().enumerate() {
        let account = owner(&format!("distributions[{i}]"), d.account.take().as_deref())?;
        let job = validate_distribution(i, d, &p, &mut warnings)?;
        if jobs.iter().any(|o| o.name == job.name)
            || distributions.iter().any(|o| o.name == job.name)
        {
            return Err(invalid(
                &format!("distributions[{i}].name"),
                &format!("{:?}", job.name),
                "names must be unique among [[jobs]] and [[distributions]] (set name = \"...\")",
            ));
        }
        owners.insert(job.name.clone(), account);
        distributions.push(job);
    }

    // [[rooms]]
    let mut rooms: Vec<RoomsBlock> = Vec::with_capacity(raw.rooms.len());
    for (i, mut r) in raw.rooms.into_iter().enumerate() {
        let account = owner(&format!("rooms[{i}]"), r.account.take().as_deref())?;
        let block = validate_rooms(i, r, &p, &mut warnings)?;
        if jobs.iter().any(|o| o.name == block.name)
            || distributions.iter().any(|o| o.name == block.name)
            || rooms.iter().any(|o| o.name == block.name)
        {
            return Err(invalid(
                &format!("rooms[{i}].name"),
                &format!("{:?}", block.name),
                "names must be unique among [[jobs]], [[distributions]] and [[rooms]] (set name = \"...\")",
            ));
        }
        owners.insert(block.name.clone(), account);
        rooms.push(block);
    }
    one_account_per_app(&p, &jobs, &distributions, &rooms, &owners)?;
    for a in &accounts {
        if !owners.values().any(|o| *o == a.name) {
            warnings.push(format!(
                "{p}: accounts[{}] ({:?}) is named by no [[jobs]], [[distributions]] or [[rooms]] block: it syncs nothing",
                a.index.unwrap_or_default(),
                a.name
            ));
        }
    }

    let days = !distributions.is_empty()
        || rooms
            .iter()
            .any(|r| r.granularities.contains(&Granularity::Day));
    horizon_holds_a_bucket(&window, &jobs, days, &invalid)?;

    Ok(Settings {
        path: path.to_path_buf(),
        source,
        database_url,
        schema,
        window,
        jobs,
        distributions,
        rooms,
        accounts,
        owners,
        warnings,
    })
}

/// An AppId belongs to one account (its quota is the account's): two blocks of one app naming
/// different accounts are a mistake, and would fetch one query twice under two quotas.
fn one_account_per_app(
    p: &str,
    jobs: &[Job],
    distributions: &[DistributionJob],
    rooms: &[RoomsBlock],
    owners: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let blocks = jobs
        .iter()
        .map(|j| (&j.name, &j.app_id))
        .chain(distributions.iter().map(|d| (&d.name, &d.app_id)))
        .chain(rooms.iter().map(|r| (&r.name, &r.app_id)));
    let mut seen: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for (name, app) in blocks {
        let account = owners[name].as_str();
        match seen.get(app.as_str()) {
            Some(&(other, other_account)) if other_account != account => {
                return Err(ConfigError::Invalid {
                    path: p.to_string(),
                    key: format!("{name}.account"),
                    value: format!("{account:?}"),
                    allowed: format!(
                        "app {app:?} is {other}'s, of account {other_account:?}: an AppId belongs to one account, so every block of it names the same account"
                    ),
                });
            }
            Some(_) => {}
            None => {
                seen.insert(app, (name, account));
            }
        }
    }
    Ok(())
}

/// An endpoint: an http(s) base URL without `user:password@`.
fn endpoint(
    invalid: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
    key: &str,
    raw: &str,
) -> Result<url::Url, ConfigError> {
    let endpoint = url::Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            invalid(
                key,
                &format!("{:?}", redact_url(raw)),
                "an http(s) base URL is expected, e.g. https://rtc.volcengineapi.com",
            )
        })?;
    if !endpoint.username().is_empty() || endpoint.password().is_some() {
        // The HTTP client would send them as Basic auth, which replaces the request's signature.
        return Err(invalid(
            key,
            &format!("{:?}", redact_url(raw)),
            "a URL without user:password@ is expected; the keys come from environment variables only",
        ));
    }
    Ok(endpoint)
}

/// Hours of horizon that a stream of whole days needs: with 48, the rounding of both ends to a local
/// day (each loses less than 24 hours) leaves at least one whole day, at any hour of the day.
const HORIZON_HOURS_FOR_DAYS: i64 = 48;
/// The same for 5-minute streams only: one hour always holds a 5-minute bucket.
const HORIZON_HOURS_FOR_FIVE_MIN: i64 = 1;

/// The horizon, `max_lookback_days × 24 − 1 − data_delay_hours` hours (the hour is the planner's
/// safety margin at the start), must hold a whole bucket of every configured granularity at any
/// hour; otherwise nothing is ever planned and `status --check` reports the streams stale forever.
fn horizon_holds_a_bucket(
    window: &WindowSettings,
    jobs: &[Job],
    other_days: bool,
    invalid: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
) -> Result<(), ConfigError> {
    let days = other_days
        || jobs
            .iter()
            .any(|j| j.granularities.contains(&Granularity::Day));
    let (need, which) = if days {
        (
            HORIZON_HOURS_FOR_DAYS,
            "a 1d or distribution stream needs at least 48, so that a whole local day always fits",
        )
    } else {
        (HORIZON_HOURS_FOR_FIVE_MIN, "a 5min stream needs at least 1")
    };
    let hours = window.max_lookback_days * 24 - 1 - window.data_delay_hours;
    if hours >= need {
        return Ok(());
    }
    let min_lookback = (need + 1 + window.data_delay_hours + 23) / 24;
    let max_delay = window.max_lookback_days * 24 - 1 - need;
    let fix = if max_delay >= 0 {
        format!(
            "raise window.max_lookback_days to {min_lookback} or more, or lower window.data_delay_hours to {max_delay} or less"
        )
    } else {
        format!("raise window.max_lookback_days to {min_lookback} or more")
    };
    Err(invalid(
        "window.max_lookback_days",
        &format!(
            "{} with window.data_delay_hours = {}",
            window.max_lookback_days, window.data_delay_hours
        ),
        &format!(
            "the horizon, max_lookback_days × 24 − 1 − data_delay_hours, is {hours} hours and holds no \
             whole bucket: {which}; {fix}"
        ),
    ))
}

/// How a job's or a distribution's key is reported: its table's key, the value, what is allowed.
type Invalid<'a> = dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError + 'a;

/// `app_id`, trimmed: required.
fn app_id(invalid: &Invalid<'_>, raw: &str) -> Result<String, ConfigError> {
    let app_id = raw.trim().to_string();
    if app_id.is_empty() {
        return Err(invalid(
            "app_id",
            &"\"\"",
            "the RTC AppId is required (console: RTC > Applications)",
        ));
    }
    Ok(app_id)
}

/// `indicators`, trimmed: a non-empty list of non-empty names, each used once. `at` is the key as
/// warnings name it (`FILE: jobs[0].indicators`).
///
/// A name listed twice is used once, the first occurrence kept in its place, with a warning: a
/// repeat would otherwise make two distribution streams of one query, or ask one indicator twice.
/// A name outside the documented list is used as written, with a warning: the published list is
/// partial, so only the API can say whether it exists, and a typo should not go unnoticed.
fn indicators(
    invalid: &Invalid<'_>,
    raw: &[String],
    at: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, ConfigError> {
    let trimmed: Vec<String> = raw.iter().map(|s| s.trim().to_string()).collect();
    if trimmed.is_empty() || trimmed.iter().any(String::is_empty) {
        return Err(invalid(
            "indicators",
            &format!("{raw:?}"),
            "a non-empty list of indicator names is required, e.g. [\"join_room_success_rate\", \"stall_rate\"]",
        ));
    }
    let mut indicators: Vec<String> = Vec::with_capacity(trimmed.len());
    for name in trimmed {
        if indicators.contains(&name) {
            // Said once per name, however often it is repeated.
            let warning = format!("{at} lists {name:?} more than once; it is used once");
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
            continue;
        }
        if !DOCUMENTED_INDICATORS.contains(&name.as_str()) {
            warnings.push(format!(
                "{at}: {name:?} is not a documented indicator ({}); it is used as written and the API will judge",
                DOCUMENTED_INDICATORS.join(", ")
            ));
        }
        indicators.push(name);
    }
    Ok(indicators)
}

/// `product_type`: `native` (the default) or `web`.
fn product_type(invalid: &Invalid<'_>, raw: Option<&str>) -> Result<ProductType, ConfigError> {
    match raw.map(str::trim) {
        None | Some("native") => Ok(ProductType::Native),
        Some("web") => Ok(ProductType::Web),
        Some(other) => Err(invalid(
            "product_type",
            &format!("{other:?}"),
            "\"native\" or \"web\" is expected",
        )),
    }
}

fn validate_distribution(
    i: usize,
    d: RawDistribution,
    p: &str,
    warnings: &mut Vec<String>,
) -> Result<DistributionJob, ConfigError> {
    let invalid = |key: &str, value: &dyn fmt::Display, allowed: &str| ConfigError::Invalid {
        path: p.to_string(),
        key: format!("distributions[{i}].{key}"),
        value: value.to_string(),
        allowed: allowed.to_string(),
    };
    for (key, value) in [("app_id", &d.app_id), ("platform", &d.platform)]
        .into_iter()
        .chain(d.name.iter().map(|n| ("name", n)))
        .chain(d.indicators.iter().map(|v| ("indicators", v)))
    {
        no_control_characters(&invalid, key, value)?;
    }
    let app_id = app_id(&invalid, &d.app_id)?;
    let indicators = indicators(
        &invalid,
        &d.indicators,
        &format!("{p}: distributions[{i}].indicators"),
        warnings,
    )?;
    let dimensions = match &d.dimensions {
        None => Dimension::ALL.to_vec(),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                let parsed = Dimension::parse(n.trim()).ok_or_else(|| {
                    invalid(
                        "dimensions",
                        &format!("{n:?}"),
                        "each of Province, Country, OS, Access is allowed",
                    )
                })?;
                if !out.contains(&parsed) {
                    out.push(parsed);
                }
            }
            if out.is_empty() {
                return Err(invalid(
                    "dimensions",
                    &"[]",
                    "leave it out for all four, or list some of Province, Country, OS, Access",
                ));
            }
            out
        }
    };
    let product_type = product_type(&invalid, d.product_type.as_deref())?;
    let name = d
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{app_id}-distribution"));
    Ok(DistributionJob {
        name,
        app_id,
        indicators,
        dimensions,
        product_type,
        platform: d.platform.trim().to_string(),
    })
}

/// Ids and names travel into the API's JSON, the database and log lines: a control character
/// (`\u0000`, a newline) is always a mistake there, and PostgreSQL refuses NUL outright.
fn no_control_characters(
    invalid: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    if value.chars().any(char::is_control) {
        return Err(invalid(
            key,
            &format!("{value:?}"),
            "printable text is expected; control characters are not allowed",
        ));
    }
    Ok(())
}

const OS_VALUES: [&str; 5] = ["android", "iOS", "linux", "mac", "windows"];
const ACCESS_VALUES: [&str; 5] = ["2g", "3g", "4g", "5g", "wifi"];

/// `granularity`: a string or a list of `"1d"` and `"5min"`, each once; `"1d"` when left out.
fn granularities(
    invalid: &Invalid<'_>,
    raw: Option<OneOrMany>,
) -> Result<Vec<Granularity>, ConfigError> {
    let granularity_names = match raw {
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
    Ok(granularities)
}

/// One `[[rooms]]` table (PRODUCT.md, "Room streams").
fn validate_rooms(
    i: usize,
    r: RawRooms,
    p: &str,
    warnings: &mut Vec<String>,
) -> Result<RoomsBlock, ConfigError> {
    let invalid = |key: &str, value: &dyn fmt::Display, allowed: &str| ConfigError::Invalid {
        path: p.to_string(),
        key: format!("rooms[{i}].{key}"),
        value: value.to_string(),
        allowed: allowed.to_string(),
    };
    for (key, value) in [("app_id", &r.app_id)]
        .into_iter()
        .chain(r.name.iter().map(|n| ("name", n)))
        .chain(r.indicators.iter().map(|v| ("indicators", v)))
    {
        no_control_characters(&invalid, key, value)?;
    }
    let app_id = app_id(&invalid, &r.app_id)?;
    let indicators = indicators(
        &invalid,
        &r.indicators,
        &format!("{p}: rooms[{i}].indicators"),
        warnings,
    )?;
    let granularities = granularities(&invalid, r.granularity)?;
    let product_type = product_type(&invalid, r.product_type.as_deref())?;
    if !(1..=1_000_000).contains(&r.min_active_users) {
        return Err(invalid(
            "min_active_users",
            &r.min_active_users,
            "a whole number from 1 to 1000000 is expected",
        ));
    }
    if !(0..=1_000_000).contains(&r.max_room_calls_per_run) {
        return Err(invalid(
            "max_room_calls_per_run",
            &r.max_room_calls_per_run,
            "a whole number from 0 (no cap) to 1000000 is expected",
        ));
    }
    let name = r
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{app_id}-rooms"));
    Ok(RoomsBlock {
        name,
        app_id,
        indicators,
        granularities,
        product_type,
        min_active_users: r.min_active_users,
        max_room_calls_per_run: r.max_room_calls_per_run as u64,
    })
}

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
    for (key, value) in [("app_id", &j.app_id), ("room_id", &j.room_id)]
        .into_iter()
        .chain(j.name.iter().map(|n| ("name", n)))
        .chain(j.indicators.iter().map(|v| ("indicators", v)))
        .chain(j.user_ids.iter().map(|v| ("user_ids", v)))
    {
        no_control_characters(&invalid, key, value)?;
    }
    let app_id = app_id(&invalid, &j.app_id)?;
    let indicators = indicators(
        &invalid,
        &j.indicators,
        &format!("{p}: jobs[{i}].indicators"),
        warnings,
    )?;

    let granularities = granularities(&invalid, j.granularity)?;

    let product_type = product_type(&invalid, j.product_type.as_deref())?;

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

#[cfg(test)]
mod hostile_values {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::planner::{PlanOptions, plan};

    /// Every key set, once each, so a line can be swapped by its key.
    const BASE: &str = r#"
[source]
endpoint = "http://127.0.0.1:8080"
region = "cn-north-1"
requests_per_second = 2.0
max_in_flight = 4
timeout_secs = 30
max_retries = 6

[storage]
database_url = "sqlite://x.db"

[window]
max_lookback_days = 30
max_span_days = 7
data_delay_hours = 8
settle_hours = 24
timezone = "+08:00"

[[jobs]]
name = "j"
app_id = "a"
indicators = ["stall_rate"]
granularity = ["1d", "5min"]
product_type = "native"
os = ["android"]
access = ["wifi"]
room_id = "r"
user_ids = ["u1"]
"#;

    const VALUES: [&str; 27] = [
        "0",
        "-1",
        "1e-300",
        "1e-12",
        "1e300",
        "nan",
        "inf",
        "-inf",
        "0.5",
        "65",
        "9223372036854775807",
        "-9223372036854775808",
        "true",
        "\"\"",
        "\"x\"",
        "\"\\u0000\"",
        "\"a\\nb\"",
        "\"http://user:pw@127.0.0.1:8080\"",
        "\"ftp://h\"",
        "\"+99:00\"",
        "\"-12:00\"",
        "\"5MIN\"",
        "[]",
        "[\"\\u0000\"]",
        "[\"\"]",
        "{ a = 1 }",
        "\"Your_AppId\"",
    ];

    /// A property over every key × every hostile value: a configuration is either refused with an
    /// error that names the file and the key, or it plans (and estimates its duration) without a panic.
    #[test]
    fn a_hostile_value_is_refused_by_name_or_plans_without_panic() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 21, 41, 0).unwrap();
        let keys: Vec<&str> = BASE
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .collect();
        assert_eq!(keys.len(), 21, "{keys:?}");
        let mut refused = 0;
        for key in &keys {
            for value in VALUES {
                let text: String = BASE
                    .lines()
                    .map(|l| match l.split_once(" = ") {
                        Some((k, _)) if k == *key => format!("{k} = {value}\n"),
                        _ => format!("{l}\n"),
                    })
                    .collect();
                let case = format!("{key} = {value}");
                let parsed = catch_unwind(|| Settings::parse(&text, Path::new("fuzz.toml")))
                    .unwrap_or_else(|_| panic!("{case}: parsing panicked"));
                match parsed {
                    Err(e) => {
                        refused += 1;
                        let m = e.to_string();
                        assert!(m.contains("fuzz.toml"), "{case}: {m}");
                        assert!(m.contains(key), "{case}: the message names no key: {m}");
                    }
                    Ok(settings) => {
                        let planned = catch_unwind(AssertUnwindSafe(|| {
                            let p = plan(
                                &settings.window,
                                &settings.streams(),
                                &[],
                                now,
                                PlanOptions::default(),
                            )
                            .expect("a plan");
                            p.estimated_duration(
                                settings.source.requests_per_second,
                                settings.source.distribution_requests_per_second,
                            )
                        }));
                        let estimate =
                            planned.unwrap_or_else(|_| panic!("{case}: planning panicked"));
                        assert!(
                            estimate < std::time::Duration::from_secs(30 * 86_400),
                            "{case}: a 30-day backfill estimated at {estimate:?}"
                        );
                    }
                }
            }
        }
        assert!(
            refused > keys.len() * VALUES.len() / 2,
            "only {refused} refused"
        );
    }
}
