//! The fetcher: every API call of a run goes through here, paced, bounded and retried.
//!
//! **Invariant:** one [`Fetcher`] per quota key ([`Quotas`]), shared (cloned) by every task. Every
//! attempt, retries included, waits for a slot (`max_in_flight`, an [`InFlight`] bound that the
//! quotas share) and then for its fetcher's one rate limiter, so the calls of one quota leaving this
//! process never exceed its rate in any one-second window. Each quota has its own limiter and its own
//! `Retry-After` hold. Any [`Action`] goes through the same code. Only retryable errors (see
//! `api::error::classify`) are retried, at most `max_retries` times.

use std::ops::Add;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::api::Action;
use crate::api::client::Client;
use crate::api::error::ApiError;
use crate::config::SourceSettings;

/// Calls are spaced this much wider than `1 / requests_per_second`. The gateway counts arrivals, not sends:
/// with exact spacing, a call delayed by the network and the next one on time would land three in one
/// second. 4% keeps 40 ms of slack per two calls at 2/s and still reaches 96% of the rate.
pub const PACING_MARGIN: f64 = 1.04;

/// The first retry waits about this long (plus jitter), doubling each time.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// No retry waits longer than this, jitter included, unless the server's `Retry-After` asks for more
/// (up to `api::error::MAX_RETRY_AFTER`; a longer one is not waited for: that call fails at once).
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The bound on calls in flight at once. Cheap to clone; fetchers built with clones of one `InFlight`
/// share it, so `source.max_in_flight` bounds the calls of every kind together.
#[derive(Debug, Clone)]
pub struct InFlight(Arc<Semaphore>);

impl InFlight {
    pub fn new(max_in_flight: usize) -> InFlight {
        InFlight(Arc::new(Semaphore::new(max_in_flight.max(1))))
    }
}

/// What one logical call came to.
#[derive(Debug)]
pub struct FetchOutcome<T> {
    /// The last attempt's result.
    pub result: Result<T, ApiError>,
    /// Requests sent for this call, retries included (0 when a gate refused the first).
    pub attempts: u32,
    /// Of those, the ones the API throttled (HTTP 429 or `FlowLimitExceeded*`).
    pub throttled: u32,
    /// Time this call's attempts waited for the rate limiter.
    pub rate_wait: Duration,
}

/// Counters for the run summary, over every call made through one fetcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FetchStats {
    /// Requests sent, retries included.
    pub requests: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Responses that were HTTP 429 or `FlowLimitExceeded*`.
    pub throttled: u64,
    /// Total time calls waited for the rate limiter (summed over tasks).
    pub rate_wait_ms: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    rate_wait_ms: AtomicU64,
}

/// Paced, retried calls for one credential and one quota. Cheap to clone; clones share the limiter,
/// the slots and the counters.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    pacer: Pacer,
    max_retries: u32,
    backoff: ExponentialBuilder,
    backoff_max: Duration,
    stats: Counters,
    /// When the last attempt was sent, in Unix milliseconds of the wall clock (0: none yet): the
    /// next run's first call keeps its pace from it.
    last_sent_ms: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("client", &self.inner.client)
            .field("max_retries", &self.inner.max_retries)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// `ListQuality`'s fetcher: `source.requests_per_second`, its own `max_in_flight` slots.
    pub fn new(client: Client, source: &SourceSettings) -> Fetcher {
        Fetcher::with_backoff(client, source, BACKOFF_MIN, BACKOFF_MAX)
    }

    /// As [`Fetcher::new`] with other backoff bounds (tests shorten them).
    pub fn with_backoff(
        client: Client,
        source: &SourceSettings,
        min: Duration,
        max: Duration,
    ) -> Fetcher {
        let in_flight = InFlight::new(source.max_in_flight);
        Fetcher::with_pace(
            client,
            source,
            source.requests_per_second,
            in_flight,
            min,
            max,
        )
    }

    /// A fetcher with its own limiter at `requests_per_second` (and its own `Retry-After` hold and
    /// counters) whose attempts take their slots from `in_flight`, with `source`'s retry policy. For
    /// `ListQualityDistribution`, whose quota is its own: pass the `ListQuality` fetcher's
    /// [`Fetcher::in_flight`], so both run at their full rate and `max_in_flight` bounds them together.
    pub fn with_pace(
        client: Client,
        source: &SourceSettings,
        requests_per_second: f64,
        in_flight: InFlight,
        min: Duration,
        max: Duration,
    ) -> Fetcher {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(source.max_retries as usize);
        Fetcher {
            inner: Arc::new(Inner {
                client,
                pacer: Pacer::with_slots(requests_per_second, in_flight),
                max_retries: source.max_retries,
                backoff,
                backoff_max: max,
                stats: Counters::default(),
                last_sent_ms: Default::default(),
            }),
        }
    }

    /// A fetcher for another quota of the same account (`ListQualityDistribution`'s): the same client
    /// and retry policy, its own limiter at `requests_per_second`, this one's in-flight slots.
    pub fn sibling(&self, requests_per_second: f64) -> Fetcher {
        let i = &self.inner;
        Fetcher {
            inner: Arc::new(Inner {
                client: i.client.clone(),
                pacer: Pacer::with_slots(requests_per_second, self.in_flight()),
                max_retries: i.max_retries,
                backoff: i.backoff,
                backoff_max: i.backoff_max,
                stats: Counters::default(),
                last_sent_ms: Default::default(),
            }),
        }
    }

    /// The in-flight bound this fetcher's attempts take their slots from, to share with another.
    pub fn in_flight(&self) -> InFlight {
        self.inner.pacer.slots.clone()
    }

    /// One logical call: attempts until success, a permanent error, or `max_retries` retries.
    pub async fn fetch<A: Action>(&self, req: &A) -> FetchOutcome<A::Answer> {
        self.fetch_with(req, |_| {}).await
    }

    /// [`Fetcher::fetch`], calling `on_retry(attempt)` as each retry is decided (before its wait),
    /// so a progress report counts retries as they happen, not when the window ends.
    pub async fn fetch_with<A: Action>(
        &self,
        req: &A,
        on_retry: impl Fn(u32),
    ) -> FetchOutcome<A::Answer> {
        self.fetch_gated(req, on_retry, async || Ok(())).await
    }

    /// [`Fetcher::fetch_with`], asking `gate` before each request is sent (with its slot in hand,
    /// before its pace): the daily budget, which records the call before it leaves. A gate that refuses ends
    /// the call with its error (a deferral, or a call that could not be recorded), unsent.
    pub async fn fetch_gated<A: Action>(
        &self,
        req: &A,
        on_retry: impl Fn(u32),
        gate: impl AsyncFn() -> Result<(), ApiError>,
    ) -> FetchOutcome<A::Answer> {
        let inner = &*self.inner;
        let mut backoff = inner.backoff.build();
        let mut attempts: u32 = 0;
        let mut throttled: u32 = 0;
        let mut rate_wait = Duration::ZERO;
        loop {
            let result = {
                // The slot is held for the whole attempt and released before any backoff sleep,
                // so a task that waits to retry does not keep others from calling. The gate runs
                // before the pace, so nothing but sending follows the limiter: a slow database
                // write must not bunch two paced sends into one second at the server.
                let (_slot, waited) = match inner.pacer.acquire_gated(&gate).await {
                    Ok(granted) => granted,
                    Err(refused) => {
                        return FetchOutcome {
                            result: Err(refused),
                            attempts,
                            throttled,
                            rate_wait,
                        };
                    }
                };
                rate_wait += waited;
                inner
                    .stats
                    .rate_wait_ms
                    .fetch_add(waited.as_millis() as u64, Ordering::Relaxed);
                attempts += 1;
                inner.stats.requests.fetch_add(1, Ordering::Relaxed);
                inner
                    .last_sent_ms
                    .fetch_max(crate::clock::now().timestamp_millis(), Ordering::Relaxed);
                inner.client.call(req).await
            };
            let error = match result {
                Ok(fetched) => {
                    return FetchOutcome {
                        result: Ok(fetched),
                        attempts,
                        throttled,
                        rate_wait,
                    };
                }
                Err(e) => e,
            };
            if error.is_throttled() {
                throttled += 1;
                inner.stats.throttled.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(after) = error.retry_after() {
                // The server speaks for the credential, not for this call: every task holds back.
                inner.pacer.hold_for(after);
            }
            let next = if error.is_retryable() && attempts <= inner.max_retries {
                backoff.next()
            } else {
                None
            };
            let Some(delay) = next else {
                return FetchOutcome {
                    result: Err(error),
                    attempts,
                    throttled,
                    rate_wait,
                };
            };
            let delay = delay
                .min(inner.backoff_max)
                .max(error.retry_after().unwrap_or_default());
            inner.stats.retries.fetch_add(1, Ordering::Relaxed);
            on_retry(attempts);
            // Every retry is said (PRODUCT.md, the planner's rule 8): a run that retries an unreachable
            // endpoint for a minute must not look idle. The error's text is escaped where it was
            // built, so the API cannot forge a line here.
            tracing::warn!(
                action = A::NAME,
                app_id = %req.app_id(),
                window.start = %utc_text(req.start_time()),
                attempt = attempts,
                reason = %error.label(),
                request_id = error.request_id().unwrap_or(""),
                wait_ms = delay.as_millis() as u64,
                "{} call failed (attempt {attempts} of {}); retrying in {:.1} s: {error}",
                A::NAME,
                inner.max_retries + 1,
                delay.as_secs_f64()
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// When this fetcher last sent a call (wall clock), if it has.
    pub fn last_sent(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.inner.last_sent_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => chrono::DateTime::from_timestamp_millis(ms),
        }
    }

    /// Keeps the pace across runs: no call before `last` (the previous run's last send of this
    /// quota) plus this fetcher's spacing. The gateway counts arrivals in any second, whichever
    /// process sent them, so a run started right after another must not open with a burst.
    pub fn follow(&self, last: chrono::DateTime<chrono::Utc>) {
        let next = last + chrono::Duration::from_std(self.inner.pacer.period).unwrap_or_default();
        if let Ok(wait) = (next - crate::clock::now()).to_std() {
            // A clock set back by hours must not park the run: one spacing at most.
            self.inner.pacer.hold_for(wait.min(self.inner.pacer.period));
        }
    }

    pub fn stats(&self) -> FetchStats {
        let s = &self.inner.stats;
        FetchStats {
            requests: s.requests.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            throttled: s.throttled.load(Ordering::Relaxed),
            rate_wait_ms: s.rate_wait_ms.load(Ordering::Relaxed),
        }
    }
}

/// The run's quotas: one [`Fetcher`] per quota key, each with its own limiter at its action's rate
/// ([`Action::requests_per_second`]), all sharing one client, one retry policy and one [`InFlight`]
/// bound. Today a quota's key is its action (one account per run). A quota's fetcher is made the
/// first time an action asks for it, so a new action needs no entry here.
#[derive(Debug)]
pub struct Quotas {
    /// Whose client, retry policy and in-flight slots every quota shares.
    template: Fetcher,
    source: SourceSettings,
    fetchers: std::sync::Mutex<std::collections::BTreeMap<&'static str, Fetcher>>,
    /// Per action, when the previous run sent its last call: a quota made later follows it.
    previous: std::sync::Mutex<std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>>>,
}

impl Quotas {
    /// Quotas over `template`'s client, retry policy and in-flight slots, at `source`'s rates.
    pub fn new(template: Fetcher, source: &SourceSettings) -> Quotas {
        Quotas {
            template,
            source: source.clone(),
            fetchers: Default::default(),
            previous: Default::default(),
        }
    }

    /// The fetcher of `A`'s quota, made at its rate the first time.
    pub fn of<A: Action>(&self) -> Fetcher {
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|e| e.into_inner());
        fetchers
            .entry(A::NAME)
            .or_insert_with(|| {
                let f = self.template.sibling(A::requests_per_second(&self.source));
                if let Some(&at) = self
                    .previous
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(A::NAME)
                {
                    f.follow(at);
                }
                f
            })
            .clone()
    }

    /// Keeps the pace across runs: `action`'s quota sends nothing before `last` (the previous run's
    /// last call of it) plus its spacing; see [`Fetcher::follow`].
    pub fn follow(&self, action: &str, last: chrono::DateTime<chrono::Utc>) {
        self.previous
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(action.to_string(), last);
        let fetchers = self.fetchers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = fetchers.get(action) {
            f.follow(last);
        }
    }

    /// Each quota used, with its fetcher: for its last call and its counters.
    pub fn used(&self) -> Vec<(&'static str, Fetcher)> {
        let fetchers = self.fetchers.lock().unwrap_or_else(|e| e.into_inner());
        fetchers.iter().map(|(a, f)| (*a, f.clone())).collect()
    }

    /// The counters of every quota together.
    pub fn stats(&self) -> FetchStats {
        self.used()
            .iter()
            .map(|(_, f)| f.stats())
            .fold(FetchStats::default(), |a, b| FetchStats {
                requests: a.requests + b.requests,
                retries: a.retries + b.retries,
                throttled: a.throttled + b.throttled,
                rate_wait_ms: a.rate_wait_ms + b.rate_wait_ms,
            })
    }
}

/// A `governor` clock on tokio's time, so pacing sleeps with tokio and tests can pause the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(Instant);

impl Add<Nanos> for TokioInstant {
    type Output = TokioInstant;
    fn add(self, d: Nanos) -> TokioInstant {
        TokioInstant(self.0 + Duration::from(d))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }
    fn saturating_sub(&self, d: Nanos) -> Self {
        self.0.checked_sub(d.into()).map_or(*self, TokioInstant)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        TokioInstant(Instant::now())
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

/// Slots and pace: at most `max_in_flight` calls at once, and sends spaced by the rate with its margin.
pub struct Pacer {
    slots: InFlight,
    limiter: Limiter,
    /// The spacing between two sends: `PACING_MARGIN / requests_per_second`.
    period: Duration,
    /// No send before this instant: set when the server asks everyone to wait (`Retry-After`).
    hold_until: std::sync::Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(requests_per_second: f64, max_in_flight: usize) -> Pacer {
        Pacer::with_slots(requests_per_second, InFlight::new(max_in_flight))
    }

    /// A pacer with its own limiter whose slots come from a (possibly shared) bound.
    pub fn with_slots(requests_per_second: f64, slots: InFlight) -> Pacer {
        let period = Duration::from_secs_f64(PACING_MARGIN / requests_per_second)
            .max(Duration::from_micros(1));
        // Burst 1: a fresh or idle limiter must not let two calls out back to back.
        let quota = Quota::with_period(period)
            .expect("the period is positive")
            .allow_burst(std::num::NonZeroU32::MIN);
        Pacer {
            slots,
            limiter: RateLimiter::direct_with_clock(quota, TokioClock),
            period,
            hold_until: std::sync::Mutex::new(None),
        }
    }

    /// Waits for a slot and the limiter; returns the slot (hold it until the call is done) and how
    /// long the limiter (or a `Retry-After` hold) made it wait. The limiter is checked last, with the
    /// slot in hand, so nothing but sending follows it. A task that the limiter (or a hold) turns
    /// away gives its slot back while it waits: slots may be shared with another pacer at another
    /// rate, and a task waiting for its own pace must not keep the other kind from calling.
    pub async fn acquire(&self) -> (SemaphorePermit<'_>, Duration) {
        let Ok(granted) = self
            .acquire_gated(async || Ok::<(), std::convert::Infallible>(()))
            .await;
        granted
    }

    /// [`Pacer::acquire`], asking `gate` once with the first slot in hand, before the limiter: what
    /// the gate does (a database write) may take any time, and must not come between the limiter
    /// and the send. A gate that refuses gives its slot back and ends the wait with its error.
    pub async fn acquire_gated<E>(
        &self,
        gate: impl AsyncFnOnce() -> Result<(), E>,
    ) -> Result<(SemaphorePermit<'_>, Duration), E> {
        let mut gate = Some(gate);
        let mut waited = Duration::ZERO;
        loop {
            let slot = self
                .slots
                .0
                .acquire()
                .await
                .expect("the semaphore is never closed");
            if let Some(gate) = gate.take() {
                gate().await?;
            }
            let hold = *self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
            let wait = if let Some(until) = hold.filter(|&t| t > Instant::now()) {
                until - Instant::now()
            } else {
                match self.limiter.check() {
                    Ok(()) => return Ok((slot, waited)),
                    Err(not_until) => not_until
                        .wait_time_from(TokioClock.now())
                        .max(Duration::from_millis(1)),
                }
            };
            drop(slot);
            let started = Instant::now();
            tokio::time::sleep(wait).await;
            waited += started.elapsed();
        }
    }

    /// Holds every send back for `d` from now (never shortens an existing hold).
    pub fn hold_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut hold = self.hold_until.lock().unwrap_or_else(|e| e.into_inner());
        if hold.is_none_or(|h| h < until) {
            *hold = Some(until);
        }
    }
}

/// A request's `+08:00` time as UTC with a `Z`, as every time the tool shows people.
fn utc_text(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.to_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate that takes its time (a database write under load) comes before the limiter, so the
    /// sends stay a period apart: with the gate after the limiter, a slow first write would put
    /// three sends into one second.
    #[tokio::test(start_paused = true)]
    async fn a_slow_gate_never_bunches_paced_sends() {
        let pacer = Arc::new(Pacer::new(2.0, 4));
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for task in 0..3u64 {
            let (pacer, times) = (pacer.clone(), times.clone());
            tasks.push(tokio::spawn(async move {
                for call in 0..3u64 {
                    let slow = Duration::from_millis(if call == 0 { 400 - 150 * task } else { 0 });
                    let (_slot, _) = pacer
                        .acquire_gated(async || {
                            tokio::time::sleep(slow).await;
                            Ok::<(), ()>(())
                        })
                        .await
                        .unwrap();
                    times.lock().unwrap().push(Instant::now());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut times = times.lock().unwrap().clone();
        times.sort();
        assert_eq!(times.len(), 9);
        let period = Duration::from_secs_f64(PACING_MARGIN / 2.0);
        for w in times.windows(2) {
            assert!(w[1] - w[0] >= period, "{:?}", w[1] - w[0]);
        }
    }

    /// A gate that refuses gives its slot back and sends nothing.
    #[tokio::test(start_paused = true)]
    async fn a_refusing_gate_gives_its_slot_back() {
        let pacer = Pacer::new(2.0, 1);
        let refused = pacer.acquire_gated(async || Err::<(), _>("spent")).await;
        assert_eq!(refused.err(), Some("spent"));
        let granted = tokio::time::timeout(Duration::from_secs(1), pacer.acquire()).await;
        assert!(granted.is_ok(), "the slot came back");
    }

    /// Send times from several tasks on a paused clock: never two closer than the period.
    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_sends_from_concurrent_tasks() {
        let pacer = Arc::new(Pacer::new(2.0, 4));
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (pacer, times) = (pacer.clone(), times.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..4 {
                    let (_slot, _) = pacer.acquire().await;
                    times.lock().unwrap().push(Instant::now());
                    // Holding the slot a while, as a call does.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut times = times.lock().unwrap().clone();
        times.sort();
        assert_eq!(times.len(), 20);
        let period = Duration::from_secs_f64(PACING_MARGIN / 2.0);
        for w in times.windows(2) {
            assert!(w[1] - w[0] >= period, "{:?}", w[1] - w[0]);
        }
        for w in times.windows(3) {
            assert!(w[2] - w[0] > Duration::from_secs(1));
        }
        // And it keeps up: 19 gaps of one period, give or take a timer tick each.
        let span = times[19] - t0;
        assert!(span <= period * 19 + Duration::from_millis(40), "{span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_in_flight_slots_are_out() {
        let pacer = Arc::new(Pacer::new(1000.0, 2));
        let in_flight = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (pacer, in_flight, peak) = (pacer.clone(), in_flight.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let (_slot, _) = pacer.acquire().await;
                let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_every_later_send() {
        let pacer = Pacer::new(2.0, 4);
        let t0 = Instant::now();
        drop(pacer.acquire().await);
        pacer.hold_for(Duration::from_secs(3));
        pacer.hold_for(Duration::from_secs(1)); // does not shorten the hold
        drop(pacer.acquire().await);
        assert!(Instant::now() - t0 >= Duration::from_secs(3));
    }

    /// Two pacers over one small `InFlight`, many tasks each: every pacer keeps its own rate as if it
    /// were alone (a task waiting for its pace holds no slot), and the slots are never exceeded.
    #[tokio::test(start_paused = true)]
    async fn two_pacers_over_shared_slots_keep_their_own_rates() {
        let shared = InFlight::new(2);
        let pacers = [
            Arc::new(Pacer::with_slots(2.0, shared.clone())),
            Arc::new(Pacer::with_slots(2.0, shared.clone())),
        ];
        let in_flight = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for (kind, pacer) in pacers.iter().enumerate() {
            for _ in 0..5 {
                let (pacer, in_flight, peak, times) = (
                    pacer.clone(),
                    in_flight.clone(),
                    peak.clone(),
                    times.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let (_slot, _) = pacer.acquire().await;
                    times.lock().unwrap().push((kind, Instant::now() - t0));
                    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2);
        let period = Duration::from_secs_f64(PACING_MARGIN / 2.0);
        let times = times.lock().unwrap().clone();
        for kind in 0..2 {
            let mut mine: Vec<Duration> = times
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, t)| *t)
                .collect();
            mine.sort();
            assert_eq!(mine.len(), 5);
            for w in mine.windows(2) {
                assert!(w[1] - w[0] >= period, "{kind}: {mine:?}");
            }
            // Four periods, as if it were alone: the other kind took none of its pace.
            assert!(
                mine[4] <= period * 4 + Duration::from_millis(20),
                "{kind}: {mine:?}"
            );
        }
    }

    /// Long calls of two fast pacers over one `InFlight`: together never more than its bound.
    #[tokio::test(start_paused = true)]
    async fn shared_slots_bound_both_pacers_together() {
        let shared = InFlight::new(3);
        let pacers = [
            Arc::new(Pacer::with_slots(1000.0, shared.clone())),
            Arc::new(Pacer::with_slots(1000.0, shared.clone())),
        ];
        let in_flight = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for pacer in &pacers {
            for _ in 0..4 {
                let (pacer, in_flight, peak) = (pacer.clone(), in_flight.clone(), peak.clone());
                tasks.push(tokio::spawn(async move {
                    let (_slot, _) = pacer.acquire().await;
                    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}
