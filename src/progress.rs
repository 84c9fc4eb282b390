//! Progress of a long run: a live bar on a terminal, periodic log lines otherwise.
//!
//! Schedulers capture stderr into files, where a redrawn bar is noise; there a line every
//! [`LOG_EVERY`] says the same in a form that greps well. Windows are counted as they finish
//! ([`WindowDone`]), retries as they are decided ([`Progress::retried`]), so a window that retries
//! for a minute shows on the bar while it does.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

/// What one finished window (committed or failed) tells the progress report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowDone {
    /// Points committed (0 for a failed window).
    pub points: u64,
    /// Requests its call sent, retries included (the retries themselves come one by one, through
    /// [`Progress::retried`]).
    pub requests: u64,
    /// Of those, the ones the API throttled.
    pub throttled: u64,
}

/// Reports windows and points as they are committed, from the events the pipeline sends.
pub struct Progress {
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

struct State {
    started: Instant,
    last_log: Instant,
    /// `start` was called: a second start adds to the total.
    running: bool,
    total: u64,
    done: u64,
    points: u64,
    requests: u64,
    retries: u64,
    throttled: u64,
}

impl State {
    /// Calls per second so far: n calls span n - 1 intervals, the first one goes out at once.
    fn rate(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        self.requests.saturating_sub(1) as f64 / secs
    }

    /// The bar's message.
    fn message(&self) -> String {
        format!(
            "{} points, {:.2} calls/s, {} retries, {} throttled",
            self.points,
            self.rate(),
            self.retries,
            self.throttled
        )
    }
}

impl Progress {
    /// A bar when stderr is a terminal and `quiet` is off; log lines otherwise.
    pub fn auto(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} windows, {msg} (eta {eta})",
                )
                .expect("valid template"),
            );
            bar
        });
        Self::with_bar(bar)
    }

    /// No bar and no periodic lines (tests, `--quiet`).
    pub fn hidden() -> Self {
        Self::with_bar(None)
    }

    fn with_bar(bar: Option<ProgressBar>) -> Self {
        let now = Instant::now();
        Progress {
            bar,
            state: Mutex::new(State {
                started: now,
                last_log: now,
                running: false,
                total: 0,
                done: 0,
                points: 0,
                requests: 0,
                retries: 0,
                throttled: 0,
            }),
        }
    }

    /// Starts the bar with `total` windows; a later start (another account's part of the same
    /// run) adds its windows to the same bar.
    pub fn start(&self, total: u64) {
        let mut s = self.state.lock().unwrap();
        if s.running {
            drop(s);
            return self.add(total);
        }
        s.running = true;
        s.total = total;
        s.started = Instant::now();
        s.last_log = s.started;
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(0);
            bar.enable_steady_tick(Duration::from_millis(200));
        }
    }

    /// More windows to do than `start` was told (a `[[rooms]]` block's, planned once its calls are
    /// listed).
    pub fn add(&self, more: u64) {
        let mut s = self.state.lock().unwrap();
        s.total += more;
        if let Some(bar) = &self.bar {
            bar.set_length(s.total);
        }
    }

    /// One call failed and is tried again: counted at once, so the bar shows it while the window
    /// waits (the fetcher logs the retry itself at `WARN`).
    pub fn retried(&self) {
        let mut s = self.state.lock().unwrap();
        s.retries += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(s.message());
        }
    }

    /// One window finished (committed or failed).
    pub fn window_done(&self, w: WindowDone) {
        let mut s = self.state.lock().unwrap();
        s.done += 1;
        s.points += w.points;
        s.requests += w.requests;
        s.throttled += w.throttled;
        if let Some(bar) = &self.bar {
            bar.set_position(s.done);
            bar.set_message(s.message());
        } else if s.last_log.elapsed() >= LOG_EVERY || s.done == s.total {
            s.last_log = Instant::now();
            let rate = s.rate();
            tracing::info!(
                windows.done = s.done,
                windows.total = s.total,
                points = s.points,
                calls_per_s = (rate * 100.0).round() / 100.0,
                retries = s.retries,
                throttled = s.throttled,
                "progress"
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19 item 5: retries show as they happen, not when their window ends, and each is
    /// counted once (the window's requests no longer add them again).
    #[test]
    fn item_19_05_retries_are_counted_as_they_happen() {
        let progress = Progress::with_bar(Some(ProgressBar::hidden()));
        let bar = progress.bar.clone().unwrap();
        progress.start(2);
        progress.retried();
        progress.retried();
        assert!(bar.message().contains("2 retries"), "{}", bar.message());
        assert_eq!(bar.position(), 0, "no window is done yet");
        progress.window_done(WindowDone {
            points: 5,
            requests: 3,
            throttled: 1,
        });
        progress.window_done(WindowDone {
            points: 7,
            requests: 1,
            throttled: 0,
        });
        let message = bar.message();
        assert!(
            message.starts_with("12 points, ") && message.ends_with(", 2 retries, 1 throttled"),
            "{message}"
        );
        assert_eq!(bar.position(), 2);
    }
}
