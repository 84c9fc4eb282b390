//! `--metrics-file PATH`: the Prometheus text format, for node_exporter's textfile collector.
//!
//! Rendered by the `prometheus` crate (a `Registry` of gauges, the `TextEncoder`), written to a
//! temporary file beside `PATH` and renamed over it, so a scrape never reads half a file; only a
//! regular file is ever replaced. Metric names are PRODUCT.md's; every value is a gauge.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use prometheus::{Gauge, GaugeVec, Opts, Registry, TextEncoder};

use crate::domain::RunStatus;
use crate::store::RunRow;

/// What the metrics are made of: the newest run, when the newest successful one started, and each
/// configured stream's numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub last_run: Option<LastRun>,
    pub last_success: Option<DateTime<Utc>>,
    pub streams: Vec<StreamNumbers>,
    /// One per configured `[[rooms]]` block.
    pub rooms: Vec<RoomsNumbers>,
    /// One per (account, action) with calls in the last 24 hours or a daily budget.
    pub accounts: Vec<AccountNumbers>,
}

/// An account's action, labelled `account` and `action`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountNumbers {
    pub account: String,
    pub action: String,
    pub calls_24h: u64,
    /// `None` without a daily budget: then the gauge is absent.
    pub budget_remaining: Option<u64>,
}

/// A `[[rooms]]` block's numbers, labelled `rooms`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomsNumbers {
    pub rooms: String,
    pub known: u64,
    pub failed_windows: u64,
    pub deferred_windows: u64,
    pub listed_through: Option<DateTime<Utc>>,
}

/// The newest run as the metrics show it: from the runs table, or (for `sync --metrics-file`)
/// from the run of this very process, also when it could not start or could not record its end.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub started_at: DateTime<Utc>,
    /// `None` while it runs, or after it was killed.
    pub exit_code: Option<u8>,
    pub duration_s: Option<f64>,
    pub requests: u64,
    pub throttled: u64,
}

impl From<&RunRow> for LastRun {
    fn from(r: &RunRow) -> Self {
        LastRun {
            started_at: r.started_at,
            exit_code: exit_code(r.status),
            duration_s: r
                .finished_at
                .map(|f| (f - r.started_at).num_milliseconds() as f64 / 1000.0),
            requests: r.requests,
            throttled: r.throttled,
        }
    }
}

/// One configured stream's numbers: those its last run stored (`sync_coverage`), the same that
/// `status` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamNumbers {
    pub stream: String,
    pub complete_through: Option<DateTime<Utc>>,
    pub failed_windows: i64,
    pub missing_buckets: i64,
    pub points: i64,
}

/// `rtc_quality_sync_last_success_timestamp_seconds` of a metrics file written before, for a run
/// that cannot read the database: what it cannot know is carried over, not reset.
pub fn previous_last_success(path: &Path) -> Option<DateTime<Utc>> {
    let text = std::fs::read_to_string(path).ok()?;
    let name = full_name("last_success_timestamp_seconds");
    let value: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&name)?.strip_prefix(' '))?
        .trim()
        .parse()
        .ok()?;
    (value > 0.0)
        .then(|| DateTime::from_timestamp_millis((value * 1000.0).round() as i64))
        .flatten()
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

/// Prometheus' name for the metric `name` of this tool.
fn full_name(name: &str) -> String {
    format!("rtc_quality_sync_{name}")
}

/// The snapshot in the Prometheus text format 0.0.4, written by the `prometheus` crate (its
/// `TextEncoder` escapes label values and spells NaN as Prometheus reads it). Families come sorted
/// by name and streams by label, as the crate gathers them; a family without samples (no configured
/// stream) is left out, as the crate does.
pub fn render(s: &Snapshot) -> String {
    let registry = Registry::new();
    // Every name and help text is a constant of this file and every gauge is registered once, so
    // registering cannot fail (the tests render every metric); a failure would be a bug here.
    let gauge = |name: &str, help: &str, value: f64| {
        let g = Gauge::with_opts(Opts::new(full_name(name), help)).expect("a valid metric name");
        g.set(value);
        registry
            .register(Box::new(g))
            .expect("each metric is registered once");
    };
    let run = s.last_run.as_ref();
    gauge(
        "last_run_timestamp_seconds",
        "When the newest run started (Unix time; 0 before any run).",
        run.map_or(0.0, |r| seconds(r.started_at)),
    );
    gauge(
        "last_run_exit_code",
        "The exit code the newest run ended with (NaN while it runs or after it was killed).",
        run.and_then(|r| r.exit_code).map_or(f64::NAN, f64::from),
    );
    gauge(
        "last_success_timestamp_seconds",
        "When the newest run that ended ok started (Unix time; 0 before any).",
        s.last_success.map_or(0.0, seconds),
    );
    gauge(
        "last_run_duration_seconds",
        "How long the newest run took (NaN while it runs or after it was killed).",
        run.and_then(|r| r.duration_s).unwrap_or(f64::NAN),
    );
    gauge(
        "last_run_api_requests",
        "API calls the newest run sent, retries included.",
        run.map_or(0.0, |r| r.requests as f64),
    );
    gauge(
        "last_run_throttled_requests",
        "API calls of the newest run that the API refused for the rate limit.",
        run.map_or(0.0, |r| r.throttled as f64),
    );
    let per_stream = |name: &str, help: &str, f: &dyn Fn(&StreamNumbers) -> f64| {
        let gauges = labelled(name, help, "stream", &s.streams, |n| &n.stream, f);
        registry
            .register(Box::new(gauges))
            .expect("each metric is registered once");
    };
    per_stream(
        "stream_complete_through_timestamp_seconds",
        "The end of the covered range that runs unbroken from the horizon start (Unix time; 0 when the horizon start is not covered).",
        &|n| n.complete_through.map_or(0.0, seconds),
    );
    per_stream(
        "stream_failed_windows",
        "Failed windows that no later successful window covers; the next sync retries them.",
        &|n| n.failed_windows as f64,
    );
    per_stream(
        "stream_missing_buckets",
        "Buckets of the horizon that no fetched window covers.",
        &|n| n.missing_buckets as f64,
    );
    per_stream("stream_points", "Points stored for the stream.", &|n| {
        n.points as f64
    });
    let per_block = |name: &str, help: &str, f: &dyn Fn(&RoomsNumbers) -> f64| {
        let gauges = labelled(name, help, "rooms", &s.rooms, |n| &n.rooms, f);
        registry
            .register(Box::new(gauges))
            .expect("each metric is registered once");
    };
    per_block(
        "rooms_known",
        "Rooms of the block's app that rtc_rooms knows.",
        &|n| n.known as f64,
    );
    per_block(
        "rooms_failed_windows",
        "The block's failed windows (listing ranges and room-stream windows) that nothing later covers; the next sync retries them.",
        &|n| n.failed_windows as f64,
    );
    per_block(
        "rooms_deferred_windows",
        "The block's windows a cap left for the next run.",
        &|n| n.deferred_windows as f64,
    );
    per_block(
        "rooms_listed_through_timestamp_seconds",
        "The end of the listed range that runs unbroken from the first instant discovery lists, every day in it done (Unix time; 0 when none).",
        &|n| n.listed_through.map_or(0.0, seconds),
    );
    let per_action =
        |name: &str, help: &str, items: &[&AccountNumbers], f: &dyn Fn(&AccountNumbers) -> f64| {
            let vec = GaugeVec::new(Opts::new(full_name(name), help), &["account", "action"])
                .expect("a valid metric name and labels");
            for n in items {
                vec.with_label_values(&[n.account.as_str(), n.action.as_str()])
                    .set(f(n));
            }
            registry
                .register(Box::new(vec))
                .expect("each metric is registered once");
        };
    let all: Vec<&AccountNumbers> = s.accounts.iter().collect();
    per_action(
        "account_calls_24h",
        "Calls of the account's action sent in the last 24 hours, by any run (recorded before each was sent).",
        &all,
        &|n| n.calls_24h as f64,
    );
    let budgeted: Vec<&AccountNumbers> = s
        .accounts
        .iter()
        .filter(|n| n.budget_remaining.is_some())
        .collect();
    per_action(
        "account_budget_remaining",
        "Calls the account's daily budget for the action still allows now (absent without per_day).",
        &budgeted,
        &|n| n.budget_remaining.unwrap_or_default() as f64,
    );
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("every gathered family has samples and a name")
}

/// One gauge per item, labelled `label` with the item's `key`.
fn labelled<T>(
    name: &str,
    help: &str,
    label: &str,
    items: &[T],
    key: impl Fn(&T) -> &String,
    value: &dyn Fn(&T) -> f64,
) -> GaugeVec {
    let vec = GaugeVec::new(Opts::new(full_name(name), help), &[label])
        .expect("a valid metric name and label");
    for item in items {
        vec.with_label_values(&[key(item).as_str()])
            .set(value(item));
    }
    vec
}

/// Why the metrics file was not written; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "the metrics file {} exists and is {kind}, not a regular file, so it was left as it is; give --metrics-file a path of its own", path.display()
    )]
    NotARegularFile { path: PathBuf, kind: &'static str },
    #[error("cannot write the metrics file {}: {error}; check that its directory exists and is writable by this user", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What `path` is when it exists and is not a regular file; `None` when it is one or is absent.
fn not_a_regular_file(path: &Path) -> std::io::Result<Option<&'static str>> {
    let kind = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(m) => m.file_type(),
    };
    if kind.is_file() {
        return Ok(None);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_char_device() || kind.is_block_device() {
            return Ok(Some("a device node"));
        }
        if kind.is_fifo() {
            return Ok(Some("a FIFO"));
        }
        if kind.is_socket() {
            return Ok(Some("a socket"));
        }
    }
    Ok(Some(if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "something else"
    }))
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, then a rename.
///
/// Only a regular file (or nothing) at `path` is ever replaced: a rename replaces whatever has the
/// name, so `--metrics-file /dev/null` run as root would swap the device node for a text file, and
/// a symbolic link would silently stop pointing where its owner meant. The check comes before the
/// temporary file, so nothing is created beside a path that is refused. (A path changed between
/// the check and the rename, an instant later, is not guarded against.)
pub fn write(path: &Path, text: &str) -> Result<(), WriteError> {
    let io = |error| WriteError::Io {
        path: path.to_path_buf(),
        error,
    };
    if let Some(kind) = not_a_regular_file(path).map_err(io)? {
        return Err(WriteError::NotARegularFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    // A leftover of a killed run with the same pid goes; `create_new` then never follows a link
    // someone put at the temporary name.
    let _ = std::fs::remove_file(&tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    fn numbers(stream: &str, complete: Option<&str>, failed: i64, missing: i64) -> StreamNumbers {
        StreamNumbers {
            stream: stream.into(),
            complete_through: complete.map(t),
            failed_windows: failed,
            missing_buckets: missing,
            points: 0,
        }
    }

    fn run(id: i64, started: DateTime<Utc>, status: RunStatus, secs: Option<f64>) -> RunRow {
        RunRow {
            id,
            mode: "sync".into(),
            started_at: started,
            finished_at: secs.map(|s| started + Duration::milliseconds((s * 1000.0) as i64)),
            status,
            requests: 17,
            retries: 2,
            throttled: 1,
            points_inserted: 0,
            points_updated: 0,
            points_unchanged: 0,
            windows_ok: 0,
            windows_failed: 0,
            points_deleted: 0,
            account: None,
        }
    }

    /// Issue 18 item 17d (the file): only a regular file or nothing is replaced; anything else is
    /// an error naming it, left as it was, with no temporary file beside it.
    #[test]
    fn item_18_17d_only_a_regular_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rtc.prom");
        write(&file, "a 1\n").unwrap();
        write(&file, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a 2\n");
        let target = dir.path().join("target.txt");
        std::fs::write(&target, "mine").unwrap();
        let link = dir.path().join("link.prom");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let sub = dir.path().join("sub.prom");
        std::fs::create_dir(&sub).unwrap();
        let fifo = dir.path().join("fifo.prom");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        for (path, kind) in [
            (&link, "a symbolic link"),
            (&sub, "a directory"),
            (&fifo, "a FIFO"),
            (&PathBuf::from("/dev/null"), "a device node"),
        ] {
            let e = write(path, "a 3\n").unwrap_err().to_string();
            assert!(
                e.contains(&path.display().to_string()) && e.contains(kind),
                "{e}"
            );
        }
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "mine");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "fifo.prom",
                "link.prom",
                "rtc.prom",
                "sub.prom",
                "target.txt"
            ]
        );
        let e = write(&dir.path().join("no-dir").join("x.prom"), "").unwrap_err();
        assert!(e.to_string().contains("no-dir"), "{e}");
    }

    /// What the hand-written renderer gave for three snapshots (a partial run, a run still going
    /// or killed, no run and no stream): the `prometheus` crate must give the same names, help
    /// texts, label escaping and values. It orders families by name and leaves out a family
    /// without samples, so the lines are compared as sets, without those families' headers.
    const BEFORE: [&str; 3] = [
        r#"
# HELP rtc_quality_sync_last_run_timestamp_seconds When the newest run started (Unix time; 0 before any run).
# TYPE rtc_quality_sync_last_run_timestamp_seconds gauge
rtc_quality_sync_last_run_timestamp_seconds 1795140000.25
# HELP rtc_quality_sync_last_run_exit_code The exit code the newest run ended with (NaN while it runs or after it was killed).
# TYPE rtc_quality_sync_last_run_exit_code gauge
rtc_quality_sync_last_run_exit_code 2
# HELP rtc_quality_sync_last_success_timestamp_seconds When the newest run that ended ok started (Unix time; 0 before any).
# TYPE rtc_quality_sync_last_success_timestamp_seconds gauge
rtc_quality_sync_last_success_timestamp_seconds 1795053600
# HELP rtc_quality_sync_last_run_duration_seconds How long the newest run took (NaN while it runs or after it was killed).
# TYPE rtc_quality_sync_last_run_duration_seconds gauge
rtc_quality_sync_last_run_duration_seconds 83.5
# HELP rtc_quality_sync_last_run_api_requests API calls the newest run sent, retries included.
# TYPE rtc_quality_sync_last_run_api_requests gauge
rtc_quality_sync_last_run_api_requests 17
# HELP rtc_quality_sync_last_run_throttled_requests API calls of the newest run that the API refused for the rate limit.
# TYPE rtc_quality_sync_last_run_throttled_requests gauge
rtc_quality_sync_last_run_throttled_requests 1
# HELP rtc_quality_sync_stream_complete_through_timestamp_seconds The end of the covered range that runs unbroken from the horizon start (Unix time; 0 when the horizon start is not covered).
# TYPE rtc_quality_sync_stream_complete_through_timestamp_seconds gauge
rtc_quality_sync_stream_complete_through_timestamp_seconds{stream="app-a/1d"} 1795104000
rtc_quality_sync_stream_complete_through_timestamp_seconds{stream="we\"ird\\name\nx/5min"} 0
# HELP rtc_quality_sync_stream_failed_windows Failed windows that no later successful window covers; the next sync retries them.
# TYPE rtc_quality_sync_stream_failed_windows gauge
rtc_quality_sync_stream_failed_windows{stream="app-a/1d"} 0
rtc_quality_sync_stream_failed_windows{stream="we\"ird\\name\nx/5min"} 2
# HELP rtc_quality_sync_stream_missing_buckets Buckets of the horizon that no fetched window covers.
# TYPE rtc_quality_sync_stream_missing_buckets gauge
rtc_quality_sync_stream_missing_buckets{stream="app-a/1d"} 0
rtc_quality_sync_stream_missing_buckets{stream="we\"ird\\name\nx/5min"} 3
# HELP rtc_quality_sync_stream_points Points stored for the stream.
# TYPE rtc_quality_sync_stream_points gauge
rtc_quality_sync_stream_points{stream="app-a/1d"} 110
rtc_quality_sync_stream_points{stream="we\"ird\\name\nx/5min"} 0
"#,
        r#"
# HELP rtc_quality_sync_last_run_timestamp_seconds When the newest run started (Unix time; 0 before any run).
# TYPE rtc_quality_sync_last_run_timestamp_seconds gauge
rtc_quality_sync_last_run_timestamp_seconds 1795226400
# HELP rtc_quality_sync_last_run_exit_code The exit code the newest run ended with (NaN while it runs or after it was killed).
# TYPE rtc_quality_sync_last_run_exit_code gauge
rtc_quality_sync_last_run_exit_code NaN
# HELP rtc_quality_sync_last_success_timestamp_seconds When the newest run that ended ok started (Unix time; 0 before any).
# TYPE rtc_quality_sync_last_success_timestamp_seconds gauge
rtc_quality_sync_last_success_timestamp_seconds 0
# HELP rtc_quality_sync_last_run_duration_seconds How long the newest run took (NaN while it runs or after it was killed).
# TYPE rtc_quality_sync_last_run_duration_seconds gauge
rtc_quality_sync_last_run_duration_seconds NaN
# HELP rtc_quality_sync_last_run_api_requests API calls the newest run sent, retries included.
# TYPE rtc_quality_sync_last_run_api_requests gauge
rtc_quality_sync_last_run_api_requests 17
# HELP rtc_quality_sync_last_run_throttled_requests API calls of the newest run that the API refused for the rate limit.
# TYPE rtc_quality_sync_last_run_throttled_requests gauge
rtc_quality_sync_last_run_throttled_requests 1
# HELP rtc_quality_sync_stream_complete_through_timestamp_seconds The end of the covered range that runs unbroken from the horizon start (Unix time; 0 when the horizon start is not covered).
# TYPE rtc_quality_sync_stream_complete_through_timestamp_seconds gauge
rtc_quality_sync_stream_complete_through_timestamp_seconds{stream="app-a/1d"} 1795104000
# HELP rtc_quality_sync_stream_failed_windows Failed windows that no later successful window covers; the next sync retries them.
# TYPE rtc_quality_sync_stream_failed_windows gauge
rtc_quality_sync_stream_failed_windows{stream="app-a/1d"} 0
# HELP rtc_quality_sync_stream_missing_buckets Buckets of the horizon that no fetched window covers.
# TYPE rtc_quality_sync_stream_missing_buckets gauge
rtc_quality_sync_stream_missing_buckets{stream="app-a/1d"} 0
# HELP rtc_quality_sync_stream_points Points stored for the stream.
# TYPE rtc_quality_sync_stream_points gauge
rtc_quality_sync_stream_points{stream="app-a/1d"} 7
"#,
        r#"
# HELP rtc_quality_sync_last_run_timestamp_seconds When the newest run started (Unix time; 0 before any run).
# TYPE rtc_quality_sync_last_run_timestamp_seconds gauge
rtc_quality_sync_last_run_timestamp_seconds 0
# HELP rtc_quality_sync_last_run_exit_code The exit code the newest run ended with (NaN while it runs or after it was killed).
# TYPE rtc_quality_sync_last_run_exit_code gauge
rtc_quality_sync_last_run_exit_code NaN
# HELP rtc_quality_sync_last_success_timestamp_seconds When the newest run that ended ok started (Unix time; 0 before any).
# TYPE rtc_quality_sync_last_success_timestamp_seconds gauge
rtc_quality_sync_last_success_timestamp_seconds 0
# HELP rtc_quality_sync_last_run_duration_seconds How long the newest run took (NaN while it runs or after it was killed).
# TYPE rtc_quality_sync_last_run_duration_seconds gauge
rtc_quality_sync_last_run_duration_seconds NaN
# HELP rtc_quality_sync_last_run_api_requests API calls the newest run sent, retries included.
# TYPE rtc_quality_sync_last_run_api_requests gauge
rtc_quality_sync_last_run_api_requests 0
# HELP rtc_quality_sync_last_run_throttled_requests API calls of the newest run that the API refused for the rate limit.
# TYPE rtc_quality_sync_last_run_throttled_requests gauge
rtc_quality_sync_last_run_throttled_requests 0
# HELP rtc_quality_sync_stream_complete_through_timestamp_seconds The end of the covered range that runs unbroken from the horizon start (Unix time; 0 when the horizon start is not covered).
# TYPE rtc_quality_sync_stream_complete_through_timestamp_seconds gauge
# HELP rtc_quality_sync_stream_failed_windows Failed windows that no later successful window covers; the next sync retries them.
# TYPE rtc_quality_sync_stream_failed_windows gauge
# HELP rtc_quality_sync_stream_missing_buckets Buckets of the horizon that no fetched window covers.
# TYPE rtc_quality_sync_stream_missing_buckets gauge
# HELP rtc_quality_sync_stream_points Points stored for the stream.
# TYPE rtc_quality_sync_stream_points gauge
"#,
    ];

    /// Issue 20: a `[[rooms]]` block is one set of gauges labelled `rooms`, never one per room;
    /// with no block, none of them is written.
    #[test]
    fn a_rooms_block_has_its_gauges_labelled_rooms() {
        let snapshot = Snapshot {
            last_run: None,
            last_success: None,
            streams: Vec::new(),
            rooms: vec![RoomsNumbers {
                rooms: "lobby-rooms".into(),
                known: 31,
                failed_windows: 2,
                deferred_windows: 0,
                listed_through: Some(Utc.with_ymd_and_hms(2026, 11, 20, 16, 0, 0).unwrap()),
            }],
            accounts: Vec::new(),
        };
        let text = render(&snapshot);
        for line in [
            "rtc_quality_sync_rooms_known{rooms=\"lobby-rooms\"} 31",
            "rtc_quality_sync_rooms_failed_windows{rooms=\"lobby-rooms\"} 2",
            "rtc_quality_sync_rooms_deferred_windows{rooms=\"lobby-rooms\"} 0",
            "rtc_quality_sync_rooms_listed_through_timestamp_seconds{rooms=\"lobby-rooms\"} 1795190400",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        let none = render(&Snapshot {
            rooms: Vec::new(),
            accounts: Vec::new(),
            ..snapshot
        });
        assert!(!none.contains("rooms"), "{none}");
    }

    /// Issue 18 item 17d (rendering): the `prometheus` crate writes what the hand-written code did.
    #[test]
    fn item_18_17d_the_prometheus_crate_renders_the_same_names_help_and_values() {
        let last = run(
            2,
            Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap() + Duration::milliseconds(250),
            RunStatus::Partial,
            Some(83.5),
        );
        let ok = run(1, t("2026-11-19T02:00:00Z"), RunStatus::Ok, Some(12.0));
        let (a, b) = (
            numbers("app-a/1d", Some("2026-11-19T16:00:00Z"), 0, 0),
            numbers("we\"ird\\name\nx/5min", None, 2, 3),
        );
        let full = Snapshot {
            last_run: Some((&last).into()),
            last_success: Some(ok.started_at),
            streams: vec![
                b,
                StreamNumbers {
                    points: 110,
                    ..a.clone()
                },
            ],
            rooms: Vec::new(),
            accounts: Vec::new(),
        };
        let killed = run(3, t("2026-11-21T02:00:00Z"), RunStatus::Running, None);
        let running = Snapshot {
            last_run: Some((&killed).into()),
            last_success: None,
            streams: vec![StreamNumbers { points: 7, ..a }],
            rooms: Vec::new(),
            accounts: Vec::new(),
        };
        let empty = Snapshot {
            last_run: None,
            last_success: None,
            streams: Vec::new(),
            rooms: Vec::new(),
            accounts: Vec::new(),
        };
        for (snapshot, before) in [full, running, empty].iter().zip(BEFORE) {
            // What was written is what the next run reads back when it cannot read the database.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.prom");
            write(&path, &render(snapshot)).unwrap();
            assert_eq!(previous_last_success(&path), snapshot.last_success);
            let text = render(snapshot);
            let sampled: BTreeSet<&str> = before
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split(['{', ' ']).next())
                .collect();
            let expected: BTreeSet<&str> = before
                .lines()
                .filter(|l| !l.is_empty())
                .filter(|l| {
                    !l.starts_with('#') || l.split(' ').nth(2).is_some_and(|n| sampled.contains(n))
                })
                .collect();
            let got: BTreeSet<&str> = text.lines().collect();
            assert_eq!(got, expected, "{text}");
            assert_eq!(
                text.lines().count(),
                expected.len(),
                "no line twice: {text}"
            );
        }
    }
}
