//! Signals: the first SIGINT or SIGTERM asks the run to stop sending calls and commit what has
//! arrived; a second one exits at once.
//!
//! A killed run loses nothing committed, so the second signal needs no cleanup: every window is
//! either committed whole or not at all.

use tokio_util::sync::CancellationToken;

use crate::error::Outcome;

/// Cancels the token on the first SIGINT/SIGTERM; a second one exits at once.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        signal().await;
        tracing::warn!(
            "interrupted: no new calls are sent; committing what has arrived (press Ctrl-C again to stop at once)"
        );
        t.cancel();
        signal().await;
        eprintln!("stopped at once; every committed window is kept");
        std::process::exit(i32::from(Outcome::Interrupted.exit_code()));
    });
    token
}

/// Completes at the next SIGINT or SIGTERM (SIGINT only where there is no SIGTERM).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// One allowance for several steps in a row after a signal (the end of a run: its coverage, its
/// pace, its row in the runs table, its summary): each step runs to its end while no signal came;
/// once one came, the steps together are given up `total` after the first of them saw it. With
/// a grace per step, the steps' graces added up past PRODUCT.md's 5 s.
pub struct Allowance {
    token: CancellationToken,
    total: std::time::Duration,
    since: std::sync::OnceLock<tokio::time::Instant>,
}

impl Allowance {
    pub fn new(token: &CancellationToken, total: std::time::Duration) -> Allowance {
        Allowance {
            token: token.clone(),
            total,
            since: std::sync::OnceLock::new(),
        }
    }

    /// Runs `work` to its end, unless the signal came and the allowance is spent first (`None`).
    pub async fn within<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            done = work => Some(done),
            () = async {
                self.token.cancelled().await;
                let since = *self.since.get_or_init(tokio::time::Instant::now);
                tokio::time::sleep_until(since + self.total).await;
            } => None,
        }
    }
}

/// Runs `work` to its end, unless `token` is cancelled and `grace` passes first (`None` then).
///
/// PRODUCT.md promises an exit within 5 s of a signal even when the database does not answer, and
/// a wait on it (a pooled connection, a commit, the run's end) can last much longer: every such wait
/// goes through here, so it keeps going while the database answers and is given up `grace` after
/// the signal.
pub async fn within_grace<F: std::future::Future>(
    token: &CancellationToken,
    grace: std::time::Duration,
    work: F,
) -> Option<F::Output> {
    tokio::select! {
        biased;
        done = work => Some(done),
        () = async {
            token.cancelled().await;
            tokio::time::sleep(grace).await;
        } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Steps that never end, one after another, after a signal: together they are given up once
    /// the allowance is spent, not one grace each; before the signal, a step runs to its end.
    #[tokio::test(start_paused = true)]
    async fn steps_after_a_signal_share_one_allowance() {
        let token = CancellationToken::new();
        let ending = Allowance::new(&token, Duration::from_millis(1500));
        let slow = tokio::time::sleep(Duration::from_secs(10));
        let started = tokio::time::Instant::now();
        assert_eq!(ending.within(slow).await, Some(()), "no signal: it ends");
        assert!(started.elapsed() >= Duration::from_secs(10));

        token.cancel();
        let signalled = tokio::time::Instant::now();
        for _ in 0..4 {
            let never = std::future::pending::<()>();
            assert_eq!(ending.within(never).await, None);
        }
        assert_eq!(signalled.elapsed(), Duration::from_millis(1500));
        // What answers at once still gets its answer after the allowance is spent.
        assert_eq!(ending.within(async { 7 }).await, Some(7));
    }
}
