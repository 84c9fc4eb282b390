//! What a window commit writes: the batch normalized, then compared with what is stored.
//!
//! Pure: no SQL. Both backends feed it the stored points they read and write what it says, so the
//! rule "a point whose value and settled flag are unchanged is never written" lives here once.

use std::collections::HashMap;

use crate::domain::{SeriesKey, WindowBatch, WriteCounts, owning_indicator};

/// The stored `(value, settled)` per `(series id, bucket start in seconds)` of a window.
pub(crate) type Stored = HashMap<(i64, i64), (f64, bool)>;

/// One series of a batch, ready to write: points sorted by bucket start, one per bucket.
pub(crate) struct NormSeries<'a> {
    pub key: &'a SeriesKey,
    pub unit: &'a str,
    /// `(bucket start in whole seconds since the epoch, value)`.
    pub points: Vec<(i64, f64)>,
}

/// A batch with duplicates merged, so neither backend ever writes one row twice in a statement.
///
/// A series listed twice is merged (the later unit wins) and a bucket listed twice keeps its later
/// value. Bucket starts are whole seconds (both the API and the tables work in seconds).
pub(crate) struct NormBatch<'a> {
    pub series: Vec<NormSeries<'a>>,
    /// The range of bucket starts the batch can touch: the window, widened to cover any stray point.
    pub range: (i64, i64),
}

impl<'a> NormBatch<'a> {
    pub fn new(batch: &'a WindowBatch) -> Self {
        let mut by_key: HashMap<&SeriesKey, usize> = HashMap::with_capacity(batch.series.len());
        let mut series: Vec<NormSeries<'a>> = Vec::with_capacity(batch.series.len());
        for s in &batch.series {
            let idx = *by_key.entry(&s.key).or_insert_with(|| {
                series.push(NormSeries {
                    key: &s.key,
                    unit: &s.unit,
                    points: Vec::with_capacity(s.points.len()),
                });
                series.len() - 1
            });
            let target = &mut series[idx];
            target.unit = &s.unit;
            target
                .points
                .extend(s.points.iter().map(|p| (p.ts.timestamp(), p.value)));
        }
        let (mut lo, mut hi) = (batch.window.start.timestamp(), batch.window.end.timestamp());
        for s in &mut series {
            // A stable sort keeps equal buckets in input order, so keeping the last of each run keeps
            // the later value.
            s.points.sort_by_key(|&(ts, _)| ts);
            let mut deduped: Vec<(i64, f64)> = Vec::with_capacity(s.points.len());
            for &(ts, v) in &s.points {
                match deduped.last_mut() {
                    Some(last) if last.0 == ts => last.1 = v,
                    _ => deduped.push((ts, v)),
                }
            }
            s.points = deduped;
            if let (Some(first), Some(last)) = (s.points.first(), s.points.last()) {
                lo = lo.min(first.0);
                hi = hi.max(last.0 + 1);
            }
        }
        NormBatch {
            series,
            range: (lo, hi),
        }
    }

    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// Per requested indicator, the points of the series whose returned name it owns.
    pub fn points_of(&self, indicators: &[String]) -> Vec<i64> {
        let mut counts = vec![0i64; indicators.len()];
        for s in &self.series {
            if let Some(owner) = owning_indicator(&s.key.indicator, indicators)
                && let Some(i) = indicators.iter().position(|r| r == owner)
            {
                counts[i] += s.points.len() as i64;
            }
        }
        counts
    }
}

/// What a window's diff against the stored points found.
pub(crate) struct Diff {
    /// `(series id, bucket start in seconds, value)` of points not stored yet.
    pub new: Vec<(i64, i64, f64)>,
    /// The same for stored points whose value or settled flag differ.
    pub changed: Vec<(i64, i64, f64)>,
    pub unchanged: u64,
}

impl Diff {
    /// Compares the batch (with its series' ids, in order) with the stored `(value, settled)` per
    /// `(series id, bucket start)`.
    pub fn compute(batch: &NormBatch<'_>, ids: &[i64], stored: &Stored, settled: bool) -> Diff {
        let mut diff = Diff {
            new: Vec::new(),
            changed: Vec::new(),
            unchanged: 0,
        };
        if stored.is_empty() {
            diff.new.reserve(batch.point_count());
        }
        for (s, &id) in batch.series.iter().zip(ids) {
            for &(ts, value) in &s.points {
                match stored.get(&(id, ts)) {
                    None => diff.new.push((id, ts, value)),
                    // Values are finite, so == is IS DISTINCT FROM's negation here.
                    Some(&(v, st)) if v == value && st == settled => diff.unchanged += 1,
                    Some(_) => diff.changed.push((id, ts, value)),
                }
            }
        }
        diff
    }

    pub fn counts(&self) -> WriteCounts {
        WriteCounts {
            inserted: self.new.len() as u64,
            updated: self.changed.len() as u64,
            unchanged: self.unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Granularity, Point, SeriesPoints, Window};
    use chrono::{TimeZone, Utc};

    fn key(indicator: &str) -> SeriesKey {
        SeriesKey {
            app_id: "app".into(),
            room_id: String::new(),
            indicator: indicator.into(),
            granularity: Granularity::FiveMin,
            product_type: "native".into(),
            os: String::new(),
            access: String::new(),
            user_ids: String::new(),
            dimension: String::new(),
            dimension_value: String::new(),
        }
    }

    #[test]
    fn normalizing_merges_duplicate_series_and_buckets_keeping_the_later() {
        let t = |m: i64| Utc.timestamp_opt(1_700_000_000 + m * 300, 0).unwrap();
        let batch = WindowBatch {
            stream: "s".into(),
            indicators: vec!["a".into()],
            window: Window::new(t(0), t(10)),
            settled: true,
            series: vec![
                SeriesPoints {
                    key: key("a"),
                    unit: "%".into(),
                    points: vec![
                        Point {
                            ts: t(2),
                            value: 1.0,
                        },
                        Point {
                            ts: t(1),
                            value: 2.0,
                        },
                    ],
                },
                SeriesPoints {
                    key: key("a"),
                    unit: "ms".into(),
                    points: vec![
                        Point {
                            ts: t(2),
                            value: 3.0,
                        },
                        Point {
                            ts: t(12),
                            value: 4.0,
                        },
                    ],
                },
            ],
            attempts: 1,
            request_id: None,
            fetched_at: t(20),
        };
        let n = NormBatch::new(&batch);
        assert_eq!(n.series.len(), 1);
        assert_eq!(n.series[0].unit, "ms");
        let ts = |m: i64| t(m).timestamp();
        assert_eq!(
            n.series[0].points,
            vec![(ts(1), 2.0), (ts(2), 3.0), (ts(12), 4.0)]
        );
        assert_eq!(n.range, (ts(0), ts(12) + 1));

        let mut stored = HashMap::new();
        stored.insert((7, ts(1)), (2.0, true));
        stored.insert((7, ts(2)), (3.0, false));
        let d = Diff::compute(&n, &[7], &stored, true);
        assert_eq!(d.new, vec![(7, ts(12), 4.0)]);
        assert_eq!(
            d.changed,
            vec![(7, ts(2), 3.0)],
            "a settled flip is a change"
        );
        assert_eq!(d.unchanged, 1);
    }

    /// A normalized batch of series `keys[i]` with the given `(bucket start, value)` points.
    fn norm<'a>(keys: &'a [SeriesKey], points: &[&[(i64, f64)]]) -> NormBatch<'a> {
        NormBatch {
            series: keys
                .iter()
                .zip(points)
                .map(|(key, p)| NormSeries {
                    key,
                    unit: "%",
                    points: p.to_vec(),
                })
                .collect(),
            range: (0, 1_000),
        }
    }

    #[test]
    fn nothing_stored_means_every_point_is_new() {
        let keys = [key("a")];
        let n = norm(&keys, &[&[(0, 1.0), (300, 2.0)]]);
        let d = Diff::compute(&n, &[3], &Stored::new(), false);
        assert_eq!(d.new, vec![(3, 0, 1.0), (3, 300, 2.0)]);
        assert!(d.changed.is_empty());
        assert_eq!(
            d.counts(),
            WriteCounts {
                inserted: 2,
                updated: 0,
                unchanged: 0
            }
        );
    }

    #[test]
    fn an_unchanged_point_is_not_written_and_a_changed_value_is() {
        let keys = [key("a")];
        let n = norm(&keys, &[&[(0, 1.0), (300, 2.5)]]);
        let stored = Stored::from([((3, 0), (1.0, false)), ((3, 300), (2.0, false))]);
        let d = Diff::compute(&n, &[3], &stored, false);
        assert!(d.new.is_empty());
        assert_eq!(d.changed, vec![(3, 300, 2.5)]);
        assert_eq!(
            d.counts(),
            WriteCounts {
                inserted: 0,
                updated: 1,
                unchanged: 1
            }
        );
    }

    #[test]
    fn a_settled_flag_that_differs_is_a_change_both_ways() {
        let keys = [key("a")];
        let n = norm(&keys, &[&[(0, 1.0)]]);
        let provisional = Stored::from([((3, 0), (1.0, false))]);
        let settled = Stored::from([((3, 0), (1.0, true))]);
        assert_eq!(
            Diff::compute(&n, &[3], &provisional, true).changed,
            vec![(3, 0, 1.0)]
        );
        assert_eq!(
            Diff::compute(&n, &[3], &settled, false).changed,
            vec![(3, 0, 1.0)]
        );
        assert_eq!(Diff::compute(&n, &[3], &settled, true).unchanged, 1);
    }

    #[test]
    fn stored_points_are_matched_by_series_id_and_bucket() {
        let keys = [key("a"), key("b")];
        let n = norm(&keys, &[&[(0, 1.0)], &[(0, 1.0)]]);
        // Only series 3 has the bucket; series 4 has a point the batch does not mention.
        let stored = Stored::from([((3, 0), (1.0, true)), ((4, 300), (9.0, true))]);
        let d = Diff::compute(&n, &[3, 4], &stored, true);
        assert_eq!(d.unchanged, 1);
        assert_eq!(
            d.new,
            vec![(4, 0, 1.0)],
            "a stored point elsewhere is no match"
        );
        assert!(
            d.changed.is_empty(),
            "points the batch lacks are left alone"
        );
    }
}
