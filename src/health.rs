//! How complete each configured stream is, for `status` and `status --check`: what the ledger covers
//! of the horizon, the holes inside it, the failed windows, and how far behind it is.
//!
//! Pure, like the planner: the window settings, a stream, its ledger rows and `now` in, a verdict out.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::WindowSettings;
use crate::domain::Stream;
use crate::domain::{LedgerEntry, Window, WindowState};
use crate::planner;

/// One configured stream against its horizon.
#[derive(Debug, Clone, Serialize)]
pub struct StreamHealth {
    pub stream: String,
    /// `[horizon start, available end)` at `now`.
    pub horizon: Window,
    /// No ledger row at all.
    pub never_synced: bool,
    /// The end of the covered range that runs unbroken from the horizon start; `None` when the
    /// horizon start itself is not covered.
    pub complete_through: Option<DateTime<Utc>>,
    /// The same for the settled range alone: `sync_coverage.settled_through`.
    pub settled_through: Option<DateTime<Utc>>,
    /// The end of the newest covered (settled or provisional) window inside the horizon.
    pub covered_end: Option<DateTime<Utc>>,
    /// Gaps inside `[horizon start, covered_end)` that no window covers.
    pub holes: Vec<Window>,
    /// Buckets in the holes.
    pub hole_buckets: i64,
    /// Buckets of the horizon that no window covers (holes and the uncovered tail).
    pub missing_buckets: i64,
    /// Those buckets as ranges, oldest first (a room stream's: of its needed buckets only).
    #[serde(skip)]
    pub uncovered: Vec<Window>,
    /// Failed windows inside the horizon that no successful window has superseded yet.
    pub failed: Vec<LedgerEntry>,
}

/// Assesses `stream` from its ledger rows: rows of other streams, and of indicators it no longer asks,
/// are ignored. A bucket counts as covered when every indicator the stream asks has it covered. A
/// room stream is measured over its needed buckets only (PRODUCT.md, "Room streams").
pub fn assess<'a>(
    settings: &WindowSettings,
    stream: &Stream,
    ledger: impl IntoIterator<Item = &'a LedgerEntry>,
    now: DateTime<Utc>,
) -> StreamHealth {
    let g = stream.granularity;
    let horizon = planner::horizon(settings, g, now);
    let indicators = &stream.job.indicators;
    let rows: Vec<&LedgerEntry> = ledger
        .into_iter()
        .filter(|e| *e.stream == *stream.key && indicators.contains(&e.indicator))
        .collect();
    // Per indicator, the windows that hold data (settled, or provisional too).
    let covered = |indicator: &str, settled_only: bool| -> Vec<Window> {
        rows.iter()
            .filter(|e| e.indicator == indicator)
            .filter(|e| match e.state {
                WindowState::Settled => true,
                WindowState::Provisional => !settled_only,
                WindowState::Failed | WindowState::Refetch => false,
            })
            .map(|e| e.window)
            .collect()
    };
    // What the stream needs: its horizon, or a room stream's needed buckets inside it (a quiet
    // stretch of a room is not missing).
    let needed = match &stream.room {
        Some(room) => planner::intersect(&[horizon], &room.needs),
        None => vec![horizon],
    };
    // What some indicator lacks.
    let lacking = |settled_only: bool| -> Vec<Window> {
        planner::union(
            indicators
                .iter()
                .flat_map(|i| {
                    let covered = covered(i, settled_only);
                    needed
                        .iter()
                        .flat_map(move |n| planner::subtract(*n, covered.clone()))
                })
                .collect(),
        )
    };
    let uncovered = lacking(false);
    let unsettled = lacking(true);
    let unbroken = |gaps: &[Window]| match gaps.first() {
        None => Some(horizon.end),
        Some(gap) if gap.start > horizon.start => Some(gap.start),
        Some(_) => None,
    };
    // The newest end that every indicator reaches.
    let covered_end = indicators
        .iter()
        .map(|i| {
            covered(i, false)
                .iter()
                .filter(|w| w.end > horizon.start && w.start < horizon.end)
                .map(|w| w.end.min(horizon.end))
                .max()
        })
        .min()
        .flatten();
    let holes: Vec<Window> = uncovered
        .iter()
        .filter(|gap| covered_end.is_some_and(|end| gap.end <= end))
        .copied()
        .collect();
    let buckets = |gaps: &[Window]| {
        gaps.iter().map(|w| w.duration().num_seconds()).sum::<i64>() / g.seconds()
    };
    // A failed row stays until a successful window supersedes it: each is open, once per window.
    let mut failed: Vec<LedgerEntry> = Vec::new();
    for e in rows
        .iter()
        .filter(|e| e.state == WindowState::Failed && e.window.end > horizon.start)
    {
        match failed.iter_mut().find(|f| f.window == e.window) {
            Some(f) if f.fetched_at < e.fetched_at => *f = (*e).clone(),
            Some(_) => {}
            None => failed.push((*e).clone()),
        }
    }
    StreamHealth {
        stream: stream.name.clone(),
        horizon,
        never_synced: rows.is_empty(),
        complete_through: unbroken(&uncovered),
        settled_through: unbroken(&unsettled),
        covered_end,
        hole_buckets: buckets(&holes),
        missing_buckets: buckets(&uncovered),
        holes,
        uncovered,
        failed,
    }
}

/// What `status --check` reports about a stream; each says what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    NeverSynced,
    /// The covered range ends more than `max_age` before the available end.
    Stale {
        covered_end: Option<DateTime<Utc>>,
        available_end: DateTime<Utc>,
    },
    FailedWindows {
        count: usize,
        since: DateTime<Utc>,
        last_error: String,
        request_id: Option<String>,
    },
    Holes {
        count: usize,
        missing_buckets: i64,
        first: Window,
    },
    /// A `[[rooms]]` block's room streams whose needed buckets ended longer than `max_age` before
    /// the available end and are still not fetched (deferred, failed, or never planned).
    PendingRoomBuckets {
        streams: usize,
        buckets: i64,
        since: DateTime<Utc>,
    },
}

impl StreamHealth {
    /// The problems of this stream: never synced, stale beyond `max_age`, failed windows, holes.
    pub fn problems(&self, max_age: Duration) -> Vec<Problem> {
        if self.never_synced {
            return vec![Problem::NeverSynced];
        }
        let mut out = Vec::new();
        if self
            .covered_end
            .is_none_or(|end| end < self.horizon.end - max_age)
        {
            out.push(Problem::Stale {
                covered_end: self.covered_end,
                available_end: self.horizon.end,
            });
        }
        if let Some(first) = self.failed.iter().min_by_key(|e| e.fetched_at) {
            let last = self
                .failed
                .iter()
                .max_by_key(|e| e.fetched_at)
                .unwrap_or(first);
            out.push(Problem::FailedWindows {
                count: self.failed.len(),
                since: first.fetched_at,
                last_error: last.last_error.clone().unwrap_or_default(),
                request_id: last.request_id.clone(),
            });
        }
        if let Some(first) = self.holes.first() {
            out.push(Problem::Holes {
                count: self.holes.len(),
                missing_buckets: self.hole_buckets,
                first: *first,
            });
        }
        out
    }
}

/// One line per problem, for people: the stream, what, since when, what to do.
pub struct ProblemLine<'a>(pub &'a str, pub &'a Problem);

impl fmt::Display for ProblemLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ts = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let stream = self.0;
        match self.1 {
            Problem::NeverSynced => write!(
                f,
                "{stream}: never synced; run `rtc-quality-sync sync` (a first backfill of the horizon)"
            ),
            Problem::Stale {
                covered_end,
                available_end,
            } => write!(
                f,
                "{stream}: stale: {}, the API has data until {} (exclusive); run `rtc-quality-sync sync` and read its errors, or see `status`",
                covered_end.map_or("nothing fetched".into(), |t| format!(
                    "covered until {} (exclusive)",
                    ts(t)
                )),
                ts(*available_end)
            ),
            Problem::FailedWindows {
                count,
                since,
                last_error,
                request_id,
            } => {
                write!(
                    f,
                    "{stream}: {count} failed window(s) since {}: {last_error}",
                    ts(*since)
                )?;
                // The client's errors name the RequestId already; say it once.
                if let Some(id) = request_id.as_deref().filter(|id| !last_error.contains(id)) {
                    write!(f, " (RequestId {id})")?;
                }
                write!(f, "; the next `rtc-quality-sync sync` retries them")
            }
            Problem::Holes {
                count,
                missing_buckets,
                first,
            } => write!(
                f,
                "{stream}: {count} hole(s), {missing_buckets} bucket(s) missing, the first {first}; run `rtc-quality-sync sync`, which fetches them"
            ),
            Problem::PendingRoomBuckets {
                streams,
                buckets,
                since,
            } => write!(
                f,
                "{stream}: {buckets} bucket(s) of {streams} room stream(s) not fetched since {}, longer than --max-age; run `rtc-quality-sync sync` (`status` says whether a cap or a daily budget defers them)",
                ts(*since)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::Granularity;
    use crate::planner::tests::{settings, stream};
    use crate::planner::{PlanOptions, plan};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 21, 41, 0).unwrap()
    }

    /// The ledger of a complete first backfill at `now`, oldest window first.
    fn backfill(s: &Stream) -> Vec<LedgerEntry> {
        let p = plan(
            &settings(),
            std::slice::from_ref(s),
            &[],
            now(),
            PlanOptions::default(),
        )
        .unwrap();
        p.streams[0]
            .windows
            .iter()
            .map(|w| LedgerEntry {
                stream: s.key.as_str().into(),
                indicator: s.job.indicators[0].clone(),
                window: w.window,
                state: WindowState::Settled,
                points: 1,
                attempts: 1,
                last_error: None,
                request_id: None,
                fetched_at: now(),
            })
            .collect()
    }

    #[test]
    fn a_complete_backfill_is_healthy() {
        for g in [Granularity::Day, Granularity::FiveMin] {
            let s = stream(g);
            let h = assess(&settings(), &s, &backfill(&s), now());
            assert_eq!(h.complete_through, Some(h.horizon.end));
            assert_eq!((h.holes.len(), h.missing_buckets), (0, 0));
            assert_eq!(h.problems(Duration::hours(36)), vec![]);
        }
    }

    #[test]
    fn a_configured_stream_without_rows_was_never_synced() {
        let s = stream(Granularity::Day);
        let other = backfill(&stream(Granularity::FiveMin));
        let h = assess(&settings(), &s, &other, now());
        assert!(h.never_synced);
        assert_eq!(h.problems(Duration::hours(36)), vec![Problem::NeverSynced]);
        assert_eq!(
            h.missing_buckets,
            h.horizon.duration().num_days(),
            "the whole 1d horizon: {}",
            h.horizon
        );
    }

    #[test]
    fn a_hole_stops_complete_through_and_is_counted() {
        let s = stream(Granularity::Day);
        let mut ledger = backfill(&s);
        let lost = ledger.remove(1);
        let h = assess(&settings(), &s, &ledger, now());
        assert_eq!(h.complete_through, Some(lost.window.start));
        assert_eq!(h.holes, vec![lost.window]);
        assert_eq!(h.hole_buckets, 7);
        assert_eq!(h.missing_buckets, 7);
        assert_eq!(
            h.problems(Duration::hours(36)),
            vec![Problem::Holes {
                count: 1,
                missing_buckets: 7,
                first: lost.window
            }]
        );
    }

    #[test]
    fn a_backfill_cut_short_newest_first_is_incomplete_from_the_start() {
        let s = stream(Granularity::FiveMin);
        let mut ledger = backfill(&s);
        let oldest = ledger.remove(0);
        let h = assess(&settings(), &s, &ledger, now());
        assert_eq!(h.complete_through, None);
        assert_eq!(h.holes, vec![oldest.window]);
        assert_eq!(
            h.missing_buckets,
            oldest.window.duration().num_seconds() / 300
        );
    }

    #[test]
    fn a_failed_window_counts_until_a_success_supersedes_it() {
        let s = stream(Granularity::Day);
        let mut ledger = backfill(&s);
        let mut failed = ledger[2].clone();
        failed.state = WindowState::Failed;
        failed.last_error = Some("InternalError".into());
        failed.request_id = Some("req-1".into());
        ledger.push(failed.clone());
        // A `--refetch` of a settled window failed: the old values stay settled (no hole, the settled
        // range does not go back), and the failure is open until a successful fetch supersedes it.
        let h = assess(&settings(), &s, &ledger, now());
        assert_eq!(h.failed, vec![failed.clone()]);
        assert_eq!(h.settled_through, Some(h.horizon.end));
        assert!(h.holes.is_empty());
        let superseded: Vec<LedgerEntry> = ledger
            .iter()
            .filter(|e| e.state != WindowState::Failed)
            .cloned()
            .collect();
        assert!(
            assess(&settings(), &s, &superseded, now())
                .failed
                .is_empty()
        );

        ledger.remove(2);
        let h = assess(&settings(), &s, &ledger, now());
        assert_eq!(h.failed, vec![failed.clone()]);
        let problems = h.problems(Duration::hours(36));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0],
            Problem::FailedWindows {
                count: 1,
                since: failed.fetched_at,
                last_error: "InternalError".into(),
                request_id: Some("req-1".into())
            }
        );
        assert!(matches!(problems[1], Problem::Holes { count: 1, .. }));
        let line = ProblemLine(&s.name, &problems[0]).to_string();
        assert!(
            line.starts_with("j/1d: 1 failed window(s)") && line.contains("req-1"),
            "{line}"
        );
    }

    /// A room stream is measured over its needed buckets (PRODUCT.md, "Room streams"): fetched
    /// whole, it misses nothing although its room was quiet for days, and its settled range runs
    /// to the horizon's end; a window still pending (deferred) counts its needed buckets, not the
    /// quiet ones around them.
    #[test]
    fn a_room_stream_is_measured_over_its_needed_buckets() {
        let s = stream(Granularity::FiveMin);
        let h = planner::horizon(&settings(), Granularity::FiveMin, now());
        let at = |hours: i64| h.start + Duration::hours(hours);
        // Two calls of an hour, six days apart, and one of ten minutes the day after.
        let needs = vec![
            Window::new(at(10), at(11)),
            Window::new(at(154), at(155)),
            Window::new(at(178), at(178) + Duration::minutes(10)),
        ];
        let room = Stream {
            room: Some(crate::domain::RoomNeeds {
                block: "rooms".into(),
                peak_users: 3,
                needs: needs.clone(),
            }),
            ..s
        };
        let ledger = backfill(&room);
        assert_eq!(
            ledger.iter().map(|e| e.window).collect::<Vec<_>>(),
            [
                Window::new(at(10), at(155)),
                Window::new(at(178), at(178) + Duration::minutes(10))
            ],
            "the fewest windows cover the calls"
        );
        let fetched = assess(&settings(), &room, &ledger, now());
        assert_eq!(fetched.missing_buckets, 0);
        assert_eq!(fetched.settled_through, Some(h.end));
        assert_eq!(fetched.complete_through, Some(h.end));
        assert!(fetched.holes.is_empty());

        // The first window deferred: its two calls' 24 buckets are missing, not its six quiet days.
        let pending = assess(&settings(), &room, &ledger[1..], now());
        assert_eq!(pending.missing_buckets, 24);
        assert_eq!(
            pending.settled_through,
            Some(at(10)),
            "settled up to the first needed bucket missing"
        );
        // The last one deferred: settled through the start of its call.
        let pending = assess(&settings(), &room, &ledger[..1], now());
        assert_eq!(pending.missing_buckets, 2);
        assert_eq!(pending.settled_through, Some(at(178)));
    }

    #[test]
    fn an_old_sync_is_stale_past_max_age_and_its_tail_is_no_hole() {
        let s = stream(Granularity::Day);
        let ledger = backfill(&s);
        let later = now() + Duration::days(3);
        let h = assess(&settings(), &s, &ledger, later);
        assert!(h.holes.is_empty(), "the uncovered tail is not a hole");
        assert_eq!(h.missing_buckets, 3);
        assert_eq!(h.problems(Duration::days(4)), vec![]);
        assert_eq!(
            h.problems(Duration::hours(36)),
            vec![Problem::Stale {
                covered_end: h.covered_end,
                available_end: h.horizon.end
            }]
        );
    }
}
