//! Discovery (PRODUCT.md, "Room streams"): every call of a `[[rooms]]` block's app, listed with
//! `ListRoomInfo` one local day at a time, for `rtc_rooms`.
//!
//! What to list ([`ranges_to_list`]) and whether a listed range is done ([`is_done`]) are pure, like
//! the planner; [`list_range`] lists one range through the fetcher, paging until the `Total` and
//! splitting a range the API answers `HasMore` for.
//!
//! **Invariant:** a range's calls leave [`list_range`] whole or not at all: a short page is retried
//! by the fetcher and then fails the range, it never ends a listing; every `CallId` once.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, Utc};

use crate::api::error::ApiError;
use crate::api::rooms::{ListRoomInfoRequest, PAGE_SIZE};
use crate::config::WindowSettings;
use crate::domain::{Granularity, RoomCall, Window};
use crate::fetcher::Fetcher;
use crate::planner;

/// How far back the API lists calls (14 days), less an hour, so that a slow request still asks
/// inside them.
pub fn list_back() -> Duration {
    Duration::days(14) - Duration::hours(1)
}

/// A listed range is done once it had ended this long before it was listed (and all of its calls
/// had finished): the API lists a call about 20 s after it is created.
pub fn done_after() -> Duration {
    Duration::minutes(10)
}

/// The shortest range split for `HasMore`; one still answered `HasMore` fails.
pub fn min_split() -> Duration {
    Duration::minutes(1)
}

/// L, the first instant discovery lists: 14 days back (less the hour), or the horizon's start of the
/// block's granularities if that is later. What lies before L can never be listed and is no hole.
pub fn listing_start(
    window: &WindowSettings,
    granularities: &[Granularity],
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let horizon = granularities
        .iter()
        .map(|&g| planner::horizon(window, g, now).start)
        .min()
        .unwrap_or(now);
    (now - list_back()).max(horizon)
}

/// The ranges still to list: `[start, now)` less what the ledger holds as done, cut at each local
/// midnight of `tz`, newest first.
pub fn ranges_to_list(
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    tz: FixedOffset,
    done: Vec<Window>,
) -> Vec<Window> {
    if start >= now {
        return Vec::new();
    }
    let mut out = Vec::new();
    for gap in planner::subtract(Window::new(start, now), done) {
        let mut from = gap.start;
        while from < gap.end {
            let midnight = planner::floor_to(from, Granularity::Day, tz) + Duration::days(1);
            let to = midnight.min(gap.end);
            out.push(Window::new(from, to));
            from = to;
        }
    }
    out.reverse();
    out
}

/// The ledger window a listed range is recorded under: the range, reaching to the end of its local
/// day when it stops at `now`, so that the next run's listing of that day replaces it.
pub fn recorded_window(range: Window, now: DateTime<Utc>, tz: FixedOffset) -> Window {
    if range.end >= now {
        let midnight = planner::floor_to(range.start, Granularity::Day, tz) + Duration::days(1);
        Window::new(range.start, midnight.max(range.end))
    } else {
        range
    }
}

/// Whether a listed range is done: it ended at least [`done_after`] before `listed_at`, and every
/// call created in it had finished.
pub fn is_done(range: Window, calls: &[RoomCall], listed_at: DateTime<Utc>) -> bool {
    range.end + done_after() <= listed_at
        && calls
            .iter()
            .filter(|c| range.contains(c.created_at) || c.created_at == range.end)
            .all(|c| c.finished && c.destroyed_at.is_some())
}

/// What listing one range came to.
#[derive(Debug)]
pub struct Listed {
    /// Every call created in the range (both ends included, as the API lists), each `CallId` once,
    /// in (created, CallId) order; or why the range could not be listed.
    pub result: Result<Vec<RoomCall>, ApiError>,
    /// Requests sent, retries included.
    pub requests: u32,
    pub throttled: u32,
    /// The last answer's request id, for the ledger.
    pub request_id: Option<String>,
    /// A daily budget cut the listing short: `result` holds the calls listed before it (the range
    /// is not done), and this says why.
    pub deferred: Option<String>,
}

/// Lists `range` of `app_id` completely through `fetcher`: page 1; a range answered `HasMore` is
/// split in two and each half listed, down to [`min_split`]; otherwise pages are read until
/// `PageNum × PageSize ≥ Total` (the latest page's). `on_retry` is told of every retry; `gate` is
/// asked before each request (the daily budget), and a refusal ends the listing with what it has.
pub async fn list_range(
    fetcher: &Fetcher,
    app_id: &str,
    range: Window,
    tz: FixedOffset,
    on_retry: &(dyn Fn(u32) + Sync),
    gate: impl AsyncFn() -> Result<(), ApiError>,
) -> Listed {
    let mut listed = Listed {
        result: Ok(Vec::new()),
        requests: 0,
        throttled: 0,
        request_id: None,
        deferred: None,
    };
    let mut calls: BTreeMap<String, RoomCall> = BTreeMap::new();
    let mut todo = vec![range];
    'ranges: while let Some(r) = todo.pop() {
        let mut page_num = 1;
        loop {
            let req = ListRoomInfoRequest::page(app_id, r, tz, page_num);
            let o = fetcher.fetch_gated(&req, on_retry, &gate).await;
            listed.requests += o.attempts;
            listed.throttled += o.throttled;
            let page = match o.result {
                Ok(page) => page,
                // Cut short by a budget: what was listed is kept, and the range stays to list.
                Err(e) if e.is_deferred() => {
                    listed.deferred = Some(e.to_string());
                    break 'ranges;
                }
                Err(e) => {
                    listed.request_id = e.request_id().map(str::to_string);
                    listed.result = Err(e);
                    return listed;
                }
            };
            listed.request_id = Some(page.request_id.clone()).filter(|id| !id.is_empty());
            if page.has_more {
                if r.end - r.start <= min_split() {
                    listed.result = Err(ApiError::InvalidResponse {
                        path: "Result.HasMore".into(),
                        what: format!(
                            "still true for the one-minute range {r}: the API cannot list this app's calls that finely; the range fails and the next run tries again"
                        ),
                        request_id: listed.request_id.clone(),
                        not_json: false,
                    });
                    return listed;
                }
                // Both halves include the middle instant, as every range includes its ends.
                let middle = r.start + (r.end - r.start) / 2;
                todo.push(Window::new(middle, r.end));
                todo.push(Window::new(r.start, middle));
                continue 'ranges;
            }
            for c in page.calls {
                calls.insert(c.call_id.clone(), c);
            }
            if page_num * PAGE_SIZE >= page.total {
                continue 'ranges;
            }
            page_num += 1;
        }
    }
    let mut calls: Vec<RoomCall> = calls.into_values().collect();
    calls.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.call_id.cmp(&b.call_id))
    });
    listed.result = Ok(calls);
    listed
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
    }

    fn plus8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    #[test]
    fn ranges_are_local_days_from_l_newest_first_less_what_is_done() {
        // L at 05:30Z on the 10th (13:30 +08:00); now 03:00Z on the 12th (11:00 +08:00).
        let (l, now) = (t(10, 5, 30), t(12, 3, 0));
        let all = ranges_to_list(l, now, plus8(), Vec::new());
        assert_eq!(
            all,
            [
                Window::new(t(11, 16, 0), now),
                Window::new(t(10, 16, 0), t(11, 16, 0)),
                Window::new(l, t(10, 16, 0)),
            ]
        );
        // A done day is not listed again; a day done from an earlier L covers a later one.
        let done = vec![
            Window::new(t(10, 16, 0), t(11, 16, 0)),
            Window::new(t(9, 16, 0), t(10, 16, 0)),
        ];
        assert_eq!(
            ranges_to_list(l, now, plus8(), done),
            [Window::new(t(11, 16, 0), now)]
        );
        assert!(ranges_to_list(now, now, plus8(), Vec::new()).is_empty());
    }

    #[test]
    fn a_range_cut_at_now_is_recorded_to_its_day_end() {
        let now = t(12, 3, 0);
        assert_eq!(
            recorded_window(Window::new(t(11, 16, 0), now), now, plus8()),
            Window::new(t(11, 16, 0), t(12, 16, 0))
        );
        let whole = Window::new(t(10, 16, 0), t(11, 16, 0));
        assert_eq!(recorded_window(whole, now, plus8()), whole);
    }

    #[test]
    fn l_is_fourteen_days_back_less_an_hour_or_the_horizon_start() {
        let window = WindowSettings {
            max_lookback_days: 30,
            max_span_days: 7,
            data_delay_hours: 8,
            settle_hours: 24,
            timezone: plus8(),
        };
        let now = t(20, 12, 0);
        assert_eq!(
            listing_start(&window, &[Granularity::FiveMin], now),
            now - Duration::days(14) + Duration::hours(1)
        );
        let short = WindowSettings {
            max_lookback_days: 3,
            ..window
        };
        let l = listing_start(&short, &[Granularity::FiveMin], now);
        assert_eq!(l, planner::horizon(&short, Granularity::FiveMin, now).start);
        assert!(l > now - Duration::days(14));
    }

    fn call(id: &str, created: DateTime<Utc>, finished: bool) -> RoomCall {
        RoomCall {
            call_id: id.into(),
            room_id: "r".into(),
            created_at: created,
            destroyed_at: finished.then(|| created + Duration::minutes(5)),
            active_user_num: 2,
            finished,
        }
    }

    #[test]
    fn a_range_is_done_ten_minutes_after_its_end_once_its_calls_finished() {
        let day = Window::new(t(10, 16, 0), t(11, 16, 0));
        let calls = vec![call("a", t(11, 1, 0), true)];
        assert!(!is_done(day, &calls, t(11, 16, 9)));
        assert!(is_done(day, &calls, t(11, 16, 10)));
        let running = vec![
            call("a", t(11, 1, 0), true),
            call("b", t(11, 15, 59), false),
        ];
        assert!(!is_done(day, &running, t(12, 0, 0)));
        // A running call created in another range does not hold this one back.
        let other = vec![call("c", t(11, 16, 30), false)];
        assert!(is_done(day, &other, t(12, 0, 0)));
    }
}
