//! The gateway's rate limit: at most `limit` admitted requests in any one-second window.
//!
//! A sliding log, not a token bucket: ListQuality documents "2 requests per second", and a client
//! that sends three calls within any 1,000 ms (say at 0.9 s, 1.0 s and 1.1 s) is refused the third
//! one even though no calendar second saw three. Refused requests are not counted, so a client that
//! backs off is served again as soon as its window has room.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct SlidingLimiter {
    limit: u32,
    /// Arrival times of admitted requests within the last two windows, in order.
    admitted: VecDeque<Instant>,
}

impl SlidingLimiter {
    pub fn new(limit: u32) -> Self {
        SlidingLimiter {
            limit,
            admitted: VecDeque::new(),
        }
    }

    /// Admits a request that arrived at `at` unless some one-second window `[s, s + 1 s)` holding `at`
    /// would then hold more than `limit` admitted requests.
    ///
    /// Requests are decided after their body is read and their signature checked, so a later arrival
    /// can be decided first; the check therefore looks at windows on both sides of `at`.
    pub fn try_admit(&mut self, at: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        while let Some(first) = self.admitted.front() {
            if at.saturating_duration_since(*first) >= WINDOW * 2 {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        let near: Vec<Instant> = self
            .admitted
            .iter()
            .copied()
            .filter(|t| {
                at.saturating_duration_since(*t) < WINDOW
                    && t.saturating_duration_since(at) < WINDOW
            })
            .collect();
        // The fullest window holding `at` can be taken to start at its earliest member, which is at or
        // before `at`: try every such start.
        let starts = near.iter().copied().filter(|t| *t <= at).chain([at]);
        for s in starts {
            let inside = near.iter().filter(|t| **t >= s && **t < s + WINDOW).count() + 1;
            if inside > self.limit as usize {
                return false;
            }
        }
        let pos = self.admitted.partition_point(|t| *t <= at);
        self.admitted.insert(pos, at);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn the_third_request_in_any_second_is_refused() {
        let b = Instant::now();
        let mut l = SlidingLimiter::new(2);
        assert!(l.try_admit(ms(b, 900)));
        assert!(l.try_admit(ms(b, 1000)));
        // A calendar-second limiter would allow this one: 1.1 s is in the next second.
        assert!(!l.try_admit(ms(b, 1100)));
        // Exactly one second after the first: its window no longer holds the first.
        assert!(l.try_admit(ms(b, 1900)));
        assert!(!l.try_admit(ms(b, 1950)));
        assert!(l.try_admit(ms(b, 2000)));
    }

    #[test]
    fn late_decisions_respect_windows_after_them() {
        let b = Instant::now();
        let mut l = SlidingLimiter::new(2);
        assert!(l.try_admit(ms(b, 500)));
        assert!(l.try_admit(ms(b, 1200)));
        // Arrived earlier, decided later: [400, 1400) would hold three.
        assert!(!l.try_admit(ms(b, 400)));
        // [100, 1100) holds only 100 and 500.
        assert!(l.try_admit(ms(b, 100)));
        assert!(!l.try_admit(ms(b, 300)));
    }

    #[test]
    fn a_higher_limit_admits_more() {
        let b = Instant::now();
        let mut l = SlidingLimiter::new(100);
        assert!((0..100).all(|i| l.try_admit(ms(b, i))));
        assert!(!l.try_admit(ms(b, 100)));
    }
}
