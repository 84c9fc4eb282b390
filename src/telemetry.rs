//! Logging: one `tracing` subscriber, built here and installed once by `main`.
//!
//! Logs go to stderr so that `plan --json` and `status --json` keep stdout clean for scripts.
//! Field names carry their units (`duration_ms`, `rows`); secrets are never logged.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for schedulers and log collectors.
    Json,
}

/// The default filter for a `-v`/`-q` count: this tool's lines at info, then debug, or warn/error.
/// Libraries' lines (sqlx's slow statements, pool timings) reach stderr only from `-vv` on.
pub fn default_level(verbose: u8, quiet: u8) -> &'static str {
    match (verbose, quiet) {
        (0, 0) => "rtc_quality_sync=info",
        (1, 0) => "rtc_quality_sync=debug",
        (_, 0) => "rtc_quality_sync=trace,debug",
        (_, 1) => "rtc_quality_sync=warn",
        _ => "rtc_quality_sync=error",
    }
}

/// Installs the global subscriber. `RUST_LOG` wins over `-v`/`-q` when set.
pub fn init(format: LogFormat, verbose: u8, quiet: u8) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_level(verbose, quiet)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // A second install (tests in one process) is harmless: the first one stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log lines written under the default filter for `-v` × `verbose`.
    fn written(verbose: u8, emit: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(default_level(verbose, 0)))
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    fn emit() {
        tracing::info!(target: "rtc_quality_sync::pipeline", "ours");
        tracing::warn!(target: "sqlx::query", "slow statement: SELECT ...");
        tracing::warn!(target: "sqlx::pool::acquire", "aquired_after_secs=2.1");
    }

    #[test]
    fn only_this_tools_lines_reach_stderr_unless_vv() {
        for verbose in [0, 1] {
            let out = written(verbose, emit);
            assert!(out.contains("ours"), "{out}");
            assert!(
                !out.contains("slow statement") && !out.contains("aquired"),
                "-v x {verbose}: {out}"
            );
        }
        let out = written(2, emit);
        assert!(
            out.contains("ours") && out.contains("slow statement"),
            "{out}"
        );
    }
}
