//! The RTC service's validation of a `ListQuality` body, after the gateway let it through.
//!
//! The order is: an empty or non-JSON body (`InvalidParameter.BodyIsEmpty`,
//! `InvalidParameter.Unmarshal`), missing required fields (`MissingParameter`), an unknown app
//! (`InvalidParameter.NotExistAppId`), unreadable times (`InvalidParameter`), `StartTime` not before
//! `EndTime` (`InvalidParameter.StartTimeAfterEndTime`), a span over 7 days or a start older than 30 days
//! (`InvalidParameter.OutofTimeRange`), more than 20 user ids, an unknown granularity or product type,
//! an indicator outside the documented list (`InvalidParameter`). All are HTTP 400.
//!
//! [`validate_distribution`] checks a `ListQualityDistribution` body in the same order, with the same
//! codes, then the call's own rules: `Indicator` is one string (an array is `InvalidParameter`) and
//! `Dimension` one of `Province`, `Country`, `OS`, `Access` (anything else is `InvalidParameter`),
//! and the indicator a documented one.
//!
//! [`validate_room_list`] checks a `ListRoomInfo` query (a GET: its parameters are in the query, and
//! any body is ignored): `AppId`, `StartTime` and `EndTime` missing or unreadable, `PageNum` below 1,
//! `PageSize` outside 1..=100 (20 when absent) are `InvalidParameter`; an unknown app is
//! `InvalidParameter.NotExistAppId`; `StartTime` after `EndTime` is
//! `InvalidParameter.StartTimeAfterEndTime` (the two may be equal: both ends are included); a start
//! more than 14 days before the data-now is `InvalidParameter.OutofTimeRange`. A range over 24 h is
//! not refused: the answer covers its first 24 h.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde_json::{Map, Value};

use super::data::Query;
use super::distribution::DistributionQuery;
use super::envelope::ApiError;
use super::rooms::RoomQuery;
use crate::domain::{DOCUMENTED_INDICATORS, Dimension, Granularity};

pub const MAX_SPAN: Duration = Duration::days(7);
pub const MAX_LOOKBACK: Duration = Duration::days(30);
pub const MAX_USER_IDS: usize = 20;
/// `ListRoomInfo` lists nothing older than this.
pub const ROOM_LIST_LOOKBACK: Duration = Duration::days(14);
/// `ListRoomInfo`'s `PageSize` when none is given, and its largest.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 100;

const REQUIRED_DISTRIBUTION: [&str; 5] =
    ["AppId", "StartTime", "EndTime", "Indicator", "Dimension"];

const REQUIRED: [&str; 5] = [
    "AppId",
    "StartTime",
    "EndTime",
    "Indicator",
    "AggregateGranularity",
];

/// Validates a body against the API's rules. `apps` empty: every app id is known.
pub fn validate(body: &[u8], apps: &[String], data_now: DateTime<Utc>) -> Result<Query, ApiError> {
    let obj = object(body)?;
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|k| match obj.get(*k) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        })
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::missing_parameter(format!(
            "missing required parameter {}; AppId, StartTime, EndTime, Indicator and AggregateGranularity are required",
            missing.join(", ")
        )));
    }

    let app_id = string(&obj, "AppId")?.unwrap_or_default();
    let start_s = string(&obj, "StartTime")?.unwrap_or_default();
    let end_s = string(&obj, "EndTime")?.unwrap_or_default();
    let granularity_s = string(&obj, "AggregateGranularity")?.unwrap_or_default();
    let indicators = strings(&obj, "Indicator", false)?;
    let product_type = string(&obj, "ProductType")?.filter(|s| !s.is_empty());
    let os = strings(&obj, "OS", true)?;
    let access = strings(&obj, "Access", true)?;
    let room_id = string(&obj, "RoomId")?.unwrap_or_default();
    // The docs' own example sends UserId as a string, so one string is taken as one id.
    let user_ids = strings(&obj, "UserId", true)?;

    known_app(&app_id, apps)?;
    let (start, end) = window(&start_s, &end_s, data_now)?;
    if user_ids.len() > MAX_USER_IDS {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter",
            format!("UserId lists {} users; give at most 20", user_ids.len()),
        ));
    }
    let granularity = Granularity::parse(&granularity_s).ok_or_else(|| {
        ApiError::invalid_parameter(
            "InvalidParameter",
            format!("AggregateGranularity {granularity_s:?} is not supported; use 1d or 5min"),
        )
    })?;
    let product_type = product(product_type)?;
    for indicator in &indicators {
        known_indicator(indicator)?;
    }

    Ok(Query {
        app_id,
        room_id,
        product_type,
        os,
        access,
        user_ids,
        indicators,
        granularity,
        start,
        end,
    })
}

/// Validates a `ListQualityDistribution` body. `apps` empty: every app id is known.
pub fn validate_distribution(
    body: &[u8],
    apps: &[String],
    data_now: DateTime<Utc>,
) -> Result<DistributionQuery, ApiError> {
    let obj = object(body)?;
    // An array is not "missing": it is the wrong shape, which is said below.
    let missing: Vec<&str> = REQUIRED_DISTRIBUTION
        .into_iter()
        .filter(|k| match obj.get(*k) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        })
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::missing_parameter(format!(
            "missing required parameter {}; AppId, StartTime, EndTime, Indicator and Dimension are required",
            missing.join(", ")
        )));
    }
    let app_id = string(&obj, "AppId")?.unwrap_or_default();
    let start_s = string(&obj, "StartTime")?.unwrap_or_default();
    let end_s = string(&obj, "EndTime")?.unwrap_or_default();
    let indicator = match obj.get("Indicator") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid_parameter(
                "InvalidParameter",
                "Indicator is an array; ListQualityDistribution takes one indicator as a string, e.g. \"stall_rate\": one call per indicator",
            ));
        }
        _ => return Err(unmarshal("Indicator is not a string")),
    };
    let dimension_s = string(&obj, "Dimension")?.unwrap_or_default();
    let product_type = string(&obj, "ProductType")?.filter(|s| !s.is_empty());
    let platform = string(&obj, "Platform")?.unwrap_or_default();

    known_app(&app_id, apps)?;
    let (start, end) = window(&start_s, &end_s, data_now)?;
    let dimension = Dimension::parse(&dimension_s).ok_or_else(|| {
        ApiError::invalid_parameter(
            "InvalidParameter",
            format!(
                "Dimension {dimension_s:?} is not supported; use Province, Country, OS or Access"
            ),
        )
    })?;
    let product_type = product(product_type)?;
    known_indicator(&indicator)?;
    Ok(DistributionQuery {
        app_id,
        product_type,
        platform,
        indicator,
        dimension,
        start,
        end,
    })
}

/// Validates a `ListRoomInfo` query, its parameters decoded. `apps` empty: every app id is known.
pub fn validate_room_list(
    query: &[(String, String)],
    apps: &[String],
    data_now: DateTime<Utc>,
) -> Result<RoomQuery, ApiError> {
    let invalid = |m: String| ApiError::invalid_parameter("InvalidParameter", m);
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let required = |name: &str| {
        param(name).ok_or_else(|| {
            invalid(format!(
                "{name} is missing; ListRoomInfo requires AppId, StartTime and EndTime in the query"
            ))
        })
    };
    let app_id = required("AppId")?.to_string();
    let start_s = required("StartTime")?;
    let end_s = required("EndTime")?;
    let time = |name: &str, s: &str| {
        DateTime::parse_from_rfc3339(s).map_err(|_| {
            invalid(format!(
                "{name} {s:?} is not RFC 3339 with an offset, e.g. 2021-07-24T00:00:00+08:00"
            ))
        })
    };
    let start = time("StartTime", start_s)?;
    let end = time("EndTime", end_s)?;
    let number = |name: &str, default: i64, max: i64| -> Result<i64, ApiError> {
        let Some(v) = param(name) else {
            return Ok(default);
        };
        match v.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(invalid(format!(
                "{name} {v:?} is not a whole number from 1 to {max}"
            ))),
        }
    };
    let page_num = number("PageNum", 1, i64::from(i32::MAX))?;
    let page_size = number("PageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;

    known_app(&app_id, apps)?;
    if start > end {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter.StartTimeAfterEndTime",
            format!("StartTime {start_s} is after EndTime {end_s}; swap them"),
        ));
    }
    if start < data_now - ROOM_LIST_LOOKBACK {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter.OutofTimeRange",
            format!(
                "StartTime {start_s} is more than 14 days ago; ListRoomInfo lists the last 14 days only"
            ),
        ));
    }
    Ok(RoomQuery {
        app_id,
        start,
        end,
        page_num,
        page_size,
    })
}

/// An empty body, a body that is not JSON, or JSON that is not an object, each with its code.
fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter.BodyIsEmpty",
            "the request body is empty; send the parameters as a JSON object",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(unmarshal("the body is JSON but not an object")),
        Err(e) => Err(unmarshal(&format!("the body is not valid JSON ({e})"))),
    }
}

fn known_app(app_id: &str, apps: &[String]) -> Result<(), ApiError> {
    if !apps.is_empty() && !apps.iter().any(|a| a == app_id) {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter.NotExistAppId",
            format!("AppId {app_id:?} does not exist; use an app id of this account"),
        ));
    }
    Ok(())
}

/// The simulator knows the documented indicators only, so that a typo in a configuration fails
/// against it (the demo, the tests) as it may against the real API.
fn known_indicator(name: &str) -> Result<(), ApiError> {
    if DOCUMENTED_INDICATORS.contains(&name) {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(
        "InvalidParameter",
        format!(
            "Indicator {name:?} is not supported; use one of {}",
            DOCUMENTED_INDICATORS.join(", ")
        ),
    ))
}

fn product(product_type: Option<String>) -> Result<String, ApiError> {
    let product_type = product_type.unwrap_or_else(|| "native".to_string());
    if product_type != "native" && product_type != "web" {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter",
            format!("ProductType {product_type:?} is not supported; use native or web"),
        ));
    }
    Ok(product_type)
}

/// `StartTime` and `EndTime`: readable, in order, at most 7 days apart, not older than 30 days.
fn window(
    start_s: &str,
    end_s: &str,
    data_now: DateTime<Utc>,
) -> Result<(DateTime<FixedOffset>, DateTime<FixedOffset>), ApiError> {
    let time = |name: &str, s: &str| {
        DateTime::parse_from_rfc3339(s).map_err(|_| {
            ApiError::invalid_parameter(
                "InvalidParameter",
                format!(
                    "{name} {s:?} is not RFC 3339 with an offset, e.g. 2021-07-24T00:00:00+08:00"
                ),
            )
        })
    };
    let start = time("StartTime", start_s)?;
    let end = time("EndTime", end_s)?;
    if start >= end {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter.StartTimeAfterEndTime",
            format!(
                "StartTime {start_s} is not before EndTime {end_s}; swap them or widen the range"
            ),
        ));
    }
    if end - start > MAX_SPAN {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter.OutofTimeRange",
            format!(
                "StartTime {start_s} to EndTime {end_s} spans more than 7 days; split the range into calls of at most 7 days"
            ),
        ));
    }
    if start < data_now - MAX_LOOKBACK {
        return Err(ApiError::invalid_parameter(
            "InvalidParameter.OutofTimeRange",
            format!(
                "StartTime {start_s} is more than 30 days ago; only the last 30 days can be queried"
            ),
        ));
    }
    Ok((start, end))
}

fn unmarshal(what: &str) -> ApiError {
    ApiError::invalid_parameter(
        "InvalidParameter.Unmarshal",
        format!("{what}; send the parameters as a JSON object"),
    )
}

fn string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(unmarshal(&format!("{key} is not a string"))),
    }
}

fn strings(
    obj: &Map<String, Value>,
    key: &str,
    one_string_is_a_list: bool,
) -> Result<Vec<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if one_string_is_a_list => Ok(if s.is_empty() {
            vec![]
        } else {
            vec![s.clone()]
        }),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(unmarshal(&format!("{key} is not an array of strings"))),
            })
            .collect(),
        Some(_) => Err(unmarshal(&format!("{key} is not an array of strings"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2024-01-20T00:00:00Z".parse().unwrap()
    }

    fn body(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"AppId":"app","StartTime":"2024-01-15T00:00:00+08:00","EndTime":"2024-01-16T00:00:00+08:00","Indicator":["stall_rate"],"AggregateGranularity":"1d"{extra}}}"#
        )
        .into_bytes()
    }

    fn code(b: &[u8], apps: &[&str]) -> &'static str {
        let apps: Vec<String> = apps.iter().map(|s| s.to_string()).collect();
        validate(b, &apps, now()).unwrap_err().code
    }

    #[test]
    fn a_good_body_is_read() {
        let q = validate(
            &body(r#","UserId":"u1","RoomId":"r","OS":["iOS"]"#),
            &[],
            now(),
        )
        .unwrap();
        assert_eq!(q.user_ids, ["u1"]);
        assert_eq!(q.os, ["iOS"]);
        assert_eq!(q.product_type, "native");
        assert_eq!(q.granularity, Granularity::Day);
    }

    #[test]
    fn each_rule_has_its_code() {
        assert_eq!(code(b"", &[]), "InvalidParameter.BodyIsEmpty");
        assert_eq!(code(b"{nope", &[]), "InvalidParameter.Unmarshal");
        assert_eq!(code(b"[1]", &[]), "InvalidParameter.Unmarshal");
        assert_eq!(code(br#"{"AppId":"a"}"#, &[]), "MissingParameter");
        assert_eq!(
            code(&body(r#","RoomId":5"#), &[]),
            "InvalidParameter.Unmarshal"
        );
        assert_eq!(
            code(&body(""), &["other"]),
            "InvalidParameter.NotExistAppId"
        );
        let span = |s: &str, e: &str| {
            format!(
                r#"{{"AppId":"app","StartTime":"{s}","EndTime":"{e}","Indicator":["x"],"AggregateGranularity":"1d"}}"#
            )
            .into_bytes()
        };
        assert_eq!(
            code(
                &span("2024-01-16T00:00:00+08:00", "2024-01-16T00:00:00+08:00"),
                &[]
            ),
            "InvalidParameter.StartTimeAfterEndTime"
        );
        assert_eq!(
            code(
                &span("2024-01-08T00:00:00+08:00", "2024-01-15T00:00:01+08:00"),
                &[]
            ),
            "InvalidParameter.OutofTimeRange"
        );
        assert!(
            validate(
                &span("2024-01-08T00:00:00+08:00", "2024-01-15T00:00:00+08:00")
                    .replace_str("[\"x\"]", "[\"stall_rate\"]"),
                &[],
                now()
            )
            .is_ok()
        );
        assert_eq!(
            code(&span("2023-12-20T00:00:00Z", "2023-12-21T00:00:00Z"), &[]),
            "InvalidParameter.OutofTimeRange"
        );
        assert_eq!(
            code(&span("yesterday", "2024-01-16T00:00:00Z"), &[]),
            "InvalidParameter"
        );
        let users: Vec<String> = (0..21).map(|i| format!("\"u{i}\"")).collect();
        assert_eq!(
            code(
                &body(&format!(r#","RoomId":"r","UserId":[{}]"#, users.join(","))),
                &[]
            ),
            "InvalidParameter"
        );
        assert_eq!(
            code(&body("").replace_str("\"1d\"", "\"1h\""), &[]),
            "InvalidParameter"
        );
        assert_eq!(
            code(&body(r#","ProductType":"tv""#), &[]),
            "InvalidParameter"
        );
    }

    fn dist(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"AppId":"app","StartTime":"2024-01-15T00:00:00+08:00","EndTime":"2024-01-16T00:00:00+08:00"{extra}}}"#
        )
        .into_bytes()
    }

    fn dist_code(b: &[u8], apps: &[&str]) -> &'static str {
        let apps: Vec<String> = apps.iter().map(|s| s.to_string()).collect();
        validate_distribution(b, &apps, now()).unwrap_err().code
    }

    #[test]
    fn a_distribution_body_is_read_and_each_rule_has_its_code() {
        let q = validate_distribution(
            &dist(r#","Indicator":"stall_rate","Dimension":"OS","Platform":"ios""#),
            &[],
            now(),
        )
        .unwrap();
        assert_eq!(q.indicator, "stall_rate");
        assert_eq!(q.dimension, Dimension::Os);
        assert_eq!(q.product_type, "native");
        assert_eq!(q.platform, "ios");

        let ok = r#","Indicator":"stall_rate","Dimension":"Province""#;
        assert_eq!(dist_code(b" ", &[]), "InvalidParameter.BodyIsEmpty");
        assert_eq!(dist_code(b"{", &[]), "InvalidParameter.Unmarshal");
        assert_eq!(
            dist_code(&dist(r#","Indicator":"stall_rate""#), &[]),
            "MissingParameter"
        );
        assert_eq!(
            dist_code(&dist(r#","Indicator":"","Dimension":"OS""#), &[]),
            "MissingParameter"
        );
        // One string, not an array (not even an empty or a one-element one).
        for indicator in [r#"["stall_rate"]"#, "[]"] {
            assert_eq!(
                dist_code(
                    &dist(&format!(r#","Indicator":{indicator},"Dimension":"OS""#)),
                    &[]
                ),
                "InvalidParameter",
                "{indicator}"
            );
        }
        assert_eq!(
            dist_code(&dist(r#","Indicator":5,"Dimension":"OS""#), &[]),
            "InvalidParameter.Unmarshal"
        );
        for dimension in ["City", "os", "province", " OS"] {
            assert_eq!(
                dist_code(
                    &dist(&format!(r#","Indicator":"x","Dimension":"{dimension}""#)),
                    &[]
                ),
                "InvalidParameter",
                "{dimension}"
            );
        }
        assert_eq!(
            dist_code(&dist(ok), &["other"]),
            "InvalidParameter.NotExistAppId"
        );
        assert_eq!(
            dist_code(&dist(&format!(r#"{ok},"ProductType":"tv""#)), &[]),
            "InvalidParameter"
        );
        let span = |s: &str, e: &str| {
            format!(
                r#"{{"AppId":"app","StartTime":"{s}","EndTime":"{e}","Indicator":"x","Dimension":"Access"}}"#
            )
            .into_bytes()
        };
        assert_eq!(
            dist_code(
                &span("2024-01-16T00:00:00+08:00", "2024-01-15T00:00:00+08:00"),
                &[]
            ),
            "InvalidParameter.StartTimeAfterEndTime"
        );
        assert_eq!(
            dist_code(
                &span("2024-01-08T00:00:00+08:00", "2024-01-15T00:00:01+08:00"),
                &[]
            ),
            "InvalidParameter.OutofTimeRange"
        );
        assert_eq!(
            dist_code(&span("2023-12-20T00:00:00Z", "2023-12-21T00:00:00Z"), &[]),
            "InvalidParameter.OutofTimeRange"
        );
    }

    /// Issue 19 item 9: a name outside the documented list is `InvalidParameter` (HTTP 400) in
    /// both calls, so a typo fails against the simulator; every documented name is served.
    #[test]
    fn item_19_09_an_undocumented_indicator_is_an_invalid_parameter() {
        for name in DOCUMENTED_INDICATORS {
            assert!(
                validate(&body("").replace_str("stall_rate", name), &[], now()).is_ok(),
                "{name}"
            );
            let b = dist(&format!(r#","Indicator":"{name}","Dimension":"OS""#));
            assert!(validate_distribution(&b, &[], now()).is_ok(), "{name}");
        }
        for typo in ["stall_rte", "Stall_Rate", "audio_stall_rate", " stall_rate"] {
            let e = validate(
                &body("").replace_str("[\"stall_rate\"]", &format!("[\"stall_rate\", {typo:?}]")),
                &[],
                now(),
            )
            .unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "InvalidParameter"),
                "{typo}"
            );
            assert!(e.message.contains(&format!("{typo:?}")), "{}", e.message);
            let b = dist(&format!(r#","Indicator":{typo:?},"Dimension":"OS""#));
            let e = validate_distribution(&b, &[], now()).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "InvalidParameter"),
                "{typo}"
            );
            assert!(e.message.contains("stall_rate"), "{}", e.message);
        }
    }

    trait ReplaceStr {
        fn replace_str(&self, from: &str, to: &str) -> Vec<u8>;
    }
    impl ReplaceStr for Vec<u8> {
        fn replace_str(&self, from: &str, to: &str) -> Vec<u8> {
            String::from_utf8_lossy(self).replace(from, to).into_bytes()
        }
    }
}
