//! The batch stage: one fetched window becomes what the store commits. Pure: no IO, no clock.
//!
//! It keeps the points whose bucket starts inside the window, makes one series per indicator name
//! the API returned, and splits the window at the settle instant into a settled part and a
//! provisional tail, each committed with its own ledger row. The settle instant comes in as data.
//!
//! Buckets listed twice are merged in one place only, by the store as it normalizes a batch
//! (`store::diff::NormBatch`: the later value wins), since the store must protect every caller from
//! writing one row twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::api::client::Fetched;
use crate::domain::{Point, SeriesKey, SeriesPoints, Stream, Window, WindowBatch};

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
}

/// The batches to commit: the part of the window before `settled_until` (settled) and the part
/// from it on (provisional), each only if it is not empty.
pub fn split(f: &FetchedWindow<'_>, settled_until: DateTime<Utc>) -> Vec<WindowBatch> {
    let window = f.window;
    let series = by_name(f);
    let cut = settled_until.clamp(window.start, window.end);
    [(window.start, cut, true), (cut, window.end, false)]
        .into_iter()
        .filter(|&(start, end, _)| start < end)
        .map(|(start, end, settled)| {
            let part = Window { start, end };
            WindowBatch {
                stream: f.stream.key.clone(),
                indicators: f.indicators.to_vec(),
                window: part,
                settled,
                series: series
                    .iter()
                    .map(|(name, (unit, points))| SeriesPoints {
                        key: key(f.stream, name),
                        unit: unit.to_string(),
                        points: points
                            .iter()
                            .filter(|p| part.contains(p.ts))
                            .copied()
                            .collect(),
                    })
                    .collect(),
                attempts: f.attempts,
                request_id: Some(f.fetched.request_id.clone()),
                fetched_at: f.fetched_at,
            }
        })
        .collect()
}

/// The points inside the window per indicator name, in name order; a name listed twice keeps its
/// first unit and all its points.
fn by_name<'a>(f: &FetchedWindow<'a>) -> BTreeMap<&'a str, (&'a str, Vec<Point>)> {
    let mut by_name: BTreeMap<&str, (&str, Vec<Point>)> = BTreeMap::new();
    for ind in &f.fetched.indicators {
        let (_, points) = by_name
            .entry(ind.name.as_str())
            .or_insert_with(|| (ind.unit.as_str(), Vec::new()));
        // Whether EndTime is inclusive is undocumented: keep only buckets that start inside.
        points.extend(ind.points.iter().filter(|p| f.window.contains(p.ts)));
    }
    by_name
}

/// The series key of an indicator of the stream's job: what the API returned, with the job's filters.
fn key(stream: &Stream, indicator: &str) -> SeriesKey {
    let job = &stream.job;
    SeriesKey {
        app_id: job.app_id.clone(),
        room_id: job.room_id.clone(),
        indicator: indicator.to_string(),
        granularity: stream.granularity,
        product_type: job.product_type.as_str().to_string(),
        os: job.os.join(","),
        access: job.access.join(","),
        user_ids: job.user_ids.join(","),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::api::client::FetchedIndicator;
    use crate::domain::{Granularity, Job, ProductType};

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
        job.streams().remove(0)
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
        }
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
        let b = split(&fw, h(100));
        assert_eq!(b.len(), 1, "all settled: one batch");
        assert!(b[0].settled);
        assert_eq!(b[0].window, Window::new(h(0), h(10)));
        assert_eq!(
            hours_of(&b[0], 0),
            vec![0, 9],
            "a bucket at EndTime is dropped"
        );
        assert_eq!(b[0].request_id.as_deref(), Some("req-1"));
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
        let b = split(&fw, h(4));
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].window, b[0].settled), (Window::new(h(0), h(4)), true));
        assert_eq!(
            (b[1].window, b[1].settled),
            (Window::new(h(4), h(10)), false)
        );
        assert_eq!(hours_of(&b[0], 0), vec![0, 3]);
        assert_eq!(
            hours_of(&b[1], 0),
            vec![4, 9],
            "the bucket at the cut is provisional"
        );
        assert!(b.iter().all(|b| b.attempts == 2 && b.fetched_at == h(30)));

        // A cut before the window makes it all provisional; one after it, all settled.
        let b = split(&fw, h(-5));
        assert_eq!(b.len(), 1);
        assert!(!b[0].settled);
        assert_eq!(b[0].window, Window::new(h(0), h(10)));
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
        let b = split(&fw, h(100));
        let names: Vec<&str> = b[0]
            .series
            .iter()
            .map(|s| s.key.indicator.as_str())
            .collect();
        assert_eq!(names, vec!["a_rate", "b_rate"], "in name order");
        let b_rate = &b[0].series[1];
        assert_eq!(b_rate.unit, "%", "the first unit of a name wins");
        assert_eq!(hours_of(&b[0], 1), vec![1, 3]);
        assert_eq!(b_rate.key.os, "android,iOS");
        assert_eq!(b_rate.key.granularity, Granularity::FiveMin);
        assert_eq!(b_rate.key.product_type, "native");
    }
}
