//! What a window commit writes: the batch normalized, then compared with what is stored.
//!
//! Pure: no SQL. Both backends feed it the stored points they read and write what it says, so the
//! rules "a point whose value and settled flag are unchanged is never written" and "a fetched window
//! replaces the points of the indicators it asked" live here once.

use std::collections::{HashMap, HashSet};

use crate::domain::{SeriesKey, Window, WindowBatch, WriteCounts, owning_indicator};

/// The stored `(value, settled)` per `(series id, bucket start in seconds)` of a window.
pub(crate) type Stored = HashMap<(i64, i64), (f64, bool)>;

/// A point to write: `(series id, bucket start in seconds, value, settled)`.
pub(crate) type Row = (i64, i64, f64, bool);

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
    /// The range of bucket starts the batch replaces: the window, widened to cover any stray point.
    pub range: (i64, i64),
    /// Buckets that start before this second are settled.
    pub cut: i64,
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
            cut: batch.cut().timestamp(),
        }
    }

    pub fn point_count(&self) -> usize {
        self.series.iter().map(|s| s.points.len()).sum()
    }

    /// Per requested indicator, the points inside `part` of the series whose returned name it owns
    /// among `owners`.
    pub fn points_of(&self, owners: &[String], indicators: &[String], part: Window) -> Vec<i64> {
        let (lo, hi) = (part.start.timestamp(), part.end.timestamp());
        let mut counts = vec![0i64; indicators.len()];
        for s in &self.series {
            if let Some(owner) = owned_by(&s.key.indicator, owners, indicators)
                && let Some(i) = indicators.iter().position(|r| r == owner)
            {
                counts[i] += s
                    .points
                    .iter()
                    .filter(|&&(ts, _)| lo <= ts && ts < hi)
                    .count() as i64;
            }
        }
        counts
    }
}

/// The asked indicator that owns a returned `name`: the one of the stream's `owners` it belongs to
/// ([`owning_indicator`]), if the call asked it.
pub(crate) fn owned_by<'i>(name: &str, owners: &[String], asked: &'i [String]) -> Option<&'i str> {
    let owner = owning_indicator(name, owners)?;
    asked.iter().find(|a| *a == owner).map(String::as_str)
}

/// What a window's diff against the stored points found.
pub(crate) struct Diff {
    /// Points not stored yet.
    pub new: Vec<Row>,
    /// Stored points whose value or settled flag differ.
    pub changed: Vec<Row>,
    pub unchanged: u64,
    /// `(series id, bucket start in seconds)` of stored points of the replaced series that the
    /// batch no longer has.
    pub deleted: Vec<(i64, i64)>,
}

impl Diff {
    /// Compares the batch (with its series' ids, in order) with the stored `(value, settled)` per
    /// `(series id, bucket start)`. Stored points of a series in `replaced` that the batch does not
    /// have are deleted; the batch's own series' points are judged against the batch's settle cut.
    pub fn compute(
        batch: &NormBatch<'_>,
        ids: &[i64],
        stored: &Stored,
        replaced: &HashSet<i64>,
    ) -> Diff {
        let mut diff = Diff {
            new: Vec::new(),
            changed: Vec::new(),
            unchanged: 0,
            deleted: Vec::new(),
        };
        if stored.is_empty() {
            diff.new.reserve(batch.point_count());
        }
        let mut kept: HashSet<(i64, i64)> = HashSet::new();
        for (s, &id) in batch.series.iter().zip(ids) {
            for &(ts, value) in &s.points {
                let settled = ts < batch.cut;
                if replaced.contains(&id) {
                    kept.insert((id, ts));
                }
                match stored.get(&(id, ts)) {
                    None => diff.new.push((id, ts, value, settled)),
                    // Values are finite, so == is IS DISTINCT FROM's negation here.
                    Some(&(v, st)) if v == value && st == settled => diff.unchanged += 1,
                    Some(_) => diff.changed.push((id, ts, value, settled)),
                }
            }
        }
        diff.deleted = stored
            .keys()
            .filter(|k| replaced.contains(&k.0) && !kept.contains(k))
            .copied()
            .collect();
        diff.deleted.sort_unstable();
        diff
    }

    pub fn counts(&self) -> WriteCounts {
        WriteCounts {
            inserted: self.new.len() as u64,
            updated: self.changed.len() as u64,
            unchanged: self.unchanged,
            deleted: self.deleted.len() as u64,
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
            grid_timezone: String::new(),
        }
    }

    #[test]
    fn normalizing_merges_duplicate_series_and_buckets_keeping_the_later() {
        let t = |m: i64| Utc.timestamp_opt(1_700_000_000 + m * 300, 0).unwrap();
        let batch = WindowBatch {
            stream: "s".into(),
            indicators: vec!["a".into()],
            owners: vec!["a".into()],
            window: Window::new(t(0), t(10)),
            settled_until: t(2),
            scope: key(""),
            timezone: "+08:00".into(),
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
        assert_eq!(n.cut, ts(2));

        let mut stored = HashMap::new();
        stored.insert((7, ts(1)), (2.0, true));
        stored.insert((7, ts(2)), (3.0, true));
        let d = Diff::compute(&n, &[7], &stored, &HashSet::from([7]));
        assert_eq!(d.new, vec![(7, ts(12), 4.0, false)]);
        assert_eq!(
            d.changed,
            vec![(7, ts(2), 3.0, false)],
            "a settled flip is a change: the bucket at the cut is provisional"
        );
        assert_eq!(d.unchanged, 1, "before the cut: settled");
    }

    /// A normalized batch of series `keys[i]` with the given `(bucket start, value)` points, all
    /// settled when `settled`.
    fn norm<'a>(keys: &'a [SeriesKey], points: &[&[(i64, f64)]], settled: bool) -> NormBatch<'a> {
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
            cut: if settled { 1_000 } else { 0 },
        }
    }

    fn none() -> HashSet<i64> {
        HashSet::new()
    }

    #[test]
    fn nothing_stored_means_every_point_is_new() {
        let keys = [key("a")];
        let n = norm(&keys, &[&[(0, 1.0), (300, 2.0)]], false);
        let d = Diff::compute(&n, &[3], &Stored::new(), &none());
        assert_eq!(d.new, vec![(3, 0, 1.0, false), (3, 300, 2.0, false)]);
        assert!(d.changed.is_empty());
        assert_eq!(
            d.counts(),
            WriteCounts {
                inserted: 2,
                updated: 0,
                unchanged: 0,
                deleted: 0,
            }
        );
    }

    #[test]
    fn an_unchanged_point_is_not_written_and_a_changed_value_is() {
        let keys = [key("a")];
        let n = norm(&keys, &[&[(0, 1.0), (300, 2.5)]], false);
        let stored = Stored::from([((3, 0), (1.0, false)), ((3, 300), (2.0, false))]);
        let d = Diff::compute(&n, &[3], &stored, &none());
        assert!(d.new.is_empty());
        assert_eq!(d.changed, vec![(3, 300, 2.5, false)]);
        assert_eq!(
            d.counts(),
            WriteCounts {
                inserted: 0,
                updated: 1,
                unchanged: 1,
                deleted: 0,
            }
        );
    }

    #[test]
    fn a_settled_flag_that_differs_is_a_change_both_ways() {
        let keys = [key("a")];
        let provisional = Stored::from([((3, 0), (1.0, false))]);
        let settled = Stored::from([((3, 0), (1.0, true))]);
        assert_eq!(
            Diff::compute(
                &norm(&keys, &[&[(0, 1.0)]], true),
                &[3],
                &provisional,
                &none()
            )
            .changed,
            vec![(3, 0, 1.0, true)]
        );
        assert_eq!(
            Diff::compute(&norm(&keys, &[&[(0, 1.0)]], false), &[3], &settled, &none()).changed,
            vec![(3, 0, 1.0, false)]
        );
        assert_eq!(
            Diff::compute(&norm(&keys, &[&[(0, 1.0)]], true), &[3], &settled, &none()).unchanged,
            1
        );
    }

    #[test]
    fn stored_points_the_answer_no_longer_has_are_deleted_in_replaced_series_only() {
        let keys = [key("a"), key("b")];
        let n = norm(&keys, &[&[(0, 1.0)], &[(0, 1.0)]], true);
        // Series 3 and 4 are the batch's; 4 has a bucket the answer lost; 5 is a replaced series the
        // answer lacks altogether; 6 is not replaced (an indicator the call did not ask).
        let stored = Stored::from([
            ((3, 0), (1.0, true)),
            ((4, 300), (9.0, true)),
            ((5, 0), (2.0, true)),
            ((5, 300), (2.0, false)),
            ((6, 0), (7.0, true)),
        ]);
        let d = Diff::compute(&n, &[3, 4], &stored, &HashSet::from([3, 4, 5]));
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.new, vec![(4, 0, 1.0, true)]);
        assert!(d.changed.is_empty());
        assert_eq!(d.deleted, vec![(4, 300), (5, 0), (5, 300)]);
        assert_eq!(d.counts().deleted, 3);
        // Without replaced series, nothing is deleted.
        assert!(
            Diff::compute(&n, &[3, 4], &stored, &none())
                .deleted
                .is_empty()
        );
    }

    #[test]
    fn a_name_is_replaced_only_when_an_asked_indicator_owns_it() {
        let owners = ["stall_rate".to_string(), "audio_stall_rate".to_string()];
        let asked = ["stall_rate".to_string()];
        assert_eq!(
            owned_by("video_stall_rate", &owners, &asked),
            Some("stall_rate")
        );
        // The longest owner is `audio_stall_rate`, which this call did not ask.
        assert_eq!(owned_by("80ms_audio_stall_rate", &owners, &asked), None);
        assert_eq!(owned_by("join_room_success_rate", &owners, &asked), None);
    }
}
