//! The simulator's data: a pure, seeded function from (series, bucket start, data-now) to a value.
//!
//! **Invariant:** no state and no global RNG. Every value is derived from a hash of the seed, the
//! series (app, room, product type, os, access, user ids, returned name, granularity) and the bucket
//! start, so a bucket has the same value whichever window it is asked through, and tests can compute
//! with [`final_value`] exactly what a complete backfill must store.
//!
//! A series of one room (`RoomId` set) follows that room's calls (`rooms`, as stateless): a bucket
//! in which none of its calls ran is `"Value": null` (no traffic), and a room the app never had
//! returns every asked name with an empty `Data`. A series without a room is untouched by this.

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use super::rooms;
use crate::api::wire::{DataItem, Indicator, ListQualityResult};
use crate::domain::{Granularity, SeriesKey};

/// Data arrives this late: a bucket that ends after `data-now - 8h` is still filling up.
pub const DATA_DELAY: Duration = Duration::hours(8);
/// A bucket that ended less than this long ago carries a provisional value; `settle_hours = 24` is past it.
pub const PROVISIONAL_FOR: Duration = Duration::hours(20);
/// About this share of buckets had no traffic: missing from `Data` or `"Value": null`.
pub const NO_TRAFFIC_RATE: f64 = 0.03;

/// The `Unit` of every quality indicator the docs list.
pub const PERCENT: &str = "%";

/// The names the API returns for one requested indicator, each with its unit.
///
/// The docs show `join_room_success_rate` coming back as `5s_join_room_success_rate` and
/// `10s_join_room_success_rate`, and `stall_rate` as audio and video stall rates; the other
/// documented names are returned as asked (the request check refuses undocumented ones first).
pub fn expand_indicator(requested: &str) -> Vec<(String, &'static str)> {
    match requested {
        "join_room_success_rate" => vec![
            ("5s_join_room_success_rate".to_string(), PERCENT),
            ("10s_join_room_success_rate".to_string(), PERCENT),
        ],
        "stall_rate" => vec![
            ("audio_stall_rate".to_string(), PERCENT),
            ("video_stall_rate".to_string(), PERCENT),
        ],
        other => vec![(other.to_string(), PERCENT)],
    }
}

/// [`expand_indicator`] over a request's list, in order, each returned name once.
pub fn expand_indicators(requested: &[String]) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for r in requested {
        for (name, unit) in expand_indicator(r) {
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, unit));
            }
        }
    }
    out
}

/// Which value a bucket carries at a given data-now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketStage {
    /// Starts at or after data-now: nothing has happened yet, so it is not returned.
    Future,
    /// Ends after `data-now - 8h`: a partial value that a client must not keep.
    Partial,
    /// Ended less than 20 h before data-now: a provisional value that later changes.
    Provisional,
    /// Its final value.
    Final,
}

/// The stage of the bucket `[start, start + granularity)` at `data_now`.
pub fn bucket_stage(
    start: DateTime<Utc>,
    granularity: Granularity,
    data_now: DateTime<Utc>,
) -> BucketStage {
    let end = start + Duration::seconds(granularity.seconds());
    if start >= data_now {
        BucketStage::Future
    } else if end > data_now - DATA_DELAY {
        BucketStage::Partial
    } else if end > data_now - PROVISIONAL_FOR {
        BucketStage::Provisional
    } else {
        BucketStage::Final
    }
}

/// The final value of one bucket of one series, or `None` when the bucket had no traffic.
///
/// `key` is the series as the pipeline stores it (filters as sorted comma lists, `''` for none, os and
/// access `''` for `web`, user ids `''` without a room); `bucket_start` is the instant the API's
/// `TimeStamp` names. This is what a full backfill must end up storing.
pub fn final_value(seed: u64, key: &SeriesKey, bucket_start: DateTime<Utc>) -> Option<f64> {
    if !room_ran(seed, key, bucket_start, None) {
        return None;
    }
    let s = Series::new(seed, key);
    s.value(bucket_start, BucketStage::Final)
}

/// Whether the series' room, if it names one, had a call running in the bucket: created before the
/// bucket's end (and before `cutoff`, the data-now, when given) and destroyed after its start. A
/// series without a room always has traffic to draw from; a room the app never had, never.
pub fn room_ran(
    seed: u64,
    key: &SeriesKey,
    bucket_start: DateTime<Utc>,
    cutoff: Option<DateTime<Utc>>,
) -> bool {
    if key.room_id.is_empty() {
        return true;
    }
    rooms::room_exists(&key.room_id)
        && rooms::room_active(
            seed,
            &key.app_id,
            &key.room_id,
            bucket_start,
            bucket_start + Duration::seconds(key.granularity.seconds()),
            cutoff,
        )
}

/// What the simulator serves for a bucket at `data_now`: `None` when it had no traffic or lies in the
/// future, else the partial, provisional or final value of [`bucket_stage`].
pub fn served_value(
    seed: u64,
    key: &SeriesKey,
    bucket_start: DateTime<Utc>,
    data_now: DateTime<Utc>,
) -> Option<f64> {
    if !room_ran(seed, key, bucket_start, Some(data_now)) {
        return None;
    }
    let s = Series::new(seed, key);
    s.value(
        bucket_start,
        bucket_stage(bucket_start, key.granularity, data_now),
    )
}

/// Whether a no-traffic bucket is left out of `Data` (`true`) or sent with `"Value": null`.
pub fn no_traffic_is_missing(seed: u64, key: &SeriesKey, bucket_start: DateTime<Utc>) -> bool {
    Series::new(seed, key).bits(bucket_start, Stream::Form) & 1 == 0
}

/// The bucket starts the API returns for `[start, end]`: aligned to the granularity in `start`'s offset
/// (1d buckets begin at local midnight), from the first one at or after `start` through the one that
/// starts exactly at `end`, which a client must drop. Rendered in `start`'s offset.
pub fn bucket_starts(
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
    granularity: Granularity,
) -> Vec<DateTime<FixedOffset>> {
    let tz = *start.offset();
    let g = granularity.seconds();
    let off = i64::from(tz.local_minus_utc());
    // Align in local time, where midnight is a multiple of a day.
    // Rounded up to whole seconds, so that a fractional StartTime never gets an earlier bucket.
    let local = start.timestamp() + off + i64::from(start.timestamp_subsec_nanos() > 0);
    let first_local = local.div_euclid(g) * g + if local.rem_euclid(g) == 0 { 0 } else { g };
    let mut t = first_local - off;
    let last = end.timestamp();
    let mut out = Vec::with_capacity(((last - t).max(0) / g + 1) as usize);
    while t <= last {
        out.push(
            DateTime::from_timestamp(t, 0)
                .expect("request times are within chrono's range")
                .with_timezone(&tz),
        );
        t += g;
    }
    out
}

/// A validated `ListQuality` request, in the shape the data function needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub app_id: String,
    /// `''` = the whole app.
    pub room_id: String,
    /// `native` or `web`.
    pub product_type: String,
    pub os: Vec<String>,
    pub access: Vec<String>,
    pub user_ids: Vec<String>,
    /// As requested, before expansion.
    pub indicators: Vec<String>,
    pub granularity: Granularity,
    pub start: DateTime<FixedOffset>,
    pub end: DateTime<FixedOffset>,
}

impl Query {
    /// The series key of one returned name, normalized as PRODUCT.md stores it: the API ignores os and
    /// access for `web` and user ids without a room, so those do not change the data either.
    pub fn series_key(&self, returned_name: &str) -> SeriesKey {
        let web = self.product_type == "web";
        SeriesKey {
            app_id: self.app_id.clone(),
            room_id: self.room_id.clone(),
            indicator: returned_name.to_string(),
            granularity: self.granularity,
            product_type: self.product_type.clone(),
            os: if web {
                String::new()
            } else {
                comma_list(&self.os)
            },
            access: if web {
                String::new()
            } else {
                comma_list(&self.access)
            },
            // The data does not depend on the grid's offset: a bucket's start says it all.
            grid_timezone: String::new(),
            user_ids: if self.room_id.is_empty() {
                String::new()
            } else {
                comma_list(&self.user_ids)
            },
            dimension: String::new(),
            dimension_value: String::new(),
        }
    }
}

/// Sorted by byte order, deduplicated, joined with commas; `''` for none.
fn comma_list(items: &[String]) -> String {
    let mut v: Vec<&str> = items.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v.join(",")
}

/// The `Result` of a `ListQuality` call at `data_now`.
pub fn generate(seed: u64, q: &Query, data_now: DateTime<Utc>) -> ListQualityResult {
    let starts = bucket_starts(q.start, q.end, q.granularity);
    // Rendering a time stamp costs more than computing a value: do it once per bucket, not per name.
    let stamps: Vec<(DateTime<Utc>, String)> = starts
        .iter()
        .map(|t| {
            (
                t.with_timezone(&Utc),
                t.to_rfc3339_opts(SecondsFormat::Secs, false),
            )
        })
        .collect();
    let room = RoomTraffic::of(seed, q, &stamps, data_now);
    let indicators = expand_indicators(&q.indicators)
        .into_iter()
        .map(|(name, unit)| {
            let key = q.series_key(&name);
            let series = Series::new(seed, &key);
            let mut data = Vec::with_capacity(stamps.len());
            for (t, stamp) in &stamps {
                let stage = bucket_stage(*t, q.granularity, data_now);
                if stage == BucketStage::Future || room == RoomTraffic::Unknown {
                    continue;
                }
                if !room.ran(*t, q.granularity) {
                    // The room had no call then: no traffic, said as a null.
                    data.push(DataItem {
                        time_stamp: stamp.clone(),
                        value: None,
                    });
                    continue;
                }
                let value = series.value(*t, stage);
                if value.is_none() && series.bits(*t, Stream::Form) & 1 == 0 {
                    continue;
                }
                data.push(DataItem {
                    time_stamp: stamp.clone(),
                    value,
                });
            }
            Indicator {
                name,
                unit: unit.to_string(),
                data,
            }
        })
        .collect();
    ListQualityResult {
        aggregate_granularity: q.granularity.as_str().to_string(),
        indicators,
    }
}

/// A request's room, as [`generate`] needs it: computed once per request, not per bucket.
#[derive(Debug, PartialEq)]
enum RoomTraffic {
    /// No `RoomId`: every bucket may have traffic.
    App,
    /// A room the app never had: no data at all.
    Unknown,
    /// The `[created, destroyed)` spans of the room's calls that overlap the asked buckets.
    Calls(Vec<(DateTime<Utc>, DateTime<Utc>)>),
}

impl RoomTraffic {
    fn of(
        seed: u64,
        q: &Query,
        stamps: &[(DateTime<Utc>, String)],
        data_now: DateTime<Utc>,
    ) -> Self {
        if q.room_id.is_empty() {
            return RoomTraffic::App;
        }
        if !rooms::room_exists(&q.room_id) {
            return RoomTraffic::Unknown;
        }
        let (Some((first, _)), Some((last, _))) = (stamps.first(), stamps.last()) else {
            return RoomTraffic::Calls(Vec::new());
        };
        RoomTraffic::Calls(rooms::room_spans(
            seed,
            &q.app_id,
            &q.room_id,
            *first,
            *last + Duration::seconds(q.granularity.seconds()),
            Some(data_now),
        ))
    }

    /// [`room_ran`] for the bucket at `t`, from the spans computed once.
    fn ran(&self, t: DateTime<Utc>, granularity: Granularity) -> bool {
        match self {
            RoomTraffic::App => true,
            RoomTraffic::Unknown => false,
            RoomTraffic::Calls(spans) => {
                let end = t + Duration::seconds(granularity.seconds());
                spans.iter().any(|(c, d)| *c < end && *d > t)
            }
        }
    }
}

/// How many points [`add_off_grid_points`] puts inside the window of every returned series of a
/// `granularity` answer: what a client that keeps the grid drops and counts, per series and call.
pub fn off_grid_points_inside(granularity: Granularity) -> usize {
    match granularity {
        Granularity::FiveMin => 1,
        Granularity::Day => 2,
    }
}

/// The `offgrid` fault: appends to every returned series points that are not on the grid. Inside
/// `[StartTime, EndTime)`: the first bucket plus 17 s and, in a `1d` answer, plus 5 minutes (a
/// 5-minute point); after `EndTime`: `EndTime` plus 17 s, which a client drops as outside the window
/// without counting it. Deterministic, so a test knows how many a client must drop
/// ([`off_grid_points_inside`] per series and call).
pub fn add_off_grid_points(result: &mut ListQualityResult, q: &Query) {
    let Some(first) = bucket_starts(q.start, q.end, q.granularity)
        .first()
        .copied()
    else {
        return;
    };
    let mut stamps = vec![first + Duration::seconds(17)];
    if q.granularity == Granularity::Day {
        stamps.push(first + Duration::minutes(5));
    }
    debug_assert_eq!(stamps.len(), off_grid_points_inside(q.granularity));
    stamps.push(q.end + Duration::seconds(17));
    for indicator in &mut result.indicators {
        for t in &stamps {
            indicator.data.push(DataItem {
                time_stamp: t.to_rfc3339_opts(SecondsFormat::Secs, false),
                // A value, not null: a null bucket is no point, so it would not test the grid.
                value: Some(50.0),
            });
        }
    }
}

/// Independent hash streams per bucket, so that e.g. the traffic draw and the value draw are unrelated.
#[derive(Clone, Copy)]
pub(super) enum Stream {
    Traffic = 1,
    Form = 2,
    Final = 3,
    Provisional = 4,
    Partial = 5,
}

/// One series, hashed once so that each point costs a few multiplications.
pub(super) struct Series {
    pub(super) hash: u64,
    /// Success rates live in 90..100 and lean towards 100; anything else (stall rates) in 0..10, leaning to 0.
    pub(super) success: bool,
}

impl Series {
    fn new(seed: u64, key: &SeriesKey) -> Self {
        let mut h = Sha256::new();
        h.update(seed.to_le_bytes());
        for field in [
            key.app_id.as_str(),
            key.room_id.as_str(),
            key.product_type.as_str(),
            key.os.as_str(),
            key.access.as_str(),
            key.user_ids.as_str(),
            key.indicator.as_str(),
            key.granularity.as_str(),
        ] {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") hash apart.
            h.update((field.len() as u64).to_le_bytes());
            h.update(field.as_bytes());
        }
        let digest = h.finalize();
        let hash = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        Series {
            hash,
            success: key.indicator.contains("success"),
        }
    }

    pub(super) fn bits(&self, t: DateTime<Utc>, stream: Stream) -> u64 {
        mix(&[self.hash, t.timestamp() as u64, stream as u64])
    }

    pub(super) fn value(&self, t: DateTime<Utc>, stage: BucketStage) -> Option<f64> {
        if stage == BucketStage::Future
            || unit_interval(self.bits(t, Stream::Traffic)) < NO_TRAFFIC_RATE
        {
            return None;
        }
        let (lo, hi) = if self.success {
            (90.0, 100.0)
        } else {
            (0.0, 10.0)
        };
        let u = unit_interval(self.bits(t, Stream::Final));
        let shaped = u * u * u;
        let fin = round2(if self.success {
            hi - (hi - lo) * shaped
        } else {
            lo + (hi - lo) * shaped
        });
        let (stream, min_d, max_d) = match stage {
            BucketStage::Final => return Some(fin),
            BucketStage::Provisional => (Stream::Provisional, 0.05, 1.5),
            _ => (Stream::Partial, 0.5, 4.5),
        };
        // Off the final value by at least 0.05 (so two-decimal rounding keeps them apart), towards the
        // middle of the range so that it stays inside it.
        let d = min_d + (max_d - min_d) * unit_interval(self.bits(t, stream));
        let v = if fin + d <= hi && (fin - d < lo || self.bits(t, stream) & 1 == 0) {
            fin + d
        } else {
            fin - d
        };
        Some(round2(v.clamp(lo, hi)))
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// SplitMix64's finalizer: a well-mixed 64-bit value from any 64-bit input.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Folds several words into one hash, order-sensitively.
pub fn mix(words: &[u64]) -> u64 {
    words.iter().fold(0x5349_4D55_4C41_544F, |acc, w| {
        splitmix64(acc ^ splitmix64(*w))
    })
}

/// A uniform draw in `[0, 1)` from the top 53 bits.
pub fn unit_interval(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn key(name: &str, g: Granularity) -> SeriesKey {
        SeriesKey {
            app_id: "app".into(),
            room_id: String::new(),
            indicator: name.into(),
            granularity: g,
            product_type: "native".into(),
            os: String::new(),
            access: String::new(),
            user_ids: String::new(),
            dimension: String::new(),
            dimension_value: String::new(),
            grid_timezone: String::new(),
        }
    }

    #[test]
    fn day_buckets_start_at_local_midnight_and_include_the_end() {
        let b = bucket_starts(
            t("2024-01-10T05:00:00+08:00"),
            t("2024-01-13T00:00:00+08:00"),
            Granularity::Day,
        );
        let s: Vec<String> = b
            .iter()
            .map(|x| x.to_rfc3339_opts(SecondsFormat::Secs, false))
            .collect();
        assert_eq!(
            s,
            [
                "2024-01-11T00:00:00+08:00",
                "2024-01-12T00:00:00+08:00",
                "2024-01-13T00:00:00+08:00"
            ]
        );
        let b = bucket_starts(
            t("2024-01-10T00:00:00-05:00"),
            t("2024-01-10T00:12:00-05:00"),
            Granularity::FiveMin,
        );
        assert_eq!(b.len(), 3);
        assert_eq!(b[2], t("2024-01-10T00:10:00-05:00"));
        let b = bucket_starts(
            t("2024-01-10T00:00:00.5+08:00"),
            t("2024-01-10T00:10:00+08:00"),
            Granularity::FiveMin,
        );
        assert_eq!(b[0], t("2024-01-10T00:05:00+08:00"));
    }

    #[test]
    fn values_are_in_range_with_two_decimals_and_some_buckets_are_empty() {
        let start = t("2024-01-01T00:00:00Z").with_timezone(&Utc);
        for (name, lo, hi) in [
            ("5s_join_room_success_rate", 90.0, 100.0),
            ("video_stall_rate", 0.0, 10.0),
        ] {
            let k = key(name, Granularity::FiveMin);
            let mut empty = 0;
            for i in 0..5000 {
                let ts = start + Duration::minutes(5 * i);
                for stage in [
                    BucketStage::Final,
                    BucketStage::Provisional,
                    BucketStage::Partial,
                ] {
                    match Series::new(9, &k).value(ts, stage) {
                        Some(v) => {
                            assert!((lo..=hi).contains(&v), "{name}: {v}");
                            assert_eq!(v, round2(v));
                        }
                        None => empty += 1,
                    }
                }
            }
            assert!((200..700).contains(&empty), "{name}: {empty} empty");
        }
    }

    #[test]
    fn provisional_and_partial_values_differ_from_the_final_one() {
        let k = key("audio_stall_rate", Granularity::Day);
        let start = t("2024-01-01T00:00:00+08:00").with_timezone(&Utc);
        for i in 0..500 {
            let ts = start + Duration::days(i);
            let s = Series::new(3, &k);
            let Some(fin) = s.value(ts, BucketStage::Final) else {
                continue;
            };
            assert_ne!(s.value(ts, BucketStage::Provisional), Some(fin));
            assert_ne!(s.value(ts, BucketStage::Partial), Some(fin));
        }
    }

    #[test]
    fn stages_follow_data_now() {
        let g = Granularity::Day;
        let now = t("2024-01-20T12:00:00Z").with_timezone(&Utc);
        let day = |d: &str| t(d).with_timezone(&Utc);
        assert_eq!(
            bucket_stage(day("2024-01-20T12:00:00Z"), g, now),
            BucketStage::Future
        );
        // Ends 2024-01-20T00:00Z, 12 h before now: past the 8 h delay, not past 20 h.
        assert_eq!(
            bucket_stage(day("2024-01-19T00:00:00Z"), g, now),
            BucketStage::Provisional
        );
        assert_eq!(
            bucket_stage(day("2024-01-19T12:00:00Z"), g, now),
            BucketStage::Partial
        );
        assert_eq!(
            bucket_stage(day("2024-01-18T00:00:00Z"), g, now),
            BucketStage::Final
        );
    }

    #[test]
    fn filters_change_the_data_unless_the_api_ignores_them() {
        let q = |product: &str, os: &[&str], room: &str, users: &[&str]| Query {
            app_id: "a".into(),
            room_id: room.into(),
            product_type: product.into(),
            os: os.iter().map(|s| s.to_string()).collect(),
            access: vec![],
            user_ids: users.iter().map(|s| s.to_string()).collect(),
            indicators: vec!["stall_rate".into()],
            granularity: Granularity::Day,
            start: t("2024-01-01T00:00:00+08:00"),
            end: t("2024-01-07T00:00:00+08:00"),
        };
        let now = t("2024-02-01T00:00:00Z").with_timezone(&Utc);
        let g = |q: &Query| generate(1, q, now);
        assert_eq!(g(&q("web", &["iOS"], "", &[])), g(&q("web", &[], "", &[])));
        assert_ne!(
            g(&q("native", &["iOS"], "", &[])),
            g(&q("native", &[], "", &[]))
        );
        assert_eq!(
            g(&q("native", &["mac", "iOS"], "", &[])),
            g(&q("native", &["iOS", "mac", "iOS"], "", &[]))
        );
        assert_eq!(
            g(&q("native", &[], "", &["u1"])),
            g(&q("native", &[], "", &[]))
        );
        // A room the app has (one it never had has no data at all, whatever the users).
        assert_ne!(
            g(&q("native", &[], "room-1", &["u1"])),
            g(&q("native", &[], "room-1", &[]))
        );
    }

    /// A week of 5-minute buckets for 4 returned names (about 8,000 points) is cheap enough that the
    /// simulator never becomes the bottleneck of a benchmark. The bound is loose for unoptimized builds.
    #[test]
    fn a_week_of_five_minute_buckets_is_fast() {
        let q = Query {
            app_id: "a".into(),
            room_id: String::new(),
            product_type: "native".into(),
            os: vec![],
            access: vec![],
            user_ids: vec![],
            indicators: vec!["join_room_success_rate".into(), "stall_rate".into()],
            granularity: Granularity::FiveMin,
            start: t("2024-01-01T00:00:00+08:00"),
            end: t("2024-01-08T00:00:00+08:00"),
        };
        let now = t("2024-01-20T00:00:00Z").with_timezone(&Utc);
        let started = std::time::Instant::now();
        let r = generate(1, &q, now);
        let json = serde_json::to_vec(&r).unwrap();
        let took = started.elapsed();
        let points: usize = r.indicators.iter().map(|i| i.data.len()).sum();
        assert!(points > 7_500, "{points}");
        assert!(json.len() > 200_000);
        eprintln!("{points} points, {} bytes in {took:?}", json.len());
        let bound = if cfg!(debug_assertions) { 250 } else { 25 };
        assert!(took < std::time::Duration::from_millis(bound), "{took:?}");
    }

    #[test]
    fn indicators_expand_as_the_docs_show() {
        let names: Vec<String> = expand_indicators(&[
            "join_room_success_rate".into(),
            "stall_rate".into(),
            "audio_stall_rate".into(),
            "first_frame_send_success_rate".into(),
        ])
        .into_iter()
        .map(|(n, u)| {
            assert_eq!(u, "%");
            n
        })
        .collect();
        assert_eq!(
            names,
            [
                "5s_join_room_success_rate",
                "10s_join_room_success_rate",
                "audio_stall_rate",
                "video_stall_rate",
                "first_frame_send_success_rate"
            ]
        );
    }
}
