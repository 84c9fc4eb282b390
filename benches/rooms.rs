//! Rooms benchmark (issue 20): planning and `status` over a `[[rooms]]` block of 10,000 rooms.
//!
//! Builds, in a real SQLite file and through the store API a `sync` writes with, the state a month
//! of runs leaves for one `[[rooms]]` block with `granularity = ["1d", "5min"]`: 10,000 rooms with
//! a few calls each of minutes to hours over 30 days in `rtc_rooms` (one `Store::commit_listing`
//! per listed local day), their 20,000 room streams named (`Store::register_streams`) and fetched
//! (one `Store::commit_window` per planned window, its batch made by `api::quality::split` from an
//! answer with a point per needed bucket, so the ledger holds the settled and provisional rows a
//! run leaves), assessed (`health::assess`, `Store::assess_streams`) and a finished run.
//!
//! Then, in a fresh process (this benchmark run again, so the build's memory does not count), side
//! by side: (1) planning the room streams as `sync` does (the ledger as `plan` and `sync` read it,
//! `pipeline::make_plan`, the calls that can overlap the horizon, `planner::room_streams`,
//! `planner::plan`), and (2) `status` as the `status` command computes it (`report::Status::load`,
//! `judge`, `text`), with that process's peak RSS. The built binary's own `plan --json` and
//! `status` are run against the same database too, timed, with their peak RSS. The counts are
//! asserted (20,000 room streams planned and assessed, 10,000 rooms known), and so is that
//! `status` prints the block on one line, never a line per room.
//!
//! Run with `cargo bench --bench rooms`. The last line is the summary:
//! `rooms rooms=10000 plan_ms=… status_ms=… peak_rss_mib=…` (the targets: plan and status
//! under 1,000 ms each, under 100 MiB).

mod common;
use common::vm_hwm_kib;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, DurationRound, Utc};
use rtc_quality_sync::api::Fetch;
use rtc_quality_sync::api::quality::{self, Fetched, FetchedIndicator};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::domain::{
    Deferred, Granularity, LedgerEntry, Point, RoomCall, RunCounts, RunStatus, Stream, Window,
};
use rtc_quality_sync::pipeline::{self, RunOptions};
use rtc_quality_sync::report::Status;
use rtc_quality_sync::store::{Assessment, RoomListing, Store};
use rtc_quality_sync::{health, planner};

const ROOMS: usize = 10_000;
const BLOCK: &str = "rooms";
const APP: &str = "bench_rooms_app";
/// Set in the child process that plans and assesses: the prepared state's directory.
const PHASE_ENV: &str = "ROOMS_BENCH_PHASE_DIR";
/// The `now` of every step, fixed so that the build and the measured phase agree.
const NOW_ENV: &str = "ROOMS_BENCH_NOW";

fn config_text(db: &Path) -> String {
    format!(
        "[storage]\ndatabase_url = \"sqlite://{}\"\n\
         [[rooms]]\nname = \"{BLOCK}\"\napp_id = \"{APP}\"\n\
         indicators = [\"join_room_success_rate\", \"stall_rate\"]\n\
         granularity = [\"1d\", \"5min\"]\nmin_active_users = 1\n",
        db.display()
    )
}

/// SplitMix64: a seeded, dependency-free source of the calls.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

/// Each room's calls over the month before `now`: 2 to 5 calls of 2 minutes to 4 hours
/// (log-uniform), 1 to 40 active users, a few with none (listed, never fetched), a few still
/// running, some older than the horizon. Every room has one qualifying call that both of its
/// granularities can fetch (it ended by two days ago and started after the horizon's first day),
/// so each room is two room streams: no room is left out by the horizon or `min_active_users`.
fn calls(now: DateTime<Utc>) -> Vec<RoomCall> {
    let mut rng = Rng(20);
    let mut out = Vec::new();
    let minute = 60;
    for room in 0..ROOMS {
        let room_id = format!("room-{room:05}");
        let n = rng.range(2, 6);
        for i in 0..n {
            // Minutes to hours: 2 min .. 4 h, log-uniform.
            let length = (2.0 * 120f64.powf(rng.range(0, 1000) as f64 / 1000.0) * 60.0) as i64;
            let (created, users, running) = if i == 0 {
                // The qualifying call: inside both horizons, ended 2 days ago at the latest.
                let created =
                    now - Duration::days(28) + Duration::seconds(rng.range(0, 26 * 86_400));
                (created, rng.range(1, 41), false)
            } else {
                // Anywhere in the last 31 days: some before the horizon, some still running.
                let created = now - Duration::seconds(rng.range(10 * minute, 31 * 86_400));
                let users = if rng.range(0, 10) == 0 {
                    0
                } else {
                    rng.range(1, 41)
                };
                let ends = created + Duration::seconds(length);
                (created, users, ends > now)
            };
            let created = created + Duration::milliseconds(rng.range(0, 1000));
            out.push(RoomCall {
                call_id: format!("call-{room:05}-{i}"),
                room_id: room_id.clone(),
                created_at: created,
                destroyed_at: (!running).then(|| created + Duration::seconds(length)),
                active_user_num: users,
                finished: !running,
            });
        }
    }
    out.sort_by_key(|c| c.created_at);
    out
}

/// A `ListQuality` answer for a window of a room stream: a value per needed bucket inside it, per
/// indicator (named as asked).
fn answer(stream: &Stream, window: Window, indicators: &[String], seed: u64) -> Fetched {
    let step = Duration::seconds(stream.granularity.seconds());
    let needs = &stream.room.as_ref().expect("a room stream").needs;
    let mut rng = Rng(seed);
    Fetched {
        request_id: format!("bench-{seed}"),
        indicators: indicators
            .iter()
            .map(|name| {
                let mut points = Vec::new();
                for need in needs {
                    let mut ts = need.start.max(window.start);
                    while ts < need.end.min(window.end) {
                        points.push(Point {
                            ts,
                            value: 90.0 + rng.range(0, 1000) as f64 / 100.0,
                        });
                        ts += step;
                    }
                }
                FetchedIndicator {
                    name: name.clone(),
                    unit: "%".into(),
                    points,
                }
            })
            .collect(),
    }
}

/// What a `sync` leaves: the calls listed day by day, the room streams named, every planned window
/// committed and the streams assessed, and a finished run. Returns the calls and points written.
async fn build_state(settings: &Settings, now: DateTime<Utc>) -> (usize, usize) {
    let started = Instant::now();
    let store = Store::connect(settings.database_url.expose())
        .await
        .expect("the database opens");
    let run_id = store.start_run("sync", now, None).await.unwrap();
    let block = &settings.rooms[0];
    let tz = settings.window.timezone;
    let all = calls(now);
    // Discovery: one listing per local day, as a run lists them.
    let listing_key = block.listing_key(tz);
    store
        .register_streams(
            &[(listing_key.clone(), block.listing_label(), Vec::new())],
            "",
            None,
        )
        .await
        .unwrap();
    let first = planner::floor_to(all[0].created_at, Granularity::Day, tz);
    let mut day = first;
    while day < now {
        let end = day + Duration::days(1);
        let listed: Vec<RoomCall> = all
            .iter()
            .filter(|c| day <= c.created_at && c.created_at < end)
            .cloned()
            .collect();
        let done = end + Duration::minutes(10) <= now && listed.iter().all(|c| c.finished);
        store
            .commit_listing(&RoomListing {
                stream: &listing_key,
                app_id: APP,
                window: Window::new(day, end.min(now)),
                done,
                calls: &listed,
                attempts: 1,
                request_id: None,
                fetched_at: now,
            })
            .await
            .unwrap();
        day = end;
    }
    println!(
        "state: {} calls of {ROOMS} rooms listed in {} days in {:.1} s",
        all.len(),
        (now - first).num_days() + 1,
        started.elapsed().as_secs_f64()
    );
    // The room streams, planned as a run plans them, and every window fetched.
    let range = planner::rooms_range(&settings.window, block, now);
    let stored: Vec<RoomCall> = store
        .room_calls_between(APP, range)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call)
        .collect();
    let streams = planner::room_streams(block, &stored, tz, now);
    let names: Vec<(String, String, Vec<String>)> = streams
        .iter()
        .map(|s| (s.key.clone(), s.name.clone(), Vec::new()))
        .collect();
    store.register_streams(&names, "", None).await.unwrap();
    let ledger = store.ledger(None).await.unwrap();
    let plan = planner::plan(&settings.window, &streams, &ledger, now, Default::default()).unwrap();
    let by_name: std::collections::HashMap<&str, &Stream> =
        streams.iter().map(|s| (s.name.as_str(), s)).collect();
    let (mut windows, mut points) = (0u64, 0usize);
    let fetched_at = now;
    for (i, sp) in plan.streams.iter().enumerate() {
        let stream = by_name[sp.stream.as_str()];
        for (j, w) in sp.windows.iter().enumerate() {
            let fetched = answer(stream, w.window, &w.indicators, (i * 64 + j) as u64);
            let fetch = Fetch {
                stream,
                window: w.window,
                indicators: &w.indicators,
                attempts: 1,
                fetched_at,
                timezone: tz,
            };
            let settled_until =
                planner::settled_until(&settings.window, stream.granularity, fetched_at);
            let split = quality::split(&fetch, &fetched, settled_until);
            points += split.batch.point_count();
            store.commit_window(&split.batch).await.unwrap();
            windows += 1;
        }
    }
    // What the run's end records: each stream's assessment, then the run.
    let mut by_key: std::collections::HashMap<String, Vec<LedgerEntry>> = Default::default();
    for e in store.ledger(None).await.unwrap() {
        by_key.entry(e.stream.to_string()).or_default().push(e);
    }
    let assessed: Vec<(String, Assessment)> = streams
        .iter()
        .map(|s| {
            let rows = by_key.get(&s.key).map_or(&[][..], Vec::as_slice);
            let h = health::assess(&settings.window, s, rows, now);
            let a = Assessment {
                settled_through: h.settled_through,
                complete_through: h.complete_through,
                missing_buckets: h.missing_buckets,
                deferred: Deferred::default(),
            };
            (s.key.clone(), a)
        })
        .collect();
    store.assess_streams(&assessed, now).await.unwrap();
    let counts = RunCounts {
        requests: windows,
        windows_ok: windows,
        ..Default::default()
    };
    store
        .finish_run(run_id, RunStatus::Ok, &counts, now)
        .await
        .unwrap();
    let rows: usize = by_key.values().map(Vec::len).sum();
    println!(
        "state: {} room streams, {windows} windows committed ({points} points, {rows} ledger rows) in {:.1} s",
        streams.len(),
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    (all.len(), points)
}

/// Plans the room streams from the database as a `sync` does; returns the room streams planned,
/// those with a range, and the time it took.
async fn plan_phase(settings: &Settings, now: DateTime<Utc>) -> (usize, usize, StdDuration) {
    let block = &settings.rooms[0];
    let tz = settings.window.timezone;
    let started = Instant::now();
    let store = Store::connect_in(settings.database_url.expose(), &settings.schema)
        .await
        .expect("the database opens");
    let ledger = pipeline::adopted_ledger(settings, &store).await.unwrap().0;
    let read_ledger = started.elapsed();
    let (_, mut plan) =
        pipeline::make_plan(settings, &ledger, &RunOptions::default(), now).unwrap();
    let made_plan = started.elapsed();
    let range = planner::rooms_range(&settings.window, block, now);
    let calls: Vec<RoomCall> = store
        .room_calls_between(APP, range)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call)
        .collect();
    let read_calls = started.elapsed();
    let streams = planner::room_streams(block, &calls, tz, now);
    let rooms_plan =
        planner::plan(&settings.window, &streams, &ledger, now, Default::default()).unwrap();
    plan.streams.extend(rooms_plan.streams);
    let elapsed = started.elapsed();
    store.close().await;
    let planned = plan.streams.len();
    let with_range = plan.streams.iter().filter(|s| s.range.is_some()).count();
    println!(
        "plan: {} ledger rows read in {} ms, the listing planned in {} ms, {} calls that can overlap \
         the horizon read in {} ms, {planned} room streams ({with_range} with a range) planned into \
         {} windows in {} ms; {} ms in all",
        ledger.len(),
        read_ledger.as_millis(),
        (made_plan - read_ledger).as_millis(),
        calls.len(),
        (read_calls - made_plan).as_millis(),
        plan.request_count(),
        (elapsed - read_calls).as_millis(),
        elapsed.as_millis()
    );
    (planned, with_range, elapsed)
}

/// `status` as the command computes it; returns the block's room streams, rooms and calls, and the
/// time it took.
async fn status_phase(settings: &Settings, now: DateTime<Utc>) -> (u64, u64, u64, StdDuration) {
    let started = Instant::now();
    let store = Store::connect_in(settings.database_url.expose(), &settings.schema)
        .await
        .expect("the database opens");
    let mut status = Status::load(&store, Some(settings)).await.unwrap();
    let loaded = started.elapsed();
    status.judge(settings, now, Duration::hours(36));
    let text = status.text();
    let elapsed = started.elapsed();
    store.close().await;
    let r = &status.rooms[0];
    println!(
        "status: loaded in {} ms, judged and written in {} ms: {} room streams, {} calls and {} rooms known, \
         {} failed and {} provisional windows, {} missing buckets; {} lines of text",
        loaded.as_millis(),
        (elapsed - loaded).as_millis(),
        r.room_streams,
        r.calls_known,
        r.rooms_known,
        r.room_failed_windows,
        r.room_pending_windows,
        r.missing_buckets,
        text.lines().count()
    );
    (r.room_streams, r.rooms_known, r.calls_known, elapsed)
}

/// The measured phase, in a process of its own: plans the room streams as `sync` does, then
/// computes `status` as the command does (nothing of the first kept for the second), and prints
/// one line for the parent with this process's peak RSS.
async fn phase(dir: &Path, now: DateTime<Utc>) {
    let settings = Settings::load(&dir.join("bench.toml")).expect("the config loads");
    let (planned, with_range, plan_time) = plan_phase(&settings, now).await;
    let (assessed, rooms_known, calls_known, status_time) = status_phase(&settings, now).await;
    let peak = vm_hwm_kib("self").unwrap_or(0);
    println!(
        "phase planned={planned} with_range={with_range} assessed={assessed} rooms_known={rooms_known} \
         calls_known={calls_known} plan_ms={} status_ms={} peak_kib={peak}",
        plan_time.as_millis(),
        status_time.as_millis()
    );
}

/// Runs a command to its end, polling its peak RSS; returns its wall time, peak KiB and stdout.
fn run_measured(mut cmd: Command) -> (StdDuration, u64, String) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let pid = child.id().to_string();
    // Read the pipe on a thread, so a large output never blocks the child.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let mut peak = 0;
    let status = loop {
        if let Some(k) = vm_hwm_kib(&pid) {
            peak = peak.max(k);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(StdDuration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let out = reader.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{cmd:?} failed: {status}\n{err}");
    (elapsed, peak, out)
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} in {line}"))
        .parse()
        .unwrap()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    if let Ok(dir) = std::env::var(PHASE_ENV) {
        let now = DateTime::parse_from_rfc3339(&std::env::var(NOW_ENV).unwrap())
            .unwrap()
            .with_timezone(&Utc);
        rt.block_on(phase(Path::new(&dir), now));
        return;
    }
    // `ROOMS_BENCH_DIR=PATH` keeps the state in PATH and measures a state kept there before
    // again (at its own `now`), for profiling the phase without building it anew.
    let temp = tempfile::tempdir().expect("a temp dir");
    let kept = std::env::var_os("ROOMS_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir).unwrap();
    let db = dir.join("bench.db");
    let config = dir.join("bench.toml");
    let saved = dir.join("now.txt");
    let (now, calls) = match std::fs::read_to_string(&saved) {
        Ok(text) if kept.is_some() => {
            let (now, calls) = text.trim().split_once(' ').expect("now and calls");
            let now = DateTime::parse_from_rfc3339(now)
                .unwrap()
                .with_timezone(&Utc);
            println!("state: kept in {} (now {now})", dir.display());
            (now, calls.parse().unwrap())
        }
        _ => {
            // A whole second, so that `--now` as text is the same instant.
            let now = rtc_quality_sync::clock::now()
                .duration_trunc(Duration::seconds(1))
                .unwrap();
            std::fs::write(&config, config_text(&db)).unwrap();
            let settings = Settings::load(&config).expect("the config loads");
            let (calls, _) = rt.block_on(build_state(&settings, now));
            std::fs::write(&saved, format!("{} {calls}", now.to_rfc3339())).unwrap();
            (now, calls)
        }
    };
    drop(rt);

    // The measured phase in a fresh process of this benchmark.
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(PHASE_ENV, dir).env(NOW_ENV, now.to_rfc3339());
    let (_, phase_kib, out) = run_measured(cmd);
    print!("{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("phase "))
        .expect("the phase's line");
    let streams = 2 * ROOMS as u64;
    assert_eq!(field(line, "planned"), streams, "room streams planned");
    assert_eq!(
        field(line, "with_range"),
        streams,
        "room streams with a range"
    );
    assert_eq!(field(line, "assessed"), streams, "room streams in status");
    assert_eq!(field(line, "rooms_known"), ROOMS as u64, "rooms known");
    assert_eq!(field(line, "calls_known"), calls as u64, "calls known");
    let (plan_ms, status_ms) = (field(line, "plan_ms"), field(line, "status_ms"));

    // What a user runs: the binary's `plan --json` and `status`.
    let binary = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rtc-quality-sync"));
        cmd.args(args)
            .arg("--config")
            .arg(&config)
            .args(["--now", &now.to_rfc3339()])
            .env_remove("DATABASE_URL");
        run_measured(cmd)
    };
    let (plan_wall, plan_kib, plan_out) = binary(&["plan", "--json"]);
    let plan_json: serde_json::Value =
        serde_json::from_str(&plan_out).expect("plan --json is JSON");
    let (status_wall, status_kib, status_out) = binary(&["status"]);
    let lines = status_out.lines().count();
    println!(
        "binary: plan --json {} ms, peak RSS {:.1} MiB ({} listing ranges); status {} ms, peak RSS {:.1} MiB, {lines} lines:",
        plan_wall.as_millis(),
        plan_kib as f64 / 1024.0,
        plan_json["listings"].as_array().map_or(0, |l| l
            .iter()
            .map(|b| b[1].as_array().map_or(0, Vec::len))
            .sum()),
        status_wall.as_millis(),
        status_kib as f64 / 1024.0
    );
    for l in status_out.lines() {
        println!("  | {l}");
    }
    // One line per block, never one per room: the whole status fits on a screen.
    assert!(
        lines <= 24,
        "status printed {lines} lines for {ROOMS} rooms"
    );
    assert_eq!(
        status_out.lines().filter(|l| l.contains("room-")).count(),
        0,
        "status names a room"
    );
    assert!(
        status_out
            .lines()
            .any(|l| l.starts_with(&format!("{BLOCK}/rooms"))
                && l.contains(&format!("{streams} room streams"))),
        "status shows the block's line with its {streams} room streams"
    );

    let peak_kib = phase_kib.max(plan_kib).max(status_kib);
    println!(
        "targets: plan {plan_ms} ms and status {status_ms} ms (< 1000 ms each), peak RSS {:.1} MiB (< 100 MiB): {}",
        peak_kib as f64 / 1024.0,
        if plan_ms < 1000 && status_ms < 1000 && peak_kib < 100 * 1024 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "rooms rooms={ROOMS} plan_ms={plan_ms} status_ms={status_ms} peak_rss_mib={}",
        (peak_kib as f64 / 1024.0).round() as u64
    );
}
