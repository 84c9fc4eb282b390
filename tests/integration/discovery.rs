//! Issue 20, discovery: a `[[rooms]]` block's calls listed with `ListRoomInfo` into `rtc_rooms`,
//! against the simulator over real HTTP, on both backends.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::discovery;
use rtc_quality_sync::domain::{RoomCall, RunStatus, WindowState};
use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::Store;

use crate::pipeline::{settings, sync_at};

pub(crate) const APP: &str = "app_rooms";
pub(crate) const SEED: u64 = 7;

/// A busy hour that is not on the hour, so that ranges do not start where slots do.
pub(crate) fn now() -> DateTime<Utc> {
    "2026-03-10T05:17:00Z".parse().unwrap()
}

pub(crate) async fn simulator(max_matches: usize) -> SimulatorHandle {
    simulator::spawn(sim_config(max_matches)).await.unwrap()
}

/// The simulator these tests run: `SEED`, data-now `now()`, quotas no test run reaches.
pub(crate) fn sim_config(max_matches: usize) -> SimulatorConfig {
    SimulatorConfig {
        seed: SEED,
        data_now: Some(now()),
        room_list_rate_limit_per_sec: 200,
        rate_limit_per_sec: 200,
        room_list_max_matches: max_matches,
        latency: StdDuration::ZERO,
        ..Default::default()
    }
}

pub(crate) fn rooms_config(sim: &SimulatorHandle, lookback_days: u32) -> Settings {
    settings(&rooms_text(&sim.endpoint(), lookback_days))
}

/// One `[[rooms]]` block of `APP` asking `stall_rate` per 5 minutes, over `lookback_days`.
pub(crate) fn rooms_text(endpoint: &str, lookback_days: u32) -> String {
    format!(
        r#"
[source]
endpoint = "{endpoint}"
room_list_requests_per_second = 100
requests_per_second = 50
max_in_flight = 4
timeout_secs = 2
max_retries = 2

[window]
max_lookback_days = {lookback_days}

[[rooms]]
name = "rooms"
app_id = "{APP}"
indicators = ["stall_rate"]
granularity = "5min"
"#
    )
}

/// What the simulator lists for the block at `now`, as `rtc_rooms` must hold it.
pub(crate) fn expected(cfg: &Settings) -> BTreeMap<String, RoomCall> {
    let block = &cfg.rooms[0];
    let l = discovery::listing_start(&cfg.window, &block.granularities, now());
    simulator::rooms::room_calls(SEED, APP, l, now(), now())
        .into_iter()
        .map(|c| {
            let finished = c.finished_at(now());
            let call = RoomCall {
                call_id: c.call_id.clone(),
                room_id: c.room_id.clone(),
                created_at: c.created,
                destroyed_at: finished.then_some(c.destroyed),
                active_user_num: c.active_user_num,
                finished,
            };
            (c.call_id, call)
        })
        .collect()
}

async fn stored(store: &Store) -> BTreeMap<String, (RoomCall, DateTime<Utc>)> {
    store
        .room_calls(APP)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.call.call_id.clone(), (s.call, s.updated_at)))
        .collect()
}

/// Every call the simulator lists over `[L, now]` lands in `rtc_rooms` once, with the HasMore
/// ranges split (the simulator answers HasMore above 40 calls); an immediate re-run lists only the
/// ranges not done, and rewrites nothing.
async fn discovery_lists_every_call_once(url: &str) {
    let sim = simulator(40).await;
    let cfg = rooms_config(&sim, 30);
    let store = Store::connect(url).await.unwrap();
    let want = expected(&cfg);
    assert!(want.len() > 200, "a busy app: {}", want.len());

    let first = sync_at(&cfg, &store, now()).await;
    assert_eq!(first.status, RunStatus::Ok, "{first:?}");
    let r = &first.rooms[0];
    assert_eq!((r.name.as_str(), r.windows_failed), ("rooms", 0), "{r:?}");
    assert_eq!(r.calls_listed, want.len() as u64);
    assert_eq!(r.calls_known, want.len() as u64);
    let rooms: std::collections::BTreeSet<&str> =
        want.values().map(|c| c.room_id.as_str()).collect();
    assert_eq!(r.rooms_known, rooms.len() as u64);
    let got = stored(&store).await;
    let got_calls: BTreeMap<String, RoomCall> = got
        .iter()
        .map(|(k, (c, _))| (k.clone(), c.clone()))
        .collect();
    assert_eq!(got_calls, want, "rtc_rooms equals the simulator's calls");
    // The splits asked more than one page per day: HasMore was met and handled.
    let listing_calls = sim
        .requests()
        .iter()
        .filter(|r| r.action == "ListRoomInfo")
        .count() as u64;
    assert_eq!(listing_calls, r.list_calls);
    assert!(r.list_calls > 15, "{}", r.list_calls);

    // The ledger: one row per range, settled where the day is done.
    let key = cfg.rooms[0].listing_key(cfg.window.timezone);
    let rows: Vec<_> = store
        .ledger(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| *e.stream == *key)
        .collect();
    assert!(
        rows.len() >= 15 && (rows.len() as u64) < r.windows_ok,
        "{rows:?}"
    );
    let provisional = rows
        .iter()
        .filter(|e| e.state == WindowState::Provisional)
        .count();
    assert!(
        (1..=3).contains(&provisional),
        "today and the days with a running call: {rows:?}"
    );

    // `status` shows the block as one line and judges its listing; its listing is no stream.
    let mut status = rtc_quality_sync::report::Status::load(&store, Some(&cfg))
        .await
        .unwrap();
    status.judge(&cfg, now(), Duration::hours(36));
    let b = &status.rooms[0];
    assert_eq!(
        (b.calls_known, b.rooms_known, b.failed_ranges),
        (want.len() as u64, rooms.len() as u64, 0)
    );
    let l = discovery::listing_start(&cfg.window, &cfg.rooms[0].granularities, now());
    let through = b.listed_through.expect("the days from L are done");
    assert!(through > l + Duration::days(12), "{through}");
    assert!(status.healthy(), "{}", status.check_text());
    assert!(status.not_configured.is_empty() && status.streams.is_empty());
    let text = status.text();
    assert!(
        text.contains("rooms/rooms") && text.contains(&format!("{} calls in", want.len())),
        "{text}"
    );
    // `status --json` details each room.
    let json = serde_json::to_value(&status).unwrap();
    let detail = json["rooms"][0]["rooms"].as_array().unwrap();
    assert_eq!(detail.len(), rooms.len());
    let summed: u64 = detail.iter().map(|d| d["calls"].as_u64().unwrap()).sum();
    assert_eq!(summed, want.len() as u64);
    let peak = want
        .values()
        .filter(|c| c.room_id == "room-1")
        .map(|c| c.active_user_num)
        .max();
    let room_1 = detail.iter().find(|d| d["room_id"] == "room-1").unwrap();
    assert_eq!(room_1["peak_users"].as_i64(), peak);
    let metrics = rtc_quality_sync::metrics::render(&status.metrics_snapshot(None));
    assert!(
        metrics.contains(&format!(
            "rtc_quality_sync_rooms_known{{rooms=\"rooms\"}} {}",
            rooms.len()
        )),
        "{metrics}"
    );

    // Again at once: only what is not done is listed, and no stored call is written.
    let second = sync_at(&cfg, &store, now()).await;
    assert_eq!(second.status, RunStatus::Ok);
    let r2 = &second.rooms[0];
    assert!(
        r2.list_calls < r.list_calls,
        "{} vs {}",
        r2.list_calls,
        r.list_calls
    );
    assert_eq!(r2.calls_known, want.len() as u64);
    assert_eq!(
        stored(&store).await,
        got,
        "an unchanged call is never rewritten"
    );
    store.close().await;
}

/// A range that stays `HasMore` down to one minute fails alone with an error that says so; the
/// run is partial, the failure is recorded, and nothing is stored for it.
async fn a_range_that_stays_has_more_fails_with_the_reason(url: &str) {
    let sim = simulator(0).await;
    let cfg = rooms_config(&sim, 3);
    let store = Store::connect(url).await.unwrap();
    let report = sync_at(&cfg, &store, now()).await;
    assert_eq!(report.status, RunStatus::Partial, "{report:?}");
    let r = &report.rooms[0];
    assert_eq!(r.windows_ok, 0);
    assert!(r.windows_failed >= 3, "{r:?}");
    let error = r.error.as_deref().unwrap();
    assert!(
        error.contains("HasMore") && error.contains("one-minute"),
        "{error}"
    );
    // Each range went down to its first busy minute, listing the quiet halves on the way: at most
    // two calls per halving of a day (11 halvings reach a minute).
    assert!(
        r.list_calls <= r.windows_failed * 2 * 12,
        "{} calls for {} ranges",
        r.list_calls,
        r.windows_failed
    );
    assert!(stored(&store).await.is_empty());
    let failed = store
        .ledger(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.state == WindowState::Failed && e.indicator == "calls")
        .count() as u64;
    assert_eq!(failed, r.windows_failed);
    // The next run tries them again.
    let mut status = rtc_quality_sync::report::Status::load(&store, Some(&cfg))
        .await
        .unwrap();
    status.judge(&cfg, now(), Duration::hours(36));
    let check = status.check_text();
    assert!(
        !status.healthy() && check.contains("rooms/rooms") && check.contains("failed"),
        "{check}"
    );
    let again = sync_at(&cfg, &store, now() + Duration::minutes(1)).await;
    assert_eq!(again.rooms[0].windows_failed, r.windows_failed);
    store.close().await;
}

/// Faults while listing (500, 429, a connection closed mid-body, pages short of their Total, a
/// call listed twice in place of another) end in the same `rtc_rooms` as a fault-free run.
async fn faults_while_listing_give_the_fault_free_result(url: &str) {
    let sim = simulator::spawn(SimulatorConfig {
        faults: simulator::Faults::parse("500=0.1,close=0.05,shortpage=0.15,dupcall=0.15").unwrap(),
        ..sim_config(40)
    })
    .await
    .unwrap();
    let mut cfg = rooms_config(&sim, 30);
    cfg.source.max_retries = 8;
    let store = Store::connect(url).await.unwrap();
    let want = expected(&cfg);
    let report = sync_at(&cfg, &store, now()).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    let faulted = sim.requests().iter().filter(|r| r.fault.is_some()).count();
    assert!(faulted > 5, "{faulted} faults injected");
    let got: BTreeMap<String, RoomCall> = stored(&store)
        .await
        .into_iter()
        .map(|(k, (c, _))| (k, c))
        .collect();
    assert_eq!(got, want);
    store.close().await;
}

crate::helpers::on_both_urls!(
    discovery_lists_every_call_once,
    room_streams_fetch_what_each_room_had,
    a_cap_defers_and_the_next_runs_catch_up,
    faults_while_listing_give_the_fault_free_result,
    a_range_that_stays_has_more_fails_with_the_reason,
    one_room_by_its_name_fetches_that_room_alone
);

/// `sync --job rooms/room-1`: the block's listing runs, and only room-1's streams are fetched; no
/// other room stream is named yet. The next whole run fetches the other rooms and asks room-1 only for its provisional
/// window again. `--job` with the room stream's label selects the same; a room of a block no one
/// configured is refused by name.
async fn one_room_by_its_name_fetches_that_room_alone(url: &str) {
    let sim = simulator(500).await;
    let cfg = rooms_config(&sim, 3);
    let store = Store::connect(url).await.unwrap();
    let options = |job: &str| rtc_quality_sync::pipeline::RunOptions {
        mode: "sync".into(),
        jobs: vec![job.to_string()],
        ..Default::default()
    };
    let one = crate::pipeline::sync_with(&cfg, &store, now(), &options("rooms/room-1")).await;
    assert_eq!(one.status, RunStatus::Ok, "{one:?}");
    let asked = room_requests(&sim, 0);
    assert!(!asked.is_empty());
    assert!(
        asked.iter().all(|(room, _, _)| room == "room-1"),
        "{asked:?}"
    );
    assert!(
        sim.requests().iter().any(|r| r.action == "ListRoomInfo"),
        "the block's listing ran"
    );
    let labels: Vec<String> = store
        .stream_labels()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| l.starts_with("rooms/room-"))
        .collect();
    assert_eq!(labels, ["rooms/room-1/5min"], "no other room stream yet");

    let from = sim.requests().len();
    let all = sync_at(&cfg, &store, now()).await;
    assert_eq!(all.status, RunStatus::Ok, "{all:?}");
    let asked = room_requests(&sim, from);
    let rooms: std::collections::BTreeSet<&str> =
        asked.iter().map(|(r, _, _)| r.as_str()).collect();
    assert!(rooms.len() > 5, "the other rooms: {rooms:?}");
    let again = asked.iter().filter(|(r, _, _)| r == "room-1").count();
    assert!(
        again <= 1,
        "room-1 asked {again} times again: only its provisional window"
    );

    // The label of the room's stream selects it too, and fetches only its provisional window.
    let from = sim.requests().len();
    let label =
        crate::pipeline::sync_with(&cfg, &store, now(), &options("rooms/room-1/5min")).await;
    assert_eq!(label.status, RunStatus::Ok, "{label:?}");
    let asked = room_requests(&sim, from);
    assert!(
        asked.iter().all(|(room, _, _)| room == "room-1"),
        "{asked:?}"
    );
    assert!(asked.len() <= 1, "{asked:?}");
    store.close().await;

    let err = rtc_quality_sync::pipeline::select_streams(&cfg, &["elsewhere/room-1".to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("--job elsewhere/room-1"), "{err}");
}

/// The `RoomId` and window of every `ListQuality` call the simulator answered since `from`.
pub(crate) fn room_requests(sim: &SimulatorHandle, from: usize) -> Vec<(String, String, String)> {
    sim.requests()[from..]
        .iter()
        .filter(|r| r.action == "ListQuality" && r.status == 200)
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            let text = |k: &str| body[k].as_str().unwrap_or("").to_string();
            (text("RoomId"), text("StartTime"), text("EndTime"))
        })
        .collect()
}

/// Per-room quality (PRODUCT.md, "Room streams"): every room with a qualifying call gets its
/// points exactly as the simulator serves them, through the planned windows only (each at most 7
/// days, none twice); a room a `[[jobs]]` entry asks too is fetched once, as the job's stream; an
/// immediate re-run asks at most the provisional windows again and rewrites nothing.
async fn room_streams_fetch_what_each_room_had(url: &str) {
    let sim = simulator(500).await;
    let text = |extra: &str| {
        format!(
            "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\nroom_list_requests_per_second = 100\n\
             max_in_flight = 4\ntimeout_secs = 2\nmax_retries = 2\n[window]\nmax_lookback_days = 5\n\
             [[jobs]]\nname = \"lobby\"\napp_id = \"{APP}\"\nroom_id = \"room-1\"\nindicators = [\"stall_rate\"]\n\
             granularity = \"5min\"\n{extra}",
            sim.endpoint()
        )
    };
    let cfg = settings(&text(&format!(
        "[[rooms]]\nname = \"rooms\"\napp_id = \"{APP}\"\nindicators = [\"stall_rate\"]\ngranularity = \"5min\"\n"
    )));
    let store = Store::connect(url).await.unwrap();
    let report = sync_at(&cfg, &store, now()).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    let block = &report.rooms[0];
    assert_eq!(
        (block.windows_failed, block.windows_deferred),
        (0, 0),
        "{block:?}"
    );
    assert!(block.calls > 0 && block.points.inserted > 0, "{block:?}");
    assert!(
        report
            .streams
            .iter()
            .all(|s| !s.stream.starts_with("rooms/")),
        "room streams are the block's, not streams: {:?}",
        report.streams
    );

    let asked = room_requests(&sim, 0);
    // Every stored room's points, as the simulator serves them: one [[jobs]] entry per room.
    let calls = calls(&store).await;
    let room_ids: std::collections::BTreeSet<&str> =
        calls.iter().map(|c| c.room_id.as_str()).collect();
    assert!(room_ids.len() > 20, "{room_ids:?}");
    let mut jobs = String::new();
    for (i, room) in room_ids.iter().enumerate() {
        jobs.push_str(&format!(
            "[[jobs]]\nname = \"r{i}\"\napp_id = \"{APP}\"\nroom_id = {room:?}\nindicators = [\"stall_rate\"]\ngranularity = \"5min\"\n"
        ));
    }
    let reference = settings(&text(&jobs).replace(
        "[[jobs]]\nname = \"lobby\"\napp_id = \"app_rooms\"\nroom_id = \"room-1\"\nindicators = [\"stall_rate\"]\ngranularity = \"5min\"\n",
        "",
    ));
    // Only the buckets one of the room's listed calls overlaps: what a call created before the
    // listing's start did is never known, and a quiet bucket has no data anyway.
    let ran = |room: &str, ts: DateTime<Utc>| {
        // room-1 is the job's too: its whole horizon.
        room == "room-1"
            || calls.iter().any(|c| {
                c.room_id == room
                    && c.created_at < ts + Duration::minutes(5)
                    && c.destroyed_at.unwrap_or(now()) > ts
            })
    };
    let want: BTreeMap<String, f64> = crate::pipeline::expected(&reference, &sim, now())
        .await
        .into_iter()
        .filter(|(k, _)| {
            let f: Vec<&str> = k.split('|').collect();
            ran(f[1], f[8].parse().unwrap())
        })
        .collect();
    let got = crate::pipeline::values(&crate::pipeline::dump(&store).await);
    let differ: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: want {v}, got {:?}", got.get(k)))
        .chain(
            got.iter()
                .filter(|(k, _)| !want.contains_key(*k))
                .map(|(k, v)| format!("{k}: got {v}, want none")),
        )
        .collect();
    assert!(
        differ.is_empty(),
        "the rooms' points are the simulator's: {} of {} differ, e.g. {:?}",
        differ.len(),
        want.len(),
        &differ[..differ.len().min(8)]
    );

    // The calls: each room stream's planned windows, none twice, none over 7 days; room-1 only as
    // the job's stream (its whole horizon), never again for the block.
    let mut seen = std::collections::BTreeSet::new();
    for (room, start, end) in &asked {
        assert!(
            seen.insert((room.clone(), start.clone())),
            "{room} {start} asked twice"
        );
        let (s, e) = (
            DateTime::parse_from_rfc3339(start).unwrap(),
            DateTime::parse_from_rfc3339(end).unwrap(),
        );
        assert!(e - s <= Duration::days(7), "{room} {start} .. {end}");
    }
    let h = rtc_quality_sync::planner::horizon(
        &cfg.window,
        rtc_quality_sync::domain::Granularity::FiveMin,
        now(),
    );
    let room_1 = asked.iter().filter(|(r, _, _)| r == "room-1").count() as i64;
    assert_eq!(
        room_1,
        ((h.end - h.start).num_seconds() + 7 * 86_400 - 1) / (7 * 86_400)
    );
    let planned =
        rtc_quality_sync::planner::room_streams(&cfg.rooms[0], &calls, cfg.window.timezone, now());
    let plan = rtc_quality_sync::planner::plan(
        &cfg.window,
        &planned
            .into_iter()
            .filter(|s| s.job.room_id != "room-1")
            .collect::<Vec<_>>(),
        &[],
        now(),
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        asked.len() - room_1 as usize,
        plan.request_count(),
        "one call per planned window"
    );
    assert_eq!(block.calls as usize, plan.request_count());

    // At once again: the provisional windows only, and nothing rewritten.
    let before = crate::pipeline::dump(&store).await;
    let from = sim.requests().len();
    let again = sync_at(&cfg, &store, now()).await;
    assert_eq!(again.status, RunStatus::Ok);
    let provisional = provisional_windows(&store).await;
    let asked_again = room_requests(&sim, from).len();
    assert!(
        asked_again <= provisional,
        "{asked_again} calls for {provisional} provisional windows"
    );
    assert_eq!(again.rooms[0].points.inserted, 0);
    assert_eq!(crate::pipeline::dump(&store).await, before);
    store.close().await;
}

/// `max_room_calls_per_run` defers the rest (not failed: exit 0), and the next runs catch up.
async fn a_cap_defers_and_the_next_runs_catch_up(url: &str) {
    let sim = simulator(500).await;
    let cfg = |cap: u32| {
        settings(&format!(
            "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\nroom_list_requests_per_second = 100\n\
             [window]\nmax_lookback_days = 3\n\
             [[rooms]]\nname = \"rooms\"\napp_id = \"{APP}\"\nindicators = [\"stall_rate\"]\n\
             granularity = \"5min\"\nmax_room_calls_per_run = {cap}\n",
            sim.endpoint()
        ))
    };
    let store = Store::connect(url).await.unwrap();
    let first = sync_at(&cfg(5), &store, now()).await;
    assert_eq!(first.status, RunStatus::Ok, "{first:?}");
    assert_eq!(first.exit_code(), 0);
    let b = &first.rooms[0];
    assert_eq!(b.calls, 5, "{b:?}");
    assert!(b.windows_deferred > 0, "{b:?}");
    assert_eq!(room_requests(&sim, 0).len(), 5);
    let json = rtc_quality_sync::report::summary_json(&first);
    assert_eq!(json.rooms[0].windows_deferred, b.windows_deferred);
    assert_eq!(
        json.windows_deferred, b.windows_deferred,
        "the summary's sum"
    );
    // The next runs, capped too, fetch first the windows nothing was fetched of: after as many
    // runs as the first run's deferred windows need, only provisional windows are left to ask.
    let runs = b.windows_deferred.div_ceil(5);
    for _ in 0..runs {
        let next = sync_at(&cfg(5), &store, now()).await;
        assert_eq!(
            (next.status, next.rooms[0].windows_failed),
            (RunStatus::Ok, 0)
        );
        assert_eq!(next.rooms[0].calls, 5);
    }
    let provisional = provisional_windows(&store).await as u64;
    // Caught up: an uncapped run defers nothing and asks only the provisional windows again.
    let all = sync_at(&cfg(0), &store, now()).await;
    assert_eq!(all.rooms[0].windows_deferred, 0);
    assert!(
        all.rooms[0].calls <= provisional,
        "{} calls, {provisional} provisional windows",
        all.rooms[0].calls
    );
    store.close().await;
}

/// The room streams' provisional windows (`stall_rate`'s ledger rows): what a re-run asks again.
async fn provisional_windows(store: &Store) -> usize {
    store
        .ledger(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.state == WindowState::Provisional && e.indicator == "stall_rate")
        .map(|e| (e.stream, e.window))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// The app's calls in `rtc_rooms`, in (created, CallId) order.
pub(crate) async fn calls(store: &Store) -> Vec<RoomCall> {
    store
        .room_calls(APP)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.call)
        .collect()
}

/// The binary killed with SIGKILL while it lists: every listing row it committed holds its calls,
/// and a re-run ends with exactly the `rtc_rooms` of an uninterrupted run.
#[tokio::test]
async fn sigkill_while_listing_loses_nothing_and_rerun_converges() {
    let sim = simulator::spawn(SimulatorConfig {
        seed: SEED,
        data_now: Some(now()),
        room_list_max_matches: 40,
        rate_limit_per_sec: 100,
        latency: StdDuration::from_millis(40),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rooms.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\nmax_in_flight = 2\nmax_retries = 2\n\n\
             [[rooms]]\nname = \"rooms\"\napp_id = \"{APP}\"\nindicators = [\"stall_rate\"]\ngranularity = \"5min\"\n",
            sim.endpoint()
        ),
    )
    .unwrap();
    let sync = |url: &str| crate::helpers::spawn_sync(&config, url, now());
    let reference_url = format!("sqlite://{}", dir.path().join("reference.db").display());
    let out = sync(&reference_url).wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = Store::connect(&reference_url).await.unwrap();
    let want = calls(&reference).await;
    assert!(want.len() > 200, "{}", want.len());

    let url = format!("sqlite://{}", dir.path().join("killed.db").display());
    let mut kills = 0;
    for after_ms in [250u64, 600, 1000, 1500] {
        let mut child = sync(&url);
        tokio::time::sleep(StdDuration::from_millis(after_ms)).await;
        if child.try_wait().unwrap().is_none() {
            child.start_kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let _ = child.wait().await;
        // Every committed listing row holds its calls: none is half-written.
        let store = Store::connect(&url).await.unwrap();
        let stored = calls(&store).await;
        for row in store.ledger(None).await.unwrap() {
            if row.indicator != "calls" || row.state == WindowState::Failed {
                continue;
            }
            let inside = stored
                .iter()
                .filter(|c| row.window.start <= c.created_at && c.created_at <= row.window.end)
                .count() as i64;
            assert!(inside >= row.points, "{row:?} holds {inside} calls");
        }
        store.close().await;
    }
    assert!(kills >= 2, "the listing was killed mid-way {kills} times");

    let out = sync(&url).wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(calls(&store).await, want);
    sim.shutdown().await;
}
