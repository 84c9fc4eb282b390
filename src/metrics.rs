//! `--metrics-file PATH`: the Prometheus text format, for node_exporter's textfile collector.
//!
//! Written to a temporary file beside `PATH` and renamed over it, so a scrape never reads half a
//! file. Metric names are PRODUCT.md's; every value is a gauge.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::domain::RunStatus;
use crate::health::StreamHealth;
use crate::store::RunRow;

/// What the metrics are made of: the newest run, the newest successful one, and each configured
/// stream's health with its stored points.
pub struct Snapshot<'a> {
    pub last_run: Option<&'a RunRow>,
    pub last_success: Option<&'a RunRow>,
    pub streams: Vec<(&'a StreamHealth, i64)>,
}

/// The process exit code a run ended with; `None` while it runs or after it was killed.
fn exit_code(status: RunStatus) -> Option<u8> {
    match status {
        RunStatus::Ok => Some(0),
        RunStatus::Failed => Some(1),
        RunStatus::Partial => Some(2),
        RunStatus::Interrupted => Some(130),
        RunStatus::Running | RunStatus::Abandoned => None,
    }
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// Label values escape `\`, `"` and newlines.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(Option<String>, f64)]| {
        let _ = writeln!(out, "# HELP rtc_quality_sync_{name} {help}");
        let _ = writeln!(out, "# TYPE rtc_quality_sync_{name} gauge");
        for (stream, v) in samples {
            let labels = stream
                .as_ref()
                .map(|s| format!("{{stream=\"{}\"}}", label(s)))
                .unwrap_or_default();
            // Prometheus spells the special values NaN, +Inf, -Inf.
            let v = if v.is_nan() {
                "NaN".into()
            } else {
                v.to_string()
            };
            let _ = writeln!(out, "rtc_quality_sync_{name}{labels} {v}");
        }
    };
    let run = s.last_run;
    let one = |v: f64| [(None, v)];
    gauge(
        "last_run_timestamp_seconds",
        "When the newest run started (Unix time; 0 before any run).",
        &one(run.map_or(0.0, |r| seconds(r.started_at))),
    );
    gauge(
        "last_run_exit_code",
        "The exit code the newest run ended with (NaN while it runs or after it was killed).",
        &one(run.map_or(f64::NAN, |r| {
            exit_code(r.status).map_or(f64::NAN, f64::from)
        })),
    );
    gauge(
        "last_success_timestamp_seconds",
        "When the newest run that ended ok started (Unix time; 0 before any).",
        &one(s.last_success.map_or(0.0, |r| seconds(r.started_at))),
    );
    gauge(
        "last_run_duration_seconds",
        "How long the newest run took (NaN while it runs or after it was killed).",
        &one(run
            .and_then(|r| r.finished_at.map(|f| (r, f)))
            .map_or(f64::NAN, |(r, f)| {
                (f - r.started_at).num_milliseconds() as f64 / 1000.0
            })),
    );
    gauge(
        "last_run_api_requests",
        "API calls the newest run sent, retries included.",
        &one(run.map_or(0.0, |r| r.requests as f64)),
    );
    gauge(
        "last_run_throttled_requests",
        "API calls of the newest run that the API refused for the rate limit.",
        &one(run.map_or(0.0, |r| r.throttled as f64)),
    );
    let per_stream = |f: &dyn Fn(&StreamHealth, i64) -> f64| -> Vec<(Option<String>, f64)> {
        s.streams
            .iter()
            .map(|(h, points)| (Some(h.stream.clone()), f(h, *points)))
            .collect()
    };
    gauge(
        "stream_complete_through_timestamp_seconds",
        "The end of the covered range that runs unbroken from the horizon start (Unix time; 0 when the horizon start is not covered).",
        &per_stream(&|h, _| h.complete_through.map_or(0.0, seconds)),
    );
    gauge(
        "stream_failed_windows",
        "Failed windows that no later successful window covers; the next sync retries them.",
        &per_stream(&|h, _| h.failed.len() as f64),
    );
    gauge(
        "stream_missing_buckets",
        "Buckets of the horizon that no fetched window covers.",
        &per_stream(&|h, _| h.missing_buckets as f64),
    );
    gauge(
        "stream_points",
        "Points stored for the stream.",
        &per_stream(&|_, points| points as f64),
    );
    out
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, then a rename.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}
