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
