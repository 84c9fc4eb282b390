//! A property test of the answer boundary (issue 18, "Shown by"): arbitrary `ListQuality` and
//! `ListQualityDistribution` answers (names, units and dimension values in any Unicode, control
//! characters and long strings included; time stamps on and off any grid, in various offsets;
//! duplicates with equal and with different values; huge numbers and numbers past `f64`; nulls and
//! absent fields) go through `api::quality::answer_for` / `interpret` and `api::distribution`'s
//! `interpret` + `require_requested`. Each either fails with a clean `ApiError` (no panic, no control
//! character in its message) or gives exactly what a reading of the answer by PRODUCT.md's rule 7
//! gives, re-implemented here on its own: names, units and dimension values of at most 256 bytes
//! without control characters, finite values, and no (name, dimension value, instant) twice.

use std::collections::HashMap;

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use rtc_quality_sync::api::distribution::{self, FetchedDistribution};
use rtc_quality_sync::api::error::ApiError;
use rtc_quality_sync::api::quality::{self, Fetched};
use rtc_quality_sync::api::wire::ListQualityRequest;

/// A JSON field: left out, `null`, or a value.
#[derive(Debug, Clone)]
enum Field<T> {
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    fn value(&self) -> Option<&T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// Mostly a value, sometimes null or absent.
fn field<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Field<T>> {
    prop_oneof![
        1 => Just(Field::Absent),
        1 => Just(Field::Null),
        8 => value.prop_map(Field::Value),
    ]
}

/// Names a real answer has, so answers are often complete and series of one name meet.
fn tame_name() -> impl Strategy<Value = String> {
    select(vec![
        "5s_join_room_success_rate",
        "10s_join_room_success_rate",
        "80ms_audio_stall_rate",
        "video_stall_rate",
        "stall_rate",
    ])
    .prop_map(String::from)
}

/// Dimension values a real answer has, few, so that items of one value and instant meet.
fn tame_dimension() -> impl Strategy<Value = String> {
    select(vec!["广东", "US", "iOS"]).prop_map(String::from)
}

/// Names, units and dimension values: the documented ones, any characters (control characters
/// included), and long ones around 256 bytes in one-, two-, three- and four-byte characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec![
            "5s_join_room_success_rate", "10s_join_room_success_rate", "80ms_audio_stall_rate",
            "video_stall_rate", "stall_rate", "%", "ms", "广东", "US", "iOS", "wifi", "", " ",
        ])
        .prop_map(String::from),
        2 => vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect()),
        1 => ("stall_rate", select(vec!["\0", "\n", "\u{1b}[2J", "\u{7}", "\u{85}", "\t"]))
            .prop_map(|(a, b)| format!("{a}{b}")),
        1 => (select(vec!["x", "ü", "广", "🙂"]), 60usize..300).prop_map(|(c, n)| c.repeat(n)),
    ]
}

/// A base instant on every grid the tool uses.
fn base() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00+08:00")
        .unwrap()
        .to_utc()
}

/// Time stamps: a few 5-minute buckets (so instants repeat), on and off the grid, each written in
/// one of several offsets; and now and then not a time at all.
fn stamp() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => on_some_grid(4),
        1 => select(vec!["yesterday", "", "2026-13-01T00:00:00Z", "2026-01-01 00:00:00"])
            .prop_map(String::from),
    ]
}

/// A time stamp among `buckets` 5-minute buckets, on the grid or a little off, in some offset.
fn on_some_grid(buckets: i64) -> impl Strategy<Value = String> {
    (
        0..buckets,
        select(vec![0i64, 0, 0, 17, 60, 86_400]),
        select(vec![
            0i32,
            8 * 3600,
            -(5 * 3600 + 1800),
            14 * 3600,
            -12 * 3600,
        ]),
    )
        .prop_map(|(k, off, tz)| {
            let t = base() + Duration::seconds(k * 300 + off);
            t.with_timezone(&FixedOffset::east_opt(tz).unwrap())
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
}

/// A value as JSON text: a few values that repeat (so duplicates agree or differ), the extremes of
/// `f64`, numbers past it (which JSON can write and `f64` cannot hold), and any finite `f64`.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select(vec!["98.68", "98.680", "0", "-0", "1", "1.5", "100"]).prop_map(String::from),
        1 => select(vec![
            "1e308", "-1.7976931348623157e308", "5e-324", "123456789012345678901234567890",
            "1e400", "-1e400",
        ])
        .prop_map(String::from),
        1 => any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:?}")),
    ]
}

#[derive(Debug, Clone)]
struct QItem {
    time_stamp: Field<String>,
    value: Field<String>,
}

#[derive(Debug, Clone)]
struct QIndicator {
    name: Field<String>,
    unit: Field<String>,
    data: Field<Vec<QItem>>,
}

#[derive(Debug, Clone)]
struct QAnswer {
    granularity: Field<String>,
    indicators: Field<Vec<QIndicator>>,
}

/// Half the answers are hostile throughout; the other half look like real ones (documented names,
/// readable times and values, few absent fields), so that complete answers, duplicates that agree
/// and single odd values are common too.
fn quality_answer() -> impl Strategy<Value = QAnswer> {
    prop_oneof![wild_quality_answer(), tame_quality_answer()]
}

fn tame_quality_answer() -> impl Strategy<Value = QAnswer> {
    let item = (
        on_some_grid(12).prop_map(Field::Value),
        prop_oneof![
            1 => Just(Field::Null),
            8 => select(vec!["98.68", "98.680", "0", "1.5", "100"]).prop_map(|v| Field::Value(v.to_string())),
            1 => number().prop_map(Field::Value),
        ],
    )
        .prop_map(|(time_stamp, value)| QItem { time_stamp, value });
    let indicator = (
        prop_oneof![12 => tame_name(), 1 => text()].prop_map(Field::Value),
        prop_oneof![
            6 => Just(Field::Value("%".to_string())),
            1 => Just(Field::Null),
            1 => text().prop_map(Field::Value),
        ],
        prop_oneof![8 => vec(item, 0..5).prop_map(Field::Value), 1 => Just(Field::Null)],
    )
        .prop_map(|(name, unit, data)| QIndicator { name, unit, data });
    (
        prop_oneof![
            4 => Just(Field::Value("5min".to_string())),
            1 => Just(Field::Absent),
            1 => Just(Field::Null),
            1 => Just(Field::Value("1d".to_string())),
        ],
        vec(indicator, 1..5).prop_map(Field::Value),
    )
        .prop_map(|(granularity, indicators)| QAnswer {
            granularity,
            indicators,
        })
}

fn wild_quality_answer() -> impl Strategy<Value = QAnswer> {
    let item = (
        prop_oneof![20 => stamp().prop_map(Field::Value), 1 => Just(Field::Null)],
        field(number()),
    )
        .prop_map(|(time_stamp, value)| QItem { time_stamp, value });
    let indicator = (
        prop_oneof![20 => text().prop_map(Field::Value), 1 => Just(Field::Absent)],
        field(text()),
        field(vec(item, 0..6)),
    )
        .prop_map(|(name, unit, data)| QIndicator { name, unit, data });
    (
        field(select(vec!["5min", "5MIN", " 5min ", "", "1d", "1h\n"]).prop_map(String::from)),
        field(vec(indicator, 0..5)),
    )
        .prop_map(|(granularity, indicators)| QAnswer {
            granularity,
            indicators,
        })
}

/// Writes `"key":value,` unless the field is absent.
fn put<T>(out: &mut Vec<String>, key: &str, f: &Field<T>, render: impl Fn(&T) -> String) {
    match f {
        Field::Absent => {}
        Field::Null => out.push(format!("\"{key}\":null")),
        Field::Value(v) => out.push(format!("\"{key}\":{}", render(v))),
    }
}

fn json_string(s: &String) -> String {
    serde_json::to_string(s).unwrap()
}

fn object(fields: Vec<String>) -> String {
    format!("{{{}}}", fields.join(","))
}

fn array<T>(items: &[T], render: impl Fn(&T) -> String) -> String {
    format!(
        "[{}]",
        items.iter().map(render).collect::<Vec<_>>().join(",")
    )
}

fn envelope(result: String) -> Vec<u8> {
    format!(r#"{{"ResponseMetadata":{{"RequestId":"rid-p"}},"Result":{result}}}"#).into_bytes()
}

fn quality_body(a: &QAnswer) -> Vec<u8> {
    let item = |i: &QItem| {
        let mut f = Vec::new();
        put(&mut f, "TimeStamp", &i.time_stamp, json_string);
        put(&mut f, "Value", &i.value, |v| v.clone());
        object(f)
    };
    let indicator = |i: &QIndicator| {
        let mut f = Vec::new();
        put(&mut f, "Name", &i.name, json_string);
        put(&mut f, "Unit", &i.unit, json_string);
        put(&mut f, "Data", &i.data, |d| array(d, item));
        object(f)
    };
    let mut f = Vec::new();
    put(&mut f, "AggregateGranularity", &a.granularity, json_string);
    put(&mut f, "Indicators", &a.indicators, |v| array(v, indicator));
    envelope(object(f))
}

/// Rule 7's text check, written again: no control character, at most 256 bytes.
fn clean(s: &str) -> bool {
    !s.chars().any(char::is_control) && s.len() <= 256
}

fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.to_utc())
}

/// A value's JSON as `f64` reads it: `Err` past its range (the whole body is then not readable).
fn read_number(raw: &str) -> Result<f64, ()> {
    serde_json::from_str::<f64>(raw).map_err(|_| ())
}

type Series = (String, String, Vec<(DateTime<Utc>, f64)>);

/// What a correct reading of a `ListQuality` answer gives (`None`: the answer is invalid): series
/// by name in order of first appearance, each with its unit and its points in the order sent.
fn read_quality(a: &QAnswer) -> Option<Vec<Series>> {
    let mut series: Vec<Series> = Vec::new();
    let mut seen: HashMap<(usize, DateTime<Utc>), Option<f64>> = HashMap::new();
    let empty = Vec::new();
    for i in a.indicators.value().unwrap_or(&empty) {
        let name = i.name.value()?;
        let unit = i.unit.value().cloned().unwrap_or_default();
        if name.trim().is_empty() || !clean(name) || !clean(&unit) {
            return None;
        }
        let slot = match series.iter().position(|s| &s.0 == name) {
            Some(slot) if series[slot].1 == unit => slot,
            Some(_) => return None,
            None => {
                series.push((name.clone(), unit, Vec::new()));
                series.len() - 1
            }
        };
        let no_data = Vec::new();
        for item in i.data.value().unwrap_or(&no_data) {
            let stamp = item.time_stamp.value()?;
            let value = match item.value.value() {
                Some(raw) => Some(read_number(raw).ok()?),
                None => None,
            };
            let Some(ts) = instant(stamp) else {
                if value.is_none() {
                    continue;
                }
                return None;
            };
            match seen.get(&(slot, ts)) {
                Some(first) if *first != value => return None,
                Some(_) => {}
                None => {
                    seen.insert((slot, ts), value);
                    if let Some(v) = value {
                        series[slot].2.push((ts, v));
                    }
                }
            }
        }
    }
    Some(series)
}

/// A body with a number past `f64` anywhere cannot be read at all.
fn quality_numbers_readable(a: &QAnswer) -> bool {
    let empty = Vec::new();
    a.indicators.value().unwrap_or(&empty).iter().all(|i| {
        i.data.value().is_none_or(|d| {
            d.iter()
                .all(|item| item.value.value().is_none_or(|v| read_number(v).is_ok()))
        })
    })
}

fn as_series(f: &Fetched) -> Vec<Series> {
    f.indicators
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                i.unit.clone(),
                i.points.iter().map(|p| (p.ts, p.value)).collect(),
            )
        })
        .collect()
}

/// What every error must be: classified and clean to print.
fn assert_clean_error(e: &ApiError) {
    let text = e.to_string();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(text.len() < 2_000, "a message quotes a value whole: {text}");
    let _ = (e.class(), e.scope(), e.label(), e.request_id());
}

/// Every name, unit and value of a successful reading is one a store may keep.
fn assert_storable(series: &[Series]) {
    let mut names = std::collections::HashSet::new();
    for (name, unit, points) in series {
        assert!(
            clean(name) && !name.trim().is_empty() && clean(unit),
            "{name:?} {unit:?}"
        );
        assert!(names.insert(name), "{name:?} twice");
        let mut instants = std::collections::HashSet::new();
        for (ts, v) in points {
            assert!(v.is_finite(), "{v}");
            assert!(instants.insert(ts), "({name:?}, {ts}) twice");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `ListQuality`: `interpret` alone, then `answer_for` a `5min` request of `stall_rate` (and,
    /// with `two`, `join_room_success_rate`): a clean error, or exactly the correct reading.
    #[test]
    fn item_18_property_list_quality_answers_are_read_exactly_or_refused_cleanly(
        a in quality_answer(),
        two in any::<bool>(),
    ) {
        let body = quality_body(&a);
        let want = quality_numbers_readable(&a).then(|| read_quality(&a)).flatten();
        match (quality::interpret(200, None, &body), &want) {
            (Ok(f), Some(want)) => {
                let got = as_series(&f);
                assert_storable(&got);
                prop_assert_eq!(&got, want);
            }
            (Err(e), None) => assert_clean_error(&e),
            (got, want) => prop_assert!(false, "interpret gave {:?}, a correct reading {:?}", got, want),
        }

        let mut requested = vec!["stall_rate".to_string()];
        if two {
            requested.insert(0, "join_room_success_rate".to_string());
        }
        let req = ListQualityRequest {
            app_id: "app".into(),
            start_time: "2026-01-01T00:00:00+08:00".into(),
            end_time: "2026-01-02T00:00:00+08:00".into(),
            indicator: requested.clone(),
            aggregate_granularity: "5min".into(),
            product_type: Some("native".into()),
            os: vec![],
            access: vec![],
            room_id: None,
            user_id: vec![],
        };
        let granularity_ok = a
            .granularity
            .value()
            .is_none_or(|g| g.trim().is_empty() || g.trim().eq_ignore_ascii_case("5min"));
        let want = want.filter(|series| {
            granularity_ok
                && requested
                    .iter()
                    .all(|r| series.iter().any(|(name, _, _)| name.contains(r.as_str())))
        });
        match (quality::answer_for(&req, 200, None, &body), &want) {
            (Ok(f), Some(want)) => prop_assert_eq!(&as_series(&f), want),
            (Err(e), None) => assert_clean_error(&e),
            (got, want) => prop_assert!(false, "answer_for gave {:?}, a correct reading {:?}", got, want),
        }
    }
}

#[derive(Debug, Clone)]
struct DItem {
    dimension: Field<String>,
    time_stamp: Field<String>,
    value: Field<String>,
}

#[derive(Debug, Clone)]
struct DIndicator {
    name: Field<String>,
    data: Field<Vec<DItem>>,
}

/// Hostile answers and real-looking ones, as for `ListQuality`.
fn distribution_answer() -> impl Strategy<Value = Field<Vec<DIndicator>>> {
    prop_oneof![wild_distribution_answer(), tame_distribution_answer()]
}

fn tame_distribution_answer() -> impl Strategy<Value = Field<Vec<DIndicator>>> {
    let item = (
        prop_oneof![12 => tame_dimension(), 1 => text()].prop_map(Field::Value),
        on_some_grid(3).prop_map(Field::Value),
        prop_oneof![
            1 => Just(Field::Null),
            8 => select(vec!["98.68", "0", "1.5"]).prop_map(|v| Field::Value(v.to_string())),
            1 => number().prop_map(Field::Value),
        ],
    )
        .prop_map(|(dimension, time_stamp, value)| DItem {
            dimension,
            time_stamp,
            value,
        });
    let indicator = (
        prop_oneof![12 => tame_name(), 1 => text()].prop_map(Field::Value),
        vec(item, 0..6).prop_map(Field::Value),
    )
        .prop_map(|(name, data)| DIndicator { name, data });
    vec(indicator, 1..4).prop_map(Field::Value)
}

fn wild_distribution_answer() -> impl Strategy<Value = Field<Vec<DIndicator>>> {
    let item = (field(text()), field(stamp()), field(number())).prop_map(
        |(dimension, time_stamp, value)| DItem {
            dimension,
            time_stamp,
            value,
        },
    );
    let indicator = (
        prop_oneof![20 => text().prop_map(Field::Value), 1 => Just(Field::Absent)],
        field(vec(item, 0..6)),
    )
        .prop_map(|(name, data)| DIndicator { name, data });
    field(vec(indicator, 0..4))
}

fn distribution_body(indicators: &Field<Vec<DIndicator>>) -> Vec<u8> {
    let item = |i: &DItem| {
        let mut f = Vec::new();
        put(&mut f, "Dimension", &i.dimension, json_string);
        put(&mut f, "TimeStamp", &i.time_stamp, json_string);
        put(&mut f, "Value", &i.value, |v| v.clone());
        object(f)
    };
    let indicator = |i: &DIndicator| {
        let mut f = Vec::new();
        put(&mut f, "Name", &i.name, json_string);
        put(&mut f, "Data", &i.data, |d| array(d, item));
        object(f)
    };
    let mut f = Vec::new();
    put(&mut f, "Indicators", indicators, |v| array(v, indicator));
    envelope(object(f))
}

type DSeries = (String, Vec<(String, DateTime<Utc>, f64)>);

/// What a correct reading of a `ListQualityDistribution` answer gives (`None`: invalid).
fn read_distribution(indicators: &Field<Vec<DIndicator>>) -> Option<Vec<DSeries>> {
    let mut series: Vec<DSeries> = Vec::new();
    let mut seen: HashMap<(usize, String, DateTime<Utc>), Option<f64>> = HashMap::new();
    let empty = Vec::new();
    for i in indicators.value().unwrap_or(&empty) {
        let name = i.name.value()?;
        if name.trim().is_empty() || !clean(name) {
            return None;
        }
        let slot = match series.iter().position(|s| &s.0 == name) {
            Some(slot) => slot,
            None => {
                series.push((name.clone(), Vec::new()));
                series.len() - 1
            }
        };
        let no_data = Vec::new();
        for item in i.data.value().unwrap_or(&no_data) {
            let dimension = item.dimension.value();
            if dimension.is_some_and(|d| !clean(d)) {
                return None;
            }
            let ts = item.time_stamp.value().map(|s| instant(s));
            let value = match item.value.value() {
                Some(raw) => Some(read_number(raw).ok()?),
                None => None,
            };
            let (d, ts) = match (value, dimension, ts) {
                (None, Some(d), Some(Some(ts))) => (d, ts),
                (None, _, _) => continue,
                (Some(_), Some(d), Some(Some(ts))) => (d, ts),
                (Some(_), _, _) => return None,
            };
            match seen.get(&(slot, d.clone(), ts)) {
                Some(first) if *first != value => return None,
                Some(_) => {}
                None => {
                    seen.insert((slot, d.clone(), ts), value);
                    if let Some(v) = value {
                        series[slot].1.push((d.clone(), ts, v));
                    }
                }
            }
        }
    }
    Some(series)
}

fn distribution_numbers_readable(indicators: &Field<Vec<DIndicator>>) -> bool {
    let empty = Vec::new();
    indicators.value().unwrap_or(&empty).iter().all(|i| {
        i.data.value().is_none_or(|d| {
            d.iter()
                .all(|item| item.value.value().is_none_or(|v| read_number(v).is_ok()))
        })
    })
}

fn as_distribution(f: &FetchedDistribution) -> Vec<DSeries> {
    f.series
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.points
                    .iter()
                    .map(|p| (p.dimension_value.clone(), p.ts, p.value))
                    .collect(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `ListQualityDistribution`: `interpret`, then `require_requested("stall_rate")`: a clean
    /// error, or exactly the correct reading, with no (name, dimension value, instant) twice.
    #[test]
    fn item_18_property_distribution_answers_are_read_exactly_or_refused_cleanly(
        indicators in distribution_answer(),
    ) {
        let body = distribution_body(&indicators);
        let want = distribution_numbers_readable(&indicators)
            .then(|| read_distribution(&indicators))
            .flatten();
        let got = distribution::interpret(200, None, &body);
        match (&got, &want) {
            (Ok(f), Some(want)) => {
                let series = as_distribution(f);
                let mut keys = std::collections::HashSet::new();
                for (name, points) in &series {
                    prop_assert!(clean(name) && !name.trim().is_empty());
                    for (d, ts, v) in points {
                        prop_assert!(clean(d) && v.is_finite(), "{:?} {}", d, v);
                        prop_assert!(keys.insert((name.clone(), d.clone(), *ts)), "({:?}, {:?}, {}) twice", name, d, ts);
                    }
                }
                prop_assert_eq!(&series, want);
            }
            (Err(e), None) => assert_clean_error(e),
            (got, want) => prop_assert!(false, "interpret gave {:?}, a correct reading {:?}", got, want),
        }
        let want = want.filter(|series| series.iter().any(|(name, _)| name.contains("stall_rate")));
        match (got.and_then(|f| distribution::require_requested(f, "stall_rate")), &want) {
            (Ok(f), Some(want)) => prop_assert_eq!(&as_distribution(&f), want),
            (Err(e), None) => assert_clean_error(&e),
            (got, want) => prop_assert!(false, "require_requested gave {:?}, a correct reading {:?}", got, want),
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Parse → validate → store, on both backends.

/// What `quality_metrics` holds of `app`: `(name, unit, ts, value)`, sorted.
async fn stored_of(
    store: &rtc_quality_sync::store::Store,
    app: &str,
) -> Vec<(String, String, DateTime<Utc>, f64)> {
    let mut out: Vec<_> = store
        .metrics(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.app_id == app)
        .map(|r| {
            let ts = DateTime::parse_from_rfc3339(&r.ts).unwrap().to_utc();
            (r.indicator, r.unit, ts, r.value)
        })
        .collect();
    out.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    out
}

/// `ListQuality` answers through the client's checks, the batch stage and a window's commit, on
/// SQLite and on PostgreSQL: a refused answer stores nothing (and never stops anything but its
/// window); an accepted one stores exactly the correct reading's points inside the window and on
/// the 5-minute grid, each with its unit, the same on both backends; committing it again writes
/// nothing.
#[test]
fn item_18_property_answers_are_stored_exactly_or_not_at_all() {
    use proptest::test_runner::{Config, TestRunner};
    use rtc_quality_sync::api::{Fetch, quality::split};
    use rtc_quality_sync::domain::{Granularity, Job, ProductType, Window};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ((_dir, sqlite), pg) = rt.block_on(async {
        (
            crate::helpers::sqlite_store().await,
            crate::helpers::pg_store().await,
        )
    });
    let stores: Vec<&rtc_quality_sync::store::Store> = std::iter::once(&sqlite)
        .chain(pg.as_ref().map(|(_, s)| s))
        .collect();
    let stored = std::cell::Cell::new(0u32);
    let next = std::cell::Cell::new(0u32);
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let window = Window::new(base(), base() + Duration::minutes(40));
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    let result = runner.run(&quality_answer(), |a| {
        // Each case asks its own app, so the cases never meet in the tables.
        let app = format!("prop{}", next.get());
        next.set(next.get() + 1);
        let job = Job {
            name: app.clone(),
            app_id: app.clone(),
            indicators: vec!["stall_rate".into()],
            granularities: vec![Granularity::FiveMin],
            product_type: ProductType::Native,
            os: vec![],
            access: vec![],
            room_id: String::new(),
            user_ids: vec![],
        };
        let stream = job.streams(tz).remove(0);
        let req = quality::request_for(&stream, window, &stream.job.indicators, tz);
        let fetched = match quality::answer_for(&req, 200, None, &quality_body(&a)) {
            Err(e) => {
                assert_clean_error(&e);
                return Ok(());
            }
            Ok(fetched) => fetched,
        };
        let batch = split(
            &Fetch {
                stream: &stream,
                window,
                indicators: &stream.job.indicators,
                attempts: 1,
                fetched_at: window.end + Duration::days(2),
                timezone: tz,
            },
            &fetched,
            window.end,
        )
        .batch;
        // The correct reading, kept as the tables keep it: inside the window, on the grid.
        let mut want: Vec<(String, String, DateTime<Utc>, f64)> = read_quality(&a)
            .expect("an accepted answer has a correct reading")
            .into_iter()
            .flat_map(|(name, unit, points)| {
                points
                    .into_iter()
                    .filter(move |&(ts, _)| window.contains(ts) && ts.timestamp() % 300 == 0)
                    .map(move |(ts, v)| (name.clone(), unit.clone(), ts, v))
            })
            .collect();
        want.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
        stored.set(stored.get() + 1);
        for store in &stores {
            let (first, second, got) = rt.block_on(async {
                let first = store.commit_window(&batch).await.unwrap();
                let second = store.commit_window(&batch).await.unwrap();
                (first, second, stored_of(store, &app).await)
            });
            prop_assert_eq!(&got, &want, "{}", store.backend_name());
            prop_assert_eq!(first.inserted as usize, want.len());
            prop_assert_eq!((second.inserted, second.updated, second.deleted), (0, 0, 0));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The property means something only if many answers reach the tables.
    assert!(
        stored.get() >= 24,
        "only {} of 256 answers were stored",
        stored.get()
    );
    rt.block_on(async {
        for store in stores {
            store.close().await;
        }
    });
}
