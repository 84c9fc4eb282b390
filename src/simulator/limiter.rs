//! The gateway's quotas: per (account, action), a rate limit over a short sliding window and an
//! optional daily limit over a sliding 24 hours.
//!
//! Both are sliding logs, not token buckets: ListQuality documents "2 requests per second", and a
//! client that sends three calls within any 1,000 ms (say at 0.9 s, 1.0 s and 1.1 s) is refused the
//! third one even though no calendar second saw three. Refused requests are not counted, so a client
//! that backs off is served again as soon as its window has room.
//!
//! A rate of `r` per second is PRODUCT.md's rule "in any sliding interval of T ≥ 1 s at most
//! max(1, ⌊r × T⌋) calls" enforced at its shortest interval that allows a call: at most
//! N = max(1, ⌊r⌋) calls in any window of W = max(1 s, 1 / r). So 2/s is 2 calls in any second (as
//! before), 0.5/s one call in any 2 s, 0.167/s (BytePlus's 10 a minute) one in any 5.99 s; any
//! interval of k × W then holds at most k × N ≤ max(1, ⌊r × k × W⌋) calls. Read literally for every
//! real T the rule would refuse a client that sends evenly at exactly the rate (two calls 6 s apart
//! lie in an interval of 6.001 s, whose allowance ⌊0.167 × 6.001⌋ is 1), so the gateway counts calls
//! in windows of the one length W, as the documented 2/s always was.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

const SECOND_NS: i64 = 1_000_000_000;

/// At most `capacity` admitted times in any half-open window `[s, s + window)`; times are
/// nanoseconds on any clock that the caller keeps using.
#[derive(Debug, Clone)]
pub struct SlidingLog {
    window: i64,
    capacity: u32,
    /// Admitted times within the last two windows, in order: a request decided within one window of
    /// the latest one recorded is judged against every admitted time that shares a window with it.
    admitted: VecDeque<i64>,
}

impl SlidingLog {
    pub fn new(window: Duration, capacity: u32) -> Self {
        SlidingLog {
            window: i64::try_from(window.as_nanos()).unwrap_or(i64::MAX / 4),
            capacity,
            admitted: VecDeque::new(),
        }
    }

    /// The log of a rate of `per_second`: N = max(1, ⌊per_second⌋) calls in any window of
    /// W = max(1 s, 1 / per_second), W rounded up to the nanosecond so that ⌊per_second × W⌋ ≥ N.
    /// A rate that is not a positive number admits nothing.
    pub fn per_second(per_second: f64) -> Self {
        if per_second.is_nan() || per_second <= 0.0 {
            return SlidingLog::new(Duration::from_secs(1), 0);
        }
        let window = if per_second >= 1.0 {
            SECOND_NS
        } else {
            (SECOND_NS as f64 / per_second)
                .ceil()
                .min((i64::MAX / 4) as f64) as i64
        };
        let capacity = per_second.floor().clamp(1.0, u32::MAX as f64) as u32;
        SlidingLog {
            window,
            capacity,
            admitted: VecDeque::new(),
        }
    }

    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window as u64)
    }

    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Whether a request at `at` fits: no window `[s, s + W)` holding `at` would then hold more
    /// than `capacity` admitted requests.
    ///
    /// Requests are decided after their body is read and their signature checked, so a later
    /// arrival can be decided first; the check therefore looks at windows on both sides of `at`.
    pub fn fits(&self, at: i64) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let cap = self.capacity as usize;
        // The admitted times in (at - W, at + W): only they share a window with `at`.
        let lo = self.admitted.partition_point(|t| *t <= at - self.window);
        let hi = self.admitted.partition_point(|t| *t < at + self.window);
        if hi - lo < cap {
            return true;
        }
        // The fullest window holding `at` can be taken to start at its earliest member, which is at
        // or before `at`: try every such start.
        let upto = self.admitted.partition_point(|t| *t <= at);
        (lo..upto).map(|i| self.admitted[i]).chain([at]).all(|s| {
            let end = self.admitted.partition_point(|t| *t < s + self.window);
            let first = self.admitted.partition_point(|t| *t < s);
            end - first < cap
        })
    }

    /// Records an admitted request at `at` (whether it [`fits`](Self::fits) is the caller's check).
    pub fn record(&mut self, at: i64) {
        while self
            .admitted
            .front()
            .is_some_and(|first| at.saturating_sub(*first) >= self.window.saturating_mul(2))
        {
            self.admitted.pop_front();
        }
        let pos = self.admitted.partition_point(|t| *t <= at);
        self.admitted.insert(pos, at);
    }

    /// Admits and records a request at `at` if it fits.
    pub fn try_admit(&mut self, at: i64) -> bool {
        let fits = self.fits(at);
        if fits {
            self.record(at);
        }
        fits
    }

    /// When the earliest admitted request of the window ending at `at` leaves it: from then on the
    /// window that ends then holds one fewer.
    fn frees_at(&self, at: i64) -> i64 {
        let lo = self.admitted.partition_point(|t| *t <= at - self.window);
        self.admitted.get(lo).map_or(at, |t| t + self.window)
    }
}

/// Why a quota refused a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Over the rate: more than `capacity` requests in `window`; `per_second` is the configured rate.
    Rate {
        capacity: u32,
        window: Duration,
        per_second: f64,
    },
    /// Over the daily limit: `limit` requests were accepted in the 24 hours before the request; one
    /// more is accepted at `retry_at`.
    Daily { limit: u32, retry_at: DateTime<Utc> },
}

/// One (account, action)'s quotas: its rate and, if set, its daily limit.
#[derive(Debug)]
pub struct Quota {
    per_second: f64,
    rate: SlidingLog,
    daily: Option<(u32, SlidingLog)>,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

impl Quota {
    pub fn new(per_second: f64, per_day: Option<u32>) -> Self {
        Quota {
            per_second,
            rate: SlidingLog::per_second(per_second),
            daily: per_day.map(|n| (n, SlidingLog::new(DAY, n))),
        }
    }

    /// Admits a request that arrived at `arrived` (monotonic nanoseconds) when the simulator's clock
    /// read `now`, or says which limit refused it. The daily limit is checked first, so a client
    /// that has spent its day is told so, not to slow down; a refused request counts toward neither.
    pub fn try_admit(&mut self, arrived: i64, now: DateTime<Utc>) -> Result<(), Refusal> {
        let day_at = now.timestamp_nanos_opt().unwrap_or(i64::MAX / 2);
        if let Some((limit, log)) = &self.daily
            && !log.fits(day_at)
        {
            return Err(Refusal::Daily {
                limit: *limit,
                retry_at: DateTime::from_timestamp_nanos(log.frees_at(day_at)),
            });
        }
        if !self.rate.try_admit(arrived) {
            return Err(Refusal::Rate {
                capacity: self.rate.capacity(),
                window: self.rate.window(),
                per_second: self.per_second,
            });
        }
        if let Some((_, log)) = &mut self.daily {
            log.record(day_at);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: i64 = 1_000_000;

    fn ms(n: i64) -> i64 {
        n * MS
    }

    #[test]
    fn the_third_request_in_any_second_is_refused() {
        let mut l = SlidingLog::per_second(2.0);
        assert!(l.try_admit(ms(900)));
        assert!(l.try_admit(ms(1000)));
        // A calendar-second limiter would allow this one: 1.1 s is in the next second.
        assert!(!l.try_admit(ms(1100)));
        // Exactly one second after the first: its window no longer holds the first.
        assert!(l.try_admit(ms(1900)));
        assert!(!l.try_admit(ms(1950)));
        assert!(l.try_admit(ms(2000)));
    }

    #[test]
    fn late_decisions_respect_windows_after_them() {
        let mut l = SlidingLog::per_second(2.0);
        assert!(l.try_admit(ms(500)));
        assert!(l.try_admit(ms(1200)));
        // Arrived earlier, decided later: [400, 1400) would hold three.
        assert!(!l.try_admit(ms(400)));
        // [100, 1100) holds only 100 and 500.
        assert!(l.try_admit(ms(100)));
        assert!(!l.try_admit(ms(300)));
    }

    #[test]
    fn a_higher_limit_admits_more() {
        let mut l = SlidingLog::per_second(100.0);
        assert!((0..100).all(|i| l.try_admit(ms(i))));
        assert!(!l.try_admit(ms(100)));
    }

    #[test]
    fn a_fractional_rate_is_one_call_per_its_inverse() {
        let mut l = SlidingLog::per_second(0.5);
        assert_eq!((l.capacity(), l.window()), (1, Duration::from_secs(2)));
        assert!(l.try_admit(ms(0)));
        assert!(!l.try_admit(ms(1999)));
        assert!(l.try_admit(ms(2000)));
        // BytePlus's 10 a minute: one call in any 6 s, give or take the rounding of 1 / 0.167.
        let mut l = SlidingLog::per_second(0.167);
        assert_eq!(l.capacity(), 1);
        assert!(l.window() > Duration::from_millis(5980) && l.window() < Duration::from_secs(6));
        assert!(l.try_admit(ms(0)));
        assert!(!l.try_admit(ms(5900)));
        assert!(l.try_admit(ms(6000)));
        // A rate above 1 that is not whole: its floor in any second.
        let l = SlidingLog::per_second(2.5);
        assert_eq!((l.capacity(), l.window()), (2, Duration::from_secs(1)));
    }

    #[test]
    fn no_rate_admits_nothing() {
        for r in [0.0, -1.0, f64::NAN] {
            assert!(!SlidingLog::per_second(r).try_admit(0), "{r}");
        }
    }

    fn noon() -> DateTime<Utc> {
        "2026-03-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_daily_limit_counts_accepted_calls_in_any_24_hours() {
        let mut q = Quota::new(1.0, Some(2));
        let t0 = noon();
        assert_eq!(q.try_admit(0, t0), Ok(()));
        // Refused by the rate (the same second): not counted toward the day.
        assert!(matches!(
            q.try_admit(ms(10), t0),
            Err(Refusal::Rate { capacity: 1, .. })
        ));
        let t1 = t0 + chrono::Duration::hours(1);
        assert_eq!(q.try_admit(ms(2000), t1), Ok(()));
        let later = t0 + chrono::Duration::hours(23);
        assert_eq!(
            q.try_admit(ms(4000), later),
            Err(Refusal::Daily {
                limit: 2,
                retry_at: t0 + chrono::Duration::hours(24)
            })
        );
        // A day after the first call, one more fits; the second's day still holds it.
        let next = t0 + chrono::Duration::hours(24);
        assert_eq!(q.try_admit(ms(6000), next), Ok(()));
        assert!(matches!(
            q.try_admit(ms(8000), next),
            Err(Refusal::Daily { .. })
        ));
        // Without a daily limit only the rate counts.
        let mut free = Quota::new(1000.0, None);
        assert!((0..5000).all(|i| free.try_admit(ms(i), t0).is_ok()));
    }

    /// The limiter as the rule reads, written apart: admit `at` unless some window of W that holds
    /// it, starting at an admitted time or at `at`, would hold more than N.
    fn oracle(rate: f64, arrivals: &[i64]) -> Vec<bool> {
        let probe = SlidingLog::per_second(rate);
        let (w, n) = (probe.window, probe.capacity as usize);
        let mut admitted: Vec<i64> = Vec::new();
        arrivals
            .iter()
            .map(|&at| {
                let ok = admitted
                    .iter()
                    .copied()
                    .chain([at])
                    .filter(|s| *s <= at && at < s + w)
                    .all(|s| admitted.iter().filter(|t| **t >= s && **t < s + w).count() < n);
                if ok {
                    admitted.push(at);
                }
                ok
            })
            .collect()
    }

    proptest! {
        /// For any arrivals (each decided up to 0.5 s late, so in another order than they came), the
        /// limiter admits exactly what the rule admits, and any interval of k × W holds at most
        /// max(1, ⌊rate × k × W⌋) admitted calls.
        #[test]
        fn admitted_calls_never_exceed_the_rule(
            rate in prop_oneof![Just(0.167), Just(0.5), Just(1.0), Just(2.0), Just(2.5), 0.05f64..12.0],
            steps in prop::collection::vec((0i64..3_000, 0i64..500), 1..80),
        ) {
            let mut clock = 0;
            let arrivals: Vec<i64> = steps
                .into_iter()
                .map(|(gap, late)| {
                    clock += gap;
                    ms((clock - late).max(0))
                })
                .collect();
            let mut l = SlidingLog::per_second(rate);
            let got: Vec<bool> = arrivals.iter().map(|&at| l.try_admit(at)).collect();
            prop_assert_eq!(&got, &oracle(rate, &arrivals));
            let mut admitted: Vec<i64> = arrivals
                .iter()
                .zip(&got)
                .filter(|(_, ok)| **ok)
                .map(|(at, _)| *at)
                .collect();
            admitted.sort();
            for k in 1..=4i64 {
                let t = l.window * k;
                // The epsilon forgives the float rounding of W = ⌈1 s / rate⌉ back into calls.
                let allowed = ((rate * t as f64 / SECOND_NS as f64 + 1e-9).floor() as usize).max(1);
                for &s in &admitted {
                    let inside = admitted.iter().filter(|x| **x >= s && **x < s + t).count();
                    prop_assert!(
                        inside <= allowed,
                        "{} calls in [{}, {} + {}) at {}/s", inside, s, s, t, rate
                    );
                }
            }
        }
    }
}
