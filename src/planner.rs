//! The planner: which windows each stream needs, as a pure function of (settings, ledger, now).
//!
//! **Invariant:** no IO and no clock. `now` is passed in, so every rule of PRODUCT.md is tested
//! with fixed clocks. The rules: the horizon starts `max_lookback_days` before `now` plus a safety
//! margin, rounded up to the granularity in the configured offset; data is available until
//! `now - data_delay_hours`, rounded down; per requested indicator, what the ledger holds as settled
//! for the stream's query is subtracted and its failed windows added back; each gap is cut, oldest
//! first, into windows of at most `max_span_days`; indicators that need the same window share its call.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::Serialize;

use crate::config::WindowSettings;
use crate::domain::{
    Granularity, LEGACY_PREFIX, LedgerEntry, RoomCall, RoomsBlock, Stream, Window, WindowState,
};

/// How much later than planning the oldest window may still be sent and accepted: the API refuses a
/// `StartTime` older than 30 days, and a long backfill sends its oldest windows last.
pub const HORIZON_MARGIN: Duration = Duration::hours(1);

/// What the user asked for on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PlanOptions {
    /// `--from`: restrict the plan to buckets at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// `--to`: restrict the plan to buckets before this instant.
    pub to: Option<DateTime<Utc>>,
    /// `--refetch`: fetch settled windows in the range again.
    pub refetch: bool,
}

/// One call: a window and the indicators it asks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWindow {
    #[serde(flatten)]
    pub window: Window,
    /// The stream's indicators that need this window, in the job's order.
    pub indicators: Vec<String>,
}

/// The windows one stream needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamPlan {
    pub stream: String,
    pub granularity: Granularity,
    /// `[horizon start, available end)` after clipping to `--from`/`--to`.
    pub range: Option<Window>,
    /// Oldest first; half-open; each at most `max_span_days` long.
    pub windows: Vec<PlannedWindow>,
    /// How many indicators the stream asks.
    #[serde(skip)]
    pub indicators: usize,
    /// A `ListQualityDistribution` stream, paced by its own quota.
    #[serde(skip)]
    pub distribution: bool,
}

/// The plan of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub streams: Vec<StreamPlan>,
    /// Per `[[rooms]]` block, its listing's label and the ranges it lists (at least one
    /// `ListRoomInfo` call each), newest first.
    pub listings: Vec<(String, Vec<Window>)>,
    /// Things the user should hear about, e.g. a range clipped to the horizon.
    pub warnings: Vec<String>,
}

impl Plan {
    pub fn request_count(&self) -> usize {
        self.streams.iter().map(|s| s.windows.len()).sum()
    }

    /// Calls of `ListQualityDistribution` streams, which are paced by their own quota.
    pub fn distribution_request_count(&self) -> usize {
        self.streams
            .iter()
            .filter(|s| s.distribution)
            .map(|s| s.windows.len())
            .sum()
    }

    /// How long the calls take, each API at its own rate (`requests_per_second` for ListQuality,
    /// `distribution_requests_per_second` for ListQualityDistribution) and both at once, the first
    /// call of each sent at once.
    pub fn estimated_duration(
        &self,
        requests_per_second: f64,
        distribution_requests_per_second: f64,
    ) -> std::time::Duration {
        let d = self.distribution_request_count();
        let q = self.request_count() - d;
        let secs = |n: usize, rate: f64| n.saturating_sub(1) as f64 / rate;
        std::time::Duration::from_secs_f64(
            secs(q, requests_per_second).max(secs(d, distribution_requests_per_second)),
        )
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "nothing to fetch: the range {from} .. {to} lies outside the data the API keeps ({horizon_start} .. {available_end}); \
         ListQuality serves the last {lookback_days} days, up to {delay_hours} hours ago"
    )]
    NothingLeft {
        from: String,
        to: String,
        horizon_start: String,
        available_end: String,
        lookback_days: i64,
        delay_hours: i64,
    },
    #[error("--from {from} is not before --to {to}")]
    EmptyRange { from: String, to: String },
}

impl PlanError {
    /// The same error naming `--from`/`--to` as the user typed them (`2026-11-20`, not the
    /// `2026-11-19T16:00:00Z` it stands for in +08:00).
    pub fn as_typed(self, from: Option<String>, to: Option<String>) -> PlanError {
        match self {
            PlanError::NothingLeft {
                from: f,
                to: t,
                horizon_start,
                available_end,
                lookback_days,
                delay_hours,
            } => PlanError::NothingLeft {
                from: from.unwrap_or(f),
                to: to.unwrap_or(t),
                horizon_start,
                available_end,
                lookback_days,
                delay_hours,
            },
            PlanError::EmptyRange { from: f, to: t } => PlanError::EmptyRange {
                from: from.unwrap_or(f),
                to: to.unwrap_or(t),
            },
        }
    }
}

/// `2026-11-27T04:30:00Z`: how every time is shown to users.
fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Rounds `t` down to a bucket boundary of `g` in the offset `tz`.
pub fn floor_to(t: DateTime<Utc>, g: Granularity, tz: FixedOffset) -> DateTime<Utc> {
    let local = t.timestamp() + i64::from(tz.local_minus_utc());
    let rem = local.rem_euclid(g.seconds());
    // Sub-second parts are dropped too: buckets start on whole seconds.
    DateTime::from_timestamp(t.timestamp() - rem, 0).expect("in range")
}

/// Rounds `t` up to a bucket boundary of `g` in the offset `tz`.
pub fn ceil_to(t: DateTime<Utc>, g: Granularity, tz: FixedOffset) -> DateTime<Utc> {
    let f = floor_to(t, g, tz);
    if f == t {
        f
    } else {
        f + Duration::seconds(g.seconds())
    }
}

/// `[horizon start, available end)` of a stream at `now`, before any `--from`/`--to`.
pub fn horizon(settings: &WindowSettings, g: Granularity, now: DateTime<Utc>) -> Window {
    let start = ceil_to(
        now - Duration::days(settings.max_lookback_days) + HORIZON_MARGIN,
        g,
        settings.timezone,
    );
    let end = floor_to(
        now - Duration::hours(settings.data_delay_hours),
        g,
        settings.timezone,
    );
    Window { start, end }
}

/// Where a window fetched at `fetched_at` stops being final: buckets ending at or before this
/// instant are settled, the rest provisional. Rounded down to the granularity.
pub fn settled_until(
    settings: &WindowSettings,
    g: Granularity,
    fetched_at: DateTime<Utc>,
) -> DateTime<Utc> {
    floor_to(
        fetched_at - Duration::hours(settings.settle_hours),
        g,
        settings.timezone,
    )
}

/// Plans every stream. Streams without anything to fetch are listed with no windows.
pub fn plan(
    settings: &WindowSettings,
    streams: &[Stream],
    ledger: &[LedgerEntry],
    now: DateTime<Utc>,
    options: PlanOptions,
) -> Result<Plan, PlanError> {
    if let (Some(from), Some(to)) = (options.from, options.to)
        && from >= to
    {
        return Err(PlanError::EmptyRange {
            from: utc(from),
            to: utc(to),
        });
    }
    let mut warnings = Vec::new();
    let mut out = Vec::with_capacity(streams.len());
    let mut any_range = false;
    // Each stream's rows, found once: a scan of the whole ledger per stream and indicator is
    // quadratic in the streams of a `[[rooms]]` block.
    let mut rows_of: HashMap<&str, Vec<&LedgerEntry>> = HashMap::new();
    for e in ledger {
        rows_of.entry(e.stream.as_ref()).or_default().push(e);
    }
    let mut widest: Option<Window> = None;
    for stream in streams {
        let g = stream.granularity;
        let h = horizon(settings, g, now);
        widest = Some(match widest {
            None => h,
            Some(w) => Window {
                start: w.start.min(h.start),
                end: w.end.max(h.end),
            },
        });
        // The requested range, aligned outward to whole buckets, then clipped to the horizon.
        let want_start = options
            .from
            .map(|f| floor_to(f, g, settings.timezone))
            .unwrap_or(h.start);
        let want_end = options
            .to
            .map(|t| ceil_to(t, g, settings.timezone))
            .unwrap_or(h.end);
        let start = want_start.max(h.start);
        let end = want_end.min(h.end);
        if start >= end {
            out.push(StreamPlan {
                stream: stream.name.clone(),
                granularity: g,
                range: None,
                windows: Vec::new(),
                indicators: stream.job.indicators.len(),
                distribution: stream.distribution.is_some(),
            });
            continue;
        }
        any_range = true;
        let range = Window { start, end };

        let rows = rows_of
            .get(stream.key.as_str())
            .map_or(&[][..], Vec::as_slice);
        let windows = plan_stream(settings, stream, rows, range, options.refetch);
        out.push(StreamPlan {
            stream: stream.name.clone(),
            granularity: g,
            range: Some(range),
            windows,
            indicators: stream.job.indicators.len(),
            distribution: stream.distribution.is_some(),
        });
    }

    if (options.from.is_some() || options.to.is_some())
        && let Some(h) = widest
    {
        let (from, to) = (options.from, options.to);
        if !any_range {
            return Err(PlanError::NothingLeft {
                from: from.map_or("the horizon start".into(), utc),
                to: to.map_or("now".into(), utc),
                horizon_start: utc(h.start),
                available_end: utc(h.end),
                lookback_days: settings.max_lookback_days,
                delay_hours: settings.data_delay_hours,
            });
        }
        if from.is_some_and(|f| f < h.start) || to.is_some_and(|t| t > h.end) {
            warnings.push(format!(
                "the requested range was clipped to the data the API keeps: {} .. {}",
                utc(h.start),
                utc(h.end)
            ));
        }
    }
    Ok(Plan {
        listings: Vec::new(),
        streams: out,
        warnings,
    })
}

/// What one stream needs inside `range`, per indicator, as calls: an indicator needs what its settled
/// rows do not cover, plus its failed and refetch-marked rows (fetched even where an older settled
/// row covers them, so that a success supersedes them). Each indicator's gaps are cut the same way, so indicators with
/// the same history share every call: a nightly run stays one call per stream, and an added indicator
/// costs only its own backfill. `ledger` holds the stream's own rows.
fn plan_stream(
    settings: &WindowSettings,
    stream: &Stream,
    ledger: &[&LedgerEntry],
    range: Window,
    refetch: bool,
) -> Vec<PlannedWindow> {
    let g = stream.granularity;
    // A distribution call asks one local day, so every day's values are well defined.
    let span = if stream.distribution.is_some() {
        Duration::days(1)
    } else {
        Duration::days(settings.max_span_days)
    };
    let mut calls: BTreeMap<Window, Vec<String>> = BTreeMap::new();
    for indicator in &stream.job.indicators {
        let rows = || {
            ledger
                .iter()
                .copied()
                .filter(|e| *e.stream == *stream.key && &e.indicator == indicator)
        };
        let settled: Vec<Window> = if refetch {
            Vec::new()
        } else {
            rows()
                .filter(|e| e.state == WindowState::Settled)
                .map(|e| e.window)
                .collect()
        };
        let mut needed = subtract(range, settled);
        // A room stream needs only the buckets its calls cover, and a provisional window of it that
        // holds one of them whole: that window is fetched again as it was recorded, so the commit
        // replaces its row instead of leaving it beside a smaller one (a quiet stretch inside it is
        // no need of its own, and a row left partly covered would never be fetched again).
        if let Some(room) = &stream.room {
            needed = intersect(&needed, &room.needs);
            let provisional: Vec<Window> = rows()
                .filter(|e| e.state == WindowState::Provisional)
                .filter(|e| !intersect(&[e.window], &needed).is_empty())
                .filter_map(|e| clip(e.window, range))
                .collect();
            needed.extend(provisional);
        }
        // Failed windows, and windows an interrupted `--refetch` marked, are fetched again even
        // where a settled row covers them, until a successful fetch supersedes them.
        needed.extend(
            rows()
                .filter(|e| matches!(e.state, WindowState::Failed | WindowState::Refetch))
                .filter_map(|e| clip(e.window, range)),
        );
        // Ledger rows written under another offset may not align: fetch whole buckets.
        let gaps: Vec<Window> = union(needed)
            .into_iter()
            .map(|gap| Window {
                start: floor_to(gap.start, g, settings.timezone).max(range.start),
                end: ceil_to(gap.end, g, settings.timezone).min(range.end),
            })
            .collect();
        let windows = match stream.room {
            // The fewest windows that cover a room's scattered calls: a quiet stretch between two
            // calls is asked only when that saves a call.
            Some(_) => cover(union(gaps), span),
            None => gaps.into_iter().flat_map(|gap| cut(gap, span)).collect(),
        };
        for w in windows {
            calls.entry(w).or_default().push(indicator.clone());
        }
    }
    calls
        .into_iter()
        .map(|(window, indicators)| PlannedWindow { window, indicators })
        .collect()
}

/// `w` inside `range`, if anything of it is.
fn clip(w: Window, range: Window) -> Option<Window> {
    let (start, end) = (w.start.max(range.start), w.end.min(range.end));
    (start < end).then_some(Window { start, end })
}

/// The union of windows, as ordered disjoint ranges; touching ones are joined.
pub fn union(mut ws: Vec<Window>) -> Vec<Window> {
    ws.sort();
    let mut out: Vec<Window> = Vec::with_capacity(ws.len());
    for w in ws {
        match out.last_mut() {
            Some(last) if w.start <= last.end => last.end = last.end.max(w.end),
            _ => out.push(w),
        }
    }
    out
}

/// What the stored series hold inside the windows of rows an earlier version keyed by a stream's
/// name: per (legacy key, window), the returned names of the stream's query that have points there,
/// with their counts. The store reads it ([`legacy_windows`] says which to read); the planner judges.
pub type Evidence = HashMap<(String, Window), Vec<(String, i64)>>;

/// The windows whose evidence [`adoptions`] needs: per configured stream that has rows under a
/// legacy key of one of its labels, `(legacy key, stream, windows)`.
pub fn legacy_windows<'a>(
    streams: &'a [Stream],
    ledger: &[LedgerEntry],
) -> Vec<(String, &'a Stream, Vec<Window>)> {
    let mut out = Vec::new();
    for s in streams {
        for label in s.labels() {
            let legacy = Stream::legacy_key(label);
            let mut windows: Vec<Window> = ledger
                .iter()
                .filter(|e| *e.stream == *legacy)
                .map(|e| e.window)
                .collect();
            windows.sort();
            windows.dedup();
            if !windows.is_empty() {
                out.push((legacy, s, windows));
            }
        }
    }
    out
}

/// Rows of an earlier version, and where they go: to the configured stream's key, or (what cannot
/// be attributed with certainty) to a retired stream that nothing adopts again.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoption {
    /// The key the rows are stored under now.
    pub from: String,
    /// The rows that replace them under the configured stream's key.
    pub adopted: Vec<LedgerEntry>,
    /// The rows kept apart, with the retired stream's key and label.
    pub retired: Option<(String, String, Vec<LedgerEntry>)>,
}

/// How a database of an earlier version is adopted (PRODUCT.md, rule 6). Pure: `plan` and `status`
/// read the ledger as it will be ([`adopted_view`]) before any write, and `sync` stores exactly
/// these rows (`Store::adopt`).
///
/// - Rows keyed by query before time zones were part of a `1d` stream's identity are adopted as they
///   are, under the configured offset.
/// - Rows keyed by a stream's name (the first version's, one row per window for every indicator) are
///   adopted per indicator only where the stored series prove the window was fetched for the query
///   asked today: a series of the query whose name the indicator owns has a point in the window.
///   What cannot be proven (a job edited in the same upgrade, a window without traffic, a failed
///   window) is never adopted: it stays with a retired stream, and the window is fetched again.
pub fn adoptions(streams: &[Stream], ledger: &[LedgerEntry], evidence: &Evidence) -> Vec<Adoption> {
    let mut out = Vec::new();
    for s in streams {
        if let Some(before) = s.key_before_timezones() {
            let rows: Vec<LedgerEntry> = ledger
                .iter()
                .filter(|e| *e.stream == *before)
                .map(|e| LedgerEntry {
                    stream: s.key.as_str().into(),
                    ..e.clone()
                })
                .collect();
            if !rows.is_empty() {
                out.push(Adoption {
                    from: before,
                    adopted: rows,
                    retired: None,
                });
            }
        }
    }
    for (legacy, s, _) in legacy_windows(streams, ledger) {
        let (mut adopted, mut unproven) = (Vec::new(), Vec::new());
        for e in ledger.iter().filter(|e| *e.stream == *legacy) {
            let found = evidence
                .get(&(legacy.clone(), e.window))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut any = false;
            for indicator in &s.job.indicators {
                let points: i64 = found
                    .iter()
                    .filter(|(name, _)| {
                        crate::domain::owning_indicator(name, &s.job.indicators)
                            == Some(indicator.as_str())
                    })
                    .map(|(_, n)| n)
                    .sum();
                if points > 0 && e.state != WindowState::Failed {
                    any = true;
                    adopted.push(LedgerEntry {
                        stream: s.key.as_str().into(),
                        indicator: indicator.clone(),
                        points,
                        ..e.clone()
                    });
                }
            }
            // A window proven for some indicators only is refetched for the others; the old row
            // stays apart too, so nothing it said is lost.
            if !any
                || adopted.iter().filter(|a| a.window == e.window).count() < s.job.indicators.len()
            {
                unproven.push(e.clone());
            }
        }
        let retired = (!unproven.is_empty()).then(|| {
            let key = format!("{legacy}#unproven");
            let label = format!(
                "{} (before the upgrade: not adopted)",
                legacy.trim_start_matches(LEGACY_PREFIX)
            );
            let rows = unproven
                .into_iter()
                .map(|e| LedgerEntry {
                    stream: key.as_str().into(),
                    ..e
                })
                .collect();
            (key, label, rows)
        });
        out.push(Adoption {
            from: legacy,
            adopted,
            retired,
        });
    }
    out
}

/// The ledger as it reads once `adoptions` are stored.
pub fn adopted_view(ledger: Vec<LedgerEntry>, adoptions: &[Adoption]) -> Vec<LedgerEntry> {
    let from: std::collections::HashSet<&str> = adoptions.iter().map(|a| a.from.as_str()).collect();
    let mut out: Vec<LedgerEntry> = ledger
        .into_iter()
        .filter(|e| !from.contains(e.stream.as_ref()))
        .collect();
    for a in adoptions {
        out.extend(a.adopted.iter().cloned());
        if let Some((_, _, rows)) = &a.retired {
            out.extend(rows.iter().cloned());
        }
    }
    out
}

/// `range` minus the union of `covered`, as ordered disjoint gaps.
pub fn subtract(range: Window, mut covered: Vec<Window>) -> Vec<Window> {
    covered.sort();
    let mut gaps = Vec::new();
    let mut cursor = range.start;
    for c in covered {
        if c.end <= cursor || c.start >= range.end {
            continue;
        }
        if c.start > cursor {
            gaps.push(Window {
                start: cursor,
                end: c.start,
            });
        }
        cursor = cursor.max(c.end);
        if cursor >= range.end {
            break;
        }
    }
    if cursor < range.end {
        gaps.push(Window {
            start: cursor,
            end: range.end,
        });
    }
    gaps
}

/// What of `ws` lies inside `within` (both ordered and disjoint).
pub fn intersect(ws: &[Window], within: &[Window]) -> Vec<Window> {
    ws.iter()
        .flat_map(|w| within.iter().filter_map(|r| clip(*w, *r)))
        .collect()
}

/// The fewest windows of at most `span` that cover `gaps` (ordered, disjoint), oldest first: each
/// window starts at a gap's start and ends at a gap's end, taking in every later gap that still
/// fits (greedy, which is optimal for covering points on a line with intervals of one length).
pub fn cover(gaps: Vec<Window>, span: Duration) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    let mut current: Option<Window> = None;
    for gap in gaps {
        current = match current {
            Some(c) if gap.end - c.start <= span => Some(Window {
                start: c.start,
                end: gap.end,
            }),
            previous => {
                out.extend(previous);
                // A gap longer than a window is cut; its short remainder may take in what follows.
                let mut pieces = cut(gap, span);
                let last = pieces.pop();
                out.extend(pieces);
                last
            }
        };
    }
    out.extend(current);
    out
}

/// The instants whose calls can give `block`'s room streams a needed bucket at `now`: from the
/// earliest horizon start of its granularities to the latest available end. A call destroyed before
/// the start, or created at or after the end, overlaps no bucket a run could fetch
/// (`Store::room_calls_between` reads only the others).
pub fn rooms_range(settings: &WindowSettings, block: &RoomsBlock, now: DateTime<Utc>) -> Window {
    let hs = block
        .granularities
        .iter()
        .map(|&g| horizon(settings, g, now));
    Window {
        start: hs.clone().map(|h| h.start).min().unwrap_or(now),
        end: hs.map(|h| h.end).max().unwrap_or(now),
    }
}

/// The room streams of `block` (PRODUCT.md, "Room streams"): one per room with a call of at least
/// `min_active_users` (its latest listed count) and per granularity, labelled
/// `<name>/<room_id>/<granularity>`, asking the block's indicators with the room set and no user: the
/// query of a `[[jobs]]` entry with that `room_id`. Its needs are the buckets its qualifying calls
/// overlap (`[created, destroyed or now)`); rooms with the most active users first.
pub fn room_streams(
    block: &RoomsBlock,
    calls: &[RoomCall],
    timezone: FixedOffset,
    now: DateTime<Utc>,
) -> Vec<Stream> {
    let mut rooms: BTreeMap<&str, Vec<&RoomCall>> = BTreeMap::new();
    for c in calls
        .iter()
        .filter(|c| c.active_user_num >= block.min_active_users)
    {
        rooms.entry(c.room_id.as_str()).or_default().push(c);
    }
    let mut out = Vec::new();
    for (room, calls) in rooms {
        let peak_users = calls.iter().map(|c| c.active_user_num).max().unwrap_or(0);
        for &g in &block.granularities {
            let needs = union(
                calls
                    .iter()
                    .map(|c| {
                        let end = c.destroyed_at.unwrap_or(now).max(c.created_at);
                        Window {
                            start: floor_to(c.created_at, g, timezone),
                            // A call that ends on a bucket start still touched the bucket before.
                            end: ceil_to(end, g, timezone).max(
                                floor_to(c.created_at, g, timezone)
                                    + Duration::seconds(g.seconds()),
                            ),
                        }
                    })
                    .collect(),
            );
            out.push(block.room_stream(room, g, timezone, peak_users, needs));
        }
    }
    out.sort_by(|a, b| {
        let peak = |s: &Stream| s.room.as_ref().map_or(0, |r| r.peak_users);
        peak(b).cmp(&peak(a)).then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// Cuts a gap, oldest first, into windows of at most `span`. The short remainder is the newest
/// window, so that the provisional tail stays one call long night after night.
fn cut(gap: Window, span: Duration) -> Vec<Window> {
    let mut out = Vec::new();
    let mut start = gap.start;
    while start < gap.end {
        let end = (start + span).min(gap.end);
        out.push(Window { start, end });
        start = end;
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Job, ProductType};
    use chrono::TimeZone;

    fn hour(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::hours(h)
    }

    fn w(a: i64, b: i64) -> Window {
        Window::new(hour(a), hour(b))
    }

    #[test]
    fn the_fewest_windows_cover_scattered_gaps() {
        let week = Duration::days(7);
        // Two calls a day apart share a window; one 8 days later needs its own.
        assert_eq!(
            cover(vec![w(0, 2), w(24, 26), w(24 * 9, 24 * 9 + 1)], week),
            [w(0, 26), w(24 * 9, 24 * 9 + 1)]
        );
        // A gap longer than a week is cut; its remainder takes in what follows.
        assert_eq!(
            cover(vec![w(0, 24 * 8), w(24 * 8 + 5, 24 * 8 + 6)], week),
            [w(0, 24 * 7), w(24 * 7, 24 * 8 + 6)]
        );
        assert!(cover(Vec::new(), week).is_empty());
        // Never more windows than gaps, never longer than a week, every gap covered.
        let gaps: Vec<Window> = (0..40).map(|i| w(i * 13, i * 13 + 2)).collect();
        let windows = cover(gaps.clone(), week);
        assert!(windows.len() <= gaps.len() && windows.iter().all(|x| x.duration() <= week));
        assert!(
            gaps.iter()
                .all(|g| windows.iter().any(|x| x.start <= g.start && g.end <= x.end))
        );
        assert_eq!(windows.len(), 4, "{windows:?}");
    }

    /// A `[[rooms]]` block "rooms" of app "app" asking `stall_rate`, without a cap.
    fn rooms_block(granularities: Vec<Granularity>, min_active_users: i64) -> RoomsBlock {
        RoomsBlock {
            name: "rooms".into(),
            app_id: "app".into(),
            indicators: vec!["stall_rate".into()],
            granularities,
            product_type: ProductType::Native,
            min_active_users,
            max_room_calls_per_run: 0,
        }
    }

    #[test]
    fn a_room_stream_needs_the_buckets_of_its_qualifying_calls() {
        let block = rooms_block(vec![Granularity::FiveMin, Granularity::Day], 2);
        let call =
            |id: &str, room: &str, start: DateTime<Utc>, end: Option<DateTime<Utc>>, users| {
                RoomCall {
                    call_id: id.into(),
                    room_id: room.into(),
                    created_at: start,
                    destroyed_at: end,
                    active_user_num: users,
                    finished: end.is_some(),
                }
            };
        let m = |min: i64| hour(0) + Duration::minutes(min);
        let calls = vec![
            call("a", "quiet", m(3), Some(m(12)), 5),
            call("b", "quiet", m(61), None, 3),
            call("c", "busy", m(0), Some(m(5)), 9),
            call("d", "alone", m(0), Some(m(30)), 1),
        ];
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let streams = room_streams(&block, &calls, tz, m(70));
        let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
        // The busiest room first; a room whose calls all had too few users has no stream.
        assert_eq!(
            names,
            [
                "rooms/busy/1d",
                "rooms/busy/5min",
                "rooms/quiet/1d",
                "rooms/quiet/5min"
            ]
        );
        let quiet = &streams[3];
        let room = quiet.room.as_ref().unwrap();
        // [00:03, 00:12) and [01:01, now = 01:10) in whole 5-minute buckets.
        assert_eq!(
            room.needs,
            [Window::new(m(0), m(15)), Window::new(m(60), m(70))]
        );
        assert_eq!(room.peak_users, 5);
        // The query of a job with that room: they share coverage.
        let job = Job {
            room_id: "quiet".into(),
            granularities: vec![Granularity::FiveMin],
            ..quiet.job.clone()
        };
        assert_eq!(quiet.key, Stream::key_of(&job, Granularity::FiveMin, tz));
        assert!(quiet.job.user_ids.is_empty());
        // A call that lasted no time still needs its bucket.
        let instant = vec![call("e", "x", m(5), Some(m(5)), 2)];
        let s = room_streams(&block, &instant, tz, m(70));
        assert_eq!(
            s[1].room.as_ref().unwrap().needs,
            [Window::new(m(5), m(10))]
        );
    }

    /// A room stream's provisional window is fetched again whole, even where only its end holds a
    /// call (the rest, a quiet stretch, is no need of its own): the commit then replaces its row, and
    /// no smaller row is left beside it (found by `rooms_faults::sigkill_while_fetching_rooms…`).
    #[test]
    fn a_room_streams_provisional_window_is_asked_again_whole() {
        let block = rooms_block(vec![Granularity::FiveMin], 1);
        let now = hour(24 * 20);
        // One call two days back, one that ran an hour, ending 10 hours ago.
        let call = |id: &str, start: DateTime<Utc>, end: DateTime<Utc>| RoomCall {
            call_id: id.into(),
            room_id: "r".into(),
            created_at: start,
            destroyed_at: Some(end),
            active_user_num: 2,
            finished: true,
        };
        let calls = [
            call("a", now - Duration::hours(48), now - Duration::hours(47)),
            call("b", now - Duration::hours(11), now - Duration::hours(10)),
        ];
        let tz = settings().timezone;
        let s = room_streams(&block, &calls, tz, now).remove(0);
        // The first run's window, cut at the settle instant: its tail, from a quiet stretch to the
        // end of call b, is provisional.
        let first = plan_one(&s, &[], now);
        assert_eq!(
            wins(&first),
            [Window::new(
                now - Duration::hours(48),
                now - Duration::hours(10)
            )]
        );
        let cut = now - Duration::hours(24);
        let ledger = [
            entry(
                &s,
                Window::new(now - Duration::hours(48), cut),
                WindowState::Settled,
            ),
            entry(
                &s,
                Window::new(cut, now - Duration::hours(10)),
                WindowState::Provisional,
            ),
        ];
        assert_eq!(
            wins(&plan_one(&s, &ledger, now)),
            [Window::new(cut, now - Duration::hours(10))],
            "the provisional window whole, not only call b's buckets"
        );
    }

    /// The documented defaults, +08:00: shared with the other pure stages' tests.
    pub(crate) fn settings() -> WindowSettings {
        WindowSettings {
            max_lookback_days: 30,
            max_span_days: 7,
            data_delay_hours: 8,
            settle_hours: 24,
            timezone: FixedOffset::east_opt(8 * 3600).unwrap(),
        }
    }

    /// A one-indicator stream of app `a` at `g`.
    pub(crate) fn stream(g: Granularity) -> Stream {
        let job = Job {
            name: "j".into(),
            app_id: "a".into(),
            indicators: vec!["stall_rate".into()],
            granularities: vec![g],
            product_type: ProductType::Native,
            os: vec![],
            access: vec![],
            room_id: String::new(),
            user_ids: vec![],
        };
        job.streams(settings().timezone).remove(0)
    }

    /// A local time in +08:00.
    fn cst(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, m, d, h, mi, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn entry(s: &Stream, w: Window, state: WindowState) -> LedgerEntry {
        LedgerEntry {
            stream: s.key.as_str().into(),
            indicator: s.job.indicators[0].clone(),
            window: w,
            state,
            points: 0,
            attempts: 1,
            last_error: None,
            request_id: None,
            fetched_at: w.end,
        }
    }

    /// The windows of a stream's plan.
    fn wins(p: &StreamPlan) -> Vec<Window> {
        p.windows.iter().map(|w| w.window).collect()
    }

    fn plan_one(s: &Stream, ledger: &[LedgerEntry], now: DateTime<Utc>) -> StreamPlan {
        plan(
            &settings(),
            std::slice::from_ref(s),
            ledger,
            now,
            PlanOptions::default(),
        )
        .unwrap()
        .streams
        .remove(0)
    }

    /// What a run at `now` leaves in the ledger when every window succeeds.
    fn run(s: &Stream, ledger: &mut Vec<LedgerEntry>, now: DateTime<Utc>) -> usize {
        let p = plan_one(s, ledger, now);
        let cut = settled_until(&settings(), s.granularity, now);
        for w in p.windows.iter().map(|w| w.window) {
            ledger.retain(|e| !(e.window.start >= w.start && e.window.end <= w.end));
            if cut > w.start {
                ledger.push(entry(
                    s,
                    Window::new(w.start, cut.min(w.end)),
                    WindowState::Settled,
                ));
            }
            if cut < w.end {
                ledger.push(entry(
                    s,
                    Window::new(cut.max(w.start), w.end),
                    WindowState::Provisional,
                ));
            }
        }
        p.windows.len()
    }

    #[test]
    fn daily_horizon_rounds_in_the_configured_offset() {
        // 00:30 in +08:00 is still the previous day in UTC: buckets follow +08:00.
        let now = cst(2026, 11, 27, 0, 30);
        let h = horizon(&settings(), Granularity::Day, now);
        // now - 30 days + 1 h = 2026-10-28 01:30 +08:00, rounded up to the next local midnight.
        assert_eq!(h.start, cst(2026, 10, 29, 0, 0));
        // now - 8 h = 2026-11-26 16:30 +08:00, rounded down to local midnight.
        assert_eq!(h.end, cst(2026, 11, 26, 0, 0));
    }

    #[test]
    fn five_minute_horizon_and_the_8_hour_delay() {
        let now = cst(2026, 11, 27, 12, 3);
        let h = horizon(&settings(), Granularity::FiveMin, now);
        assert_eq!(h.start, cst(2026, 10, 28, 13, 5));
        assert_eq!(h.end, cst(2026, 11, 27, 4, 0));
        // Every window starts inside the API's 30 days, even sent up to the margin later.
        assert!(h.start >= now - Duration::days(30) + Duration::minutes(59));
    }

    #[test]
    fn a_fresh_backfill_costs_ceil_span_over_7_days() {
        for g in [Granularity::Day, Granularity::FiveMin] {
            for hour in [0, 1, 7, 8, 9, 15, 16, 23] {
                let now = cst(2026, 11, 27, hour, 17);
                let s = stream(g);
                let p = wins(&plan_one(&s, &[], now));
                let h = horizon(&settings(), g, now);
                let span = (h.end - h.start).num_seconds();
                let week = 7 * 86_400;
                assert_eq!(p.len() as i64, (span + week - 1) / week, "{g} at {hour}h");
                // Contiguous, half-open, oldest first, none longer than 7 days.
                assert_eq!(p.first().unwrap().start, h.start);
                assert_eq!(p.last().unwrap().end, h.end);
                for pair in p.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                assert!(p.iter().all(|w| w.duration() <= Duration::days(7)));
            }
        }
    }

    #[test]
    fn an_immediate_rerun_and_every_nightly_run_cost_one_call_per_stream() {
        for g in [Granularity::Day, Granularity::FiveMin] {
            let s = stream(g);
            let mut ledger = Vec::new();
            let mut now = cst(2026, 11, 1, 2, 0);
            let h = horizon(&settings(), g, now);
            let fresh = ((h.end - h.start).num_seconds() as u64).div_ceil(7 * 86_400) as usize;
            assert_eq!(run(&s, &mut ledger, now), fresh, "{g} backfill");
            for night in 0..40 {
                let calls = run(&s, &mut ledger, now + Duration::minutes(1));
                assert!(
                    calls <= 1,
                    "{g}: immediate re-run on night {night} made {calls} calls"
                );
                now += Duration::days(1);
                assert_eq!(run(&s, &mut ledger, now), 1, "{g}: night {night}");
            }
        }
    }

    #[test]
    fn a_ledger_with_holes_failed_and_provisional_windows() {
        let s = stream(Granularity::Day);
        let now = cst(2026, 11, 27, 2, 0);
        let h = horizon(&settings(), Granularity::Day, now);
        let d = |n: i64| h.start + Duration::days(n);
        let ledger = vec![
            entry(&s, Window::new(d(0), d(3)), WindowState::Settled),
            // d(3)..d(4) is a hole.
            entry(&s, Window::new(d(4), d(10)), WindowState::Settled),
            entry(&s, Window::new(d(10), d(12)), WindowState::Failed),
            entry(&s, Window::new(d(12), d(20)), WindowState::Settled),
            entry(&s, Window::new(d(20), h.end), WindowState::Provisional),
            // Another stream's rows do not count.
            LedgerEntry {
                stream: "other".into(),
                ..entry(&s, Window::new(d(20), h.end), WindowState::Settled)
            },
        ];
        let p = plan_one(&s, &ledger, now);
        assert_eq!(
            wins(&p),
            vec![
                Window::new(d(3), d(4)),
                Window::new(d(10), d(12)),
                Window::new(d(20), d(27)),
                Window::new(d(27), h.end),
            ]
        );
    }

    #[test]
    fn settled_rows_outside_the_horizon_or_misaligned_are_handled() {
        let s = stream(Granularity::FiveMin);
        let now = cst(2026, 11, 27, 2, 0);
        let h = horizon(&settings(), Granularity::FiveMin, now);
        // Settled from long before the horizon up to a point that is not on a 5-minute boundary.
        let ledger = vec![entry(
            &s,
            Window::new(
                h.start - Duration::days(40),
                h.start + Duration::seconds(450),
            ),
            WindowState::Settled,
        )];
        let p = wins(&plan_one(&s, &ledger, now));
        assert_eq!(p[0].start, h.start + Duration::seconds(300));
        assert_eq!(p.last().unwrap().end, h.end);
    }

    #[test]
    fn from_to_is_clipped_to_the_horizon_with_a_warning() {
        let s = stream(Granularity::Day);
        let now = cst(2026, 11, 27, 2, 0);
        let h = horizon(&settings(), Granularity::Day, now);
        let opts = PlanOptions {
            from: Some(now - Duration::days(90)),
            to: Some(h.start + Duration::days(2)),
            refetch: false,
        };
        let p = plan(&settings(), std::slice::from_ref(&s), &[], now, opts).unwrap();
        assert_eq!(
            wins(&p.streams[0]),
            vec![Window::new(h.start, h.start + Duration::days(2))]
        );
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("clipped"), "{:?}", p.warnings);
    }

    #[test]
    fn a_range_entirely_outside_the_horizon_is_an_error() {
        let s = stream(Granularity::Day);
        let now = cst(2026, 11, 27, 2, 0);
        let opts = PlanOptions {
            from: Some(now - Duration::days(90)),
            to: Some(now - Duration::days(60)),
            refetch: false,
        };
        let e = plan(&settings(), std::slice::from_ref(&s), &[], now, opts).unwrap_err();
        assert!(matches!(e, PlanError::NothingLeft { .. }));
        assert!(e.to_string().contains("last 30 days"), "{e}");
        let opts = PlanOptions {
            from: Some(now),
            to: Some(now - Duration::days(1)),
            refetch: false,
        };
        assert!(matches!(
            plan(&settings(), &[s], &[], now, opts),
            Err(PlanError::EmptyRange { .. })
        ));
    }

    #[test]
    fn refetch_ignores_settled_rows_in_the_range_only() {
        let s = stream(Granularity::Day);
        let now = cst(2026, 11, 27, 2, 0);
        let h = horizon(&settings(), Granularity::Day, now);
        let ledger = vec![entry(&s, h, WindowState::Settled)];
        assert!(plan_one(&s, &ledger, now).windows.is_empty());
        let opts = PlanOptions {
            from: Some(h.start + Duration::days(5)),
            to: Some(h.start + Duration::days(6)),
            refetch: true,
        };
        let p = plan(&settings(), &[s], &ledger, now, opts).unwrap();
        assert_eq!(
            wins(&p.streams[0]),
            vec![Window::new(
                h.start + Duration::days(5),
                h.start + Duration::days(6)
            )]
        );
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn the_30_day_edge_and_day_boundaries() {
        // Exactly on a local midnight: now - 30 d + 1 h is 01:00, so the first day is the next one.
        let now = cst(2026, 11, 27, 0, 0);
        let h = horizon(&settings(), Granularity::Day, now);
        assert_eq!(h.start, cst(2026, 10, 29, 0, 0));
        // One minute before midnight local: data until 8 h earlier, i.e. up to today's midnight.
        let now = cst(2026, 11, 27, 23, 59);
        assert_eq!(
            horizon(&settings(), Granularity::Day, now).end,
            cst(2026, 11, 27, 0, 0)
        );
        // At 07:59 local the previous day is not yet complete (ends 8 h later than midnight).
        let now = cst(2026, 11, 27, 7, 59);
        assert_eq!(
            horizon(&settings(), Granularity::Day, now).end,
            cst(2026, 11, 26, 0, 0)
        );
        let now = cst(2026, 11, 27, 8, 0);
        assert_eq!(
            horizon(&settings(), Granularity::Day, now).end,
            cst(2026, 11, 27, 0, 0)
        );
    }

    #[test]
    fn estimated_duration_follows_the_rate() {
        let s = stream(Granularity::FiveMin);
        let p = plan(
            &settings(),
            &[s],
            &[],
            cst(2026, 11, 27, 2, 0),
            PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(p.request_count(), 5);
        assert_eq!(
            p.estimated_duration(2.0, 2.0),
            std::time::Duration::from_secs(2)
        );
    }

    /// `s` asking `indicators`, under the name `name`.
    fn with(s: &Stream, name: &str, indicators: &[&str]) -> Stream {
        let mut job = s.job.clone();
        job.name = name.into();
        job.indicators = indicators.iter().map(|i| i.to_string()).collect();
        job.streams(settings().timezone)
            .into_iter()
            .find(|x| x.granularity == s.granularity)
            .unwrap()
    }

    /// Runs `s` at `now` as `run` does, but with every indicator's rows, as the store writes them.
    fn run_all(
        s: &Stream,
        ledger: &mut Vec<LedgerEntry>,
        now: DateTime<Utc>,
    ) -> Vec<PlannedWindow> {
        let p = plan_one(s, ledger, now);
        let cut = settled_until(&settings(), s.granularity, now);
        for pw in &p.windows {
            let w = pw.window;
            for i in &pw.indicators {
                ledger.retain(|e| {
                    !(&e.indicator == i && e.window.start >= w.start && e.window.end <= w.end)
                });
                for (part, state) in [
                    (
                        Window {
                            start: w.start,
                            end: cut.clamp(w.start, w.end),
                        },
                        WindowState::Settled,
                    ),
                    (
                        Window {
                            start: cut.clamp(w.start, w.end),
                            end: w.end,
                        },
                        WindowState::Provisional,
                    ),
                ] {
                    if part.start < part.end {
                        ledger.push(LedgerEntry {
                            indicator: i.clone(),
                            ..entry(s, part, state)
                        });
                    }
                }
            }
        }
        p.windows
    }

    #[test]
    fn coverage_belongs_to_the_query_and_each_indicator() {
        let g = Granularity::Day;
        let one = with(&stream(g), "j", &["stall_rate"]);
        let mut ledger = Vec::new();
        let now = cst(2026, 11, 20, 2, 0);
        let fresh = run_all(&one, &mut ledger, now).len();
        let weeks = |h: Window| (h.duration().num_days() as usize).div_ceil(7);
        assert_eq!(fresh, weeks(horizon(&settings(), g, now)));
        let night = now + Duration::days(1);

        // Renamed: the same query, nothing fetched again beyond the nightly tail.
        let renamed = with(&one, "renamed", &["stall_rate"]);
        assert_eq!(renamed.key, one.key);
        assert_eq!(plan_one(&renamed, &ledger, night).windows.len(), 1);

        // An added indicator is backfilled alone; the nightly tail still carries both in one call.
        let two = with(&one, "j", &["stall_rate", "join_room_success_rate"]);
        let p = plan_one(&two, &ledger, night);
        let both: Vec<&PlannedWindow> = p
            .windows
            .iter()
            .filter(|w| w.indicators.len() == 2)
            .collect();
        let added: Vec<&PlannedWindow> = p
            .windows
            .iter()
            .filter(|w| w.indicators == ["join_room_success_rate"])
            .collect();
        // The others' tail: one call, with or without the added indicator.
        let tail = p.windows.len() - added.len();
        assert_eq!(tail, 1, "{p:?}");
        assert!(both.len() <= 1, "{p:?}");
        let h = horizon(&settings(), g, night);
        let added_span: i64 = p
            .windows
            .iter()
            .filter(|w| w.indicators.contains(&"join_room_success_rate".to_string()))
            .map(|w| w.window.duration().num_days())
            .sum();
        assert_eq!(
            added_span,
            h.duration().num_days(),
            "the added indicator's whole horizon"
        );
        let old_span: i64 = p
            .windows
            .iter()
            .filter(|w| w.indicators.contains(&"stall_rate".to_string()))
            .map(|w| w.window.duration().num_days())
            .sum();
        assert!(old_span <= 2, "stall_rate refetches only its tail: {p:?}");
        run_all(&two, &mut ledger, night);
        // From then on, one call per night with both indicators.
        let next = plan_one(&two, &ledger, night + Duration::days(1));
        assert_eq!(next.windows.len(), 1, "{next:?}");
        assert_eq!(next.windows[0].indicators.len(), 2);

        // Removing an indicator fetches nothing for it; another app is a new stream.
        let less = with(&two, "j", &["join_room_success_rate"]);
        assert_eq!(
            plan_one(&less, &ledger, night + Duration::minutes(1))
                .windows
                .len(),
            0
        );
        let mut other = two.job.clone();
        other.app_id = "b".into();
        let other = other.streams(settings().timezone).remove(0);
        assert_ne!(other.key, two.key);
        assert_eq!(plan_one(&other, &ledger, night).windows.len(), weeks(h));
    }

    #[test]
    fn a_failed_refetch_inside_settled_coverage_is_retried() {
        let s = stream(Granularity::Day);
        let mut ledger = Vec::new();
        let now = cst(2026, 11, 20, 2, 0);
        run_all(&s, &mut ledger, now);
        let h = horizon(&settings(), Granularity::Day, now);
        let f = Window::new(h.start + Duration::days(3), h.start + Duration::days(5));
        ledger.push(entry(&s, f, WindowState::Failed));
        let p = plan_one(&s, &ledger, now + Duration::minutes(1));
        assert!(p.windows.iter().any(|w| w.window == f), "{p:?}");
    }

    #[test]
    fn rows_of_an_earlier_version_are_adopted_only_where_the_stored_points_prove_them() {
        let s = with(
            &stream(Granularity::Day),
            "j",
            &["stall_rate", "join_room_success_rate"],
        );
        let now = cst(2026, 11, 20, 2, 0);
        let mut ledger = Vec::new();
        run_all(&s, &mut ledger, now);
        // What the 0002 migration makes of an earlier version's rows: keyed by name, no indicator.
        let legacy_key = Stream::legacy_key(&s.name);
        let legacy: Vec<LedgerEntry> = ledger
            .iter()
            .filter(|e| e.indicator == "stall_rate")
            .map(|e| LedgerEntry {
                stream: legacy_key.as_str().into(),
                indicator: crate::domain::EVERY_INDICATOR.into(),
                ..e.clone()
            })
            .collect();
        let windows: Vec<Window> = legacy.iter().map(|e| e.window).collect();
        assert!(windows.len() >= 3, "{windows:?}");
        assert_eq!(
            legacy_windows(std::slice::from_ref(&s), &legacy)[0].2,
            windows
        );
        // The stored points: both indicators in the first windows, only stall_rate's names in the
        // second to last (join_room_success_rate was added in the same upgrade), nothing in the last
        // (no traffic).
        let mut evidence = Evidence::new();
        let n = windows.len();
        for (i, w) in windows.iter().enumerate() {
            let found = if i < n - 2 {
                vec![
                    ("80ms_audio_stall_rate".to_string(), 3),
                    ("5s_join_room_success_rate".to_string(), 2),
                ]
            } else if i == n - 2 {
                vec![("video_stall_rate".to_string(), 1)]
            } else {
                vec![]
            };
            evidence.insert((legacy_key.clone(), *w), found);
        }
        let a = adoptions(std::slice::from_ref(&s), &legacy, &evidence);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].from, legacy_key);
        let adopted = &a[0].adopted;
        assert_eq!(adopted.len(), 2 * (n - 2) + 1);
        assert!(adopted.iter().all(|e| *e.stream == *s.key));
        assert!(
            adopted.iter().any(|e| e.window == windows[n - 2]
                && e.indicator == "stall_rate"
                && e.points == 1)
        );
        assert!(!adopted.iter().any(|e| e.window == windows[n - 1]));
        // What is not proven for every indicator is kept apart, under a retired stream.
        let (key, label, rows) = a[0].retired.clone().unwrap();
        assert_eq!(key, format!("{legacy_key}#unproven"));
        assert!(
            label.starts_with(&s.name) && label.contains("not adopted"),
            "{label}"
        );
        assert_eq!(
            rows.iter().map(|e| e.window).collect::<Vec<_>>(),
            windows[n - 2..]
        );
        // Planned from the adopted view: the unproven windows are fetched again, for what they lack.
        let view = adopted_view(legacy.clone(), &a);
        assert_eq!(view.len(), adopted.len() + rows.len());
        let p = plan_one(&s, &view, now + Duration::minutes(1));
        let needs = |w: Window, i: &str| {
            p.windows.iter().any(|pw| {
                pw.window.start <= w.start
                    && pw.window.end >= w.end
                    && pw.indicators.iter().any(|x| x == i)
            })
        };
        assert!(needs(windows[n - 2], "join_room_success_rate"));
        assert!(
            !needs(windows[n - 2], "stall_rate")
                || windows[n - 2].end > settled_until(&settings(), Granularity::Day, now)
        );
        assert!(
            needs(windows[n - 1], "stall_rate") && needs(windows[n - 1], "join_room_success_rate")
        );
        assert!(
            !needs(windows[0], "stall_rate"),
            "a proven window is not fetched again"
        );

        // Another name adopts nothing; the retired key is never adopted again.
        let other = with(&s, "other", &["stall_rate"]);
        assert!(adoptions(&[other], &legacy, &evidence).is_empty());
        let again = adopted_view(legacy, &a);
        assert!(
            adoptions(std::slice::from_ref(&s), &again, &evidence)
                .iter()
                .all(|x| x.from != key)
        );
    }

    #[test]
    fn rows_keyed_by_query_before_time_zones_are_adopted_as_they_are() {
        let s = stream(Granularity::Day);
        let now = cst(2026, 11, 20, 2, 0);
        let mut ledger = Vec::new();
        run_all(&s, &mut ledger, now);
        let before = s.key_before_timezones().unwrap();
        assert!(!before.contains("timezone") && s.key.contains("\"timezone\":\"+08:00\""));
        let old: Vec<LedgerEntry> = ledger
            .iter()
            .map(|e| LedgerEntry {
                stream: before.as_str().into(),
                ..e.clone()
            })
            .collect();
        let a = adoptions(std::slice::from_ref(&s), &old, &Evidence::new());
        assert_eq!(a.len(), 1);
        assert!(a[0].retired.is_none());
        assert_eq!(adopted_view(old, &a), ledger);
        // A 5min stream's key did not change.
        assert_eq!(stream(Granularity::FiveMin).key_before_timezones(), None);
        // Another offset is another stream: nothing of the +08:00 grid is its.
        let mut tokyo = settings();
        tokyo.timezone = FixedOffset::east_opt(9 * 3600).unwrap();
        let t = s.job.streams(tokyo.timezone).remove(0);
        assert_ne!(t.key, s.key);
        assert_eq!(t.key_before_timezones(), s.key_before_timezones());
        let p = plan(
            &tokyo,
            std::slice::from_ref(&t),
            &ledger,
            now,
            PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(
            p.streams[0].windows.len(),
            plan(
                &tokyo,
                std::slice::from_ref(&t),
                &[],
                now,
                PlanOptions::default()
            )
            .unwrap()
            .streams[0]
                .windows
                .len(),
            "a changed offset backfills the new grid"
        );
    }

    #[test]
    fn windows_marked_by_an_interrupted_refetch_are_planned_until_superseded() {
        let s = stream(Granularity::Day);
        let mut ledger = Vec::new();
        let now = cst(2026, 11, 20, 2, 0);
        run_all(&s, &mut ledger, now);
        let h = horizon(&settings(), Granularity::Day, now);
        let marked = Window::new(h.start + Duration::days(2), h.start + Duration::days(9));
        ledger.push(entry(&s, marked, WindowState::Refetch));
        let p = plan_one(&s, &ledger, now + Duration::minutes(1));
        assert!(p.windows.iter().any(|w| w.window == marked), "{p:?}");
    }
}
