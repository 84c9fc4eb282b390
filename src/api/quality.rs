//! `ListQuality` (volc-openapi.md sections 1 to 4): the body of one call for a window of a stream,
//! its answer checked field by field into points, and the batch those points become: the buckets
//! that start inside the window and on the stream's grid, one series per returned name.
//!
//! **Invariant:** a broken answer is an `invalid response` error naming the field, never a panic; no
//! answer without every requested indicator, or of another granularity than asked, leaves
//! [`ListQualityRequest::answer`]; no (Name, instant) leaves it twice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::api::answer::{OneValuePerKey, Opened, check_text, open, require_names, shown};
use crate::api::error::ApiError;
use crate::api::wire::{self, ListQualityRequest, ListQualityResult};
use crate::api::{Action, Fetch, OffGrid, Reply, Split, WindowApi, asked_time};
use crate::config::SourceSettings;
use crate::domain::{Point, SeriesKey, SeriesPoints, Stream, Window, WindowBatch, offset_text};
use crate::planner::floor_to;

pub use crate::api::wire::ACTION;

/// What one successful call returned, checked and converted to domain points.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// `ResponseMetadata.RequestId` (empty if the server sent none).
    pub request_id: String,
    pub indicators: Vec<FetchedIndicator>,
}

/// One returned series: `name` is what the API returned, which is not always the indicator asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedIndicator {
    pub name: String,
    pub unit: String,
    /// Buckets in the order the API sent them; buckets with a `null` value (no traffic) are left out.
    pub points: Vec<Point>,
}

impl Fetched {
    pub fn point_count(&self) -> usize {
        self.indicators.iter().map(|i| i.points.len()).sum()
    }
}

/// The `ListQuality` body for one window of one stream: times in the configured offset at second precision,
/// every indicator of the job in one call, and the filters only when set.
/// The call for `window` of `stream`, asking `indicators` (the stream's, or those that need the window).
pub fn request_for(
    stream: &Stream,
    window: Window,
    indicators: &[String],
    tz: FixedOffset,
) -> ListQualityRequest {
    let job = &stream.job;
    ListQualityRequest {
        app_id: job.app_id.clone(),
        start_time: asked_time(window.start, tz),
        end_time: asked_time(window.end, tz),
        indicator: indicators.to_vec(),
        aggregate_granularity: stream.granularity.as_str().to_string(),
        product_type: Some(job.product_type.as_str().to_string()),
        os: job.os.clone(),
        access: job.access.clone(),
        room_id: (!job.room_id.is_empty()).then(|| job.room_id.clone()),
        user_id: job.user_ids.clone(),
    }
}

impl Action for ListQualityRequest {
    const NAME: &'static str = wire::ACTION;
    type Answer = Fetched;
    crate::api::json_request!();
    fn requests_per_second(source: &SourceSettings) -> f64 {
        source.requests_per_second
    }
    /// [`answer_for`] this request.
    fn answer(&self, r: &Reply<'_>) -> Result<Fetched, ApiError> {
        answer_for(self, r.status, r.retry_after, r.body)
    }
}

/// Turns a status and a body into the result of a call. Pure, so every malformed answer is tested without a server.
///
/// Beyond the shape, an answer is invalid (PRODUCT.md, the planner's rule 7) when a `Name` or `Unit`
/// holds a control character or is longer than [`crate::api::answer::MAX_TEXT_BYTES`], or when it gives two different
/// values for one `Name` and `TimeStamp` (compared as instants; a `null` counts as a value: no
/// traffic). The same value twice is kept once, and a `Name` returned in two series is one series.
/// `Data: null` is no traffic and `Unit: null` is `''`.
pub fn interpret(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Fetched, ApiError> {
    read(&Reply {
        status,
        retry_after,
        body,
    })
    .map(|(fetched, _)| fetched)
}

/// What a `ListQuality` answer to `req` becomes: [`interpret`], then the answer's
/// `AggregateGranularity` must be the one asked (a missing or empty one is accepted; another one would
/// store its buckets under the wrong granularity, and settle them), then [`require_requested`].
pub fn answer_for(
    req: &ListQualityRequest,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Fetched, ApiError> {
    let (fetched, granularity) = read(&Reply {
        status,
        retry_after,
        body,
    })?;
    let got = granularity.trim();
    let asked = req.aggregate_granularity.as_str();
    if !got.is_empty() && !got.eq_ignore_ascii_case(asked) {
        return Err(ApiError::InvalidResponse {
            path: "Result.AggregateGranularity".into(),
            what: format!(
                "expected {}, got {}: the answer is for another granularity than asked, and its buckets are never stored as {asked}; the window fails and the next run asks again",
                shown(asked),
                shown(got)
            ),
            request_id: Some(fetched.request_id.clone()).filter(|id| !id.is_empty()),
            not_json: false,
        });
    }
    require_requested(fetched, &req.indicator)
}

/// [`interpret`], and the answer's `AggregateGranularity` as returned (`''` if none).
fn read(reply: &Reply<'_>) -> Result<(Fetched, String), ApiError> {
    // The RequestId comes back with its control characters escaped (`check_envelope`).
    let Opened {
        request_id,
        result,
        invalid,
    } = open::<ListQualityResult>(reply.status, reply.retry_after, reply.body)?;
    let invalid = |path: String, what: String| invalid.at(path, what);

    let mut indicators: Vec<FetchedIndicator> = Vec::with_capacity(result.indicators.len());
    // Per returned name: its series in `indicators`, and the index of the entry that gave its unit.
    let mut series_of: HashMap<String, (usize, usize)> = HashMap::new();
    // One value per (series, instant).
    let mut seen = OneValuePerKey::new();
    for (i, indicator) in result.indicators.into_iter().enumerate() {
        let at = |field: &str| format!("Result.Indicators[{i}].{field}");
        if indicator.name.trim().is_empty() {
            return Err(invalid(
                at("Name"),
                "empty; every series needs a name".into(),
            ));
        }
        check_text(&indicator.name).map_err(|what| invalid(at("Name"), what))?;
        check_text(&indicator.unit).map_err(|what| invalid(at("Unit"), what))?;
        let slot = match series_of.get(&indicator.name) {
            Some(&(slot, first)) => {
                let unit = &indicators[slot].unit;
                if *unit != indicator.unit {
                    return Err(invalid(
                        at("Unit"),
                        format!(
                            "{} differs from {}, the Unit of the same Name in Result.Indicators[{first}]; the window fails and the next run asks again",
                            shown(&indicator.unit),
                            shown(unit)
                        ),
                    ));
                }
                slot
            }
            None => {
                series_of.insert(indicator.name.clone(), (indicators.len(), i));
                indicators.push(FetchedIndicator {
                    name: indicator.name,
                    unit: indicator.unit,
                    points: Vec::with_capacity(indicator.data.len()),
                });
                indicators.len() - 1
            }
        };
        for (j, item) in indicator.data.iter().enumerate() {
            let at = |field: &str| format!("Result.Indicators[{i}].Data[{j}].{field}");
            let ts =
                DateTime::parse_from_rfc3339(item.time_stamp.trim()).map(|t| t.with_timezone(&Utc));
            let (ts, value) = match (ts, item.value) {
                (Ok(ts), value) => (ts, value),
                // A null value is a bucket without traffic: not a point, and not an error, whatever
                // its time stamp says.
                (Err(_), None) => continue,
                (Err(e), Some(_)) => {
                    return Err(invalid(
                        at("TimeStamp"),
                        format!("{} is not an RFC 3339 time ({e})", shown(&item.time_stamp)),
                    ));
                }
            };
            if let Some(value) = value.filter(|v| !v.is_finite()) {
                return Err(invalid(
                    at("Value"),
                    format!("{value} is not a finite number"),
                ));
            }
            let item = format!("Result.Indicators[{i}].Data[{j}]");
            let first = seen.note((slot, ts), value, &item).map_err(|two| {
                invalid(
                    at("Value"),
                    format!(
                        "{two} for the same Name ({}) and TimeStamp ({}); the window fails and the next run asks again",
                        shown(&indicators[slot].name),
                        ts.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                )
            })?;
            // The same value twice is kept once; a null is no point.
            if let (true, Some(value)) = (first, value) {
                indicators[slot].points.push(Point { ts, value });
            }
        }
    }
    Ok((
        Fetched {
            request_id,
            indicators,
        },
        result.aggregate_granularity,
    ))
}

/// Accepts an answer only if every requested indicator came back: some returned `Name` contains it
/// (PRODUCT.md, the planner's rule 7). `Result` `{}`, no or empty `Indicators`, or names that contain
/// none of a requested indicator make a [`ApiError::MissingIndicators`], which is retried; an
/// indicator that came back with no data points had no traffic and is fine.
///
/// This is the one place the check is made, so no caller can record such an answer as fetched.
pub fn require_requested(fetched: Fetched, requested: &[String]) -> Result<Fetched, ApiError> {
    let returned: Vec<&str> = fetched.indicators.iter().map(|i| i.name.as_str()).collect();
    require_names(&returned, requested, &fetched.request_id)?;
    Ok(fetched)
}

impl WindowApi for ListQualityRequest {
    fn for_window(
        stream: &Stream,
        window: Window,
        indicators: &[String],
        tz: FixedOffset,
    ) -> ListQualityRequest {
        request_for(stream, window, indicators, tz)
    }
    fn batch(answer: &Fetched, w: &Fetch<'_>, settled_until: DateTime<Utc>) -> Split {
        split(w, answer, settled_until)
    }
}

/// The batch to commit: the points inside the window and on the grid, settled before
/// `settled_until` and provisional from it on; and the off-grid points left out.
pub fn split(f: &Fetch<'_>, fetched: &Fetched, settled_until: DateTime<Utc>) -> Split {
    let (series, off_grid) = by_name(f, fetched);
    let batch = WindowBatch {
        stream: f.stream.key.clone(),
        indicators: f.indicators.to_vec(),
        owners: f.stream.job.indicators.clone(),
        window: f.window,
        settled_until: settled_until.clamp(f.window.start, f.window.end),
        scope: f.stream.scope(),
        timezone: offset_text(f.timezone),
        series: series
            .into_iter()
            .map(|(name, (unit, points))| SeriesPoints {
                key: SeriesKey {
                    indicator: name.to_string(),
                    ..f.stream.scope()
                },
                unit: unit.to_string(),
                points,
            })
            .collect(),
        attempts: f.attempts,
        request_id: Some(fetched.request_id.clone()),
        fetched_at: f.fetched_at,
    };
    Split { batch, off_grid }
}

/// The points inside the window and on the grid per indicator name, in name order (a name listed
/// twice keeps its first unit and all its points), and the off-grid points inside the window.
fn by_name<'a>(
    f: &Fetch<'_>,
    fetched: &'a Fetched,
) -> (BTreeMap<&'a str, (&'a str, Vec<Point>)>, OffGrid) {
    let g = f.stream.granularity;
    let mut by_name: BTreeMap<&str, (&str, Vec<Point>)> = BTreeMap::new();
    let mut off_grid = OffGrid::default();
    for ind in &fetched.indicators {
        let (_, points) = by_name
            .entry(ind.name.as_str())
            .or_insert_with(|| (ind.unit.as_str(), Vec::new()));
        // Whether EndTime is inclusive is undocumented: keep only buckets that start inside.
        for p in ind.points.iter().filter(|p| f.window.contains(p.ts)) {
            if floor_to(p.ts, g, f.timezone) == p.ts {
                points.push(*p);
            } else {
                off_grid.count += 1;
                off_grid.example = Some(off_grid.example.map_or(p.ts, |e| e.min(p.ts)));
            }
        }
    }
    (by_name, off_grid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ErrorScope;
    use crate::domain::Granularity;
    use crate::domain::{Job, ProductType};
    use chrono::TimeZone;

    fn stream(room: &str, users: &[&str], os: &[&str]) -> Stream {
        Stream {
            name: "j/1d".into(),
            key: String::new(),
            granularity: Granularity::Day,
            distribution: None,
            timezone: FixedOffset::east_opt(8 * 3600).unwrap(),
            aliases: Vec::new(),
            room: None,
            job: Job {
                name: "j".into(),
                app_id: "app".into(),
                indicators: vec!["stall_rate".into(), "join_room_success_rate".into()],
                granularities: vec![Granularity::Day],
                product_type: ProductType::Native,
                os: os.iter().map(|s| s.to_string()).collect(),
                access: vec![],
                room_id: room.into(),
                user_ids: users.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    fn window() -> Window {
        Window::new(
            Utc.with_ymd_and_hms(2021, 7, 23, 16, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2021, 7, 24, 16, 0, 0).unwrap(),
        )
    }

    #[test]
    fn request_body_uses_the_configured_offset_and_omits_unset_filters() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let s = stream("", &[], &[]);
        let req = request_for(&s, window(), &s.job.indicators, tz);
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "AppId": "app",
                "StartTime": "2021-07-24T00:00:00+08:00",
                "EndTime": "2021-07-25T00:00:00+08:00",
                "Indicator": ["stall_rate", "join_room_success_rate"],
                "AggregateGranularity": "1d",
                "ProductType": "native",
            })
        );

        let utc = FixedOffset::east_opt(0).unwrap();
        let s = stream("r1", &["u1", "u2"], &["iOS"]);
        let req = request_for(&s, window(), &s.job.indicators, utc);
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["StartTime"], "2021-07-23T16:00:00+00:00");
        assert_eq!(json["RoomId"], "r1");
        assert_eq!(json["UserId"], serde_json::json!(["u1", "u2"]));
        assert_eq!(json["OS"], serde_json::json!(["iOS"]));
        assert!(json.get("Access").is_none());
    }

    fn ok_body(data: &str) -> Vec<u8> {
        format!(
            r#"{{"ResponseMetadata":{{"RequestId":"rid-7","Action":"ListQuality"}},
               "Result":{{"AggregateGranularity":"1d","Indicators":[{{"Name":"5s_join_room_success_rate","Unit":"%","Data":{data}}}]}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn points_are_converted_to_utc_and_null_buckets_dropped() {
        let f = interpret(
            200,
            None,
            &ok_body(
                r#"[{"TimeStamp":"2021-07-24T00:00:00+08:00","Value":98.68},
                    {"TimeStamp":"2021-07-25T00:00:00+08:00","Value":null},
                    {"TimeStamp":"2021-07-25T16:00:00Z","Value":0}]"#,
            ),
        )
        .unwrap();
        assert_eq!(f.request_id, "rid-7");
        assert_eq!(f.indicators[0].name, "5s_join_room_success_rate");
        assert_eq!(f.indicators[0].unit, "%");
        assert_eq!(
            f.indicators[0].points,
            vec![
                Point {
                    ts: Utc.with_ymd_and_hms(2021, 7, 23, 16, 0, 0).unwrap(),
                    value: 98.68
                },
                Point {
                    ts: Utc.with_ymd_and_hms(2021, 7, 25, 16, 0, 0).unwrap(),
                    value: 0.0
                },
            ]
        );
    }

    /// What `list_quality` does with a body: parse it, then require every requested indicator.
    fn answer(body: &str, requested: &[&str]) -> Result<Fetched, ApiError> {
        let requested: Vec<String> = requested.iter().map(|s| s.to_string()).collect();
        interpret(200, None, body.as_bytes()).and_then(|f| require_requested(f, &requested))
    }

    #[test]
    fn an_answer_without_a_requested_indicator_is_retried_and_says_what_is_missing() {
        let meta = r#""ResponseMetadata":{"RequestId":"rid-9","Action":"ListQuality"}"#;
        let series =
            |name: &str, data: &str| format!(r#"{{"Name":"{name}","Unit":"%","Data":{data}}}"#);
        let point = r#"[{"TimeStamp":"2021-07-24T00:00:00+08:00","Value":1.5}]"#;
        let requested = ["join_room_success_rate", "stall_rate"];
        // (Result, what the message must say)
        let cases = [
            (
                "{}".to_string(),
                "no `join_room_success_rate`, `stall_rate` (returned: no indicator at all)",
            ),
            (
                r#"{"AggregateGranularity":"1d"}"#.to_string(),
                "no `join_room_success_rate`, `stall_rate` (returned: no indicator at all)",
            ),
            (
                r#"{"AggregateGranularity":"1d","Indicators":[]}"#.to_string(),
                "no `join_room_success_rate`, `stall_rate` (returned: no indicator at all)",
            ),
            (
                format!(
                    r#"{{"Indicators":[{},{}]}}"#,
                    series("5s_join_room_success_rate", point),
                    series("10s_join_room_success_rate", "[]")
                ),
                "the answer has no `stall_rate` (returned: 5s_join_room_success_rate, 10s_join_room_success_rate)",
            ),
            (
                format!(r#"{{"Indicators":[{}]}}"#, series("stall", point)),
                "no `join_room_success_rate`, `stall_rate` (returned: stall)",
            ),
        ];
        for (result, want) in cases {
            let body = format!(r#"{{{meta},"Result":{result}}}"#);
            let e = answer(&body, &requested).unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(e, ApiError::MissingIndicators { .. }),
                "{result}: {e:?}"
            );
            assert!(text.contains(want), "{result}: {text:?} lacks {want:?}");
            assert!(text.contains("(RequestId rid-9)"), "{text}");
            assert_eq!(e.request_id(), Some("rid-9"));
            assert!(e.is_retryable(), "{text}");
            assert_eq!(e.scope(), ErrorScope::Window);
        }

        // Every requested indicator present, one of them with no data (no traffic), another with
        // only null values: a complete answer.
        let body = format!(
            r#"{{{meta},"Result":{{"Indicators":[{},{},{}]}}}}"#,
            series("5s_join_room_success_rate", "[]"),
            series(
                "80ms_audio_stall_rate",
                r#"[{"TimeStamp":"2021-07-24T00:00:00+08:00","Value":null}]"#
            ),
            series("video_stall_rate", point),
        );
        let f = answer(&body, &requested).unwrap();
        assert_eq!(f.point_count(), 1);
        // A name that is not asked for does not hurt.
        let body = format!(
            r#"{{{meta},"Result":{{"Indicators":[{},{}]}}}}"#,
            series("stall_rate", "[]"),
            series("something_else", point),
        );
        assert!(answer(&body, &["stall_rate"]).is_ok());
    }

    #[test]
    fn malformed_bodies_name_the_field_and_the_request_id() {
        // (body, what the message says, not JSON, the RequestId it can name)
        let cases: &[(&[u8], &str, bool, Option<&str>)] = &[
            (
                b"<html>bad gateway</html>",
                "invalid response: body: not JSON",
                true,
                None,
            ),
            (
                b"{\"ResponseMetadata\":{\"RequestId\":\"rid-7\"}",
                "not JSON",
                true,
                None,
            ),
            (
                b"{\"ResponseMetadata\":{\"RequestId\":\"rid-7\"}} trailing",
                "not JSON",
                true,
                None,
            ),
            (
                br#"{"ResponseMetadata":{"RequestId":5}}"#,
                "invalid response: ResponseMetadata.RequestId: invalid type",
                false,
                None,
            ),
            (
                &ok_body(r#"[{"TimeStamp":"2021-07-24T00:00:00+08:00","Value":"NaN"}]"#),
                "invalid response: Result.Indicators[0].Data[0].Value: invalid type: string \"NaN\"",
                false,
                Some("rid-7"),
            ),
            (
                &ok_body(r#"[{"TimeStamp":"yesterday","Value":1.5}]"#),
                "invalid response: Result.Indicators[0].Data[0].TimeStamp: \"yesterday\" is not an RFC 3339 time",
                false,
                Some("rid-7"),
            ),
            (
                &ok_body(r#"{"a":1}"#),
                "invalid response: Result.Indicators[0].Data: invalid type: map",
                false,
                Some("rid-7"),
            ),
            (
                br#"{"ResponseMetadata":{"RequestId":"rid-7"}}"#,
                "invalid response: Result: missing",
                false,
                Some("rid-7"),
            ),
        ];
        for (body, want, not_json, request_id) in cases {
            let e = interpret(200, None, body).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(want), "{text:?} lacks {want:?}");
            assert!(
                matches!(e, ApiError::InvalidResponse { not_json: n, .. } if n == *not_json),
                "{e:?}"
            );
            assert_eq!(e.request_id(), *request_id, "{text}");
            if let Some(id) = request_id {
                assert!(text.contains(&format!("RequestId {id}")), "{text}");
            }
        }
    }

    /// Issue 18 item 13: a newline in the API's text would start a forged log line, an ESC or BEL
    /// would drive the terminal. Every error and every RequestId built from an answer is clean.
    #[test]
    fn item_13_api_text_is_escaped_in_every_message() {
        // JSON escapes: the parsed Message holds a real newline, ESC and BEL.
        let forged = r"boom\n2026-01-01T00:00:00Z  INFO run finished status=ok\u001b[2J\u0007";
        let body = format!(
            r#"{{"ResponseMetadata":{{"RequestId":"rid\r\n9","Error":{{"Code":"InternalError\n","Message":"{forged}"}}}}}}"#
        );
        let e = interpret(500, None, body.as_bytes()).unwrap_err();
        let text = e.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(
            text.contains(r"boom\n2026-01-01T00:00:00Z  INFO run finished status=ok\u{1b}[2J\u{7}"),
            "{text}"
        );
        assert_eq!(e.request_id(), Some(r"rid\r\n9"));
        assert_eq!(e.code(), Some(r"InternalError\n"));
        assert_eq!(e.label(), r"InternalError\n");
        // Still classified by what the code says: a server fault, retried.
        assert!(e.is_retryable());

        // A successful answer's RequestId (stored in the ledger, shown by `status`), and the names a
        // missing-indicator error lists.
        let body = r#"{"ResponseMetadata":{"RequestId":"rid\u001b]0;owned\u0007"},
            "Result":{"Indicators":[{"Name":"other","Unit":"%","Data":[]}]}}"#;
        let f = interpret(200, None, body.as_bytes()).unwrap();
        assert_eq!(f.request_id, r"rid\u{1b}]0;owned\u{7}");
        let e = require_requested(f, &["stall_rate".to_string()]).unwrap_err();
        let text = e.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains(r"RequestId rid\u{1b}]0;owned\u{7}"), "{text}");

        // Errors built elsewhere are escaped where they are shown.
        let e = ApiError::Api {
            status: 400,
            code: "Bad\u{7}".into(),
            code_n: None,
            message: "a\nb".into(),
            request_id: Some("r\n".into()),
            retry_after: None,
        };
        let text = e.to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(
            text.contains(r"api error Bad\u{7} (http 400, RequestId r\n): a\nb"),
            "{text}"
        );
        for e in [
            ApiError::InvalidResponse {
                path: "Result.Indicators[0].Name".into(),
                what: "x\u{1b}y".into(),
                request_id: Some("r\t".into()),
                not_json: false,
            },
            ApiError::MissingIndicators {
                missing: vec!["stall_rate".into()],
                returned: vec!["a\nb".into()],
                request_id: None,
            },
            ApiError::Network {
                message: "reset\r\n".into(),
            },
            ApiError::Status {
                status: 502,
                request_id: Some("\u{0}".into()),
                retry_after: None,
            },
            ApiError::Redirect {
                status: 307,
                location: Some("https://x.example/\u{1b}[2J".into()),
            },
        ] {
            let text = e.to_string();
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
    }

    fn request(granularity: &str, indicators: &[&str]) -> ListQualityRequest {
        let s = stream("", &[], &[]);
        let mut req = request_for(
            &s,
            window(),
            &indicators.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            FixedOffset::east_opt(8 * 3600).unwrap(),
        );
        req.aggregate_granularity = granularity.into();
        req
    }

    fn with_result(result: &str) -> Vec<u8> {
        format!(r#"{{"ResponseMetadata":{{"RequestId":"rid-5"}},"Result":{result}}}"#).into_bytes()
    }

    /// Issue 18 item 5: a `5min` request answered with daily buckets would store them as `5min` and
    /// settle them. The answer's granularity must be the one asked; a missing one is accepted.
    #[test]
    fn item_05_the_answers_granularity_must_be_the_one_asked() {
        let series = r#""Indicators":[{"Name":"80ms_audio_stall_rate","Unit":"%","Data":[{"TimeStamp":"2021-07-24T00:00:00+08:00","Value":1.5}]}]"#;
        let answer = |asked: &str, granularity: &str| {
            answer_for(
                &request(asked, &["stall_rate"]),
                200,
                None,
                &with_result(&format!("{{{granularity}{series}}}")),
            )
        };
        for (asked, returned) in [
            ("5min", r#""AggregateGranularity":"1d","#),
            ("1d", r#""AggregateGranularity":"5min","#),
        ] {
            let e = answer(asked, returned).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, ApiError::InvalidResponse { .. }), "{e:?}");
            assert!(
                text.starts_with("invalid response: Result.AggregateGranularity: expected "),
                "{text}"
            );
            let got = if asked == "5min" { "1d" } else { "5min" };
            assert!(
                text.contains(&format!("expected \"{asked}\", got \"{got}\"")),
                "{text}"
            );
            assert!(text.contains("RequestId rid-5"), "{text}");
            // The same answer would come again: not retried in this run; the window fails.
            assert!(!e.is_retryable());
            assert_eq!(e.scope(), ErrorScope::Window);
        }
        // Missing, null or empty: accepted; the one asked: accepted.
        for returned in [
            "",
            r#""AggregateGranularity":null,"#,
            r#""AggregateGranularity":"","#,
            r#""AggregateGranularity":"5min","#,
        ] {
            let f = answer("5min", returned).unwrap();
            assert_eq!(f.point_count(), 1, "{returned}");
        }
        assert!(answer("1d", r#""AggregateGranularity":"1d","#).is_ok());
        // `interpret` alone knows no request, and judges no granularity.
        assert!(
            interpret(
                200,
                None,
                &with_result(&format!(r#"{{"AggregateGranularity":"1d",{series}}}"#))
            )
            .is_ok()
        );
    }

    /// Issue 18 item 6: two values for one Name and TimeStamp (compared as instants) make the answer
    /// invalid; the same value twice is one point; `Data: null` is no traffic, `Unit: null` is `''`,
    /// `Indicators: null` is no series (a retried missing-indicator answer).
    #[test]
    fn item_06_one_value_per_name_and_instant_and_nulls_read_as_absent() {
        let series = |name: &str, unit: &str, data: &str| {
            format!(r#"{{"Name":"{name}","Unit":{unit},"Data":{data}}}"#)
        };
        let at = |ts: &str, v: &str| format!(r#"{{"TimeStamp":"{ts}","Value":{v}}}"#);
        let body =
            |series: &[String]| with_result(&format!(r#"{{"Indicators":[{}]}}"#, series.join(",")));
        let (east, utc) = ("2026-01-01T00:00:00+08:00", "2025-12-31T16:00:00Z");
        let instant = Utc.with_ymd_and_hms(2025, 12, 31, 16, 0, 0).unwrap();

        // The same value at one instant written in two offsets, and again in a second series of the
        // same Name: one point.
        let f = interpret(
            200,
            None,
            &body(&[
                series(
                    "stall_rate",
                    r#""%""#,
                    &format!("[{},{}]", at(east, "1.5"), at(utc, "1.50")),
                ),
                series("stall_rate", r#""%""#, &format!("[{}]", at(east, "1.5"))),
            ]),
        )
        .unwrap();
        assert_eq!(f.indicators.len(), 1, "{f:?}");
        assert_eq!(
            f.indicators[0].points,
            vec![Point {
                ts: instant,
                value: 1.5
            }]
        );

        // Different values: invalid, naming the item, both values and the instant.
        let cases = [
            (
                vec![series(
                    "stall_rate",
                    r#""%""#,
                    &format!("[{},{}]", at(east, "1.5"), at(utc, "2.5")),
                )],
                "Result.Indicators[0].Data[1].Value: 2.5 differs from 1.5, given at Result.Indicators[0].Data[0], for the same Name (\"stall_rate\") and TimeStamp (2025-12-31T16:00:00Z)",
            ),
            (
                vec![
                    series("stall_rate", r#""%""#, &format!("[{}]", at(utc, "1.5"))),
                    series("stall_rate", r#""%""#, &format!("[{}]", at(east, "3"))),
                ],
                "Result.Indicators[1].Data[0].Value: 3 differs from 1.5, given at Result.Indicators[0].Data[0],",
            ),
            // No traffic and a value for the same bucket contradict each other too.
            (
                vec![series(
                    "stall_rate",
                    r#""%""#,
                    &format!("[{},{}]", at(east, "null"), at(utc, "0")),
                )],
                "Result.Indicators[0].Data[1].Value: 0 differs from null",
            ),
            // One Name, two units.
            (
                vec![
                    series("stall_rate", r#""%""#, "[]"),
                    series("stall_rate", r#""ms""#, "[]"),
                ],
                "Result.Indicators[1].Unit: \"ms\" differs from \"%\", the Unit of the same Name in Result.Indicators[0]",
            ),
        ];
        for (series, want) in cases {
            let e = interpret(200, None, &body(&series)).unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(
                    e,
                    ApiError::InvalidResponse {
                        not_json: false,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(text.contains(want), "{text:?} lacks {want:?}");
            assert!(text.contains("RequestId rid-5"), "{text}");
        }
        // Different names at one instant are different series.
        let f = interpret(
            200,
            None,
            &body(&[
                series(
                    "audio_stall_rate",
                    r#""%""#,
                    &format!("[{}]", at(east, "1")),
                ),
                series(
                    "video_stall_rate",
                    r#""%""#,
                    &format!("[{}]", at(east, "2")),
                ),
            ]),
        )
        .unwrap();
        assert_eq!(f.point_count(), 2);

        // Nulls read as absent.
        let f = answer(
            &String::from_utf8(body(&[
                series("stall_rate", "null", "null"),
                r#"{"Name":"5s_join_room_success_rate","Data":null}"#.to_string(),
            ]))
            .unwrap(),
            &["stall_rate", "join_room_success_rate"],
        )
        .unwrap();
        assert_eq!(f.indicators[0].unit, "");
        assert_eq!(f.point_count(), 0, "no traffic");
        let e = answer(
            &String::from_utf8(with_result(
                r#"{"AggregateGranularity":"1d","Indicators":null}"#,
            ))
            .unwrap(),
            &["stall_rate"],
        )
        .unwrap_err();
        assert!(matches!(e, ApiError::MissingIndicators { .. }), "{e:?}");
        assert!(e.is_retryable());
    }

    /// Issue 18 item 11: a NUL in a Name reached PostgreSQL and aborted the run. A Name or Unit with
    /// a control character or over 256 bytes makes the answer invalid, naming the field and showing
    /// the value escaped and cut, never raw.
    #[test]
    fn item_11_names_and_units_with_control_characters_or_over_256_bytes_are_invalid() {
        let body = |name: &str, unit: &str| {
            let ok = |n: &str| format!(r#"{{"Name":"{n}","Unit":"%","Data":[]}}"#);
            let odd = serde_json::json!({"Name": name, "Unit": unit, "Data": [
                {"TimeStamp": "2021-07-24T00:00:00+08:00", "Value": 1.0}]});
            with_result(&format!(
                r#"{{"Indicators":[{},{},{odd}]}}"#,
                ok("audio_stall_rate"),
                ok("video_stall_rate")
            ))
        };
        let long = "x".repeat(9000);
        let cjk_257 = format!("{}x", "广".repeat(85)) + "yy"; // 85 × 3 + 3 = 258 bytes
        let cases = [
            (
                "stall_rate\0",
                "%",
                "Result.Indicators[2].Name: \"stall_rate\\u{0}\" holds a control character",
            ),
            (
                "bad\nname",
                "%",
                "Result.Indicators[2].Name: \"bad\\nname\" holds a control character",
            ),
            (
                "stall_rate",
                "%\u{1b}[2J",
                "Result.Indicators[2].Unit: \"%\\u{1b}[2J\" holds a control character",
            ),
            (
                "stall_rate",
                "\u{85}",
                "Result.Indicators[2].Unit: \"\\u{85}\" holds a control character",
            ),
            (
                long.as_str(),
                "%",
                "Result.Indicators[2].Name: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…\" is 9000 bytes long, more than the 256",
            ),
            (cjk_257.as_str(), "%", "is 258 bytes long"),
        ];
        for (name, unit, want) in cases {
            let e = interpret(200, None, &body(name, unit)).unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(
                    e,
                    ApiError::InvalidResponse {
                        not_json: false,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(text.contains(want), "{text:?} lacks {want:?}");
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert!(text.len() < 400, "the value is cut: {text}");
            assert!(
                !e.is_retryable(),
                "the window fails; the next run asks again"
            );
            assert_eq!(e.scope(), ErrorScope::Window);
        }
        // 256 bytes, and any script, are fine.
        for name in [
            "x".repeat(256),
            format!("{}x", "广".repeat(85)),
            "5s_加入房间成功率 ü".to_string(),
        ] {
            let f = interpret(200, None, &body(&name, "毫秒")).unwrap();
            assert_eq!(f.indicators[2].name, name);
        }
    }

    #[test]
    fn an_error_envelope_wins_over_a_malformed_result_and_a_200() {
        let body = br#"{"ResponseMetadata":{"RequestId":"rid-9","Error":{"Code":"InternalServiceTimeout","CodeN":100016,"Message":"slow"}},"Result":"garbage"}"#;
        let e = interpret(200, None, body).unwrap_err();
        assert_eq!(e.code(), Some("InternalServiceTimeout"));
        assert_eq!(e.request_id(), Some("rid-9"));
        assert!(e.is_retryable());

        let e = interpret(502, Some(Duration::from_secs(1)), b"<html/>").unwrap_err();
        assert_eq!(
            e,
            ApiError::Status {
                status: 502,
                request_id: None,
                retry_after: Some(Duration::from_secs(1))
            }
        );
    }
}

#[cfg(test)]
mod batch_tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{Granularity, Job, ProductType, WindowState};

    /// 2026-11-26T00:00:00Z plus `hours`.
    fn h(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap() + chrono::Duration::hours(hours)
    }

    fn stream() -> Stream {
        let job = Job {
            name: "app".into(),
            app_id: "app1".into(),
            indicators: vec!["stall_rate".into()],
            granularities: vec![Granularity::FiveMin],
            product_type: ProductType::Native,
            os: vec!["android".into(), "iOS".into()],
            access: vec![],
            room_id: String::new(),
            user_ids: vec![],
        };
        job.streams(plus8()).remove(0)
    }

    fn indicator(name: &str, unit: &str, hours: &[(i64, f64)]) -> FetchedIndicator {
        FetchedIndicator {
            name: name.into(),
            unit: unit.into(),
            points: hours
                .iter()
                .map(|&(t, value)| Point { ts: h(t), value })
                .collect(),
        }
    }

    fn fetched(indicators: Vec<FetchedIndicator>) -> Fetched {
        Fetched {
            request_id: "req-1".into(),
            indicators,
        }
    }

    /// A call for `[h(0), h(10))` of `s`.
    fn window(s: &Stream, attempts: i64, fetched_at: i64) -> Fetch<'_> {
        Fetch {
            stream: s,
            window: Window::new(h(0), h(10)),
            indicators: &s.job.indicators,
            attempts,
            fetched_at: h(fetched_at),
            timezone: plus8(),
        }
    }

    fn plus8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn at(ts: DateTime<Utc>) -> Point {
        Point { ts, value: 1.0 }
    }

    fn all_points(split: &Split) -> Vec<DateTime<Utc>> {
        split
            .batch
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.ts))
            .collect()
    }

    #[test]
    fn five_minute_points_off_the_grid_are_dropped_and_counted() {
        let s = stream();
        let sec = chrono::Duration::seconds;
        let on = [h(0), h(1), h(1) + sec(300), h(9) + sec(3300)];
        let off = [h(1) + sec(17), h(2) + sec(150), h(9) + sec(59)];
        // Outside the window: dropped, on the grid or not, and never counted.
        let outside = [h(-1), h(-1) + sec(17), h(10), h(10) + sec(17)];
        let mut points: Vec<Point> = on
            .iter()
            .chain(&off)
            .chain(&outside)
            .map(|&t| at(t))
            .collect();
        points.reverse();
        let f = fetched(vec![FetchedIndicator {
            name: "audio_stall_rate".into(),
            unit: "%".into(),
            points,
        }]);
        // Cut in the middle, so that the window has two parts: each off-grid point counts once.
        let out = split(&window(&s, 1, 30), &f, h(5));
        assert_eq!(out.batch.parts().len(), 2);
        assert_eq!(out.off_grid.count, 3);
        assert_eq!(out.off_grid.example, Some(h(1) + sec(17)), "the earliest");
        let mut kept = all_points(&out);
        kept.sort();
        assert_eq!(kept, on.to_vec());
    }

    #[test]
    fn a_day_stream_keeps_only_local_midnights() {
        let mut s = stream();
        s.granularity = Granularity::Day;
        // Midnight at +08:00 is 16:00Z.
        let day = |d: u32, hh: u32, mm: u32, ss: u32| {
            Utc.with_ymd_and_hms(2026, 11, d, hh, mm, ss).unwrap()
        };
        let on = [day(25, 16, 0, 0), day(26, 16, 0, 0), day(27, 16, 0, 0)];
        let off = [
            day(26, 0, 0, 0),   // midnight UTC is 08:00 local
            day(26, 16, 5, 0),  // a 5-minute point in a 1d answer
            day(27, 16, 0, 17), // off by seconds
            day(27, 16, 0, 0) + chrono::Duration::milliseconds(500), // off by half a second
        ];
        let outside = [day(28, 16, 0, 0), day(28, 16, 5, 0), day(25, 15, 55, 0)];
        let f = fetched(vec![
            FetchedIndicator {
                name: "5s_join_room_success_rate".into(),
                unit: "%".into(),
                points: on
                    .iter()
                    .chain(&off)
                    .chain(&outside)
                    .map(|&t| at(t))
                    .collect(),
            },
            FetchedIndicator {
                name: "10s_join_room_success_rate".into(),
                unit: "%".into(),
                points: vec![at(on[0]), at(off[1])],
            },
        ]);
        let fw = Fetch {
            stream: &s,
            window: Window::new(day(25, 16, 0, 0), day(28, 16, 0, 0)),
            indicators: &s.job.indicators,
            attempts: 1,
            fetched_at: day(30, 0, 0, 0),
            timezone: plus8(),
        };
        let out = split(&fw, &f, day(29, 16, 0, 0));
        assert_eq!(out.batch.parts().len(), 1);
        assert_eq!(
            out.off_grid.count, 5,
            "four in one series, one in the other"
        );
        assert_eq!(out.off_grid.example, Some(day(26, 0, 0, 0)));
        assert_eq!(hours_of_series(&out.batch, 0).len(), 1, "10s: one point");
        assert_eq!(
            out.batch.series[1]
                .points
                .iter()
                .map(|p| p.ts)
                .collect::<Vec<_>>(),
            on.to_vec()
        );

        // The same points in a UTC stream: its midnights are the grid, +08:00's are not.
        let fw = Fetch {
            timezone: FixedOffset::east_opt(0).unwrap(),
            window: Window::new(day(25, 0, 0, 0), day(28, 0, 0, 0)),
            ..fw
        };
        let out = split(&fw, &f, day(29, 0, 0, 0));
        let mut kept = all_points(&out);
        kept.sort();
        assert_eq!(kept, vec![day(26, 0, 0, 0)]);
        // Inside [25th, 28th) UTC and off its grid: in 5s, 16:00Z on the 25th, 26th and 27th,
        // 16:05Z, 16:00:17Z, 16:00:00.5Z and 15:55Z on the 25th; in 10s, 16:00Z and 16:05Z.
        assert_eq!(out.off_grid.count, 9);
    }

    fn hours_of_series(b: &WindowBatch, series: usize) -> Vec<DateTime<Utc>> {
        b.series[series].points.iter().map(|p| p.ts).collect()
    }

    fn hours_of(b: &WindowBatch, series: usize) -> Vec<i64> {
        b.series[series]
            .points
            .iter()
            .map(|p| (p.ts - h(0)).num_hours())
            .collect()
    }

    #[test]
    fn only_buckets_that_start_inside_the_window_are_kept() {
        let s = stream();
        let f = fetched(vec![indicator(
            "stall_rate",
            "%",
            &[(-1, 1.0), (0, 2.0), (9, 3.0), (10, 4.0)],
        )]);
        let fw = window(&s, 1, 100);
        let b = split(&fw, &f, h(100)).batch;
        assert_eq!(
            b.parts(),
            [(Window::new(h(0), h(10)), WindowState::Settled)],
            "all settled: one part"
        );
        assert_eq!(
            hours_of(&b, 0),
            vec![0, 9],
            "a bucket at EndTime is dropped"
        );
        assert_eq!(b.request_id.as_deref(), Some("req-1"));
        assert_eq!(b.owners, s.job.indicators);
        assert_eq!(
            b.scope,
            SeriesKey {
                indicator: String::new(),
                ..b.series[0].key.clone()
            }
        );
    }

    #[test]
    fn the_window_is_split_at_the_settle_instant() {
        let s = stream();
        let f = fetched(vec![indicator(
            "stall_rate",
            "%",
            &[(0, 1.0), (3, 2.0), (4, 3.0), (9, 4.0)],
        )]);
        let fw = window(&s, 2, 30);
        let b = split(&fw, &f, h(4)).batch;
        assert_eq!(
            b.parts(),
            [
                (Window::new(h(0), h(4)), WindowState::Settled),
                (Window::new(h(4), h(10)), WindowState::Provisional)
            ]
        );
        assert_eq!(
            hours_of(&b, 0),
            vec![0, 3, 4, 9],
            "one batch, one transaction"
        );
        assert_eq!(b.cut(), h(4), "the bucket at the cut is provisional");
        assert!(b.attempts == 2 && b.fetched_at == h(30));

        // A cut before the window makes it all provisional; one after it, all settled.
        let b = split(&fw, &f, h(-5)).batch;
        assert_eq!(
            b.parts(),
            [(Window::new(h(0), h(10)), WindowState::Provisional)]
        );
    }

    #[test]
    fn one_series_per_name_keyed_by_what_the_api_returned() {
        let s = stream();
        let f = fetched(vec![
            indicator("b_rate", "%", &[(1, 1.0)]),
            indicator("a_rate", "ms", &[(2, 2.0)]),
            indicator("b_rate", "ms", &[(3, 3.0)]),
        ]);
        let fw = window(&s, 1, 100);
        let b = split(&fw, &f, h(100)).batch;
        let names: Vec<&str> = b.series.iter().map(|s| s.key.indicator.as_str()).collect();
        assert_eq!(names, vec!["a_rate", "b_rate"], "in name order");
        let b_rate = &b.series[1];
        assert_eq!(b_rate.unit, "%", "the first unit of a name wins");
        assert_eq!(hours_of(&b, 1), vec![1, 3]);
        assert_eq!(b_rate.key.os, "android,iOS");
        assert_eq!(b_rate.key.granularity, Granularity::FiveMin);
        assert_eq!(b_rate.key.product_type, "native");
        assert_eq!(
            b_rate.key.grid_timezone, "",
            "a 5min grid is the same in every offset"
        );
        assert_eq!(b.timezone, "+08:00", "but it shows the configured one");

        // A day series is keyed by its grid's offset.
        let mut day = s.clone();
        day.granularity = Granularity::Day;
        let fw = Fetch { stream: &day, ..fw };
        let b = split(&fw, &f, h(100)).batch;
        assert!(b.series.iter().all(|s| s.key.grid_timezone == "+08:00"));
    }
}
