//! `ListQualityDistribution` (volc-openapi.md section 5): the body of one call and its answer, checked
//! field by field, as an [`Action`]: the client signs, caps and classifies it as it does every action.
//!
//! **Invariant:** a broken answer is an `invalid response` error naming the field, never a panic; a
//! `null` value is no traffic (not a point, not an error); an answer without the requested indicator
//! never leaves [`require_requested`].

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::api::answer::{OneValuePerKey, Opened, check_text, open, require_names, shown};
use crate::api::error::ApiError;
use crate::api::wire::ListQualityDistributionResult;
use crate::api::{Action, Fetch, OffGrid, Reply, Split, WindowApi, asked_time};
use crate::config::SourceSettings;
use crate::domain::{
    Dimension, Point, ProductType, SeriesKey, SeriesPoints, Stream, Window, WindowBatch,
    offset_text,
};

pub const ACTION: &str = "ListQualityDistribution";

/// The body of a `ListQualityDistribution` call: ONE indicator (a string, not an array), one dimension,
/// no granularity. `ProductType` and `Platform` are sent only when set. The field order is the official
/// SDK's (the signing vector's body), so a request serializes to the bytes it signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQualityDistributionRequest {
    pub app_id: String,
    /// RFC 3339 with offset, second precision.
    pub start_time: String,
    pub end_time: String,
    pub indicator: String,
    pub dimension: Dimension,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    /// Documented inconsistently; left out unless configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl ListQualityDistributionRequest {
    /// The call for `window` (one local day, PRODUCT.md) of one indicator and one dimension: times in
    /// `tz` at second precision, the product type always sent, the platform only when set.
    pub fn for_window(
        app_id: &str,
        window: Window,
        tz: FixedOffset,
        indicator: &str,
        dimension: Dimension,
        product_type: ProductType,
        platform: Option<&str>,
    ) -> ListQualityDistributionRequest {
        ListQualityDistributionRequest {
            app_id: app_id.to_string(),
            start_time: asked_time(window.start, tz),
            end_time: asked_time(window.end, tz),
            indicator: indicator.to_string(),
            dimension,
            product_type: Some(product_type.as_str().to_string()),
            platform: platform.filter(|p| !p.is_empty()).map(str::to_string),
        }
    }
}

impl Action for ListQualityDistributionRequest {
    const NAME: &'static str = ACTION;
    type Answer = FetchedDistribution;
    crate::api::json_request!();
    fn requests_per_second(source: &SourceSettings) -> f64 {
        source.distribution_requests_per_second
    }
    /// [`interpret`], then [`require_requested`]: an answer without the requested indicator is a
    /// retried [`ApiError::MissingIndicators`].
    fn answer(&self, r: &Reply<'_>) -> Result<FetchedDistribution, ApiError> {
        interpret(r.status, r.retry_after, r.body)
            .and_then(|fetched| require_requested(fetched, &self.indicator))
    }
}

/// What one successful call returned, checked and converted.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedDistribution {
    /// `ResponseMetadata.RequestId` (empty if the server sent none).
    pub request_id: String,
    /// One entry per returned `Name`, in the order the API sent them.
    pub series: Vec<DistributionSeries>,
}

/// One returned series: `name` is what the API returned (it contains the indicator asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionSeries {
    pub name: String,
    /// In the order the API sent them; `null` values (no traffic) are left out.
    pub points: Vec<DistributionPoint>,
}

/// One value of one dimension value at one time stamp.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionPoint {
    /// As returned, untouched: `广东`, `US`, `iOS`, `wifi`.
    pub dimension_value: String,
    /// The returned `TimeStamp`, in UTC.
    pub ts: DateTime<Utc>,
    /// Always finite.
    pub value: f64,
}

impl FetchedDistribution {
    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }
}

/// Turns a status and a body into the result of a call. Pure, so every malformed answer is tested
/// without a server. Errors in the envelope win over a malformed `Result`, as for `ListQuality`.
///
/// As for `ListQuality` (PRODUCT.md, the planner's rule 7): a `Name` or dimension value that holds a
/// control character or is longer than [`crate::api::answer::MAX_TEXT_BYTES`], or two different
/// values for one `Name`, dimension value and `TimeStamp` (compared as instants; a `null` counts as a
/// value), make the answer invalid; the same value twice is kept once, a `Name` returned in two
/// series is one series, and `Data: null` or `Indicators: null` say what an absent field says.
pub fn interpret(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<FetchedDistribution, ApiError> {
    let Opened {
        request_id,
        result,
        invalid,
    } = open::<ListQualityDistributionResult>(status, retry_after, body)?;
    let invalid = |path: String, what: String| invalid.at(path, what);

    let mut series: Vec<DistributionSeries> = Vec::with_capacity(result.indicators.len());
    // Per returned name: its series in `series`.
    let mut series_of: HashMap<String, usize> = HashMap::new();
    // One value per (series, dimension value, instant).
    let mut seen = OneValuePerKey::new();
    for (i, indicator) in result.indicators.into_iter().enumerate() {
        let name_at = format!("Result.Indicators[{i}].Name");
        if indicator.name.trim().is_empty() {
            return Err(invalid(name_at, "empty; every series needs a name".into()));
        }
        check_text(&indicator.name).map_err(|what| invalid(name_at, what))?;
        let slot = *series_of.entry(indicator.name.clone()).or_insert_with(|| {
            series.push(DistributionSeries {
                name: indicator.name,
                points: Vec::with_capacity(indicator.data.len()),
            });
            series.len() - 1
        });
        for (j, item) in indicator.data.into_iter().enumerate() {
            let at = |field: &str| format!("Result.Indicators[{i}].Data[{j}].{field}");
            let item_at = format!("Result.Indicators[{i}].Data[{j}]");
            // What `seen` says of two values, as the answer's error.
            let two_values = |two: String, d: &str, ts: DateTime<Utc>| {
                invalid(
                    at("Value"),
                    format!(
                        "{two} for the same Name ({}), Dimension ({}) and TimeStamp ({}); the window fails and the next run asks again",
                        shown(&series[slot].name),
                        shown(d),
                        ts.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                )
            };
            if let Some(d) = &item.dimension {
                check_text(d).map_err(|what| invalid(at("Dimension"), what))?;
            }
            let ts = item.time_stamp.as_deref().map(|stamp| {
                DateTime::parse_from_rfc3339(stamp.trim())
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| (stamp, e))
            });
            let Some(value) = item.value else {
                // A null value had no traffic: not a point, whatever else the item lacks. Where
                // its dimension value and time are readable, it still says "no traffic" there,
                // which another item may not contradict.
                if let (Some(d), Some(Ok(ts))) = (item.dimension, ts) {
                    seen.note((slot, d.clone(), ts), None, &item_at)
                        .map_err(|two| two_values(two, &d, ts))?;
                }
                continue;
            };
            if !value.is_finite() {
                return Err(invalid(
                    at("Value"),
                    format!("{value} is not a finite number"),
                ));
            }
            let Some(dimension_value) = item.dimension else {
                return Err(invalid(
                    at("Dimension"),
                    "missing; a value needs the dimension value it belongs to".into(),
                ));
            };
            let ts = match ts {
                None => {
                    return Err(invalid(
                        at("TimeStamp"),
                        "missing; a value needs its time".into(),
                    ));
                }
                Some(Err((stamp, e))) => {
                    return Err(invalid(
                        at("TimeStamp"),
                        format!("{} is not an RFC 3339 time ({e})", shown(stamp)),
                    ));
                }
                Some(Ok(ts)) => ts,
            };
            let first = seen
                .note((slot, dimension_value.clone(), ts), Some(value), &item_at)
                .map_err(|two| two_values(two, &dimension_value, ts))?;
            // The same value twice is kept once.
            if first {
                series[slot].points.push(DistributionPoint {
                    dimension_value,
                    ts,
                    value,
                });
            }
        }
    }
    Ok(FetchedDistribution { request_id, series })
}

/// Accepts an answer only if the requested indicator came back (some returned `Name` contains it), as
/// the planner's rule 7 asks of `ListQuality`: otherwise a retried [`ApiError::MissingIndicators`].
pub fn require_requested(
    fetched: FetchedDistribution,
    requested: &str,
) -> Result<FetchedDistribution, ApiError> {
    let returned: Vec<&str> = fetched.series.iter().map(|s| s.name.as_str()).collect();
    require_names(&returned, &[requested.to_string()], &fetched.request_id)?;
    Ok(fetched)
}

impl WindowApi for ListQualityDistributionRequest {
    /// One local day of the stream's one indicator by its dimension.
    fn for_window(
        stream: &Stream,
        window: Window,
        _indicators: &[String],
        tz: FixedOffset,
    ) -> ListQualityDistributionRequest {
        let d = stream.distribution.as_ref().expect("a distribution stream");
        ListQualityDistributionRequest::for_window(
            &stream.job.app_id,
            window,
            tz,
            &stream.job.indicators[0],
            d.dimension,
            stream.job.product_type,
            Some(d.platform.as_str()),
        )
    }
    fn batch(answer: &FetchedDistribution, w: &Fetch<'_>, settled_until: DateTime<Utc>) -> Split {
        Split {
            batch: distribution_batch(w, answer, settled_until),
            off_grid: OffGrid::default(),
        }
    }
}

/// The batch to commit for a fetched day: one series per returned name and dimension value, settled
/// when the day ends at or before `settled_until`.
///
/// The API's time grid for this call is not documented, so every `TimeStamp` inside the day is kept
/// as returned; points outside the day (such as the next midnight) are dropped, and not counted.
pub fn distribution_batch(
    f: &Fetch<'_>,
    fetched: &FetchedDistribution,
    settled_until: DateTime<Utc>,
) -> WindowBatch {
    let stream = f.stream;
    let scope = stream.scope();
    let mut series: BTreeMap<(&str, &str), Vec<Point>> = BTreeMap::new();
    for s in &fetched.series {
        for p in s.points.iter().filter(|p| f.window.contains(p.ts)) {
            series
                .entry((s.name.as_str(), p.dimension_value.as_str()))
                .or_default()
                .push(Point {
                    ts: p.ts,
                    value: p.value,
                });
        }
    }
    WindowBatch {
        stream: stream.key.clone(),
        indicators: stream.job.indicators.clone(),
        owners: stream.job.indicators.clone(),
        window: f.window,
        // A day's values are one answer: the whole day is settled, or none of it.
        settled_until: if f.window.end <= settled_until {
            f.window.end
        } else {
            f.window.start
        },
        timezone: offset_text(stream.timezone),
        series: series
            .into_iter()
            .map(|((name, value), points)| SeriesPoints {
                key: SeriesKey {
                    indicator: name.to_string(),
                    dimension_value: value.to_string(),
                    ..scope.clone()
                },
                // ListQualityDistribution returns no unit.
                unit: String::new(),
                points,
            })
            .collect(),
        scope,
        attempts: f.attempts,
        request_id: Some(fetched.request_id.clone()),
        fetched_at: f.fetched_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ErrorScope;
    use crate::domain::{Granularity, WindowState};
    use chrono::TimeZone;

    fn body(result: &str) -> Vec<u8> {
        format!(
            r#"{{"ResponseMetadata":{{"RequestId":"rid-3","Action":"ListQualityDistribution","Version":"2020-12-01"}},"Result":{result}}}"#
        )
        .into_bytes()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn the_body_is_the_sdk_vector_byte_for_byte() {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/data/sign-vectors-more.json")).unwrap();
        let vector = v
            .iter()
            .find(|v| v["name"] == "post_list_quality_distribution")
            .unwrap();
        let req = ListQualityDistributionRequest {
            app_id: "5f3e1b2c9d8a7f6e5d4c3b2a".into(),
            start_time: "2024-01-15T00:00:00+08:00".into(),
            end_time: "2024-01-16T00:00:00+08:00".into(),
            indicator: "stall_rate".into(),
            dimension: Dimension::Province,
            product_type: Some("native".into()),
            platform: None,
        };
        let bytes = serde_json::to_vec(&req).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            vector["body"].as_str().unwrap()
        );

        let with_platform = ListQualityDistributionRequest {
            dimension: Dimension::Os,
            product_type: None,
            platform: Some("ios".into()),
            ..req
        };
        let json = serde_json::to_value(&with_platform).unwrap();
        assert_eq!(json["Dimension"], "OS");
        assert_eq!(json["Indicator"], "stall_rate", "one string, not an array");
        assert_eq!(json["Platform"], "ios");
        assert!(json.get("ProductType").is_none());
        assert!(json.get("AggregateGranularity").is_none());
    }

    #[test]
    fn a_day_is_asked_in_the_configured_offset() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let day = Window::new(utc(2024, 1, 14, 16), utc(2024, 1, 15, 16));
        let req = ListQualityDistributionRequest::for_window(
            "5f3e1b2c9d8a7f6e5d4c3b2a",
            day,
            tz,
            "stall_rate",
            Dimension::Province,
            ProductType::Native,
            Some(""),
        );
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"AppId":"5f3e1b2c9d8a7f6e5d4c3b2a","StartTime":"2024-01-15T00:00:00+08:00","EndTime":"2024-01-16T00:00:00+08:00","Indicator":"stall_rate","Dimension":"Province","ProductType":"native"}"#
        );
        let req = ListQualityDistributionRequest::for_window(
            "a",
            day,
            tz,
            "x",
            Dimension::Access,
            ProductType::Web,
            Some("web"),
        );
        assert_eq!(req.product_type.as_deref(), Some("web"));
        assert_eq!(req.platform.as_deref(), Some("web"));
    }

    #[test]
    fn chinese_dimension_values_nulls_and_a_missing_unit_are_read() {
        let f = interpret(
            200,
            None,
            &body(
                r#"{"Indicators":[{"Name":"stall_rate","Data":[
                    {"Dimension":"广东","TimeStamp":"2024-01-15T00:00:00+08:00","Value":1.25},
                    {"Dimension":"北京","TimeStamp":"2024-01-15T00:00:00+08:00","Value":null},
                    {"Dimension":"香港","TimeStamp":"2024-01-15T00:00:00+08:00"},
                    {"TimeStamp":"2024-01-15T00:00:00+08:00","Value":null},
                    {"Dimension":"","TimeStamp":"2024-01-14T16:00:00Z","Value":0},
                    {"Dimension":"US","TimeStamp":"2024-01-15T00:00:00-05:00","Value":3.5,"Extra":1}
                ]}]}"#,
            ),
        )
        .unwrap();
        assert_eq!(f.request_id, "rid-3");
        assert_eq!(f.series.len(), 1);
        assert_eq!(f.series[0].name, "stall_rate");
        let p = |d: &str, ts, value| DistributionPoint {
            dimension_value: d.into(),
            ts,
            value,
        };
        assert_eq!(
            f.series[0].points,
            vec![
                p("广东", utc(2024, 1, 14, 16), 1.25),
                p("", utc(2024, 1, 14, 16), 0.0),
                p("US", utc(2024, 1, 15, 5), 3.5),
            ]
        );
        assert_eq!(f.point_count(), 3);
    }

    #[test]
    fn missing_fields_are_tolerated_where_they_carry_nothing() {
        // No Indicators, no Data: an answer without the indicator (rejected by require_requested only).
        let f = interpret(200, None, &body("{}")).unwrap();
        assert!(f.series.is_empty());
        let f = interpret(200, None, &body(r#"{"Indicators":[{"Name":"x"}]}"#)).unwrap();
        assert_eq!(f.series[0].points, vec![]);
    }

    #[test]
    fn broken_items_name_the_field_and_the_request_id() {
        let cases = [
            (
                r#"{"Indicators":[{"Name":"s","Data":[{"TimeStamp":"2024-01-15T00:00:00+08:00","Value":1}]}]}"#,
                "invalid response: Result.Indicators[0].Data[0].Dimension: missing",
            ),
            (
                r#"{"Indicators":[{"Name":"s","Data":[{"Dimension":"广东","Value":1}]}]}"#,
                "invalid response: Result.Indicators[0].Data[0].TimeStamp: missing",
            ),
            (
                r#"{"Indicators":[{"Name":"s","Data":[{"Dimension":"广东","TimeStamp":"today","Value":1}]}]}"#,
                "Result.Indicators[0].Data[0].TimeStamp: \"today\" is not an RFC 3339 time",
            ),
            (
                r#"{"Indicators":[{"Name":"s","Data":[{"Dimension":5,"TimeStamp":"2024-01-15T00:00:00Z","Value":1}]}]}"#,
                "invalid response: Result.Indicators[0].Data[0].Dimension: invalid type",
            ),
            (
                r#"{"Indicators":[{"Name":" ","Data":[]}]}"#,
                "invalid response: Result.Indicators[0].Name: empty",
            ),
            (
                r#"{"Indicators":[{"Data":[]}]}"#,
                "invalid response: Result.Indicators[0]: missing field `Name`",
            ),
        ];
        for (result, want) in cases {
            let e = interpret(200, None, &body(result)).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(want), "{text:?} lacks {want:?}");
            assert!(text.contains("RequestId rid-3"), "{text}");
            // The wrong shape would come again, as for ListQuality.
            assert!(!e.is_retryable(), "{text}");
        }
        let e = interpret(200, None, br#"{"ResponseMetadata":{"RequestId":"r"}}"#).unwrap_err();
        assert!(e.to_string().contains("Result: missing"), "{e}");
    }

    /// Issue 18 item 6, for distributions: one value per Name, dimension value and TimeStamp
    /// (compared as instants), the same value twice kept once; `Data: null` and `Indicators: null`
    /// read as absent.
    #[test]
    fn item_06_one_value_per_name_dimension_value_and_instant() {
        let item = |d: &str, ts: &str, v: &str| {
            format!(r#"{{"Dimension":"{d}","TimeStamp":"{ts}","Value":{v}}}"#)
        };
        let result = |series: &[(&str, Vec<String>)]| {
            let s: Vec<String> = series
                .iter()
                .map(|(name, items)| format!(r#"{{"Name":"{name}","Data":[{}]}}"#, items.join(",")))
                .collect();
            body(&format!(r#"{{"Indicators":[{}]}}"#, s.join(",")))
        };
        let (east, z) = ("2024-01-15T00:00:00+08:00", "2024-01-14T16:00:00Z");

        // The same value twice (in two offsets, in two series of one Name): one point. Another
        // dimension value at the same instant is another point.
        let f = interpret(
            200,
            None,
            &result(&[
                (
                    "stall_rate",
                    vec![
                        item("广东", east, "1.25"),
                        item("广东", z, "1.25"),
                        item("北京", z, "2"),
                    ],
                ),
                ("stall_rate", vec![item("广东", east, "1.25")]),
            ]),
        )
        .unwrap();
        assert_eq!(f.series.len(), 1);
        assert_eq!(
            f.series[0].points,
            vec![
                DistributionPoint {
                    dimension_value: "广东".into(),
                    ts: utc(2024, 1, 14, 16),
                    value: 1.25
                },
                DistributionPoint {
                    dimension_value: "北京".into(),
                    ts: utc(2024, 1, 14, 16),
                    value: 2.0
                },
            ]
        );

        let cases = [
            (
                vec![(
                    "stall_rate",
                    vec![item("广东", east, "1.25"), item("广东", z, "1.5")],
                )],
                "Result.Indicators[0].Data[1].Value: 1.5 differs from 1.25, given at Result.Indicators[0].Data[0], for the same Name (\"stall_rate\"), Dimension (\"广东\") and TimeStamp (2024-01-14T16:00:00Z)",
            ),
            (
                vec![
                    ("stall_rate", vec![item("US", z, "3")]),
                    ("stall_rate", vec![item("US", east, "null")]),
                ],
                "Result.Indicators[1].Data[0].Value: null differs from 3, given at Result.Indicators[0].Data[0],",
            ),
        ];
        for (series, want) in cases {
            let e = interpret(200, None, &result(&series)).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, ApiError::InvalidResponse { .. }), "{e:?}");
            assert!(text.contains(want), "{text:?} lacks {want:?}");
            assert!(text.contains("RequestId rid-3"), "{text}");
        }

        let f = interpret(
            200,
            None,
            &body(r#"{"Indicators":[{"Name":"stall_rate","Data":null}]}"#),
        )
        .unwrap();
        assert_eq!(f.point_count(), 0);
        assert!(require_requested(f, "stall_rate").is_ok(), "no traffic");
        let f = interpret(200, None, &body(r#"{"Indicators":null}"#)).unwrap();
        let e = require_requested(f, "stall_rate").unwrap_err();
        assert!(
            matches!(e, ApiError::MissingIndicators { .. }) && e.is_retryable(),
            "{e:?}"
        );
    }

    /// Issue 18 item 11, for distributions: a Name or dimension value with a control character or
    /// over 256 bytes makes the answer invalid, shown escaped and cut.
    #[test]
    fn item_11_names_and_dimension_values_with_control_characters_or_over_256_bytes_are_invalid() {
        let answer = |name: &str, dimension: &str, value: serde_json::Value| {
            let result = serde_json::json!({"Indicators": [
                {"Name": "stall_rate", "Data": [{"Dimension": "广东", "TimeStamp": "2024-01-15T00:00:00+08:00", "Value": 1}]},
                {"Name": name, "Data": [
                    {"Dimension": "北京", "TimeStamp": "2024-01-15T00:00:00+08:00", "Value": 1},
                    {"Dimension": dimension, "TimeStamp": "2024-01-15T00:00:00+08:00", "Value": value}]}
            ]});
            interpret(200, None, &body(&result.to_string()))
        };
        let long = "广".repeat(100);
        let cases = [
            (
                "stall\0rate",
                "x",
                serde_json::json!(1),
                "Result.Indicators[1].Name: \"stall\\u{0}rate\" holds a control character",
            ),
            (
                "stall_rate_2",
                "广东\0",
                serde_json::json!(1),
                "Result.Indicators[1].Data[1].Dimension: \"广东\\u{0}\" holds a control character",
            ),
            // Even where the value is null: the answer is not what the API documents.
            (
                "stall_rate_2",
                "\u{1b}]0;x\u{7}",
                serde_json::Value::Null,
                "Result.Indicators[1].Data[1].Dimension: \"\\u{1b}]0;x\\u{7}\" holds",
            ),
            (
                "stall_rate_2",
                long.as_str(),
                serde_json::json!(1),
                "Result.Indicators[1].Data[1].Dimension: \"广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广广…\" is 300 bytes long",
            ),
        ];
        for (name, dimension, value, want) in cases {
            let e = answer(name, dimension, value).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(want), "{text:?} lacks {want:?}");
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert!(!e.is_retryable());
        }
        let f = answer("stall_rate_2", &"广".repeat(85), serde_json::json!(2)).unwrap();
        assert_eq!(f.point_count(), 3);
    }

    #[test]
    fn an_error_envelope_is_the_error_and_classified_as_for_list_quality() {
        let e = interpret(
            400,
            None,
            br#"{"ResponseMetadata":{"RequestId":"rid-4","Error":{"Code":"InvalidParameter","Message":"Indicator must be a string"}},"Result":"x"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), Some("InvalidParameter"));
        assert_eq!(e.request_id(), Some("rid-4"));
        assert!(!e.is_retryable());
        let e = interpret(429, None, b"<html/>").unwrap_err();
        assert!(e.is_throttled() && e.is_retryable());
    }

    #[test]
    fn an_answer_without_the_requested_indicator_is_retried() {
        let f = interpret(
            200,
            None,
            &body(r#"{"Indicators":[{"Name":"join_room_success_rate","Data":[]}]}"#),
        )
        .unwrap();
        let e = require_requested(f.clone(), "stall_rate").unwrap_err();
        assert!(matches!(e, ApiError::MissingIndicators { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert_eq!(e.scope(), ErrorScope::Window);
        assert!(
            e.to_string().contains("returned: join_room_success_rate"),
            "{e}"
        );
        // A returned name containing the requested one is it (`5s_join_room_success_rate`).
        assert!(require_requested(f, "join_room_success_rate").is_ok());
        let empty = interpret(200, None, &body("{}")).unwrap();
        let e = require_requested(empty, "stall_rate").unwrap_err();
        assert!(e.to_string().contains("no indicator at all"), "{e}");
    }

    /// 2026-11-26T00:00:00Z plus `hours`.
    fn h(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap() + chrono::Duration::hours(hours)
    }

    fn plus8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn a_distribution_day_keeps_what_lies_inside_it_as_returned() {
        let day = Window::new(h(-8), h(16));
        let p = |v: &str, ts: DateTime<Utc>, value: f64| DistributionPoint {
            dimension_value: v.into(),
            ts,
            value,
        };
        let fetched = FetchedDistribution {
            request_id: "req-1".into(),
            series: vec![DistributionSeries {
                name: "80ms_audio_stall_rate".into(),
                points: vec![
                    p("广东", h(-8), 1.5),
                    // Off any grid, but inside the asked day: kept as returned.
                    p("广东", h(3), 1.25),
                    p("北京", h(-8), 2.0),
                    // The next midnight belongs to the next day.
                    p("北京", h(16), 9.0),
                ],
            }],
        };
        let job = crate::domain::DistributionJob {
            name: "where".into(),
            app_id: "app1".into(),
            indicators: vec!["stall_rate".into()],
            dimensions: vec![crate::domain::Dimension::Province],
            product_type: ProductType::Native,
            platform: String::new(),
        };
        let stream = job.streams(plus8()).remove(0);
        let f = Fetch {
            stream: &stream,
            window: day,
            indicators: &stream.job.indicators,
            attempts: 2,
            fetched_at: h(60),
            timezone: plus8(),
        };
        let b = distribution_batch(&f, &fetched, h(40));
        assert_eq!(b.parts(), [(day, WindowState::Settled)]);
        assert_eq!(b.indicators, ["stall_rate"]);
        assert_eq!((b.window, b.attempts), (day, 2));
        let got: Vec<(&str, &str, Vec<f64>)> = b
            .series
            .iter()
            .map(|s| {
                (
                    s.key.dimension.as_str(),
                    s.key.dimension_value.as_str(),
                    s.points.iter().map(|p| p.value).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("Province", "北京", vec![2.0]),
                ("Province", "广东", vec![1.5, 1.25]),
            ]
        );
        assert!(
            b.series
                .iter()
                .all(|s| s.key.indicator == "80ms_audio_stall_rate"
                    && s.key.granularity == Granularity::Day
                    && s.key.grid_timezone == "+08:00"
                    && s.unit.is_empty())
        );
        // Fetched too early to be final: the whole day is provisional, never half of it.
        assert_eq!(
            distribution_batch(&f, &fetched, h(15)).parts(),
            [(day, WindowState::Provisional)]
        );
    }
}
