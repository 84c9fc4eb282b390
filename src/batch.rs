//! The batch stage: one fetched window becomes what the store commits. Pure: no IO, no clock.
//!
//! It keeps the points whose bucket starts inside the window and on the stream's grid, makes one
//! series per indicator name the API returned, and marks where the window's settled part ends and
//! its provisional tail begins: the store commits both parts, each with its own ledger row, in one
//! transaction. The settle instant comes in as data.
//!
//! A point outside the window (such as the bucket at `EndTime`) is dropped silently: asking for
//! `[start, end]` returns it by design. A point inside the window but off the grid (`22:32:17Z` in a
//! `5min` stream, a 5-minute point in a `1d` one) is not a bucket the stream has: storing it would
//! leave a row beside the right one, so it is dropped and counted, for the pipeline to report.
//!
//! An answer with two different values for one bucket never gets here: the API boundary refuses it
//! (`api::answer`). The store still merges a bucket listed twice (`store::diff::NormBatch`), since it
//! must protect every caller from writing one row twice.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};

use crate::api::client::Fetched;
use crate::api::distribution::FetchedDistribution;
use crate::domain::{Point, SeriesKey, SeriesPoints, Stream, Window, WindowBatch, offset_text};
use crate::planner::floor_to;

/// One window's response, as the fetcher returned it.
#[derive(Debug, Clone, Copy)]
pub struct FetchedWindow<'a> {
    pub stream: &'a Stream,
    pub window: Window,
    /// The indicators the call asked.
    pub indicators: &'a [String],
    pub fetched: &'a Fetched,
    /// Calls this window has cost, counting every run.
    pub attempts: i64,
    pub fetched_at: DateTime<Utc>,
    /// `window.timezone`: the offset the stream's grid is drawn in (1d buckets start at its midnight).
    pub timezone: FixedOffset,
}

/// What [`split`] made of one window's response.
#[derive(Debug, Clone)]
pub struct Split {
    /// The window's points and ledger rows, committed in one transaction.
    pub batch: WindowBatch,
    /// The points inside the window that were not on the stream's grid, and not stored.
    pub off_grid: OffGrid,
}

/// Points dropped because their `TimeStamp` is not a bucket start of the stream's granularity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffGrid {
    pub count: u64,
    /// The earliest of them, for the warning.
    pub example: Option<DateTime<Utc>>,
}

/// The batch to commit: the points inside the window and on the grid, settled before
/// `settled_until` and provisional from it on; and the off-grid points left out.
pub fn split(f: &FetchedWindow<'_>, settled_until: DateTime<Utc>) -> Split {
    let (series, off_grid) = by_name(f);
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
        request_id: Some(f.fetched.request_id.clone()),
        fetched_at: f.fetched_at,
    };
    Split { batch, off_grid }
}

/// The points inside the window and on the grid per indicator name, in name order (a name listed
/// twice keeps its first unit and all its points), and the off-grid points inside the window.
fn by_name<'a>(f: &FetchedWindow<'a>) -> (BTreeMap<&'a str, (&'a str, Vec<Point>)>, OffGrid) {
    let g = f.stream.granularity;
    let mut by_name: BTreeMap<&str, (&str, Vec<Point>)> = BTreeMap::new();
    let mut off_grid = OffGrid::default();
    for ind in &f.fetched.indicators {
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

/// One fetched `ListQualityDistribution` call: one local day of one indicator by one dimension.
#[derive(Debug, Clone, Copy)]
pub struct FetchedDay<'a> {
    /// The distribution stream: its key, indicator, dimension and grid.
    pub stream: &'a Stream,
    /// The local day asked for, `[midnight, next midnight)` in the configured offset.
    pub day: Window,
    pub fetched: &'a FetchedDistribution,
    /// Calls this day has cost, counting every run.
    pub attempts: i64,
    pub fetched_at: DateTime<Utc>,
}

/// The batch to commit for a fetched day: one series per returned name and dimension value, settled
/// when the day ends at or before `settled_until`.
///
/// The API's time grid for this call is not documented, so every `TimeStamp` inside the day is kept
/// as returned; points outside the day (such as the next midnight) are dropped, and not counted.
pub fn distribution_batch(f: &FetchedDay<'_>, settled_until: DateTime<Utc>) -> WindowBatch {
    let stream = f.stream;
    let scope = stream.scope();
    let mut series: BTreeMap<(&str, &str), Vec<Point>> = BTreeMap::new();
    for s in &f.fetched.series {
        for p in s.points.iter().filter(|p| f.day.contains(p.ts)) {
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
        window: f.day,
        // A day's values are one answer: the whole day is settled, or none of it.
        settled_until: if f.day.end <= settled_until {
            f.day.end
        } else {
            f.day.start
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
        request_id: Some(f.fetched.request_id.clone()),
        fetched_at: f.fetched_at,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::api::client::FetchedIndicator;
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

    /// The response `f` to a call for `[h(0), h(10))` of `s`.
    fn window<'a>(
        s: &'a Stream,
        f: &'a Fetched,
        attempts: i64,
        fetched_at: i64,
    ) -> FetchedWindow<'a> {
        FetchedWindow {
            stream: s,
            window: Window::new(h(0), h(10)),
            indicators: &s.job.indicators,
            fetched: f,
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
        let out = split(&window(&s, &f, 1, 30), h(5));
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
        let fw = FetchedWindow {
            stream: &s,
            window: Window::new(day(25, 16, 0, 0), day(28, 16, 0, 0)),
            indicators: &s.job.indicators,
            fetched: &f,
            attempts: 1,
            fetched_at: day(30, 0, 0, 0),
            timezone: plus8(),
        };
        let out = split(&fw, day(29, 16, 0, 0));
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
        let fw = FetchedWindow {
            timezone: FixedOffset::east_opt(0).unwrap(),
            window: Window::new(day(25, 0, 0, 0), day(28, 0, 0, 0)),
            ..fw
        };
        let out = split(&fw, day(29, 0, 0, 0));
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
        let fw = window(&s, &f, 1, 100);
        let b = split(&fw, h(100)).batch;
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
        let fw = window(&s, &f, 2, 30);
        let b = split(&fw, h(4)).batch;
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
        let b = split(&fw, h(-5)).batch;
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
        let fw = window(&s, &f, 1, 100);
        let b = split(&fw, h(100)).batch;
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
        let fw = FetchedWindow { stream: &day, ..fw };
        let b = split(&fw, h(100)).batch;
        assert!(b.series.iter().all(|s| s.key.grid_timezone == "+08:00"));
    }

    #[test]
    fn a_distribution_day_keeps_what_lies_inside_it_as_returned() {
        use crate::api::distribution::{DistributionPoint, DistributionSeries};
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
        let f = FetchedDay {
            stream: &stream,
            day,
            fetched: &fetched,
            attempts: 2,
            fetched_at: h(60),
        };
        let b = distribution_batch(&f, h(40));
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
            distribution_batch(&f, h(15)).parts(),
            [(day, WindowState::Provisional)]
        );
    }
}
