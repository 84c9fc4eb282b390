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

/// The default filter for a `-v`/`-q` count: info, then debug/trace, or warn/error.
pub fn default_level(verbose: u8, quiet: u8) -> &'static str {
    match (verbose, quiet) {
        (0, 0) => "info",
        (1, 0) => "rtc_quality_sync=debug,info",
        (_, 0) => "rtc_quality_sync=trace,debug",
        (_, 1) => "warn",
        _ => "error",
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
