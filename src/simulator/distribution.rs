//! The simulator's `ListQualityDistribution` data: a pure, seeded function from (series, local day,
//! data-now) to a value, where a series is (app, product type, platform, returned name, dimension,
//! dimension value).
//!
//! **Invariant:** no state, like `data`: a day has the same value whichever window asks for it. Each
//! dimension has a fixed, realistic set of values ([`dimension_values`]); there is one point per local
//! day (+08:00, `TimeStamp` at local midnight) inside `[StartTime, EndTime)`. A day goes through the same
//! stages as a `ListQuality` `1d` bucket ([`bucket_stage`]): not served before it starts, partial while
//! it fills, provisional for 20 h after it ends, then final. About 3% of (value, day) had no traffic,
//! sent as `"Value": null` or left out.

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use super::data::{BucketStage, Series, Stream, bucket_stage, expand_indicator};
use crate::api::wire::{DistributionIndicator, DistributionItem, ListQualityDistributionResult};
use crate::domain::{Dimension, Granularity};

/// The offset whose midnights the simulated days start at (the RTC console's, China Standard Time).
pub const DAY_OFFSET_SECS: i32 = 8 * 3600;

const PROVINCES: [&str; 12] = [
    "广东", "北京", "上海", "浙江", "江苏", "四川", "山东", "湖北", "福建", "河南", "香港", "台湾",
];
const COUNTRIES: [&str; 8] = ["CN", "US", "JP", "SG", "ID", "KR", "GB", "BR"];
const OSES: [&str; 5] = ["android", "iOS", "windows", "mac", "linux"];
const ACCESSES: [&str; 5] = ["wifi", "4g", "5g", "3g", "2g"];

/// The values a dimension takes in every answer, in the order they are sent.
pub fn dimension_values(dimension: Dimension) -> &'static [&'static str] {
    match dimension {
        Dimension::Province => &PROVINCES,
        Dimension::Country => &COUNTRIES,
        Dimension::Os => &OSES,
        Dimension::Access => &ACCESSES,
    }
}

/// A validated `ListQualityDistribution` request, in the shape the data function needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributionQuery {
    pub app_id: String,
    /// `native` (the default) or `web`.
    pub product_type: String,
    /// `''` when not sent.
    pub platform: String,
    /// As requested, before expansion.
    pub indicator: String,
    pub dimension: Dimension,
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
}

/// One distribution series: what its values are a function of (besides the day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionKey {
    pub app_id: String,
    pub product_type: String,
    pub platform: String,
    /// The returned name (`audio_stall_rate` for a request of `stall_rate`).
    pub indicator: String,
    pub dimension: Dimension,
    pub dimension_value: String,
}

impl DistributionQuery {
    /// The key of one returned name and one dimension value of this query.
    pub fn key(&self, returned_name: &str, dimension_value: &str) -> DistributionKey {
        DistributionKey {
            app_id: self.app_id.clone(),
            product_type: self.product_type.clone(),
            platform: self.platform.clone(),
            indicator: returned_name.to_string(),
            dimension: self.dimension,
            dimension_value: dimension_value.to_string(),
        }
    }
}

fn series(seed: u64, key: &DistributionKey) -> Series {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for field in [
        "ListQualityDistribution",
        key.app_id.as_str(),
        key.product_type.as_str(),
        key.platform.as_str(),
        key.indicator.as_str(),
        key.dimension.as_str(),
        key.dimension_value.as_str(),
    ] {
        // Length-prefixed, so that ("ab", "c") and ("a", "bc") hash apart.
        h.update((field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    let digest = h.finalize();
    Series {
        hash: u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")),
        success: key.indicator.contains("success"),
    }
}

/// The local days (+08:00 midnights) inside `[start, end)`, rendered in +08:00.
pub fn distribution_days(
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
) -> Vec<DateTime<FixedOffset>> {
    let tz = FixedOffset::east_opt(DAY_OFFSET_SECS).expect("a valid offset");
    const DAY: i64 = 86_400;
    let off = i64::from(DAY_OFFSET_SECS);
    // Rounded up to whole seconds, so that a fractional StartTime never gets an earlier day.
    let local = start.timestamp() + off + i64::from(start.timestamp_subsec_nanos() > 0);
    let mut t =
        local.div_euclid(DAY) * DAY + if local.rem_euclid(DAY) == 0 { 0 } else { DAY } - off;
    let mut out = Vec::new();
    while t < end.timestamp() {
        out.push(
            DateTime::from_timestamp(t, 0)
                .expect("request times are within chrono's range")
                .with_timezone(&tz),
        );
        t += DAY;
    }
    out
}

/// The final value of one day of one series, or `None` when that value had no traffic that day.
/// This is what a client that fetched the day after it settled must store.
pub fn distribution_final_value(
    seed: u64,
    key: &DistributionKey,
    day_start: DateTime<Utc>,
) -> Option<f64> {
    series(seed, key).value(day_start, BucketStage::Final)
}

/// What the simulator serves for one day at `data_now`: `None` for no traffic or a day not begun,
/// else the partial, provisional or final value of [`bucket_stage`] (as a `1d` bucket).
pub fn distribution_served_value(
    seed: u64,
    key: &DistributionKey,
    day_start: DateTime<Utc>,
    data_now: DateTime<Utc>,
) -> Option<f64> {
    series(seed, key).value(
        day_start,
        bucket_stage(day_start, Granularity::Day, data_now),
    )
}

/// The `Result` of a `ListQualityDistribution` call at `data_now`: per returned name, per day, per
/// dimension value.
pub fn generate_distribution(
    seed: u64,
    q: &DistributionQuery,
    data_now: DateTime<Utc>,
) -> ListQualityDistributionResult {
    let days: Vec<(DateTime<Utc>, String)> = distribution_days(q.start, q.end)
        .into_iter()
        .map(|d| {
            (
                d.with_timezone(&Utc),
                d.to_rfc3339_opts(SecondsFormat::Secs, false),
            )
        })
        .collect();
    let values = dimension_values(q.dimension);
    let indicators = expand_indicator(&q.indicator)
        .into_iter()
        .map(|(name, _unit)| {
            let all: Vec<Series> = values
                .iter()
                .map(|v| series(seed, &q.key(&name, v)))
                .collect();
            let mut data = Vec::with_capacity(days.len() * values.len());
            for (day, stamp) in &days {
                let stage = bucket_stage(*day, Granularity::Day, data_now);
                if stage == BucketStage::Future {
                    continue;
                }
                for (v, s) in values.iter().zip(&all) {
                    let value = s.value(*day, stage);
                    if value.is_none() && s.bits(*day, Stream::Form) & 1 == 0 {
                        continue;
                    }
                    data.push(DistributionItem {
                        dimension: Some(v.to_string()),
                        time_stamp: Some(stamp.clone()),
                        value,
                    });
                }
            }
            DistributionIndicator { name, data }
        })
        .collect();
    ListQualityDistributionResult { indicators }
}

/// The `offgrid` fault for a distribution: appends to every returned series one point after the asked
/// range (`EndTime` plus 17 s, for the first dimension value), which a client must drop as outside the day.
pub fn add_outside_points(result: &mut ListQualityDistributionResult, q: &DistributionQuery) {
    let stamp = (q.end + Duration::seconds(17)).to_rfc3339_opts(SecondsFormat::Secs, false);
    let first = dimension_values(q.dimension)[0];
    for indicator in &mut result.indicators {
        indicator.data.push(DistributionItem {
            dimension: Some(first.to_string()),
            time_stamp: Some(stamp.clone()),
            value: Some(50.0),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn query(dimension: Dimension, start: &str, end: &str) -> DistributionQuery {
        DistributionQuery {
            app_id: "app".into(),
            product_type: "native".into(),
            platform: String::new(),
            indicator: "stall_rate".into(),
            dimension,
            start: t(start),
            end: t(end),
        }
    }

    /// (name, dimension value, time stamp) -> value of an answer.
    fn points(
        r: &ListQualityDistributionResult,
    ) -> std::collections::BTreeMap<(String, String, String), Option<f64>> {
        r.indicators
            .iter()
            .flat_map(|i| {
                i.data.iter().map(|d| {
                    (
                        (
                            i.name.clone(),
                            d.dimension.clone().unwrap(),
                            d.time_stamp.clone().unwrap(),
                        ),
                        d.value,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn days_are_local_midnights_inside_the_half_open_range() {
        let s = |v: Vec<DateTime<FixedOffset>>| {
            v.iter()
                .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, false))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            s(distribution_days(
                t("2024-01-15T00:00:00+08:00"),
                t("2024-01-16T00:00:00+08:00")
            )),
            ["2024-01-15T00:00:00+08:00"]
        );
        // Asked in UTC: the +08:00 midnights inside, rendered in +08:00.
        assert_eq!(
            s(distribution_days(
                t("2024-01-14T15:00:00Z"),
                t("2024-01-16T16:00:00Z")
            )),
            ["2024-01-15T00:00:00+08:00", "2024-01-16T00:00:00+08:00"]
        );
        assert!(
            distribution_days(
                t("2024-01-15T00:00:01+08:00"),
                t("2024-01-16T00:00:00+08:00")
            )
            .is_empty()
        );
    }

    #[test]
    fn values_do_not_depend_on_the_window_that_asks() {
        let now: DateTime<Utc> = "2024-02-01T00:00:00Z".parse().unwrap();
        for d in Dimension::ALL {
            let week = generate_distribution(
                7,
                &query(d, "2024-01-10T00:00:00+08:00", "2024-01-17T00:00:00+08:00"),
                now,
            );
            let week = points(&week);
            let mut by_day = std::collections::BTreeMap::new();
            for day in 10..17 {
                let q = query(
                    d,
                    &format!("2024-01-{day}T00:00:00+08:00"),
                    &format!("2024-01-{}T00:00:00+08:00", day + 1),
                );
                by_day.extend(points(&generate_distribution(7, &q, now)));
            }
            assert_eq!(week, by_day, "{d}");
            // Two returned names, every value of the dimension, 7 days, a few without traffic.
            let full = 2 * dimension_values(d).len() * 7;
            assert!(week.len() <= full && week.len() >= full * 9 / 10, "{d}");
            for ((name, value, stamp), v) in &week {
                let key = q_key(d, name, value);
                let ts = t(stamp).with_timezone(&Utc);
                assert_eq!(*v, distribution_final_value(7, &key, ts), "{d} {value}");
                assert_eq!(*v, distribution_served_value(7, &key, ts, now));
            }
        }
        let q = query(
            Dimension::Province,
            "2024-01-10T00:00:00+08:00",
            "2024-01-11T00:00:00+08:00",
        );
        let p = points(&generate_distribution(7, &q, now));
        assert!(p.keys().any(|(_, v, _)| v == "广东"), "{p:?}");
        // Another seed, another app: other values.
        assert_ne!(p, points(&generate_distribution(8, &q, now)));
    }

    fn q_key(d: Dimension, name: &str, value: &str) -> DistributionKey {
        query(d, "2024-01-10T00:00:00+08:00", "2024-01-11T00:00:00+08:00").key(name, value)
    }

    #[test]
    fn the_newest_days_are_provisional_or_partial_and_the_future_is_not_served() {
        // 12:00 +08:00 on the 20th: the 20th is partial, the 19th provisional (ended 12 h ago).
        let now: DateTime<Utc> = "2024-01-20T04:00:00Z".parse().unwrap();
        let q = query(
            Dimension::Access,
            "2024-01-18T00:00:00+08:00",
            "2024-01-22T00:00:00+08:00",
        );
        let served = points(&generate_distribution(3, &q, now));
        let stamps: std::collections::BTreeSet<&str> =
            served.keys().map(|(_, _, s)| s.as_str()).collect();
        assert_eq!(
            stamps.into_iter().collect::<Vec<_>>(),
            [
                "2024-01-18T00:00:00+08:00",
                "2024-01-19T00:00:00+08:00",
                "2024-01-20T00:00:00+08:00"
            ]
        );
        let mut differ = [0, 0, 0];
        for ((name, value, stamp), v) in &served {
            let ts = t(stamp).with_timezone(&Utc);
            let fin = distribution_final_value(3, &q.key(name, value), ts);
            let i = match &stamp[..10] {
                "2024-01-18" => 0,
                "2024-01-19" => 1,
                _ => 2,
            };
            if *v != fin {
                differ[i] += 1;
            }
            if let Some(x) = v {
                assert!((0.0..=10.0).contains(x), "{x}");
            }
        }
        // The 18th ended 28 h before now: final. The 19th and the 20th differ from their final values.
        assert_eq!(differ[0], 0);
        assert!(differ[1] >= 8 && differ[2] >= 8, "{differ:?}");
    }

    #[test]
    fn some_values_had_no_traffic() {
        let now: DateTime<Utc> = "2024-03-01T00:00:00Z".parse().unwrap();
        let mut nulls = 0;
        let mut missing = 0;
        for week in 0..4 {
            let start = t("2024-01-01T00:00:00+08:00") + Duration::days(7 * week);
            let q = DistributionQuery {
                start,
                end: start + Duration::days(7),
                ..query(
                    Dimension::Province,
                    "2024-01-01T00:00:00+08:00",
                    "2024-01-08T00:00:00+08:00",
                )
            };
            let r = generate_distribution(1, &q, now);
            for i in &r.indicators {
                nulls += i.data.iter().filter(|d| d.value.is_none()).count();
                missing += PROVINCES.len() * 7 - i.data.len();
            }
        }
        assert!(nulls > 0 && missing > 0, "{nulls} {missing}");
    }
}
