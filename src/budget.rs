//! A daily budget: at most `per_day` calls of one action of one account in any 24 hours, counted
//! over the calls recorded in the database (this run's and every earlier run's, of any process).
//!
//! **Invariant:** pure — the time comes in as an argument; the caller records each call it takes
//! in the database before sending it, so a crash never gives a call back.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// The span a daily budget counts over.
pub const DAY: Duration = Duration::hours(24);

#[derive(Debug)]
pub struct Budget {
    per_day: u32,
    /// The calls sent in the last 24 hours (and perhaps older ones, dropped as time passes),
    /// oldest first.
    sent: Mutex<VecDeque<DateTime<Utc>>>,
}

impl Budget {
    /// A budget of `per_day` calls, given the calls already sent (in any order).
    pub fn new(per_day: u32, mut sent: Vec<DateTime<Utc>>) -> Budget {
        sent.sort();
        Budget {
            per_day,
            sent: Mutex::new(sent.into()),
        }
    }

    pub fn per_day(&self) -> u32 {
        self.per_day
    }

    /// Takes one call at `now`, or says when the oldest counted call leaves the 24 hours (the
    /// earliest instant another call fits). A call sent at `t` counts until `t + 24 h`.
    pub fn take(&self, now: DateTime<Utc>) -> Result<(), DateTime<Utc>> {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        while sent.front().is_some_and(|&t| t + DAY <= now) {
            sent.pop_front();
        }
        if (sent.len() as u64) < u64::from(self.per_day) {
            sent.push_back(now);
            return Ok(());
        }
        // A clock set back leaves the newest before `now`; the oldest still frees first.
        Err(sent.front().map_or(now, |&t| t + DAY))
    }

    /// The calls still allowed at `now`.
    pub fn left(&self, now: DateTime<Utc>) -> u32 {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let counted = sent.iter().filter(|&&t| t + DAY > now).count() as u64;
        u64::from(self.per_day).saturating_sub(counted) as u32
    }
}

/// How many of `planned` calls fit in `left`, and when the rest will have been sent at the
/// budget's pace: `per_day` calls per 24 hours after the ones that fit now, each day's calls
/// freeing as the oldest of the last 24 hours (`sent`, ascending) leave it. Pure; for `plan`.
pub fn forecast(
    per_day: u32,
    sent: &[DateTime<Utc>],
    planned: u64,
    now: DateTime<Utc>,
) -> (u64, Option<DateTime<Utc>>) {
    let budget = Budget::new(per_day, sent.to_vec());
    let fit = planned.min(u64::from(budget.left(now)));
    if fit == planned || per_day == 0 {
        return (fit, None);
    }
    // The calls that fit go now; each further one goes as soon as one frees.
    for _ in 0..fit {
        let _ = budget.take(now);
    }
    let mut at = now;
    for _ in fit..planned {
        loop {
            match budget.take(at) {
                Ok(()) => break,
                Err(free) => at = free.max(at),
            }
        }
    }
    (fit, Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_spent_budget_frees_as_the_oldest_call_leaves_the_24_hours() {
        let b = Budget::new(2, vec![t(10), t(0)]);
        assert_eq!(b.left(t(20)), 0);
        assert_eq!(b.take(t(20)), Err(t(86_400)));
        // Exactly 24 hours after the oldest: it no longer counts.
        assert_eq!(b.take(t(86_400)), Ok(()));
        assert_eq!(b.take(t(86_401)), Err(t(86_410)));
        assert_eq!(b.left(t(86_410)), 1);
    }

    #[test]
    fn the_forecast_says_what_fits_and_when_the_rest_is_done() {
        // 60 a day, 50 spent an hour ago: 10 fit now, 20 more on the next day as those 50 free.
        let sent = vec![t(-3600); 50];
        let (fit, done) = forecast(60, &sent, 30, t(0));
        assert_eq!(fit, 10);
        assert_eq!(done, Some(t(-3600) + DAY));
        // Everything fits: no date.
        assert_eq!(forecast(60, &[], 30, t(0)), (30, None));
        // 130 calls at 60 a day, none spent: 60 now, 60 a day later, the last 10 two days later.
        assert_eq!(forecast(60, &[], 130, t(0)), (60, Some(t(0) + DAY + DAY)));
    }

    proptest! {
        /// Whatever the arrival times, the calls taken never exceed `per_day` in any 24 hours.
        #[test]
        fn never_more_than_per_day_in_any_24_hours(
            per_day in 1u32..6,
            before in proptest::collection::vec(0i64..200_000, 0..8),
            gaps in proptest::collection::vec(0i64..40_000, 1..60),
        ) {
            let before: Vec<_> = before.into_iter().map(t).collect();
            // Earlier runs never exceeded it either: keep what a budget would have let through.
            let seed = Budget::new(per_day, Vec::new());
            let mut sorted = before.clone();
            sorted.sort();
            let mut taken: Vec<DateTime<Utc>> =
                sorted.into_iter().filter(|&at| seed.take(at).is_ok()).collect();
            let b = Budget::new(per_day, taken.clone());
            let mut at = taken.last().copied().unwrap_or(t(0));
            for g in gaps {
                at += Duration::seconds(g);
                if b.take(at).is_ok() {
                    taken.push(at);
                }
            }
            for (i, &start) in taken.iter().enumerate() {
                let within = taken[i..].iter().filter(|&&x| x < start + DAY).count();
                prop_assert!(within as u32 <= per_day, "{within} calls in 24 h from {start}");
            }
        }
    }
}
